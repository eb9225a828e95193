//! sticky as a proxy-wasm HTTP filter: thin glue from proxy-wasm's contexts to
//! the core's flow. One root context per VM parses the configuration; each
//! HTTP stream gets a context that shares it.

// `proxy_wasm::main!` generates the undocumented `_initialize` export.
#![allow(missing_docs)]

mod host;

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use sticky_core::session::Stream;
use sticky_core::worker::Worker;

use crate::host::WasmHost;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(StickyRoot::default()) });
}}

/// What every stream of a VM shares; one VM per Envoy worker, so its caches
/// sit in a `RefCell` (single-threaded).
type Plugin = sticky_core::plugin::Plugin<u32, RefCell<Worker>>;

/// The index a VM's streams lock their caches with: the VM is the worker.
const VM: u32 = 0;

#[derive(Default)]
struct StickyRoot {
    plugin: Option<Rc<Plugin>>,
}

impl Context for StickyRoot {}

impl RootContext for StickyRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = host::plugin_configuration().unwrap_or_default();
        // proxy-wasm has no upstream override: only the header wiring.
        match Plugin::load(&bytes, false, host::define_metric, RefCell::default()) {
            Ok(plugin) => {
                log::info!("{}", plugin.config.summary());
                self.plugin = Some(Rc::new(plugin));
                true
            }
            Err(e) => {
                // Keep serving the previous config, if any; refuse this one.
                log::error!("sticky: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning None would panic in the SDK: an unconfigured root yields a pass-through.
        Some(Box::new(StickyStream {
            plugin: self.plugin.clone(),
            stream: Stream::Untouched,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct StickyStream {
    plugin: Option<Rc<Plugin>>,
    stream: Stream,
}

impl Context for StickyStream {}

impl HttpContext for StickyStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(plugin) = &self.plugin {
            let mut host = WasmHost {
                metrics: &plugin.metrics,
            };
            self.stream = plugin.on_request(VM, &mut host, host::now());
            if self.stream == Stream::Refused {
                // A local reply was sent: Envoy answers, the request stops here.
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(plugin) = &self.plugin {
            let mut host = WasmHost {
                metrics: &plugin.metrics,
            };
            plugin.on_response(VM, &self.stream, &mut host, host::now());
        }
        Action::Continue
    }
}
