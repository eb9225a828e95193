//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`). Envoy refuses
//! the filter config unless the module exports every required hook, so the
//! ones sticky has no use for are exported as no-ops.
//!
//! Lifetimes: a filter config (one per `DynamicModuleFilter` in the
//! bootstrap) is an `Arc<Shared>` boxed behind the config pointer; each HTTP
//! stream gets a boxed [`StreamFilter`] holding its own clone of that `Arc`,
//! so the config may be destroyed before its last stream.
//!
//! Every hook with a body runs it inside [`guard`]: a panic fails open for
//! that one request instead of unwinding into Envoy (the hooks without a
//! body have nothing that could panic).

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use sticky_core::config::Config;
use sticky_core::filter;
use sticky_core::host::Pinning;
use sticky_core::metrics::MetricIds;
use sticky_core::session;
use sticky_core::worker::Worker;

use crate::abi::{
    self, EnvoyBuffer, EnvoyPtr, LogLevel, STATUS_CONTINUE, STATUS_STOP_ITERATION, Stream,
};
use crate::guard::{guard, guard_with};

mod noop;

use crate::host::{Env, NativeHost, SystemEnv};
pub use noop::*;

/// Drain caches per filter config: one per worker (by worker index modulo
/// this), so workers never contend; a busy shard is skipped (fail open).
pub const DRAIN_SHARDS: usize = 64;

/// What every stream of one filter config shares, across worker threads.
#[derive(Debug)]
pub struct Shared {
    /// The validated plugin configuration.
    pub config: Config,
    /// Counter ids on this filter config.
    pub counters: MetricIds<usize>,
    /// How the chosen host reaches Envoy (from `config.override_host`).
    pub pinning: Pinning,
    /// The clock and the randomness.
    pub env: Box<dyn Env>,
    /// Per-worker caches (drain state, opened tokens), one per worker shard.
    drain: Box<[Mutex<Worker>]>,
}

impl Shared {
    /// Builds the shared state for a validated config.
    pub fn new(config: Config, counters: MetricIds<usize>, env: Box<dyn Env>) -> Self {
        let drain = (0..DRAIN_SHARDS)
            .map(|_| Mutex::new(Worker::default()))
            .collect();
        Self {
            pinning: Pinning::of(&config),
            config,
            counters,
            env,
            drain,
        }
    }

    /// A host for `stream`, on this filter config.
    fn host(&self, stream: Stream) -> NativeHost<'_> {
        NativeHost::new(stream, &self.counters, self.pinning, &*self.env)
    }

    /// The caches of a worker, locked; `None` when another thread holds them
    /// (the caller then decides without caches: fail open). A shard poisoned
    /// by a panic that [`guard`] caught is reset: its caches may be half
    /// updated, and starting empty only costs a few token opens.
    fn worker(&self, worker: u32) -> Option<MutexGuard<'_, Worker>> {
        let index = usize::try_from(worker)
            .ok()?
            .checked_rem(self.drain.len())?;
        let shard = self.drain.get(index)?;
        match shard.try_lock() {
            Ok(locked) => Some(locked),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut locked = poisoned.into_inner();
                *locked = Worker::default();
                shard.clear_poison();
                Some(locked)
            }
        }
    }
}

// Envoy calls hooks of one filter config from every worker thread.
const _: fn() = || {
    fn shared_across_workers<T: Send + Sync>() {}
    shared_across_workers::<Shared>();
};

/// One HTTP stream's state.
#[derive(Debug)]
pub struct StreamFilter {
    shared: Arc<Shared>,
    /// What the request phase decided; read by the response phase. A
    /// `RefCell` because Envoy may re-enter a filter while a hook runs.
    stream: RefCell<session::Stream>,
    /// The worker running the stream, asked once in the request phase (a
    /// stream never changes worker).
    worker: Cell<Option<u32>>,
}

impl StreamFilter {
    /// The worker index of the stream, from Envoy on first use.
    fn worker_index(&self, stream: Stream) -> u32 {
        match self.worker.get() {
            Some(index) => index,
            None => {
                let index = stream.worker_index();
                self.worker.set(Some(index));
                index
            }
        }
    }
}

/// Reads the bytes of a buffer Envoy passed to a hook (empty when null).
///
/// # Safety
/// `buffer` must be valid for the running hook.
unsafe fn hook_bytes<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    if buffer.ptr.is_null() || buffer.length == 0 {
        return &[];
    }
    // SAFETY: non-null; the caller guarantees the range is live.
    unsafe { std::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) }
}

