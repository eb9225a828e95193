//! The slice of Envoy 1.40's dynamic-module C ABI (`abi.h`, ABI `v0.2.0`)
//! that sticky uses, declared by hand, plus safe wrappers around each call.
//!
//! Symbols bind lazily when Envoy loads the module: a wrong signature here is
//! undefined behaviour at the first call, not a load error. So every
//! declaration below mirrors Envoy 1.40.0 exactly, and `tests/abi_symbols.rs`
//! checks that the pinned Envoy binary exports each one.
//!
//! Conventions of the ABI: `*_envoy_ptr` and [`EnvoyBuffer`] point into
//! Envoy-owned memory that stays valid only until the next mutation of the
//! object it came from (copy before changing headers); [`ModuleBuffer`] is
//! module memory that Envoy copies during the call.

use std::ffi::{c_char, c_void};

/// Envoy's `envoy_dynamic_module_type_*_envoy_ptr`: an opaque Envoy object.
pub type EnvoyPtr = *mut c_void;

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    /// Start of the bytes (may be null when `length` is 0).
    pub ptr: *const c_char,
    /// Number of bytes.
    pub length: usize,
}

impl ModuleBuffer {
    /// Borrows `bytes` for the duration of one ABI call.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }

    /// The empty buffer (`set_header` with it removes the header).
    pub fn empty() -> Self {
        Self {
            ptr: std::ptr::null(),
            length: 0,
        }
    }
}

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    /// Start of the bytes (may be null).
    pub ptr: *const c_char,
    /// Number of bytes.
    pub length: usize,
}

impl EnvoyBuffer {
    /// A null buffer for Envoy to fill in.
    pub fn null() -> Self {
        Self {
            ptr: std::ptr::null(),
            length: 0,
        }
    }

    /// Copies the bytes out of Envoy's memory.
    ///
    /// # Safety
    /// `ptr`/`length` must describe memory Envoy handed out in the current
    /// event hook and that has not been invalidated since (no mutation of the
    /// object it points into).
    pub unsafe fn to_vec(self) -> Vec<u8> {
        if self.ptr.is_null() || self.length == 0 {
            return Vec::new();
        }
        // SAFETY: non-null, and the caller guarantees the range is live.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }.to_vec()
    }
}

/// `envoy_dynamic_module_type_http_header_type` (a C enum: an `int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderType(u32);

impl HeaderType {
    /// Request headers.
    pub const REQUEST: Self = Self(0);
    /// Response headers.
    pub const RESPONSE: Self = Self(2);
}

/// `envoy_dynamic_module_type_log_level` (a C enum: an `int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(u32);

impl LogLevel {
    /// Debug.
    pub const DEBUG: Self = Self(1);
    /// Info.
    pub const INFO: Self = Self(2);
    /// Warn.
    pub const WARN: Self = Self(3);
    /// Error.
    pub const ERROR: Self = Self(4);
}

/// `envoy_dynamic_module_type_attribute_id_UpstreamAddress` ("ip:port",
/// available once an upstream host was chosen).
pub const ATTRIBUTE_UPSTREAM_ADDRESS: u32 = 41;
/// `envoy_dynamic_module_type_attribute_id_ResponseCodeDetails`
/// (`response.code_details`, e.g. `no_healthy_upstream`).
pub const ATTRIBUTE_RESPONSE_CODE_DETAILS: u32 = 16;
/// `envoy_dynamic_module_type_metadata_source_Host`: the upstream host's
/// endpoint metadata (`LbEndpoint.metadata`), kept current by EDS.
pub const METADATA_SOURCE_HOST: u32 = 3;
/// `envoy_dynamic_module_type_metrics_result_Success`.
pub const METRICS_SUCCESS: u32 = 0;
/// `..._status_Continue` of every request/response hook status enum.
pub const STATUS_CONTINUE: u32 = 0;
/// `..._request_headers_status_StopIteration`: after a local reply.
pub const STATUS_STOP_ITERATION: u32 = 1;
/// The ABI version this module was written against (`on_program_init`).
pub const ABI_VERSION: &std::ffi::CStr = c"v0.2.0";

