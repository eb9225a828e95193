//! The core's scenario table (`sticky_core::testing::scenarios`, shared with
//! host-tests' wasm runner) run against the real hooks of this module through
//! the fake Envoy: [`ModuleRunner`] moves each simulated stream into a
//! [`FakeStream`], calls the `envoy_dynamic_module_on_*` hooks, and moves the
//! end state back. Every scenario must pass its own assertions and agree
//! with the core step by step (same backend, byte-identical `Set-Cookie`,
//! same request headers after the filter, counters, metadata reads).
//!
//! Both wirings run here, one `#[test]` each per scenario
//! (`cargo test -p sticky-native scenarios::<name>`): drop-in (the table's
//! simulated Envoy is the wasm's bootstrap, a header-based
//! `stateful_session` reads the host header) and direct (`override_host`
//! added to each configuration; the sim routes by the upstream override),
//! each against the core under the same wiring.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;
use std::ffi::c_void;

use sticky_core::drain::{DEADLINE_KEY, DRAINING_KEY};
use sticky_core::host::Pinning;
use sticky_core::metrics::Metric;
use sticky_core::testing::FakeHost;
use sticky_core::testing::scenarios;
use sticky_core::testing::sim::{NativeRunner, Runner};

use crate::abi::{EnvoyBuffer, EnvoyPtr};
use crate::fake_envoy::{self, FakeEnv, FakeStream, Meta};
use crate::hooks::*;

/// The module behind the table's [`Runner`] interface.
struct ModuleRunner {
    /// The direct wiring (`override_host` added to every configuration).
    direct: bool,
    /// The Envoy-side config object (its address is the config's identity).
    envoy_config: Box<u8>,
    config: *const c_void,
    filter: *const c_void,
    stream: Box<FakeStream>,
    logs_from: usize,
    counted: BTreeMap<&'static str, u64>,
    metadata_reads: u64,
}

impl ModuleRunner {
    fn new(direct: bool) -> Self {
        Self {
            direct,
            envoy_config: Box::new(0),
            config: std::ptr::null(),
            filter: std::ptr::null(),
            stream: Box::default(),
            logs_from: fake_envoy::logs().len(),
            // The fake's counters live as long as the test thread.
            counted: counter_totals(),
            metadata_reads: fake_envoy::process(|p| p.metadata_reads),
        }
    }

    /// How the module pins hosts, as the sim must route.
    fn pinning(&self) -> Option<Pinning> {
        self.direct.then_some(Pinning::Override { strict: false })
    }

    /// Enters a hook: the simulated clock and random sequence.
    fn enter(host: &FakeHost, now: u64) {
        fake_envoy::process(|p| {
            p.now = Some(now);
            p.rng = host.rng;
        });
    }

    /// Leaves a hook: random sequence, counters and metadata reads back
    /// into the simulated host.
    fn leave(&mut self, host: &mut FakeHost) {
        host.rng = fake_envoy::process(|p| p.rng);
        for (name, total) in counter_totals() {
            let seen = self.counted.entry(name).or_insert(0);
            if total > *seen {
                *host.counters.entry(name).or_insert(0) += total - *seen;
                *seen = total;
            }
        }
        let reads = fake_envoy::process(|p| p.metadata_reads);
        host.metadata_reads += reads - self.metadata_reads;
        self.metadata_reads = reads;
    }

    fn destroy_filter(&mut self) {
        if !self.filter.is_null() {
            // SAFETY: this runner's own config, filter and stream pointers, live for the call.
            unsafe { envoy_dynamic_module_on_http_filter_destroy(self.filter) };
            self.filter = std::ptr::null();
        }
    }
}

impl Drop for ModuleRunner {
    fn drop(&mut self) {
        self.destroy_filter();
        // SAFETY: this runner's own config, filter and stream pointers, live for the call.
        unsafe { envoy_dynamic_module_on_http_filter_config_destroy(self.config) };
        fake_envoy::process(|p| p.now = None);
    }
}

/// Every metric's value summed over all filter configs the fake defined.
fn counter_totals() -> BTreeMap<&'static str, u64> {
    Metric::all()
        .map(|metric| {
            let name = metric.name();
            let total = fake_envoy::process(|p| {
                p.counters
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| *v)
                    .sum()
            });
            (name, total)
        })
        .collect()
}

fn buffer(bytes: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer {
        ptr: bytes.as_ptr().cast(),
        length: bytes.len(),
    }
}

/// The simulated host's property bytes as the typed metadata Envoy holds.
fn meta(key: &str, value: &[u8]) -> Meta {
    match (key, value) {
        (DRAINING_KEY, [b]) => Meta::Bool(*b != 0),
        (DEADLINE_KEY, v) if v.len() == 8 && !v.iter().all(u8::is_ascii_digit) => {
            Meta::Number(f64::from_le_bytes(v.try_into().unwrap()))
        }
        _ => Meta::Str(value.to_vec()),
    }
}

