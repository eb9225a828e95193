//! A proxy-wasm HTTP filter that does nothing: built with the same SDK,
//! release profile and `wasm-opt` flags as `dist/sticky.wasm`, it puts a price
//! on the wasm boundary alone (VM context per stream, the ABI callbacks Envoy
//! makes for every request), so the benchmark can tell that cost from
//! sticky's own work.
//!
//! Given a configuration `name=value;name=value` (as a JSON string), it also
//! sets those request headers on every request: with sticky's two internal
//! headers it becomes the benchmark's "floor", the least any wasm filter
//! steering Envoy through `stateful_session` and the cluster-header route must
//! do (two host calls, the route re-match and `stateful_session`'s work),
//! with none of sticky's own logic.

// `proxy_wasm::main!` generates the undocumented `_initialize` export.
#![allow(missing_docs)]

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(EmptyRoot { headers: Rc::new(Vec::new()) })
    });
}}

/// Request headers set on every request (none: pure pass-through).
type Headers = Rc<Vec<(String, Vec<u8>)>>;

struct EmptyRoot {
    headers: Headers,
}

impl Context for EmptyRoot {}

impl RootContext for EmptyRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.headers = Rc::new(parse(&config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EmptyStream {
            headers: self.headers.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Continues every phase; sets the configured headers, if any.
struct EmptyStream {
    headers: Headers,
}

impl Context for EmptyStream {}

impl HttpContext for EmptyStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in self.headers.iter() {
            let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}

/// `"name=value;name=value"` (quotes optional) into pairs; `{}` and anything
/// without `=` yield nothing.
fn parse(config: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(config);
    text.trim()
        .trim_matches('"')
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            (!name.is_empty()).then(|| (name.to_owned(), value.trim().as_bytes().to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_ignores_the_empty_config() {
        assert!(parse(b"{}").is_empty());
        assert_eq!(
            parse(b"\"x-a=v1;x-b=MTI3LjAuMC4xOjE=\""),
            vec![
                ("x-a".to_owned(), b"v1".to_vec()),
                ("x-b".to_owned(), b"MTI3LjAuMC4xOjE=".to_vec())
            ]
        );
    }
}