// Envoy's exported callbacks. Parameters mirror abi.h of Envoy 1.40.0; a C
// enum is an `int`, passed here as `u32` (all values used are small).
unsafe extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: u32) -> bool;

    fn envoy_dynamic_module_callback_http_get_header(
        filter_envoy_ptr: EnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter_envoy_ptr: EnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter_envoy_ptr: EnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter_envoy_ptr: EnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_cluster_name(
        filter_envoy_ptr: EnvoyPtr,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_upstream_override_host(
        filter_envoy_ptr: EnvoyPtr,
        host: ModuleBuffer,
        strict: bool,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter_envoy_ptr: EnvoyPtr);
    fn envoy_dynamic_module_callback_http_send_response(
        filter_envoy_ptr: EnvoyPtr,
        status_code: u32,
        headers_vector: *const c_void,
        headers_vector_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_get_worker_index(
        filter_envoy_ptr: EnvoyPtr,
    ) -> u32;

    fn envoy_dynamic_module_callback_http_get_metadata_bool(
        filter_envoy_ptr: EnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut bool,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_metadata_number(
        filter_envoy_ptr: EnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut f64,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter_envoy_ptr: EnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;

    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        filter_config_envoy_ptr: EnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter_envoy_ptr: EnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
}

/// Writes one line to Envoy's log (logger `dynamic_modules`).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: both calls take only values; the message buffer is module
    // memory that outlives the call.
    unsafe {
        if envoy_dynamic_module_callback_log_enabled(level.0) {
            envoy_dynamic_module_callback_log(level.0, ModuleBuffer::of(message.as_bytes()));
        }
    }
}

/// One HTTP stream as Envoy handed it to the current event hook.
///
/// Every method is safe to call as long as the wrapped pointer is the
/// `filter_envoy_ptr` of the hook that is running: [`Stream::new`] is the
/// one unsafe step.
#[derive(Debug, Clone, Copy)]
pub struct Stream(EnvoyPtr);

impl Stream {
    /// Wraps the `filter_envoy_ptr` of the running hook.
    ///
    /// # Safety
    /// `ptr` must be the `filter_envoy_ptr` Envoy passed to the event hook
    /// that is running, and the value must not outlive that hook.
    pub unsafe fn new(ptr: EnvoyPtr) -> Self {
        Self(ptr)
    }

    /// Number of values of a header and the value at `index`, copied.
    fn header_at(self, kind: HeaderType, name: &str, index: usize) -> (usize, Option<Vec<u8>>) {
        let mut value = EnvoyBuffer::null();
        let mut count = 0usize;
        // SAFETY: self.0 is the running hook's stream (Stream::new); the out
        // pointers are valid locals; the key is module memory.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.0,
                kind.0,
                ModuleBuffer::of(name.as_bytes()),
                &mut value,
                index,
                &mut count,
            )
        };
        // SAFETY: Envoy filled `value` from its header map during this hook,
        // and nothing mutated the map since: copy it now.
        let bytes = found.then(|| unsafe { value.to_vec() });
        (count, bytes)
    }

    /// How many values a header has.
    pub fn header_count(self, kind: HeaderType, name: &str) -> usize {
        self.header_at(kind, name, 0).0
    }

    /// The first value of a header, copied.
    pub fn header(self, kind: HeaderType, name: &str) -> Option<Vec<u8>> {
        self.header_at(kind, name, 0).1
    }

    /// All values of a header joined with `,` (copied); `None` when absent.
    /// At most `max_values` values are read.
    pub fn header_joined(self, kind: HeaderType, name: &str, max_values: usize) -> Option<Vec<u8>> {
        let (count, first) = self.header_at(kind, name, 0);
        let mut joined = first?;
        for index in 1..count.min(max_values) {
            if let (_, Some(value)) = self.header_at(kind, name, index) {
                joined.push(b',');
                joined.extend_from_slice(&value);
            }
        }
        Some(joined)
    }

    /// Sets (replaces) a header; an empty value removes it.
    pub fn set_header(self, kind: HeaderType, name: &str, value: &[u8]) -> bool {
        // SAFETY: running hook's stream; both buffers are module memory.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                kind.0,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Removes every copy of a header.
    pub fn remove_header(self, kind: HeaderType, name: &str) -> bool {
        // SAFETY: running hook's stream; the empty value means "remove".
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                kind.0,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::empty(),
            )
        }
    }

    /// Appends a header value.
    pub fn add_header(self, kind: HeaderType, name: &str, value: &[u8]) -> bool {
        // SAFETY: running hook's stream; both buffers are module memory.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.0,
                kind.0,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// The upstream host that served the stream, "ip:port" (response phase).
    pub fn upstream_address(self) -> Option<Vec<u8>> {
        self.attribute_string(ATTRIBUTE_UPSTREAM_ADDRESS)
    }

    /// A string attribute of the stream (one of the `ATTRIBUTE_*` ids).
    pub fn attribute_string(self, attribute: u32) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::null();
        // SAFETY: running hook's stream; `value` is a valid out pointer.
        let found = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.0, attribute, &mut value,
            )
        };
        // SAFETY: filled by Envoy in this hook; copied before anything else.
        found.then(|| unsafe { value.to_vec() })
    }

    /// The name of the cluster the stream was routed to.
    pub fn cluster_name(self) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::null();
        // SAFETY: running hook's stream; `value` is a valid out pointer.
        let found =
            unsafe { envoy_dynamic_module_callback_http_get_cluster_name(self.0, &mut value) };
        // SAFETY: filled by Envoy in this hook; copied before anything else.
        found.then(|| unsafe { value.to_vec() })
    }

    /// Whether the stream's route currently sends it to `cluster` (compared
    /// in place, no copy); `false` when there is no routed cluster.
    pub fn routed_to_cluster(self, cluster: &[u8]) -> bool {
        let mut value = EnvoyBuffer::null();
        // SAFETY: running hook's stream; `value` is a valid out pointer.
        let found =
            unsafe { envoy_dynamic_module_callback_http_get_cluster_name(self.0, &mut value) };
        if !found || value.ptr.is_null() {
            return false;
        }
        // SAFETY: filled by Envoy in this hook and read before anything else
        // changes the stream; non-null (checked).
        let name = unsafe { std::slice::from_raw_parts(value.ptr.cast::<u8>(), value.length) };
        name == cluster
    }

    /// Asks the load balancer for `host` ("ip:port"); with `strict` false it
    /// falls back to a normal pick when the host is not available.
    pub fn set_upstream_override_host(self, host: &[u8], strict: bool) -> bool {
        // SAFETY: running hook's stream; the host is module memory.
        unsafe {
            envoy_dynamic_module_callback_http_set_upstream_override_host(
                self.0,
                ModuleBuffer::of(host),
                strict,
            )
        }
    }

    /// Answers the request locally with `status` and a text body (no extra
    /// headers); the request-headers hook must then stop iteration.
    pub fn send_local_reply(self, status: u32, body: &str, details: &str) {
        // SAFETY: running hook's stream; no headers (null, 0); body and
        // details are module memory Envoy copies during the call.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                status,
                std::ptr::null(),
                0,
                ModuleBuffer::of(body.as_bytes()),
                ModuleBuffer::of(details.as_bytes()),
            );
        }
    }

    /// Makes Envoy match the route again (after routing headers changed).
    pub fn clear_route_cache(self) {
        // SAFETY: running hook's stream.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    /// The index of the worker thread running this stream.
    pub fn worker_index(self) -> u32 {
        // SAFETY: running hook's stream.
        unsafe { envoy_dynamic_module_callback_http_filter_get_worker_index(self.0) }
    }

    /// A bool from the upstream host's `filter_metadata[namespace][key]`.
    pub fn host_metadata_bool(self, namespace: &str, key: &str) -> Option<bool> {
        let mut value = false;
        // SAFETY: running hook's stream; `value` is a valid out pointer.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_metadata_bool(
                self.0,
                METADATA_SOURCE_HOST,
                ModuleBuffer::of(namespace.as_bytes()),
                ModuleBuffer::of(key.as_bytes()),
                &mut value,
            )
        };
        found.then_some(value)
    }

    /// A number from the upstream host's `filter_metadata[namespace][key]`.
    pub fn host_metadata_number(self, namespace: &str, key: &str) -> Option<f64> {
        let mut value = 0.0f64;
        // SAFETY: running hook's stream; `value` is a valid out pointer.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_metadata_number(
                self.0,
                METADATA_SOURCE_HOST,
                ModuleBuffer::of(namespace.as_bytes()),
                ModuleBuffer::of(key.as_bytes()),
                &mut value,
            )
        };
        found.then_some(value)
    }

    /// A string from the upstream host's `filter_metadata[namespace][key]`.
    pub fn host_metadata_string(self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::null();
        // SAFETY: running hook's stream; `value` is a valid out pointer.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_metadata_string(
                self.0,
                METADATA_SOURCE_HOST,
                ModuleBuffer::of(namespace.as_bytes()),
                ModuleBuffer::of(key.as_bytes()),
                &mut value,
            )
        };
        // SAFETY: filled by Envoy in this hook; copied before anything else.
        found.then(|| unsafe { value.to_vec() })
    }

    /// Adds 1 to a counter defined on this stream's filter config.
    pub fn increment_counter(self, id: usize) -> bool {
        // SAFETY: running hook's stream; no labels (null, 0).
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.0,
                id,
                std::ptr::null(),
                0,
                1,
            )
        };
        result == METRICS_SUCCESS
    }
}

/// Defines a counter on a filter config; only possible inside
/// `on_http_filter_config_new` (Envoy freezes stat creation afterwards).
///
/// # Safety
/// `config` must be the `filter_config_envoy_ptr` of the running
/// `envoy_dynamic_module_on_http_filter_config_new` call.
pub unsafe fn define_counter(config: EnvoyPtr, name: &str) -> Option<usize> {
    let mut id = 0usize;
    // SAFETY: the caller guarantees `config`; the name is module memory; no
    // labels (null, 0); `id` is a valid out pointer.
    let result = unsafe {
        envoy_dynamic_module_callback_http_filter_config_define_counter(
            config,
            ModuleBuffer::of(name.as_bytes()),
            std::ptr::null(),
            0,
            &mut id,
        )
    };
    (result == METRICS_SUCCESS).then_some(id)
}
