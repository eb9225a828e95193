//! A stateful fake [`Host`] for tests: it keeps headers, upstream facts,
//! metadata and counters, so tests assert end state, not call sequences.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]

use std::collections::BTreeMap;

use crate::config::wire::{self, PluginConfig};
use crate::drain::{DEADLINE_KEY, DRAINING_KEY, HostDrain};
use crate::host::{Host, Pinning, Removal};
use crate::metrics::Metric;

/// The fake proxy for one stream, plus process-wide counters.
#[derive(Debug, Default, Clone)]
pub struct FakeHost {
    /// Request headers in order (name lowercase).
    pub request: Vec<(String, Vec<u8>)>,
    /// Response headers in order.
    pub response: Vec<(String, Vec<u8>)>,
    /// `upstream.address`.
    pub upstream_host: Option<Vec<u8>>,
    /// `xds.cluster_name`.
    pub upstream_cluster: Option<Vec<u8>>,
    /// `response.code_details` (e.g. `no_healthy_upstream` for a local reply).
    pub code_details: Option<Vec<u8>>,
    /// Host metadata: (namespace, key) -> property bytes, per host.
    pub metadata: BTreeMap<(String, String, String), Vec<u8>>,
    /// Counters by name.
    pub counters: BTreeMap<&'static str, u64>,
    /// Next random byte.
    pub rng: u8,
    /// Number of metadata reads (to check rate limiting).
    pub metadata_reads: u64,
    /// A local reply the filter sent instead of routing: (status, body).
    pub local_reply: Option<(u32, Vec<u8>)>,
    /// The host cannot answer locally (`send_local_reply` fails).
    pub cannot_reply: bool,
    /// Warnings the filter logged, across streams.
    pub logs: Vec<String>,
    /// How pinned hosts reach the simulated Envoy; `None`: the header-based
    /// `stateful_session` (the wasm's wiring).
    pub pinning: Option<Pinning>,
    /// The upstream override the filter set: ("ip:port", strict).
    pub override_host: Option<(String, bool)>,
}

impl FakeHost {
    /// All values of a request header.
    pub fn request_values(&self, name: &str) -> Vec<&[u8]> {
        self.request
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// All values of a response header.
    pub fn response_values(&self, name: &str) -> Vec<&[u8]> {
        self.response
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// A counter's value.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Starts a new stream: clears headers, keeps counters and metadata.
    pub fn next_stream(&mut self) {
        self.request.clear();
        self.response.clear();
        self.upstream_host = None;
        self.upstream_cluster = None;
        self.code_details = None;
        self.local_reply = None;
        self.override_host = None;
    }

    /// One value of a host's `filter_metadata[namespace][key]` in Envoy's
    /// property encoding (what the wasm reads), counted as one read.
    pub fn metadata_value(&mut self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.metadata_reads += 1;
        let host = String::from_utf8(self.upstream_host.clone()?).ok()?;
        self.metadata
            .get(&(host, namespace.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Sets drain metadata for a host, in Envoy's property encoding.
    pub fn set_metadata(&mut self, host: &str, ns: &str, key: &str, value: Vec<u8>) {
        self.metadata
            .insert((host.to_owned(), ns.to_owned(), key.to_owned()), value);
    }
}

fn joined(values: Vec<&[u8]>) -> Option<Vec<u8>> {
    if values.is_empty() {
        return None;
    }
    Some(values.join(&b","[..]))
}

impl Host for FakeHost {
    fn pinning(&self) -> Pinning {
        self.pinning.unwrap_or(Pinning::SessionFilter)
    }
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>> {
        joined(self.request_values(name))
    }
    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        self.remove_request_header(name);
        self.request.push((name.to_owned(), value.to_vec()));
    }
    fn remove_request_header(&mut self, name: &str) -> Removal {
        let before = self.request.len();
        self.request.retain(|(n, _)| n != name);
        if self.request.len() == before {
            Removal::Absent
        } else {
            Removal::Removed
        }
    }
    fn add_request_header(&mut self, name: &str, value: &[u8]) {
        self.request.push((name.to_owned(), value.to_vec()));
    }
    fn override_host(&mut self, host: &str, strict: bool) {
        self.override_host = Some((host.to_owned(), strict));
    }
    fn send_local_reply(&mut self, status: u32, body: &str) -> bool {
        if self.cannot_reply {
            return false;
        }
        self.local_reply = Some((status, body.as_bytes().to_vec()));
        true
    }
    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        joined(self.response_values(name))
    }
    fn remove_response_header(&mut self, name: &str) {
        self.response.retain(|(n, _)| n != name);
    }
    fn add_response_header(&mut self, name: &str, value: &[u8]) {
        self.response.push((name.to_owned(), value.to_vec()));
    }
    fn set_response_header(&mut self, name: &str, value: &[u8]) {
        self.remove_response_header(name);
        self.add_response_header(name, value);
    }
    fn upstream_host(&mut self) -> Option<Vec<u8>> {
        self.upstream_host.clone()
    }
    fn upstream_cluster(&mut self) -> Option<Vec<u8>> {
        self.upstream_cluster.clone()
    }
    fn response_code_details(&mut self) -> Option<Vec<u8>> {
        self.code_details.clone()
    }
    fn host_drain(&mut self, namespace: &str) -> HostDrain {
        let draining = self.metadata_value(namespace, DRAINING_KEY);
        let deadline = self.metadata_value(namespace, DEADLINE_KEY);
        HostDrain::from_metadata(draining.as_deref(), deadline.as_deref())
    }
    fn random(&mut self, buf: &mut [u8]) -> bool {
        for b in buf {
            self.rng = self.rng.wrapping_add(1);
            *b = self.rng;
        }
        true
    }
    fn count(&mut self, metric: Metric) {
        *self.counters.entry(metric.name()).or_insert(0) += 1;
    }
    fn log_warn(&mut self, message: &str) {
        self.logs.push(message.to_owned());
    }
}

/// base64 of 32 bytes 0x01: a test key.
pub const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
/// base64 of 32 bytes 0x02: a second test key.
pub const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// The default test config as the filter's wire model: clusters v1/v2, key
/// `a` ([`KEY_A`]), cookie `sticky` for 600 s, not `Secure` (plain HTTP).
pub fn wire() -> PluginConfig {
    PluginConfig {
        cookie: Some(wire::Cookie {
            name: Some("sticky".into()),
            ttl_seconds: Some(600),
            secure: Some(false),
            ..wire::Cookie::default()
        }),
        ..PluginConfig::new(&["v1", "v2"], "a", KEY_A)
    }
}

/// The JSON text the filter reads for `config` (pretty-printed, so parser
/// tests can edit one `"field": value` pair of it).
pub fn json(config: &PluginConfig) -> String {
    serde_json::to_string_pretty(config).unwrap()
}

/// [`wire`] as JSON text with `extra` spliced in as additional top-level
/// fields (e.g. `"cokie": {},`): for tests of the reader on hand-made input.
pub fn config_json(extra: &str) -> String {
    let base = json(&wire());
    format!("{{{extra}{}", base.strip_prefix('{').unwrap())
}

/// The parsed default test config.
pub fn config() -> crate::config::Config {
    crate::config::Config::from_wire(&wire()).unwrap()
}

pub mod fuzz;
pub mod scenarios;
pub mod sim;
