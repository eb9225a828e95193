//! The `env` imports: proxy-wasm ABI 0.2.1 as Envoy answers it, over the
//! [`FakeHost`](sticky_core::testing::FakeHost) of the current stream.
//!
//! Every call the Rust SDK 0.2.5 imports is defined, so the module links; the
//! ones a session-affinity filter has no business making (callouts, local
//! replies, queues, stream control) trap with a message saying so.

use sticky_core::host::Host as _;
use wasmtime::{Caller, Engine, FuncType, Linker, Result, ValType};

use crate::abi::{self, Status, buffer, map};
use crate::guest::{self, unsigned};
use crate::properties;
use crate::state::{HostState, LogLine, Phase};

type Ctx<'a> = Caller<'a, HostState>;

/// Imports a sticky filter must never call, with their arity (all `i32`s).
const REFUSED: &[(&str, usize, &str)] = &[
    (
        "proxy_continue_stream",
        1,
        "the filter never pauses, so it has nothing to resume",
    ),
    (
        "proxy_close_stream",
        1,
        "the filter must fail open, never close a stream",
    ),
    ("proxy_http_call", 10, "the filter makes no callouts"),
    ("proxy_grpc_call", 12, "the filter makes no callouts"),
    ("proxy_grpc_stream", 9, "the filter makes no callouts"),
    ("proxy_grpc_send", 4, "the filter makes no callouts"),
    ("proxy_grpc_cancel", 1, "the filter makes no callouts"),
    ("proxy_grpc_close", 1, "the filter makes no callouts"),
    ("proxy_get_status", 3, "the filter makes no callouts"),
    (
        "proxy_register_shared_queue",
        3,
        "the filter uses no shared queues",
    ),
    (
        "proxy_resolve_shared_queue",
        5,
        "the filter uses no shared queues",
    ),
    (
        "proxy_dequeue_shared_queue",
        3,
        "the filter uses no shared queues",
    ),
    (
        "proxy_enqueue_shared_queue",
        3,
        "the filter uses no shared queues",
    ),
    (
        "proxy_call_foreign_function",
        6,
        "the filter calls no foreign functions",
    ),
    (
        "proxy_set_buffer_bytes",
        5,
        "the filter rewrites no bodies or buffers",
    ),
    ("proxy_set_property", 4, "the filter writes no properties"),
    (
        "proxy_done",
        0,
        "only a root context that delayed its shutdown may call it",
    ),
];

