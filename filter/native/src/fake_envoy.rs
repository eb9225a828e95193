//! A stateful fake of the Envoy side of the ABI, for unit tests: it defines
//! the `envoy_dynamic_module_callback_*` symbols that `abi.rs` imports (in a
//! test binary nothing else would), backed by a [`FakeStream`] per stream and
//! per-thread process state, so tests drive the real hooks and assert end
//! state. It mimics Envoy 1.40's semantics where they matter: an empty value
//! removes a header, `add_header` refuses an empty value, a typed metadata
//! read of another type fails with an error log, counters need an id from
//! `define_counter`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    missing_docs
)]

use std::cell::RefCell;

use crate::abi::{EnvoyBuffer, EnvoyPtr, METADATA_SOURCE_HOST, ModuleBuffer};
use crate::host::{Env, SystemEnv};

/// Process-wide state (per test thread): logs and counters.
#[derive(Debug, Default)]
pub struct FakeProcess {
    pub logs: Vec<(u32, String)>,
    /// Counters by id: (name, value).
    pub counters: Vec<(String, u64)>,
    /// The last random byte handed out (the core's `FakeHost` sequence).
    pub rng: u8,
    /// Typed metadata reads (bool and number: one per key a drain check
    /// reads; the string fallbacks are not counted).
    pub metadata_reads: u64,
    /// The clock the module reads, when a test sets it.
    pub now: Option<u64>,
}

/// The module's clock and randomness in unit tests, from this thread's
/// process state: the test clock (the system's when unset), and the byte
/// after the last one, as the core's `FakeHost` does, so transcripts compare.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeEnv;

impl Env for FakeEnv {
    fn now(&self) -> u64 {
        process(|p| p.now).unwrap_or_else(|| SystemEnv.now())
    }

    fn random(&self, buf: &mut [u8]) -> bool {
        process(|p| {
            for b in buf {
                p.rng = p.rng.wrapping_add(1);
                *b = p.rng;
            }
        });
        true
    }
}

thread_local! {
    static PROCESS: RefCell<FakeProcess> = RefCell::new(FakeProcess::default());
}

/// Runs `f` on this thread's process state.
pub fn process<R>(f: impl FnOnce(&mut FakeProcess) -> R) -> R {
    PROCESS.with(|p| f(&mut p.borrow_mut()))
}

/// A counter's value by name (0 when undefined).
pub fn counter(name: &str) -> u64 {
    process(|p| {
        p.counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    })
}

/// The log lines so far.
pub fn logs() -> Vec<String> {
    process(|p| p.logs.iter().map(|(_, l)| l.clone()).collect())
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    Bool(bool),
    Number(f64),
    Str(Vec<u8>),
}

/// One HTTP stream as the fake Envoy holds it.
#[derive(Debug, Default)]
pub struct FakeStream {
    pub request: Vec<(String, Vec<u8>)>,
    pub response: Vec<(String, Vec<u8>)>,
    pub upstream_address: Option<Vec<u8>>,
    /// `response.code_details`.
    pub code_details: Option<Vec<u8>>,
    pub cluster: Option<Vec<u8>>,
    /// Upstream host metadata: (namespace, key, value).
    pub metadata: Vec<(String, String, Meta)>,
    pub override_host: Option<(Vec<u8>, bool)>,
    pub route_cache_clears: u32,
    /// A local reply the module sent: (status, body).
    pub local_reply: Option<(u32, Vec<u8>)>,
    pub worker: u32,
}

impl FakeStream {
    pub fn ptr(&mut self) -> EnvoyPtr {
        std::ptr::from_mut(self).cast()
    }

    pub fn response_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.response
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn request_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.request
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn headers(&mut self, header_type: u32) -> Option<&mut Vec<(String, Vec<u8>)>> {
        match header_type {
            0 => Some(&mut self.request),
            2 => Some(&mut self.response),
            _ => None,
        }
    }

    fn meta(&self, source: u32, ns: ModuleBuffer, key: ModuleBuffer) -> Option<&Meta> {
        if source != METADATA_SOURCE_HOST {
            return None;
        }
        // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
        let (ns, key) = unsafe { (text(ns), text(key)) };
        self.metadata
            .iter()
            .find(|(n, k, _)| *n == ns && *k == key)
            .map(|(_, _, v)| v)
    }
}

unsafe fn bytes<'a>(b: ModuleBuffer) -> &'a [u8] {
    if b.ptr.is_null() {
        return &[];
    }
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe { std::slice::from_raw_parts(b.ptr.cast::<u8>(), b.length) }
}

unsafe fn text(b: ModuleBuffer) -> String {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    String::from_utf8_lossy(unsafe { bytes(b) }).to_ascii_lowercase()
}

unsafe fn stream<'a>(ptr: EnvoyPtr) -> &'a mut FakeStream {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe { &mut *ptr.cast::<FakeStream>() }
}

fn out(result: *mut EnvoyBuffer, value: &[u8]) {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe {
        *result = EnvoyBuffer {
            ptr: value.as_ptr().cast(),
            length: value.len(),
        }
    };
}

