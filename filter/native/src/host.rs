//! [`NativeHost`]: the core's [`Host`] over Envoy's dynamic-module ABI.
//!
//! Two wirings ([`Wiring`]), chosen by the plugin config's `override_host`:
//! - drop-in (absent): exactly the wasm's contract, the host goes into the
//!   internal `host_header` for a header-based `stateful_session` filter
//!   placed after the module;
//! - direct (present): no `stateful_session` filter, the module pins the
//!   host itself with `set_upstream_override_host`.
//!
//! Both differ from the wasm in one point: Envoy does not re-match the route
//! when a module changes request headers, so every routing-relevant change
//! marks the route dirty and [`NativeHost::finish_request`] clears the route
//! cache once.

use sticky_core::config::Config;
use sticky_core::drain::{DEADLINE_KEY, DRAINING_KEY};
use sticky_core::host::Host;
use sticky_core::metrics::{self, Metric};

use crate::abi::{ATTRIBUTE_RESPONSE_CODE_DETAILS, HeaderType, LogLevel, Stream};

/// More values of one header than this are ignored (a hostile request can
/// repeat a header thousands of times; a cookie never needs that many).
pub const MAX_HEADER_VALUES: usize = 64;

/// Counter ids, defined once per filter config.
#[derive(Debug, Clone, Default)]
pub struct Counters([Option<usize>; metrics::COUNT]);

impl Counters {
    /// Defines every counter of [`Metric::all`] with `define`; a counter that
    /// cannot be defined is skipped (and logged).
    pub fn define(mut define: impl FnMut(&str) -> Option<usize>) -> Self {
        let mut ids = [None; metrics::COUNT];
        for metric in Metric::all() {
            let id = define(metric.name());
            if id.is_none() {
                crate::abi::log(
                    LogLevel::WARN,
                    &format!("sticky: cannot define counter {}", metric.name()),
                );
            }
            if let Some(slot) = ids.get_mut(metric.index()) {
                *slot = id;
            }
        }
        Self(ids)
    }

    /// The id of `metric`, if it was defined.
    pub fn id(&self, metric: Metric) -> Option<usize> {
        self.0.get(metric.index()).copied().flatten()
    }
}

/// How the module hands the chosen host to Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiring {
    /// The wasm's bootstrap: `host_header` = base64("ip:port") for Envoy's
    /// header-based `stateful_session` filter after the module.
    DropIn,
    /// `set_upstream_override_host`; `strict`: a gone host is a 503 instead
    /// of a fresh pick by the load balancer.
    Direct {
        /// Passed to Envoy as the override's `strict` flag.
        strict: bool,
    },
}

impl Wiring {
    /// The wiring a validated config asks for (`override_host`).
    pub fn of(config: &Config) -> Self {
        match config.override_host {
            Some(o) => Wiring::Direct { strict: o.strict },
            None => Wiring::DropIn,
        }
    }
}

/// The proxy as seen through the dynamic-module ABI, for one event hook.
#[derive(Debug)]
pub struct NativeHost<'a> {
    stream: Stream,
    counters: &'a Counters,
    wiring: Wiring,
    /// The internal cluster header (`cluster_header` of the config).
    cluster_header: &'a str,
    /// The internal host header (`host_header` of the config).
    host_header: &'a str,
    /// A routing header changed since Envoy matched the route.
    route_dirty: bool,
    /// The session's cluster is the one Envoy already routes the stream to,
    /// with no other routing change before: the cluster header is not set
    /// and the route not matched again.
    cluster_already_routed: bool,
    /// The request is known to carry no cluster header (looked up before
    /// removing): setting it is then an append, which spares Envoy the
    /// scan for copies to replace.
    cluster_header_absent: bool,
    replied: bool,
}

impl<'a> NativeHost<'a> {
    /// A host for the stream of the running hook.
    pub fn new(stream: Stream, counters: &'a Counters, wiring: Wiring, config: &'a Config) -> Self {
        Self {
            stream,
            counters,
            wiring,
            cluster_header: &config.cluster_header,
            host_header: &config.host_header,
            route_dirty: false,
            cluster_already_routed: false,
            cluster_header_absent: false,
            replied: false,
        }
    }

    /// In the direct wiring no `stateful_session` reads or writes the host
    /// header: a client's copy steers nothing, so the request phase need not
    /// remove it (the rendered route strips it before the upstream all the
    /// same), which saves Envoy a header-map scan (about 1,000 instructions,
    /// measured with callgrind). Responses are still stripped: a backend that
    /// reflects the header must not reach the client.
    fn host_header_is_inert(&self, name: &str) -> bool {
        matches!(self.wiring, Wiring::Direct { .. }) && name == self.host_header
    }

    /// Whether the filter answered the request locally (the hook must stop
    /// iteration then).
    pub fn replied(&self) -> bool {
        self.replied
    }

    /// Ends the request phase: if a routing header changed (the cluster
    /// header was set, or a client-sent copy was removed), Envoy must match
    /// the route again, or the route it cached from the client's headers wins.
    ///
    /// One exception saves the re-match (a second route lookup) and the
    /// header write: the stream is already routed to the session's cluster
    /// (the weighted split picked it) and nothing else changed. The pinned
    /// route and the split then differ only in how they chose that cluster
    /// (the rendered bootstrap gives both the same timeout and retry
    /// policy), and the host is pinned apart from the route, by
    /// `stateful_session` or the upstream override.
    pub fn finish_request(&mut self) {
        if self.route_dirty {
            self.stream.clear_route_cache();
            self.route_dirty = false;
        }
    }
}

