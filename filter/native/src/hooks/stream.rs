//! HTTP stream lifecycle: each stream gets a boxed [`StreamFilter`] holding
//! its own clone of the filter config's `Arc<Shared>`; the header hooks run
//! the core's request and response phases on it.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::sync::Arc;

use sticky_core::session;

use super::Shared;
use crate::abi::{EnvoyPtr, STATUS_CONTINUE, STATUS_STOP_ITERATION, Stream};
use crate::guard::{guard, guard_with};

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
/// If the filter panics, the client-sent internal headers are still
/// stripped: a request the filter failed on is never steered by them.
///
/// # Safety
/// Called by Envoy with the stream's two pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: EnvoyPtr,
    filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // Outside the guard: two pointer wraps, which cannot panic, shared by
    // the body and the recovery.
    // SAFETY: Envoy passes the pointer from filter_new for this stream.
    let Some(filter) = (unsafe { stream_filter(filter_module_ptr) }) else {
        return STATUS_CONTINUE;
    };
    // SAFETY: the running hook's stream pointer, used only during this hook.
    let stream = unsafe { Stream::new(filter_envoy_ptr) };
    let shared = &*filter.shared;
    let strip = || shared.plugin.strip(&mut shared.host(stream));
    guard_with(
        "on_http_filter_request_headers",
        STATUS_CONTINUE,
        strip,
        || {
            #[cfg(feature = "fault-injection")]
            super::fault::maybe_panic(stream);
            let mut host = shared.host(stream);
            let now = shared.env.now();
            let decided = shared
                .plugin
                .on_request(filter.worker_index(stream), &mut host, now);
            // A local reply was sent: Envoy answers, the request stops here.
            let status = if decided == session::Stream::Refused {
                STATUS_STOP_ITERATION
            } else {
                STATUS_CONTINUE
            };
            if let Ok(mut slot) = filter.stream.try_borrow_mut() {
                *slot = decided;
            }
            status
        },
    )
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
        let Some(filter) = (unsafe { stream_filter(filter_module_ptr) }) else {
            return STATUS_CONTINUE;
        };
        let Ok(decided) = filter.stream.try_borrow() else {
            return STATUS_CONTINUE;
        };
        // SAFETY: the running hook's stream pointer, used only during this hook.
        let stream = unsafe { Stream::new(filter_envoy_ptr) };
        let shared = &*filter.shared;
        let mut host = shared.host(stream);
        let now = shared.env.now();
        shared
            .plugin
            .on_response(filter.worker_index(stream), &decided, &mut host, now);
        STATUS_CONTINUE
    })
}
