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
use sticky_core::config::Config;
use sticky_core::filter;
use sticky_core::session::Stream;
use sticky_core::worker::Worker;

use sticky_core::metrics::MetricIds;

use crate::host::WasmHost;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(StickyRoot::default()) });
}}

/// What every stream of a VM shares.
struct Shared {
    config: Config,
    metrics: MetricIds<u32>,
    /// Per-worker caches (one VM per worker; single-threaded).
    worker: RefCell<Worker>,
}

#[derive(Default)]
struct StickyRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for StickyRoot {}

impl RootContext for StickyRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = host::plugin_configuration().unwrap_or_default();
        match Config::from_json(&bytes) {
            Ok(config) if config.override_host.is_some() => {
                // proxy-wasm has no upstream override: only the header wiring.
                log::error!(
                    "sticky: invalid sticky config: field `override_host`: needs the native build (dist/libsticky.so); the wasm pins hosts through host_header"
                );
                false
            }
            Ok(config) => {
                log::info!("{}", config.summary());
                let metrics = host::define_metrics();
                self.shared = Some(Rc::new(Shared {
                    config,
                    metrics,
                    worker: RefCell::new(Worker::default()),
                }));
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
            shared: self.shared.clone(),
            stream: Stream::Untouched,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct StickyStream {
    shared: Option<Rc<Shared>>,
    stream: Stream,
}

impl Context for StickyStream {}

impl HttpContext for StickyStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(shared) = &self.shared {
            let mut host = WasmHost {
                metrics: &shared.metrics,
            };
            // Busy caches (re-entry): decide without them, never skip the
            // request phase, which also strips client-sent internal headers.
            self.stream = match shared.worker.try_borrow_mut() {
                Ok(mut worker) => {
                    filter::on_request(&shared.config, &mut worker, &mut host, host::now())
                }
                Err(_) => filter::on_request(
                    &shared.config,
                    &mut Worker::default(),
                    &mut host,
                    host::now(),
                ),
            };
            if self.stream == Stream::Refused {
                // A local reply was sent: Envoy answers, the request stops here.
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(shared) = &self.shared {
            let mut host = WasmHost {
                metrics: &shared.metrics,
            };
            if let Ok(mut worker) = shared.worker.try_borrow_mut() {
                filter::on_response(
                    &shared.config,
                    &mut worker,
                    &self.stream,
                    &mut host,
                    host::now(),
                );
            }
        }
        Action::Continue
    }
}