impl Host for NativeHost<'_> {
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.stream
            .header_joined(HeaderType::REQUEST, name, MAX_HEADER_VALUES)
    }

    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        // The core calls `route_changed` after every routing header it sets.
        let is_cluster = name == self.cluster_header;
        if is_cluster && !self.route_dirty && self.stream.routed_to_cluster(value) {
            // Routed there already (if Envoy had not matched a route yet, it
            // just did, on the client's headers): the header would change
            // nothing, and the route strips it before the upstream anyway.
            self.cluster_already_routed = true;
            return;
        }
        if is_cluster && self.cluster_header_absent && !value.is_empty() {
            self.cluster_header_absent = false;
            let _ = self.stream.add_header(HeaderType::REQUEST, name, value);
        } else {
            let _ = self.stream.set_header(HeaderType::REQUEST, name, value);
        }
    }

    fn remove_request_header(&mut self, name: &str) {
        if self.host_header_is_inert(name) {
            return;
        }
        // Only an actual removal changes routing: skip the route re-match
        // for the common request that carries no internal header.
        if self.stream.header_count(HeaderType::REQUEST, name) == 0 {
            if name == self.cluster_header {
                self.cluster_header_absent = true;
            }
            return;
        }
        if name == self.cluster_header {
            self.cluster_header_absent = false;
        }
        if self.stream.remove_header(HeaderType::REQUEST, name) {
            self.route_dirty = true;
        }
    }

    fn pin_host(&mut self, header: &str, host: &str) {
        match self.wiring {
            Wiring::DropIn => {
                let value = sticky_core::b64::encode_standard(host.as_bytes());
                let _ = self
                    .stream
                    .set_header(HeaderType::REQUEST, header, value.as_bytes());
            }
            // Not strict (the default): a host that is gone or unhealthy
            // falls back to the load balancer, and the response re-pins.
            Wiring::Direct { strict } => {
                let _ = self
                    .stream
                    .set_upstream_override_host(host.as_bytes(), strict);
            }
        }
    }

    fn route_changed(&mut self) {
        if !self.cluster_already_routed {
            self.route_dirty = true;
        }
    }

    fn send_local_reply(&mut self, status: u32, body: &str) -> bool {
        self.stream
            .send_local_reply(status, body, "sticky_local_reply");
        self.replied = true;
        true
    }

    fn pins_through_session_filter(&self) -> bool {
        self.wiring == Wiring::DropIn
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.stream.header(HeaderType::RESPONSE, name)
    }

    fn remove_response_header(&mut self, name: &str) {
        // Blindly: a lookup first costs Envoy more than the removal it would
        // save (measured with callgrind).
        let _ = self.stream.remove_header(HeaderType::RESPONSE, name);
    }

    fn add_response_header(&mut self, name: &str, value: &[u8]) {
        let _ = self.stream.add_header(HeaderType::RESPONSE, name, value);
    }

    fn set_response_header(&mut self, name: &str, value: &[u8]) {
        let _ = self.stream.set_header(HeaderType::RESPONSE, name, value);
    }

    fn upstream_host(&mut self) -> Option<Vec<u8>> {
        self.stream.upstream_address()
    }

    fn upstream_cluster(&mut self) -> Option<Vec<u8>> {
        self.stream.cluster_name()
    }

    fn response_code_details(&mut self) -> Option<Vec<u8>> {
        self.stream
            .attribute_string(ATTRIBUTE_RESPONSE_CODE_DETAILS)
    }

    fn host_metadata(&mut self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        // The scenario table counts logical reads (its rate-limit checks).
        #[cfg(test)]
        crate::fake_envoy::note_metadata_read();
        // Answer in the property encoding the core decodes: 1 byte for a
        // bool, 8 bytes little-endian f64 for a number, raw bytes for a
        // string. Ask for the type the control side writes first; Envoy logs
        // an error for a present key of another type, so the string
        // fallback only runs when the typed read failed.
        let typed = match key {
            DRAINING_KEY => self
                .stream
                .host_metadata_bool(namespace, key)
                .map(|b| vec![u8::from(b)]),
            DEADLINE_KEY => self
                .stream
                .host_metadata_number(namespace, key)
                .map(|n| n.to_le_bytes().to_vec()),
            _ => None,
        };
        typed.or_else(|| self.stream.host_metadata_string(namespace, key))
    }

    fn random(&mut self, buf: &mut [u8]) -> bool {
        // Unit tests replay transcripts byte for byte: the fake Envoy's
        // deterministic source stands in for the OS.
        #[cfg(test)]
        return crate::fake_envoy::random(buf);
        #[cfg(not(test))]
        getrandom::fill(buf).is_ok()
    }

    fn count(&mut self, metric: Metric) {
        if let Some(id) = self.counters.id(metric) {
            let _ = self.stream.increment_counter(id);
        }
    }

    fn log_warn(&mut self, message: &str) {
        crate::abi::log(LogLevel::WARN, message);
    }
}

/// Seconds since the unix epoch; 0 if the clock is before it.
pub fn now() -> u64 {
    // The scenario table runs on simulated time.
    #[cfg(test)]
    if let Some(now) = crate::fake_envoy::now() {
        return now;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
