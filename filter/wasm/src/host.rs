//! The only code that calls proxy-wasm: [`WasmHost`] implements the core's
//! [`Host`] with the `_bytes` host calls, and every failure reads as "absent"
//! (the SDK's trait helpers unwrap; `hostcalls` returns `Result`s).

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType};
use sticky_core::drain::{DEADLINE_KEY, DRAINING_KEY, HostDrain};
use sticky_core::host::{Host, Pinning, Removal};
use sticky_core::metrics::{Metric, MetricIds};

/// Defines one counter of the VM; `None` (never counted) when it cannot.
pub fn define_metric(metric: Metric) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, metric.name()).ok()
}

/// The proxy as seen through proxy-wasm, for the current stream.
pub struct WasmHost<'a> {
    /// Counter ids of this VM.
    pub metrics: &'a MetricIds<u32>,
}

impl Host for WasmHost<'_> {
    fn pinning(&self) -> Pinning {
        // The rendered chain is sticky → stateful_session (header) → router.
        Pinning::SessionFilter
    }

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

    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value));
    }

    fn remove_request_header(&mut self, name: &str) -> Removal {
        // Envoy re-matches the route by itself after a wasm filter's edits.
        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
        Removal::Unknown
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

    fn host_drain(&mut self, namespace: &str) -> HostDrain {
        let draining = host_metadata(namespace, DRAINING_KEY);
        let deadline = host_metadata(namespace, DEADLINE_KEY);
        HostDrain::from_metadata(draining.as_deref(), deadline.as_deref())
    }

    fn random(&mut self, buf: &mut [u8]) -> bool {
        getrandom::fill(buf).is_ok()
    }

    fn count(&mut self, metric: Metric) {
        if let Some(id) = self.metrics.get(metric) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn log_warn(&mut self, message: &str) {
        let _ = hostcalls::log(proxy_wasm::types::LogLevel::Warn, message);
    }
}

/// One value of the serving host's `filter_metadata[namespace][key]`, in
/// the property encoding (8-byte LE f64, 1-byte bool, raw string).
fn host_metadata(namespace: &str, key: &str) -> Option<Vec<u8>> {
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
