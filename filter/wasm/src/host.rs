//! The only code that calls proxy-wasm: [`WasmHost`] implements the core's
//! [`Host`] with the `_bytes` host calls, and every failure reads as "absent"
//! (the SDK's trait helpers unwrap; `hostcalls` returns `Result`s).

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType};
use sticky_core::host::Host;
use sticky_core::metrics::{self, Metric};

/// Counter ids, defined once per VM.
pub struct MetricIds([Option<u32>; metrics::COUNT]);

impl MetricIds {
    /// Defines every counter; a counter that cannot be defined is skipped.
    pub fn define() -> Self {
        let mut ids = [None; metrics::COUNT];
        for metric in Metric::all() {
            if let Some(slot) = ids.get_mut(metric.index()) {
                *slot = hostcalls::define_metric(MetricType::Counter, metric.name()).ok();
            }
        }
        Self(ids)
    }
}

/// The proxy as seen through proxy-wasm, for the current stream.
pub struct WasmHost<'a> {
    /// Counter ids of this VM.
    pub metrics: &'a MetricIds,
}

impl Host for WasmHost<'_> {
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>> {
        // The property joins repeated headers but costs a few µs even for an
        // absent header; the map getter returns only the first copy, and
        // costs little when the header is absent. Probe, then join.
        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()?;
        request_header_joined(name)
    }

    fn request_cookies(&mut self) -> Option<Vec<u8>> {
        // Present on every request of a session: no probe.
        request_header_joined("cookie")
    }

    fn send_local_reply(&mut self, status: u32, body: &str) -> bool {
        hostcalls::send_http_response(
            status,
            vec![("content-type", "text/plain")],
            Some(body.as_bytes()),
        )
        .is_ok()
    }

    fn pins_through_session_filter(&self) -> bool {
        // The rendered chain is sticky → stateful_session (header) → router.
        true
    }

    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value));
    }

    fn remove_request_header(&mut self, name: &str) {
        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn remove_response_header(&mut self, name: &str) {
        let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name);
    }

    fn add_response_header(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::add_map_value_bytes(MapType::HttpResponseHeaders, name, value);
    }

    fn set_response_header(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpResponseHeaders, name, Some(value));
    }

    fn upstream_host(&mut self) -> Option<Vec<u8>> {
        hostcalls::get_property(vec!["upstream", "address"])
            .ok()
            .flatten()
    }

    fn upstream_cluster(&mut self) -> Option<Vec<u8>> {
        hostcalls::get_property(vec!["xds", "cluster_name"])
            .ok()
            .flatten()
    }

    fn response_code_details(&mut self) -> Option<Vec<u8>> {
        hostcalls::get_property(vec!["response", "code_details"])
            .ok()
            .flatten()
    }

    fn host_metadata(&mut self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_property(vec![
            "xds",
            "upstream_host_metadata",
            "filter_metadata",
            namespace,
            key,
        ])
        .ok()
        .flatten()
    }

    fn random(&mut self, buf: &mut [u8]) -> bool {
        getrandom::fill(buf).is_ok()
    }

    fn count(&mut self, metric: Metric) {
        if let Some(Some(id)) = self.metrics.0.get(metric.index()) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    fn log_warn(&mut self, message: &str) {
        let _ = hostcalls::log(proxy_wasm::types::LogLevel::Warn, message);
    }
}

/// Every value of a request header, joined with `,` (the property getter:
/// the map getter would return only the first copy).
fn request_header_joined(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_property(vec!["request", "headers", name])
        .ok()
        .flatten()
}

/// Seconds since the unix epoch by the proxy's clock; 0 if unavailable.
pub fn now() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// The plugin configuration bytes, if any.
pub fn plugin_configuration() -> Option<Vec<u8>> {
    hostcalls::get_buffer(
        proxy_wasm::types::BufferType::PluginConfiguration,
        0,
        usize::MAX,
    )
    .ok()
    .flatten()
}
