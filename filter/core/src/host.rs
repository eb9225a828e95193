//! What the filter needs from the proxy. `filter/wasm` implements it with
//! proxy-wasm calls, `filter/native` with Envoy's dynamic-module ABI, and the
//! tests with a fake. Every method is infallible from the caller's view: a
//! failed host call reads as "absent" and a failed write is dropped (fail open).

use crate::metrics::Metric;

/// The proxy, as seen by one HTTP stream.
pub trait Host {
    /// All values of a request header joined with `,`; `None` when absent.
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// All `Cookie` request headers, joined with `,` or `; `.
    fn request_cookies(&mut self) -> Option<Vec<u8>> {
        self.request_header("cookie")
    }
    /// Sets (replaces) a request header.
    fn set_request_header(&mut self, name: &str, value: &[u8]);
    /// Removes every copy of a request header.
    fn remove_request_header(&mut self, name: &str);
    /// Sends the request to `host` ("ip:port") of the routed cluster. The
    /// default sets `header` to base64("ip:port") for Envoy's
    /// `stateful_session` filter (HeaderBasedSessionState).
    fn pin_host(&mut self, header: &str, host: &str) {
        let value = crate::b64::encode_standard(host.as_bytes());
        self.set_request_header(header, value.as_bytes());
    }
    /// Called after the cluster header was set; hosts that must clear the
    /// route cache themselves do it here.
    fn route_changed(&mut self) {}
    /// Whether [`Host::pin_host`] goes through Envoy's `stateful_session`
    /// (`HeaderBasedSessionState`) placed after the filter. Then setting an
    /// internal header replaces every client-sent copy, and a response that
    /// does not carry the host header was served by the pinned host, because
    /// `stateful_session` writes it into every response whose host differs
    /// from the one asked for: the filter uses both to skip host calls.
    /// Hosts that pin otherwise (the native module) keep the default `false`.
    fn pins_through_session_filter(&self) -> bool {
        false
    }

    /// Answers the request locally with `status` and a text `body` instead of
    /// sending it upstream; `false` if this host cannot (the request then
    /// proceeds normally).
    fn send_local_reply(&mut self, _status: u32, _body: &str) -> bool {
        false
    }

    /// A response header's value; `None` when absent.
    fn response_header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// Removes every copy of a response header.
    fn remove_response_header(&mut self, name: &str);
    /// Appends a response header (used for `Set-Cookie`).
    fn add_response_header(&mut self, name: &str, value: &[u8]);
    /// Sets (replaces) a response header.
    fn set_response_header(&mut self, name: &str, value: &[u8]);

    /// The upstream host that served the request, "ip:port".
    fn upstream_host(&mut self) -> Option<Vec<u8>>;
    /// The cluster that served the request.
    fn upstream_cluster(&mut self) -> Option<Vec<u8>>;
    /// Envoy's response code details (`response.code_details`), such as
    /// `no_healthy_upstream` for a local reply when no host could be picked.
    fn response_code_details(&mut self) -> Option<Vec<u8>>;
    /// One value of the serving host's `filter_metadata[namespace][key]`, in
    /// Envoy's property encoding (8-byte LE f64, 1-byte bool, raw string).
    fn host_metadata(&mut self, namespace: &str, key: &str) -> Option<Vec<u8>>;

    /// Fills `buf` with random bytes; `false` if no randomness is available.
    fn random(&mut self, buf: &mut [u8]) -> bool;
    /// Increments a counter.
    fn count(&mut self, metric: Metric);
    /// Writes a warning to the proxy's log (callers rate-limit).
    fn log_warn(&mut self, _message: &str) {}
}