fn log_error(message: String) {
    process(|p| p.logs.push((4, message)));
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer) {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let line = String::from_utf8_lossy(unsafe { bytes(message) }).into_owned();
    process(|p| p.logs.push((level, line)));
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_log_enabled(_level: u32) -> bool {
    true
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_header(
    filter: EnvoyPtr,
    header_type: u32,
    key: ModuleBuffer,
    result: *mut EnvoyBuffer,
    index: usize,
    optional_size: *mut usize,
) -> bool {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let key = unsafe { text(key) };
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let s = unsafe { stream(filter) };
    let Some(headers) = s.headers(header_type) else {
        return false;
    };
    let values: Vec<&Vec<u8>> = headers
        .iter()
        .filter(|(n, _)| *n == key)
        .map(|(_, v)| v)
        .collect();
    if !optional_size.is_null() {
        // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
        unsafe { *optional_size = values.len() };
    }
    match values.get(index) {
        Some(v) => {
            out(result, v);
            true
        }
        None => false,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_set_header(
    filter: EnvoyPtr,
    header_type: u32,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let (key, value) = unsafe { (text(key), bytes(value).to_vec()) };
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let Some(headers) = (unsafe { stream(filter) }).headers(header_type) else {
        return false;
    };
    headers.retain(|(n, _)| *n != key);
    if !value.is_empty() {
        headers.push((key, value));
    }
    true
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_add_header(
    filter: EnvoyPtr,
    header_type: u32,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let (key, value) = unsafe { (text(key), bytes(value).to_vec()) };
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let Some(headers) = (unsafe { stream(filter) }).headers(header_type) else {
        return false;
    };
    if value.is_empty() {
        return false;
    }
    headers.push((key, value));
    true
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
    filter: EnvoyPtr,
    attribute_id: u32,
    result: *mut EnvoyBuffer,
) -> bool {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let s = unsafe { stream(filter) };
    let value = match attribute_id {
        crate::abi::ATTRIBUTE_UPSTREAM_ADDRESS => &s.upstream_address,
        crate::abi::ATTRIBUTE_RESPONSE_CODE_DETAILS => &s.code_details,
        _ => &None,
    };
    match value {
        Some(a) => {
            out(result, a);
            true
        }
        None => false,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_cluster_name(
    filter: EnvoyPtr,
    result: *mut EnvoyBuffer,
) -> bool {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    match &unsafe { stream(filter) }.cluster {
        Some(c) => {
            out(result, c);
            true
        }
        None => false,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_set_upstream_override_host(
    filter: EnvoyPtr,
    host: ModuleBuffer,
    strict: bool,
) -> bool {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let host = unsafe { bytes(host) }.to_vec();
    // Envoy accepts only "ip:port".
    if std::str::from_utf8(&host)
        .ok()
        .and_then(|h| h.parse::<std::net::SocketAddr>().ok())
        .is_none()
    {
        return false;
    }
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe { stream(filter) }.override_host = Some((host, strict));
    true
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_send_response(
    filter: EnvoyPtr,
    status: u32,
    _headers: *const std::ffi::c_void,
    _headers_size: usize,
    body: ModuleBuffer,
    _details: ModuleBuffer,
) {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let body = unsafe { bytes(body) }.to_vec();
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe { stream(filter) }.local_reply = Some((status, body));
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_clear_route_cache(filter: EnvoyPtr) {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe { stream(filter) }.route_cache_clears += 1;
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_worker_index(
    filter: EnvoyPtr,
) -> u32 {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe { stream(filter) }.worker
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_metadata_bool(
    filter: EnvoyPtr,
    source: u32,
    ns: ModuleBuffer,
    key: ModuleBuffer,
    result: *mut bool,
) -> bool {
    process(|p| p.metadata_reads += 1);
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    match unsafe { stream(filter) }.meta(source, ns, key) {
        Some(Meta::Bool(b)) => {
            // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
            unsafe { *result = *b };
            true
        }
        Some(_) => {
            log_error("key is not a bool".into());
            false
        }
        None => false,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_metadata_number(
    filter: EnvoyPtr,
    source: u32,
    ns: ModuleBuffer,
    key: ModuleBuffer,
    result: *mut f64,
) -> bool {
    process(|p| p.metadata_reads += 1);
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    match unsafe { stream(filter) }.meta(source, ns, key) {
        Some(Meta::Number(n)) => {
            // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
            unsafe { *result = *n };
            true
        }
        Some(_) => {
            log_error("key is not a number".into());
            false
        }
        None => false,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_metadata_string(
    filter: EnvoyPtr,
    source: u32,
    ns: ModuleBuffer,
    key: ModuleBuffer,
    result: *mut EnvoyBuffer,
) -> bool {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    match unsafe { stream(filter) }.meta(source, ns, key) {
        Some(Meta::Str(s)) => {
            out(result, s);
            true
        }
        Some(_) => {
            log_error("key is not a string".into());
            false
        }
        None => false,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_counter(
    _config: EnvoyPtr,
    name: ModuleBuffer,
    _label_names: *const ModuleBuffer,
    _label_names_length: usize,
    counter_id: *mut usize,
) -> u32 {
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    let name = String::from_utf8_lossy(unsafe { bytes(name) }).into_owned();
    let id = process(|p| {
        p.counters.push((name, 0));
        p.counters.len() - 1
    });
    // SAFETY: the module passes pointers and buffers valid for this callback (abi.rs).
    unsafe { *counter_id = id };
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_increment_counter(
    _filter: EnvoyPtr,
    id: usize,
    _label_values: *const ModuleBuffer,
    _label_values_length: usize,
    value: u64,
) -> u32 {
    process(|p| match p.counters.get_mut(id) {
        Some((_, v)) => {
            *v += value;
            0
        }
        None => 1,
    })
}
