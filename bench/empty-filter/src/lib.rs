//! A proxy-wasm HTTP filter that does nothing: built with the same SDK,
//! release profile and `wasm-opt` flags as `dist/sticky.wasm`, it puts a price
//! on the wasm boundary alone (VM context per stream, the ABI callbacks Envoy
//! makes for every request), so the benchmark can tell that cost from
//! sticky's own work.

// `proxy_wasm::main!` generates the undocumented `_initialize` export.
#![allow(missing_docs)]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(EmptyRoot) });
}}

struct EmptyRoot;

impl Context for EmptyRoot {}

impl RootContext for EmptyRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EmptyStream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Continues every phase without a single host call.
struct EmptyStream;

impl Context for EmptyStream {}

impl HttpContext for EmptyStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}
