//! [`NativeHost`]: the core's [`Host`] over Envoy's dynamic-module ABI. It
//! reports facts and carries out edits; the core decides (including which
//! header writes and route re-matches the wiring needs).
//!
//! Two wirings ([`Pinning`]), chosen by the plugin config's `override_host`:
//! drop-in (absent), exactly the wasm's contract with a header-based
//! `stateful_session` after the module; direct (present), the module pins the
//! host itself with `set_upstream_override_host`. Unlike the wasm, Envoy does
//! not re-match the route when a module changes request headers: the core
//! asks for it ([`Host::clear_route_cache`]).

use sticky_core::drain::{self, DEADLINE_KEY, DRAINING_KEY, HostDrain};
use sticky_core::host::{Host, Pinning, Removal};
use sticky_core::metrics::{Metric, MetricIds};

use crate::abi::{ATTRIBUTE_RESPONSE_CODE_DETAILS, HeaderType, LogLevel, Stream};

/// More values of one header than this are ignored (a hostile request can
/// repeat a header thousands of times; a cookie never needs that many).
pub const MAX_HEADER_VALUES: usize = 64;

/// The clock and the randomness of the module: the system's in Envoy; the
/// unit tests supply a simulated clock and a deterministic sequence.
pub trait Env: Send + Sync + std::fmt::Debug {
    /// Seconds since the unix epoch.
    fn now(&self) -> u64;
    /// Fills `buf` with random bytes; `false` if no randomness is available.
    fn random(&self, buf: &mut [u8]) -> bool;
}

/// The system clock and the OS's randomness (`getrandom(2)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl Env for SystemEnv {
    fn now(&self) -> u64 {
        // 0 if the clock is before the epoch.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn random(&self, buf: &mut [u8]) -> bool {
        getrandom::fill(buf).is_ok()
    }
}

/// The proxy as seen through the dynamic-module ABI, for one event hook.
#[derive(Debug)]
pub struct NativeHost<'a> {
    stream: Stream,
    counters: &'a MetricIds<usize>,
    pinning: Pinning,
    env: &'a dyn Env,
}

impl<'a> NativeHost<'a> {
    /// A host for the stream of the running hook.
    pub fn new(
        stream: Stream,
        counters: &'a MetricIds<usize>,
        pinning: Pinning,
        env: &'a dyn Env,
    ) -> Self {
        Self {
            stream,
            counters,
            pinning,
            env,
        }
    }
}

impl Host for NativeHost<'_> {
    fn pinning(&self) -> Pinning {
        self.pinning
    }

    fn request_header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.stream
            .header_joined(HeaderType::REQUEST, name, MAX_HEADER_VALUES)
    }

    fn routed_to_cluster(&mut self, cluster: &[u8]) -> bool {
        self.stream.routed_to_cluster(cluster)
    }

    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        let _ = self.stream.set_header(HeaderType::REQUEST, name, value);
    }

    fn add_request_header(&mut self, name: &str, value: &[u8]) {
        let _ = self.stream.add_header(HeaderType::REQUEST, name, value);
    }

    fn remove_request_header(&mut self, name: &str) -> Removal {
        // The count tells the core whether routing changed.
        if self.stream.header_count(HeaderType::REQUEST, name) == 0 {
            return Removal::Absent;
        }
        if self.stream.remove_header(HeaderType::REQUEST, name) {
            Removal::Removed
        } else {
            Removal::Unknown
        }
    }

    fn override_host(&mut self, host: &str, strict: bool) {
        let _ = self
            .stream
            .set_upstream_override_host(host.as_bytes(), strict);
    }

    fn clear_route_cache(&mut self) {
        self.stream.clear_route_cache();
    }

    fn send_local_reply(&mut self, status: u32, body: &str) -> bool {
        self.stream
            .send_local_reply(status, body, "sticky_local_reply");
        true
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

    fn response_code_details(&mut self) -> Option<Vec<u8>> {
        self.stream
            .attribute_string(ATTRIBUTE_RESPONSE_CODE_DETAILS)
    }

    fn host_drain(&mut self, namespace: &str) -> HostDrain {
        // Ask for the type the control side writes first; Envoy logs an
        // error for a present key of another type, so the string fallback
        // only runs when the typed read failed.
        let draining = match self.stream.host_metadata_bool(namespace, DRAINING_KEY) {
            Some(flag) => flag,
            None => self
                .stream
                .host_metadata_string(namespace, DRAINING_KEY)
                .is_some_and(|raw| drain::decode_bool(&raw)),
        };
        let deadline = match self.stream.host_metadata_number(namespace, DEADLINE_KEY) {
            Some(number) => drain::deadline_of_number(number),
            None => self
                .stream
                .host_metadata_string(namespace, DEADLINE_KEY)
                .and_then(|raw| drain::decode_deadline(&raw)),
        };
        HostDrain::new(draining, deadline)
    }

    fn random(&mut self, buf: &mut [u8]) -> bool {
        self.env.random(buf)
    }

    fn count(&mut self, metric: Metric) {
        if let Some(id) = self.counters.get(metric) {
            let _ = self.stream.increment_counter(id);
        }
    }

    fn log_warn(&mut self, message: &str) {
        crate::abi::log(LogLevel::WARN, message);
    }
}
