//! An Envoy dynamic module whose HTTP filter does nothing: built with the
//! same `native` profile as `dist/libsticky.so`, it puts a price on the
//! dynamic-module boundary alone (Envoy's per-stream filter object and the
//! hook calls it makes for every request, no callback into Envoy), so the
//! benchmark can tell that cost from sticky's own work (`empty-native`).
//!
//! Same ABI as sticky's module (Envoy 1.40.0, `v0.2.0`); no callback is
//! imported, so nothing here can bind to a wrong signature. Pointers are
//! opaque tokens to Envoy: nothing is allocated, nothing dereferenced.

use std::ffi::{c_char, c_void};

/// `envoy_dynamic_module_type_envoy_buffer`, passed by value.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    /// Start of the bytes.
    pub ptr: *const c_char,
    /// Number of bytes.
    pub length: usize,
}

/// A non-null token for Envoy to hold as the filter config / stream state.
fn token() -> *const c_void {
    std::ptr::NonNull::<u8>::dangling()
        .as_ptr()
        .cast_const()
        .cast()
}

/// ABI version of Envoy 1.40.0.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    c"v0.2.0".as_ptr()
}

/// Accepts any configuration.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy_ptr: *mut c_void,
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    token()
}

/// Per-route configuration: accepted and ignored.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    token()
}

/// A stream: no state.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    _config: *const c_void,
    _filter_envoy_ptr: *mut c_void,
) -> *const c_void {
    token()
}

/// Header and body hooks: continue.
macro_rules! pass_through {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        /// Continues the stream.
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($($arg: $ty),*) -> u32 {
            let _ = ($($arg),*);
            0
        }
    )*};
}

/// Lifecycle and callout hooks: nothing to do.
macro_rules! no_op {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        /// Nothing to do.
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($($arg: $ty),*) {
            let _ = ($($arg),*);
        }
    )*};
}

pass_through! {
    envoy_dynamic_module_on_http_filter_request_headers(f: *mut c_void, m: *const c_void, e: bool);
    envoy_dynamic_module_on_http_filter_request_body(f: *mut c_void, m: *const c_void, e: bool);
    envoy_dynamic_module_on_http_filter_request_trailers(f: *mut c_void, m: *const c_void);
    envoy_dynamic_module_on_http_filter_response_headers(f: *mut c_void, m: *const c_void, e: bool);
    envoy_dynamic_module_on_http_filter_response_body(f: *mut c_void, m: *const c_void, e: bool);
    envoy_dynamic_module_on_http_filter_response_trailers(f: *mut c_void, m: *const c_void);
}

no_op! {
    envoy_dynamic_module_on_http_filter_config_destroy(c: *const c_void);
    envoy_dynamic_module_on_http_filter_per_route_config_destroy(c: *const c_void);
    envoy_dynamic_module_on_http_filter_destroy(m: *const c_void);
    envoy_dynamic_module_on_http_filter_stream_complete(f: *mut c_void, m: *const c_void);
    envoy_dynamic_module_on_http_filter_scheduled(f: *mut c_void, m: *const c_void, id: u64);
    envoy_dynamic_module_on_http_filter_http_callout_done(
        f: *mut c_void, m: *const c_void, id: u64, r: u32,
        h: *const c_void, hs: usize, b: *const c_void, bs: usize);
    envoy_dynamic_module_on_http_filter_http_stream_headers(
        f: *mut c_void, m: *const c_void, id: u64, h: *const c_void, hs: usize, e: bool);
    envoy_dynamic_module_on_http_filter_http_stream_data(
        f: *mut c_void, m: *const c_void, id: u64, d: *const c_void, ds: usize, e: bool);
    envoy_dynamic_module_on_http_filter_http_stream_trailers(
        f: *mut c_void, m: *const c_void, id: u64, t: *const c_void, ts: usize);
    envoy_dynamic_module_on_http_filter_http_stream_complete(f: *mut c_void, m: *const c_void, id: u64);
    envoy_dynamic_module_on_http_filter_http_stream_reset(
        f: *mut c_void, m: *const c_void, id: u64, r: u32);
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
        f: *mut c_void, m: *const c_void);
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
        f: *mut c_void, m: *const c_void);
}
