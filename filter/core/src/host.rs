//! What the filter needs from the proxy. `filter/wasm` implements it with
//! proxy-wasm calls, `filter/native` with Envoy's dynamic-module ABI, and the
//! tests with a fake. A host reports facts and carries out edits; it decides
//! nothing (the core's [`crate::filter`] does). Every method is infallible
//! from the caller's view: a failed host call reads as "absent" and a failed
//! write is dropped (fail open).

use crate::config::Config;
use crate::drain::HostDrain;
use crate::metrics::Metric;

/// How the host the session names reaches Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// `host_header` = base64("ip:port") for Envoy's header-based
    /// `stateful_session` filter placed after this one (the wasm, and the
    /// native module's drop-in wiring). Setting an internal header then
    /// replaces every client-sent copy, and `stateful_session` writes the
    /// host header into every response whose host differs from the one asked
    /// for: the filter uses both to skip host calls.
    SessionFilter,
    /// Envoy's upstream host override (the native module's direct wiring):
    /// no `stateful_session` reads the host header, so a client's copy
    /// steers nothing and is left to the route, which strips it.
    Override {
        /// A gone host is a 503 instead of a fresh pick by the load balancer.
        strict: bool,
    },
}

impl Pinning {
    /// The pinning a validated config asks for (`override_host`).
    pub fn of(cfg: &Config) -> Self {
        match cfg.override_host {
            Some(o) => Pinning::Override { strict: o.strict },
            None => Pinning::SessionFilter,
        }
    }
}

/// What removing a request header did, as far as the host can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Copies were removed.
    Removed,
    /// The request carried none (nothing changed).
    Absent,
    /// The host removes without telling (proxy-wasm).
    Unknown,
}

/// The proxy, as seen by one HTTP stream.
pub trait Host {
    /// How a pinned host reaches Envoy.
    fn pinning(&self) -> Pinning;

    /// All values of a request header joined with `,`; `None` when absent.
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// All `Cookie` request headers, joined with `,` or `; `.
    fn request_cookies(&mut self) -> Option<Vec<u8>> {
        self.request_header("cookie")
    }
    /// Whether Envoy already routes the stream to `cluster`; `false` when
    /// the host cannot tell (then the cluster header is always written).
    fn routed_to_cluster(&mut self, _cluster: &[u8]) -> bool {
        false
    }
    /// Sets (replaces) a request header.
    fn set_request_header(&mut self, name: &str, value: &[u8]);
    /// Appends a request header known to be absent (cheaper than a set,
    /// which scans for copies to replace).
    fn add_request_header(&mut self, name: &str, value: &[u8]) {
        self.set_request_header(name, value);
    }
    /// Removes every copy of a request header.
    fn remove_request_header(&mut self, name: &str) -> Removal;
    /// Sends the request to `host` ("ip:port") of the routed cluster through
    /// Envoy's upstream override ([`Pinning::Override`] hosts only).
    fn override_host(&mut self, _host: &str, _strict: bool) {}
    /// Makes Envoy match the route again after routing headers changed
    /// (proxy-wasm hosts: Envoy does it by itself).
    fn clear_route_cache(&mut self) {}

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
    /// The serving host's drain state from its endpoint metadata
    /// `filter_metadata[namespace]`, each host decoding its proxy's encoding.
    fn host_drain(&mut self, namespace: &str) -> HostDrain;

    /// Fills `buf` with random bytes; `false` if no randomness is available.
    fn random(&mut self, buf: &mut [u8]) -> bool;
    /// Increments a counter.
    fn count(&mut self, metric: Metric);
    /// Writes a warning to the proxy's log (callers rate-limit).
    fn log_warn(&mut self, _message: &str) {}
}