/// Called once when Envoy loads the module: returns the ABI version.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guard("on_program_init", abi::ABI_VERSION.as_ptr(), || {
        abi::ABI_VERSION.as_ptr()
    })
}

/// Parses the plugin configuration (the `StringValue`'s raw bytes) and
/// defines the counters. Returns null, which makes Envoy refuse the config,
/// when the configuration is invalid; the log line names the field.
///
/// # Safety
/// Called by Envoy with its config pointer and buffers valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    filter_config_envoy_ptr: EnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's config pointer and buffer, valid for this call.
    unsafe { new_config(filter_config_envoy_ptr, config, Box::new(SystemEnv)) }
}

/// `on_http_filter_config_new` with the clock and randomness `env` (the
/// system's in Envoy, simulated ones in the unit tests).
///
/// # Safety
/// `filter_config_envoy_ptr` and `config` must be those of the running
/// `on_http_filter_config_new` call.
pub unsafe fn new_config(
    filter_config_envoy_ptr: EnvoyPtr,
    config: EnvoyBuffer,
    env: Box<dyn Env>,
) -> *const c_void {
    // A config that cannot be built is refused (null), never half-loaded.
    guard("on_http_filter_config_new", std::ptr::null(), || {
        // SAFETY: Envoy's buffer, valid for this call; parsing copies what it keeps.
        let bytes = unsafe { hook_bytes(config) };
        let config = match Config::from_json(bytes) {
            Ok(config) => config,
            Err(e) => {
                abi::log(LogLevel::ERROR, &format!("sticky: {e}"));
                return std::ptr::null();
            }
        };
        let counters = MetricIds::define(|metric| {
            // SAFETY: this is the running config_new call's own config pointer.
            let id = unsafe { abi::define_counter(filter_config_envoy_ptr, metric.name()) };
            if id.is_none() {
                abi::log(
                    LogLevel::WARN,
                    &format!("sticky: cannot define counter {}", metric.name()),
                );
            }
            id
        });
        abi::log(LogLevel::INFO, &config.summary());
        let shared = Arc::new(Shared::new(config, counters, env));
        Box::into_raw(Box::new(shared)).cast_const().cast()
    })
}

/// Releases a filter config (streams keep their own `Arc`).
///
/// # Safety
/// `filter_config_ptr` must come from `on_http_filter_config_new`, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    filter_config_ptr: *const c_void,
) {
    guard("on_http_filter_config_destroy", (), || {
        if filter_config_ptr.is_null() {
            return;
        }
        // SAFETY: created by Box::into_raw in config_new; Envoy destroys it once.
        drop(unsafe { Box::from_raw(filter_config_ptr.cast_mut().cast::<Arc<Shared>>()) });
    });
}

/// Per-route configuration is not supported: refused (null) with a log line.
///
/// # Safety
/// Called by Envoy; the buffers are not read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    guard(
        "on_http_filter_per_route_config_new",
        std::ptr::null(),
        || {
            abi::log(
                LogLevel::ERROR,
                "sticky: per-route configuration is not supported; configure the listener filter",
            );
            std::ptr::null()
        },
    )
}

/// Creates the state of one HTTP stream.
///
/// # Safety
/// `filter_config_ptr` must come from `on_http_filter_config_new` and be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    filter_config_ptr: *const c_void,
    _filter_envoy_ptr: EnvoyPtr,
) -> *const c_void {
    // Null: every other hook of the stream then passes it through.
    guard("on_http_filter_new", std::ptr::null(), || {
        // SAFETY: a live pointer from config_new (Envoy keeps the config alive
        // while it creates streams from it), or null.
        let Some(shared) = (unsafe { filter_config_ptr.cast::<Arc<Shared>>().as_ref() }) else {
            return std::ptr::null();
        };
        let filter = StreamFilter {
            shared: Arc::clone(shared),
            stream: RefCell::new(session::Stream::default()),
            worker: Cell::new(None),
        };
        Box::into_raw(Box::new(filter)).cast_const().cast()
    })
}

/// Releases the state of one HTTP stream.
///
/// # Safety
/// `filter_module_ptr` must come from `on_http_filter_new`, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(
    filter_module_ptr: *const c_void,
) {
    guard("on_http_filter_destroy", (), || {
        if filter_module_ptr.is_null() {
            return;
        }
        // SAFETY: created by Box::into_raw in filter_new; Envoy destroys it
        // once, after every other hook of the stream returned.
        drop(unsafe { Box::from_raw(filter_module_ptr.cast_mut().cast::<StreamFilter>()) });
    });
}