impl Runner for ModuleRunner {
    fn configure(&mut self, json: &[u8]) -> bool {
        let ptr: EnvoyPtr = std::ptr::from_mut(&mut *self.envoy_config).cast();
        let mut json = json.to_vec();
        if self.direct && json.first() == Some(&b'{') {
            json.splice(1..1, br#""override_host": {}, "#.iter().copied());
        }
        // SAFETY: this runner's own config, filter and stream pointers, live for the call.
        let config = unsafe { new_config(ptr, buffer(&json), Box::new(FakeEnv)) };
        if config.is_null() {
            // Envoy keeps serving with the previous config.
            return false;
        }
        // SAFETY: this runner's own config, filter and stream pointers, live for the call.
        unsafe { envoy_dynamic_module_on_http_filter_config_destroy(self.config) };
        self.config = config;
        true
    }

    fn on_request(&mut self, host: &mut FakeHost, now: u64) {
        self.destroy_filter();
        *self.stream = FakeStream {
            request: host.request.clone(),
            ..FakeStream::default()
        };
        Self::enter(host, now);
        // SAFETY: this runner's own config, filter and stream pointers, live for the call.
        unsafe {
            self.filter = envoy_dynamic_module_on_http_filter_new(self.config, self.stream.ptr());
            envoy_dynamic_module_on_http_filter_request_headers(
                self.stream.ptr(),
                self.filter,
                true,
            );
        }
        host.request = self.stream.request.clone();
        host.local_reply = self.stream.local_reply.clone();
        host.pinning = self.pinning();
        host.override_host = self
            .stream
            .override_host
            .as_ref()
            .map(|(h, strict)| (String::from_utf8_lossy(h).into_owned(), *strict));
        assert!(
            self.direct || self.stream.override_host.is_none(),
            "the drop-in wiring pins through the host header"
        );
        self.leave(host);
    }

    fn on_response(&mut self, host: &mut FakeHost, now: u64) {
        let upstream = host
            .upstream_host
            .as_ref()
            .map(|h| String::from_utf8_lossy(h).into_owned());
        self.stream.response = host.response.clone();
        self.stream.upstream_address = host.upstream_host.clone();
        self.stream.code_details = host.code_details.clone();
        self.stream.cluster = host.upstream_cluster.clone();
        self.stream.metadata = host
            .metadata
            .iter()
            .filter(|((h, _, _), _)| Some(h) == upstream.as_ref())
            .map(|((_, ns, key), v)| (ns.clone(), key.clone(), meta(key, v)))
            .collect();
        Self::enter(host, now);
        // SAFETY: this runner's own config, filter and stream pointers, live for the call.
        unsafe {
            envoy_dynamic_module_on_http_filter_response_headers(
                self.stream.ptr(),
                self.filter,
                true,
            );
            envoy_dynamic_module_on_http_filter_stream_complete(self.stream.ptr(), self.filter);
        }
        host.response = self.stream.response.clone();
        self.leave(host);
        self.destroy_filter();
    }

    fn logs(&self) -> Vec<String> {
        fake_envoy::logs()
            .into_iter()
            .skip(self.logs_from)
            .collect()
    }
}

/// One test per scenario and wiring: the module must pass the scenario and
/// agree with the core under the same wiring, step by step.
macro_rules! module_scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use sticky_core::host::Pinning;
                use sticky_core::testing::scenarios;
                use sticky_core::testing::sim::NativeRunner;

                #[test]
                fn drop_in() {
                    scenarios::check_agreement(
                        stringify!($name),
                        &mut NativeRunner::default(),
                        &mut super::ModuleRunner::new(false),
                    );
                }

                #[test]
                fn direct() {
                    scenarios::check_agreement(
                        stringify!($name),
                        &mut NativeRunner::with_pinning(Pinning::Override { strict: false }),
                        &mut super::ModuleRunner::new(true),
                    );
                }
            }
        )*
    };
}

sticky_core::for_each_scenario!(module_scenario_tests);

#[test]
fn a_divergence_from_the_core_is_reported() {
    // The comparison must be able to fail: the same scenario with another
    // key issues other cookies.
    let table = scenarios::all();
    let first = &table[0];
    let core = scenarios::run(first, &mut NativeRunner::default());
    let mut module = scenarios::run(first, &mut ModuleRunner::new(false));
    assert!(scenarios::compare(&core, &module).is_ok());
    if let Some(step) = module.steps.iter_mut().find(|s| !s.response.is_empty()) {
        step.response[0].1.push(b'!');
    }
    assert!(scenarios::compare(&core, &module).is_err());
}
