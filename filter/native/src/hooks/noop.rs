//! The hooks Envoy requires and sticky has no use for: every one returns at
//! once (continue, or nothing), reads no pointer, and so cannot panic.

use std::ffi::c_void;

use crate::abi::{EnvoyPtr, STATUS_CONTINUE};

/// Exports each listed hook as an `extern "C"` function whose body is the
/// given value (or empty): the signature is all there is to get right.
macro_rules! noop_hooks {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty = $value:expr)?;
    )*) => {
        $(
            $(#[doc = $doc])*
            ///
            /// # Safety
            /// Called by Envoy; no pointer is read.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
                $($value)?
            }
        )*
    };
}

noop_hooks! {
    /// Nothing to release: per-route configs are never created.
    fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_config: *const c_void);
    /// Request body: passed through.
    fn envoy_dynamic_module_on_http_filter_request_body(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _end_of_stream: bool,
    ) -> u32 = STATUS_CONTINUE;
    /// Request trailers: passed through.
    fn envoy_dynamic_module_on_http_filter_request_trailers(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
    ) -> u32 = STATUS_CONTINUE;
    /// Response body: passed through.
    fn envoy_dynamic_module_on_http_filter_response_body(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _end_of_stream: bool,
    ) -> u32 = STATUS_CONTINUE;
    /// Response trailers: passed through.
    fn envoy_dynamic_module_on_http_filter_response_trailers(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
    ) -> u32 = STATUS_CONTINUE;
    /// Stream finished: nothing to do (state is freed in `on_http_filter_destroy`).
    fn envoy_dynamic_module_on_http_filter_stream_complete(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
    );
    /// Scheduler events: sticky schedules nothing.
    fn envoy_dynamic_module_on_http_filter_scheduled(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _event_id: u64,
    );
    /// HTTP callouts: sticky makes none.
    fn envoy_dynamic_module_on_http_filter_http_callout_done(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _callout_id: u64,
        _result: u32,
        _headers: *const c_void,
        _headers_size: usize,
        _body_chunks: *const c_void,
        _body_chunks_size: usize,
    );
    /// Streamed callouts: sticky opens none.
    fn envoy_dynamic_module_on_http_filter_http_stream_headers(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _stream_id: u64,
        _headers: *const c_void,
        _headers_size: usize,
        _end_stream: bool,
    );
    /// Streamed callouts: sticky opens none.
    fn envoy_dynamic_module_on_http_filter_http_stream_data(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _stream_id: u64,
        _data: *const c_void,
        _data_count: usize,
        _end_stream: bool,
    );
    /// Streamed callouts: sticky opens none.
    fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _stream_id: u64,
        _trailers: *const c_void,
        _trailers_size: usize,
    );
    /// Streamed callouts: sticky opens none.
    fn envoy_dynamic_module_on_http_filter_http_stream_complete(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _stream_id: u64,
    );
    /// Streamed callouts: sticky opens none.
    fn envoy_dynamic_module_on_http_filter_http_stream_reset(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
        _stream_id: u64,
        _reason: u32,
    );
    /// Downstream flow control: sticky buffers nothing.
    fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
    );
    /// Downstream flow control: sticky buffers nothing.
    fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
        _filter_envoy_ptr: EnvoyPtr,
        _filter_module_ptr: *const c_void,
    );
}