/// The stream's filter state, if the pointer is set.
///
/// # Safety
/// `ptr` must be null or come from `on_http_filter_new` and not be destroyed.
unsafe fn stream_filter<'a>(ptr: *const c_void) -> Option<&'a StreamFilter> {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr.cast::<StreamFilter>().as_ref() }
}

/// Request headers: strips client-sent internal headers, opens the session
/// token, pins cluster and host. Stops iteration only after answering
/// locally (a key-sharded route without its key, `missing_key: reject`).
///
/// # Safety
/// Called by Envoy with the stream's two pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    let strip = || {
        // SAFETY: Envoy passes the pointer from filter_new for this stream.
        if let Some(filter) = unsafe { stream_filter(filter_module_ptr) } {
            // SAFETY: the running hook's stream pointer, used only during this hook.
            let stream = unsafe { Stream::new(filter_envoy_ptr) };
            let shared = &*filter.shared;
            filter::strip(&shared.config, &mut shared.host(stream));
        }
    };
    guard_with(
        "on_http_filter_request_headers",
        STATUS_CONTINUE,
        strip,
        || {
            // SAFETY: Envoy passes the pointer from filter_new for this stream.
            let Some(filter) = (unsafe { stream_filter(filter_module_ptr) }) else {
                return STATUS_CONTINUE;
            };
            // SAFETY: the running hook's stream pointer, used only during this hook.
            let stream = unsafe { Stream::new(filter_envoy_ptr) };
            if on_request_headers(filter, stream) {
                STATUS_STOP_ITERATION
            } else {
                STATUS_CONTINUE
            }
        },
    )
}

/// The request phase of one stream; `true` when it answered locally.
fn on_request_headers(filter: &StreamFilter, stream: Stream) -> bool {
    #[cfg(feature = "fault-injection")]
    fault::maybe_panic(stream);
    let shared = &*filter.shared;
    let mut host = shared.host(stream);
    let now = shared.env.now();
    let decided = match shared.worker(filter.worker_index(stream)) {
        Some(mut worker) => filter::on_request(&shared.config, &mut worker, &mut host, now),
        // Busy: decide without the caches (fail open).
        None => filter::on_request(&shared.config, &mut Worker::default(), &mut host, now),
    };
    if let Ok(mut slot) = filter.stream.try_borrow_mut() {
        *slot = decided;
    }
    host.replied()
}

/// Response headers: issues or refreshes the session token.
///
/// # Safety
/// Called by Envoy with the stream's two pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guard("on_http_filter_response_headers", STATUS_CONTINUE, || {
        // SAFETY: Envoy passes the pointer from filter_new for this stream.
        if let Some(filter) = unsafe { stream_filter(filter_module_ptr) } {
            // SAFETY: the running hook's stream pointer, used only during this hook.
            let stream = unsafe { Stream::new(filter_envoy_ptr) };
            on_response_headers(filter, stream);
        }
        STATUS_CONTINUE
    })
}

/// The response phase of one stream.
fn on_response_headers(filter: &StreamFilter, stream: Stream) {
    let Ok(decided) = filter.stream.try_borrow() else {
        return;
    };
    let shared = &*filter.shared;
    let mut host = shared.host(stream);
    let now = shared.env.now();
    match shared.worker(filter.worker_index(stream)) {
        Some(mut worker) => {
            filter::on_response(&shared.config, &mut worker, &decided, &mut host, now);
        }
        None => {
            // Busy: a scratch cache still issues the cookie.
            let mut scratch = Worker::default();
            filter::on_response(&shared.config, &mut scratch, &decided, &mut host, now);
        }
    }
}

/// Test builds only (`--features fault-injection`, never in `make native`):
/// a request carrying `x-sticky-fault: panic` panics in the request hook, so
/// the real-Envoy suite can prove what a request the filter failed on does.
#[cfg(feature = "fault-injection")]
mod fault {
    use crate::abi::{HeaderType, Stream};

    /// Panics when the request asks for it.
    #[allow(clippy::panic)]
    pub fn maybe_panic(stream: Stream) {
        if stream
            .header(HeaderType::REQUEST, "x-sticky-fault")
            .as_deref()
            == Some(b"panic")
        {
            panic!("fault injected by x-sticky-fault");
        }
    }
}
