//! [`NativeHost`]: the core's [`Host`] over Envoy's dynamic-module ABI.
//!
//! Differences from the wasm build, all on purpose:
//! - the host is pinned with `set_upstream_override_host` (strict = false),
//!   so no `stateful_session` filter and no internal host header exist;
//! - Envoy does not re-match the route when a module changes request headers,
//!   so every routing-relevant change marks the route dirty and
//!   [`NativeHost::finish_request`] clears the route cache once.

use sticky_core::drain::{DEADLINE_KEY, DRAINING_KEY};
use sticky_core::host::Host;
use sticky_core::metrics::{self, Metric};

use crate::abi::{HeaderType, LogLevel, Stream};

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

/// The proxy as seen through the dynamic-module ABI, for one event hook.
#[derive(Debug)]
pub struct NativeHost<'a> {
    stream: Stream,
    counters: &'a Counters,
    route_dirty: bool,
}

impl<'a> NativeHost<'a> {
    /// A host for the stream of the running hook.
    pub fn new(stream: Stream, counters: &'a Counters) -> Self {
        Self {
            stream,
            counters,
            route_dirty: false,
        }
    }

    /// Ends the request phase: if a routing header changed (the cluster
    /// header was set, or a client-sent copy was removed), Envoy must match
    /// the route again, or the route it cached from the client's headers wins.
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
        if self.stream.set_header(HeaderType::REQUEST, name, value) {
            self.route_dirty = true;
        }
    }

    fn remove_request_header(&mut self, name: &str) {
        // Only an actual removal changes routing: skip the route re-match
        // for the common request that carries no internal header.
        if self.stream.header_count(HeaderType::REQUEST, name) > 0
            && self.stream.remove_header(HeaderType::REQUEST, name)
        {
            self.route_dirty = true;
        }
    }

    fn pin_host(&mut self, _header: &str, host: &str) {
        // Not strict: a host that is gone or unhealthy falls back to the
        // load balancer, and the response re-pins the session.
        let _ = self
            .stream
            .set_upstream_override_host(host.as_bytes(), false);
    }

    fn route_changed(&mut self) {
        self.route_dirty = true;
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.stream.header(HeaderType::RESPONSE, name)
    }

    fn remove_response_header(&mut self, name: &str) {
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

    fn host_metadata(&mut self, namespace: &str, key: &str) -> Option<Vec<u8>> {
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
        getrandom::fill(buf).is_ok()
    }

    fn count(&mut self, metric: Metric) {
        if let Some(id) = self.counters.id(metric) {
            let _ = self.stream.increment_counter(id);
        }
    }
}

/// Seconds since the unix epoch; 0 if the clock is before it.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
