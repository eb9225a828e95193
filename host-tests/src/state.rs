//! What the fake host knows while the filter runs: the [`FakeHost`] of the
//! current stream, the phase Envoy would be in, and what the filter told it
//! (logs, metrics, shared data). Host calls check the phase, so a call Envoy
//! would refuse at that moment fails the test instead of passing quietly.

use std::collections::BTreeMap;
use std::fmt;

use sticky_core::metrics::Metric;
use sticky_core::testing::FakeHost;
use wasmtime::{Memory, TypedFunc};

use crate::profile::Profile;

/// Which callback of the filter is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No callback (between calls): any host call now is a bug of the harness.
    Idle,
    /// `_initialize`: the module's constructors and `proxy_wasm::main!`.
    Initialize,
    /// `proxy_on_context_create`.
    ContextCreate,
    /// `proxy_on_vm_start` on the root context.
    VmStart,
    /// `proxy_on_configure` on the root context.
    Configure,
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`: the stream ended.
    StreamEnd,
}

impl Phase {
    /// Whether an HTTP stream is current (stream properties exist).
    pub fn in_stream(self) -> bool {
        matches!(
            self,
            Phase::RequestHeaders | Phase::ResponseHeaders | Phase::StreamEnd
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Idle => "no callback",
            Phase::Initialize => "_initialize",
            Phase::ContextCreate => "proxy_on_context_create",
            Phase::VmStart => "proxy_on_vm_start",
            Phase::Configure => "proxy_on_configure",
            Phase::RequestHeaders => "proxy_on_request_headers",
            Phase::ResponseHeaders => "proxy_on_response_headers",
            Phase::StreamEnd => "proxy_on_done/log/delete",
        })
    }
}

/// One line the filter logged (`proxy_log`, or a WASI write to stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `trace` .. `critical`, or `stdout` / `stderr`.
    pub level: &'static str,
    /// The message, lossily decoded.
    pub message: String,
}

/// A metric the filter defined.
#[derive(Debug, Clone)]
pub struct DefinedMetric {
    /// Its name; the core's `&'static` name when it is one of the core's.
    pub name: &'static str,
    /// `proxy_wasm::types::MetricType` as passed.
    pub kind: i32,
}

/// The store data of one VM.
pub struct HostState {
    /// The proxy's state for the current stream (swapped in per call).
    pub host: FakeHost,
    /// The callback that is running.
    pub phase: Phase,
    /// Unix seconds the clock reads.
    pub now: u64,
    /// `config.configuration` of the plugin.
    pub plugin_config: Vec<u8>,
    /// `vm_config.configuration`.
    pub vm_config: Vec<u8>,
    /// Everything the filter logged.
    pub logs: Vec<LogLine>,
    /// Metrics by id (id = index + 1).
    pub metrics: Vec<DefinedMetric>,
    /// Shared data: key -> (value, cas).
    pub shared: BTreeMap<Vec<u8>, (Vec<u8>, u32)>,
    /// Last tick period the filter asked for.
    pub tick_period_ms: u32,
    /// The root context id.
    pub root_context: u32,
    /// The HTTP context of the current stream.
    pub stream_context: Option<u32>,
    /// Context the filter last made effective.
    pub effective_context: u32,
    /// Host calls made, by name, since the counter was last cleared.
    pub calls: BTreeMap<&'static str, u64>,
    /// The first ABI violation of the current callback.
    pub violation: Option<String>,
    /// The module's memory export.
    pub memory: Option<Memory>,
    /// Fuel per function, when the module is instrumented (`make fuel-profile`).
    pub profile: Profile,
    /// The module's `proxy_on_memory_allocate`.
    pub alloc: Option<TypedFunc<i32, i32>>,
}

impl HostState {
    /// A fresh VM state around `host`.
    pub fn new(host: FakeHost) -> Self {
        Self {
            host,
            phase: Phase::Idle,
            now: 0,
            plugin_config: Vec::new(),
            vm_config: Vec::new(),
            logs: Vec::new(),
            metrics: Vec::new(),
            shared: BTreeMap::new(),
            tick_period_ms: 0,
            root_context: 0,
            stream_context: None,
            effective_context: 0,
            calls: BTreeMap::new(),
            violation: None,
            memory: None,
            profile: Profile::default(),
            alloc: None,
        }
    }

    /// Records a violation of the ABI by `call` and returns the trap that
    /// stops the filter. Only the first violation of a callback is kept.
    pub fn violation(&mut self, call: &str, message: impl fmt::Display) -> wasmtime::Error {
        let text = format!("{call} during {}: {message}", self.phase);
        if self.violation.is_none() {
            self.violation = Some(text.clone());
        }
        wasmtime::format_err!("ABI violation: {text}")
    }

    /// Counts one host call.
    pub fn called(&mut self, call: &'static str) {
        let n = self.calls.entry(call).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Defines (or finds) a metric and returns its id.
    pub fn define_metric(&mut self, kind: i32, name: &[u8]) -> u32 {
        let text = String::from_utf8_lossy(name);
        let found = self
            .metrics
            .iter()
            .position(|m| m.kind == kind && m.name == text);
        let index = match found {
            Some(i) => i,
            None => {
                // Counters land in FakeHost::counters, keyed by the core's
                // static names; a name the core does not know is leaked (tests only).
                let name = Metric::all()
                    .map(Metric::name)
                    .find(|n| *n == text)
                    .unwrap_or_else(|| Box::leak(text.into_owned().into_boxed_str()));
                self.metrics.push(DefinedMetric { name, kind });
                self.metrics.len().saturating_sub(1)
            }
        };
        u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX)
    }

    /// The metric with this id.
    pub fn metric(&self, id: u32) -> Option<&DefinedMetric> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.metrics.get(index)
    }
}