/// Defines every `env` import on `linker`.
pub fn add_to_linker(engine: &Engine, linker: &mut Linker<HostState>) -> Result<()> {
    for &(name, arity, why) in REFUSED {
        let ty = FuncType::new(engine, vec![ValType::I32; arity], [ValType::I32]);
        linker.func_new("env", name, ty, move |mut caller, _, _| {
            let state = caller.data_mut();
            state.called(name);
            Err(state.violation(name, format!("not supported by this host: {why}")))
        })?;
    }

    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: Ctx<'_>, level: i32, ptr: i32, len: i32| -> Result<i32> {
            const CALL: &str = "proxy_log";
            enter(&mut c, CALL)?;
            if !(0..=abi::LOG_CRITICAL).contains(&level) {
                return Err(c
                    .data_mut()
                    .violation(CALL, format!("log level {level} is not a LogLevel")));
            }
            let message = guest::read(&mut c, CALL, "message", ptr, len)?;
            c.data_mut().logs.push(LogLine {
                level: abi::log_level_name(level),
                message: String::from_utf8_lossy(&message).into_owned(),
            });
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         status: i32,
         _details_ptr: i32,
         _details_len: i32,
         body_ptr: i32,
         body_len: i32,
         _headers_ptr: i32,
         _headers_len: i32,
         _grpc: i32|
         -> Result<i32> {
            const CALL: &str = "proxy_send_local_response";
            enter(&mut c, CALL)?;
            // Only a shard key the route requires makes sticky answer by itself,
            // and only before the request went upstream.
            if c.data().phase != Phase::RequestHeaders {
                let phase = c.data().phase;
                return Err(c
                    .data_mut()
                    .violation(CALL, format!("a local reply in {phase}")));
            }
            if !(200..600).contains(&status) {
                return Err(c
                    .data_mut()
                    .violation(CALL, format!("status {status} is not an HTTP status")));
            }
            let body = guest::read(&mut c, CALL, "body", body_ptr, body_len)?;
            c.data_mut().host.local_reply = Some((unsigned(status), body));
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Ctx<'_>, ret: i32| -> Result<i32> {
            const CALL: &str = "proxy_get_log_level";
            enter(&mut c, CALL)?;
            guest::write_u32(&mut c, CALL, "return level slot", ret, 2)?;
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx<'_>, ret: i32| -> Result<i32> {
            const CALL: &str = "proxy_get_current_time_nanoseconds";
            enter(&mut c, CALL)?;
            let nanos = c.data().now.saturating_mul(1_000_000_000);
            guest::check_slot(&mut c, CALL, "return time slot", ret, 8)?;
            guest::write(&mut c, CALL, "return time slot", ret, &nanos.to_le_bytes())?;
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx<'_>, period: i32| -> Result<i32> {
            enter(&mut c, "proxy_set_tick_period_milliseconds")?;
            c.data_mut().tick_period_ms = unsigned(period);
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, kind: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| -> Result<i32> {
            const CALL: &str = "proxy_get_buffer_bytes";
            enter(&mut c, CALL)?;
            guest::check_slot(&mut c, CALL, "return data pointer slot", ret_ptr, 4)?;
            guest::check_slot(&mut c, CALL, "return size slot", ret_size, 4)?;
            let phase = c.data().phase;
            let data = match (kind, phase) {
                (buffer::PLUGIN_CONFIGURATION, Phase::Configure) => c.data().plugin_config.clone(),
                (buffer::VM_CONFIGURATION, Phase::VmStart) => c.data().vm_config.clone(),
                _ => {
                    return Err(c.data_mut().violation(
                        CALL,
                        format!("buffer type {kind} is not available (plugin configuration: only in proxy_on_configure; VM configuration: only in proxy_on_vm_start)"),
                    ));
                }
            };
            let start = usize::try_from(unsigned(start)).unwrap_or(usize::MAX);
            let max = usize::try_from(unsigned(max)).unwrap_or(usize::MAX);
            let Some(rest) = data.get(start..) else {
                return Err(c.data_mut().violation(CALL, format!("start {start} beyond the buffer's {} bytes", data.len())));
            };
            let chunk = rest.get(..max.min(rest.len())).unwrap_or_default();
            // Envoy leaves the result slots untouched for an empty range.
            if !chunk.is_empty() {
                guest::return_bytes(&mut c, CALL, ret_ptr, ret_size, chunk)?;
            }
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, map_type: i32, ret_ptr: i32, ret_size: i32| -> Result<i32> {
            const CALL: &str = "proxy_get_header_map_pairs";
            enter(&mut c, CALL)?;
            let which = header_map(&mut c, CALL, map_type, Access::Read)?;
            let host = &c.data().host;
            let headers = match which {
                Which::Request => &host.request,
                Which::Response => &host.response,
            };
            let Some(bytes) =
                abi::encode_pairs(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())))
            else {
                return Err(c.data_mut().violation(CALL, "header map too large"));
            };
            guest::return_bytes(&mut c, CALL, ret_ptr, ret_size, &bytes)?;
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx<'_>, map_type: i32, ptr: i32, size: i32| -> Result<i32> {
            const CALL: &str = "proxy_set_header_map_pairs";
            enter(&mut c, CALL)?;
            let which = header_map(&mut c, CALL, map_type, Access::Write)?;
            let raw = guest::read(&mut c, CALL, "map data", ptr, size)?;
            let Some(pairs) = abi::decode_pairs(&raw) else {
                return Err(c
                    .data_mut()
                    .violation(CALL, "map data is not in the proxy-wasm pairs format"));
            };
            let mut headers = Vec::with_capacity(pairs.len());
            for (name, value) in pairs {
                let name = header_name(&mut c, CALL, &name)?;
                header_value(&mut c, CALL, &name, &value)?;
                headers.push((name, value));
            }
            let host = &mut c.data_mut().host;
            match which {
                Which::Request => host.request = headers,
                Which::Response => host.response = headers,
            }
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>,
         map_type: i32,
         key: i32,
         key_len: i32,
         ret_ptr: i32,
         ret_size: i32|
         -> Result<i32> {
            const CALL: &str = "proxy_get_header_map_value";
            enter(&mut c, CALL)?;
            let which = header_map(&mut c, CALL, map_type, Access::Read)?;
            let name = guest::read(&mut c, CALL, "key", key, key_len)?;
            let name = String::from_utf8_lossy(&name).to_ascii_lowercase();
            let host = &c.data().host;
            // Envoy returns only the first of repeated headers here.
            let first = match which {
                Which::Request => host.request_values(&name).first().map(|v| v.to_vec()),
                Which::Response => host.response_values(&name).first().map(|v| v.to_vec()),
            };
            match first {
                Some(value) => {
                    guest::return_bytes(&mut c, CALL, ret_ptr, ret_size, &value)?;
                    Ok(Status::Ok.code())
                }
                None => Ok(Status::NotFound.code()),
            }
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx<'_>, map_type: i32, key: i32, key_len: i32| -> Result<i32> {
            const CALL: &str = "proxy_remove_header_map_value";
            enter(&mut c, CALL)?;
            let which = header_map(&mut c, CALL, map_type, Access::Write)?;
            let name = guest::read(&mut c, CALL, "key", key, key_len)?;
            let name = header_name(&mut c, CALL, &name)?;
            let host = &mut c.data_mut().host;
            match which {
                Which::Request => {
                    host.remove_request_header(&name);
                }
                Which::Response => host.remove_response_header(&name),
            }
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>,
         map_type: i32,
         key: i32,
         key_len: i32,
         value: i32,
         value_len: i32|
         -> Result<i32> {
            const CALL: &str = "proxy_replace_header_map_value";
            enter(&mut c, CALL)?;
            let which = header_map(&mut c, CALL, map_type, Access::Write)?;
            let (name, value) = header_write(&mut c, CALL, (key, key_len), (value, value_len))?;
            let host = &mut c.data_mut().host;
            match which {
                Which::Request => host.set_request_header(&name, &value),
                Which::Response => host.set_response_header(&name, &value),
            }
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>,
         map_type: i32,
         key: i32,
         key_len: i32,
         value: i32,
         value_len: i32|
         -> Result<i32> {
            const CALL: &str = "proxy_add_header_map_value";
            enter(&mut c, CALL)?;
            let which = header_map(&mut c, CALL, map_type, Access::Write)?;
            let (name, value) = header_write(&mut c, CALL, (key, key_len), (value, value_len))?;
            let host = &mut c.data_mut().host;
            match which {
                Which::Request => host.request.push((name, value)),
                Which::Response => host.add_response_header(&name, &value),
            }
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, path: i32, path_len: i32, ret_ptr: i32, ret_size: i32| -> Result<i32> {
            const CALL: &str = "proxy_get_property";
            enter(&mut c, CALL)?;
            let raw = guest::read(&mut c, CALL, "path", path, path_len)?;
            let parts = properties::parse_path(&raw);
            let state = c.data_mut();
            let phase = state.phase;
            match properties::get(&mut state.host, phase, &parts) {
                Ok(Some(value)) => {
                    guest::return_bytes(&mut c, CALL, ret_ptr, ret_size, &value)?;
                    Ok(Status::Ok.code())
                }
                Ok(None) => Ok(Status::NotFound.code()),
                Err(e) => Err(c.data_mut().violation(CALL, e)),
            }
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx<'_>,
         key: i32,
         key_len: i32,
         ret_ptr: i32,
         ret_size: i32,
         ret_cas: i32|
         -> Result<i32> {
            const CALL: &str = "proxy_get_shared_data";
            enter(&mut c, CALL)?;
            let key = guest::read(&mut c, CALL, "key", key, key_len)?;
            guest::check_slot(&mut c, CALL, "return cas slot", ret_cas, 4)?;
            let Some((value, cas)) = c.data().shared.get(&key).cloned() else {
                return Ok(Status::NotFound.code());
            };
            guest::return_bytes(&mut c, CALL, ret_ptr, ret_size, &value)?;
            guest::write_u32(&mut c, CALL, "return cas slot", ret_cas, cas)?;
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx<'_>,
         key: i32,
         key_len: i32,
         value: i32,
         value_len: i32,
         cas: i32|
         -> Result<i32> {
            const CALL: &str = "proxy_set_shared_data";
            enter(&mut c, CALL)?;
            let key = guest::read(&mut c, CALL, "key", key, key_len)?;
            let value = guest::read(&mut c, CALL, "value", value, value_len)?;
            let cas = unsigned(cas);
            let shared = &mut c.data_mut().shared;
            let current = shared.get(&key).map_or(0, |(_, v)| *v);
            if cas != 0 && cas != current {
                return Ok(Status::CasMismatch.code());
            }
            shared.insert(key, (value, current.wrapping_add(1).max(1)));
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Ctx<'_>, id: i32| -> Result<i32> {
            const CALL: &str = "proxy_set_effective_context";
            enter(&mut c, CALL)?;
            let id = unsigned(id);
            let state = c.data_mut();
            if id != state.root_context && Some(id) != state.stream_context {
                return Err(state.violation(CALL, format!("context {id} does not exist")));
            }
            state.effective_context = id;
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, kind: i32, name: i32, name_len: i32, ret_id: i32| -> Result<i32> {
            const CALL: &str = "proxy_define_metric";
            enter(&mut c, CALL)?;
            if !(abi::METRIC_COUNTER..=abi::METRIC_HISTOGRAM).contains(&kind) {
                return Err(c
                    .data_mut()
                    .violation(CALL, format!("metric type {kind} is not a MetricType")));
            }
            let name = guest::read(&mut c, CALL, "name", name, name_len)?;
            if name.is_empty() {
                return Err(c.data_mut().violation(CALL, "empty metric name"));
            }
            guest::check_slot(&mut c, CALL, "return id slot", ret_id, 4)?;
            let id = c.data_mut().define_metric(kind, &name);
            guest::write_u32(&mut c, CALL, "return id slot", ret_id, id)?;
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut c: Ctx<'_>, id: i32, offset: i64| -> Result<i32> {
            const CALL: &str = "proxy_increment_metric";
            enter(&mut c, CALL)?;
            let state = c.data_mut();
            let Some(metric) = state.metric(unsigned(id)).cloned() else {
                return Err(state.violation(
                    CALL,
                    format!("metric id {} was never defined", unsigned(id)),
                ));
            };
            if metric.kind == abi::METRIC_HISTOGRAM {
                return Err(state.violation(
                    CALL,
                    format!("{} is a histogram: record, don't increment", metric.name),
                ));
            }
            let Ok(step) = u64::try_from(offset) else {
                return Err(
                    state.violation(CALL, format!("negative offset {offset} on {}", metric.name))
                );
            };
            let n = state.host.counters.entry(metric.name).or_insert(0);
            *n = n.saturating_add(step);
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |mut c: Ctx<'_>, id: i32, value: i64| -> Result<i32> {
            const CALL: &str = "proxy_record_metric";
            enter(&mut c, CALL)?;
            let state = c.data_mut();
            let Some(metric) = state.metric(unsigned(id)).cloned() else {
                return Err(state.violation(
                    CALL,
                    format!("metric id {} was never defined", unsigned(id)),
                ));
            };
            if metric.kind == abi::METRIC_COUNTER {
                return Err(state.violation(
                    CALL,
                    format!("{} is a counter: increment, don't record", metric.name),
                ));
            }
            state
                .host
                .counters
                .insert(metric.name, u64::from_ne_bytes(value.to_ne_bytes()));
            Ok(Status::Ok.code())
        },
    )?;

    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Ctx<'_>, id: i32, ret: i32| -> Result<i32> {
            const CALL: &str = "proxy_get_metric";
            enter(&mut c, CALL)?;
            let state = c.data_mut();
            let Some(metric) = state.metric(unsigned(id)).cloned() else {
                return Err(state.violation(
                    CALL,
                    format!("metric id {} was never defined", unsigned(id)),
                ));
            };
            let value = state.host.counter(metric.name);
            guest::check_slot(&mut c, CALL, "return value slot", ret, 8)?;
            guest::write(&mut c, CALL, "return value slot", ret, &value.to_le_bytes())?;
            Ok(Status::Ok.code())
        },
    )?;

    Ok(())
}

/// Counts the call and refuses calls made outside any callback.
pub fn enter(c: &mut Ctx<'_>, call: &'static str) -> Result<()> {
    let state = c.data_mut();
    state.called(call);
    if state.phase == Phase::Idle {
        return Err(state.violation(call, "no callback of the filter is running"));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

enum Which {
    Request,
    Response,
}

/// Which header map a call may touch now: Envoy hands out the request headers
/// only in `proxy_on_request_headers` and the response headers only in
/// `proxy_on_response_headers` (both read-only in the log phase); any other
/// map, or the right map at the wrong time, is refused.
fn header_map(c: &mut Ctx<'_>, call: &str, map_type: i32, access: Access) -> Result<Which> {
    let phase = c.data().phase;
    let verb = if access == Access::Read {
        "read"
    } else {
        "write"
    };
    let ok = match (map_type, phase, access) {
        (map::HTTP_REQUEST_HEADERS, Phase::RequestHeaders, _) => Some(Which::Request),
        (map::HTTP_RESPONSE_HEADERS, Phase::ResponseHeaders, _) => Some(Which::Response),
        (map::HTTP_REQUEST_HEADERS, Phase::StreamEnd, Access::Read) => Some(Which::Request),
        (map::HTTP_RESPONSE_HEADERS, Phase::StreamEnd, Access::Read) => Some(Which::Response),
        _ => None,
    };
    if let Some(which) = ok {
        return Ok(which);
    }
    let name = map::name(map_type);
    let why = if !(map::HTTP_REQUEST_HEADERS..=map::HTTP_CALL_RESPONSE_TRAILERS).contains(&map_type)
    {
        format!("map type {map_type} is not a proxy-wasm MapType")
    } else {
        format!(
            "{verb} of map {map_type} ({name}): Envoy has no such map for the filter now and answers BadArgument, on which the Rust SDK panics"
        )
    };
    Err(c.data_mut().violation(call, why))
}

/// Reads and checks the name and value of a header write.
fn header_write(
    c: &mut Ctx<'_>,
    call: &str,
    key: (i32, i32),
    value: (i32, i32),
) -> Result<(String, Vec<u8>)> {
    let name = guest::read(c, call, "key", key.0, key.1)?;
    let name = header_name(c, call, &name)?;
    let value = guest::read(c, call, "value", value.0, value.1)?;
    header_value(c, call, &name, &value)?;
    Ok((name, value))
}

/// A header name Envoy accepts from a filter: an RFC 7230 token, stored
/// lowercase. Pseudo-headers (`:path`) are not the filter's to touch.
fn header_name(c: &mut Ctx<'_>, call: &str, raw: &[u8]) -> Result<String> {
    let token = !raw.is_empty() && raw.iter().all(|&b| sticky_core::config::is_tchar(b));
    if !token {
        let shown = String::from_utf8_lossy(raw).into_owned();
        return Err(c
            .data_mut()
            .violation(call, format!("header name {shown:?} is not an HTTP token")));
    }
    Ok(String::from_utf8_lossy(raw).to_ascii_lowercase())
}

/// A header value Envoy would keep: no NUL, CR or LF.
fn header_value(c: &mut Ctx<'_>, call: &str, name: &str, value: &[u8]) -> Result<()> {
    if value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
        return Err(c.data_mut().violation(
            call,
            format!("value of {name:?} holds NUL, CR or LF, which Envoy refuses"),
        ));
    }
    Ok(())
}
