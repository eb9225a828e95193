//! One demo set-up on loopback: demo instances (real processes) per cluster,
//! EDS files, an Envoy bootstrap rendered by stickyctl for an affinity mode,
//! and Envoy running it. Changes (scale-up, drain, removal, canary weights)
//! go through the same channels a control plane uses: EDS file renames and
//! Envoy's runtime admin layer.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;

use serde_json::{Value, json};
use sticky_e2e::plugin;
use sticky_e2e::rig::{Rig, Spec};
use stickyctl::render::envoy::Affinity;

use crate::Identity;
use crate::instance::{Binaries, Instance, Kind};

/// base64 of 32 bytes 0x11: the demo's sealing key (a demo key, never for production).
pub const DEMO_KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

/// The affinity modes the story compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Round robin, no affinity.
    None,
    /// Envoy's ring hash on a cookie Envoy generates.
    RingHash,
    /// Envoy's native `stateful_session` cookie (host only).
    EnvoyCookie,
    /// sticky (dist/sticky.wasm) with Envoy's header-based `stateful_session`.
    Sticky,
}

impl Mode {
    /// Every mode, in the order the story runs them.
    pub const ALL: [Mode; 4] = [Mode::None, Mode::RingHash, Mode::EnvoyCookie, Mode::Sticky];

    /// A short human name.
    pub fn label(self) -> &'static str {
        match self {
            Mode::None => "no affinity",
            Mode::RingHash => "Envoy ring hash (cookie)",
            Mode::EnvoyCookie => "Envoy stateful_session cookie",
            Mode::Sticky => "sticky",
        }
    }
}

/// Paths of the artifacts a stage needs.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// Envoy 1.40 (`STICKY_ENVOY`, default `.venv/envoy`).
    pub envoy: PathBuf,
    /// sticky's filter (`STICKY_WASM`, default `dist/sticky.wasm`).
    pub wasm: PathBuf,
    /// The demo services.
    pub binaries: Binaries,
}

impl Artifacts {
    /// Envoy and the wasm from the environment or the workspace, with the
    /// service binaries given; an error says which `make` target builds what
    /// is missing.
    pub fn locate(binaries: Binaries) -> Result<Self, String> {
        let find = |var: &str, default: &str, make: &str| {
            let hint = format!("run `{make}` or set {var}");
            sticky_e2e::locate(var, sticky_e2e::root().join(default), &hint)
        };
        Ok(Self {
            envoy: find("STICKY_ENVOY", ".venv/envoy", "make setup")?,
            wasm: find("STICKY_WASM", "dist/sticky.wasm", "make wasm")?,
            binaries,
        })
    }
}

/// The plugin config every sticky stage uses: cookie `sticky` (not `Secure`:
/// the demo is plain HTTP on loopback) and the session header for gRPC.
pub fn plugin_config(clusters: &[&str]) -> Value {
    plugin::to_json(&plugin::loopback(
        "sticky",
        crate::client::SESSION_HEADER,
        clusters,
        "demo",
        DEMO_KEY,
    ))
}

/// The Envoy affinity for `mode`.
pub fn affinity(mode: Mode, wasm: PathBuf) -> Affinity {
    match mode {
        Mode::None => Affinity::None,
        Mode::RingHash => Affinity::RingHash {
            cookie: "ring".into(),
        },
        Mode::EnvoyCookie => Affinity::EnvoyCookie {
            name: "envoy-session".into(),
            ttl_seconds: 600,
        },
        Mode::Sticky => Affinity::StickyWasm { wasm_path: wasm },
    }
}

/// gRPC needs HTTP/2 to the upstream: the renderer's clusters speak
/// HTTP/1.1 by default (`stickyctl render envoy --upstream-protocol http2`).
pub fn upstream_http2(bootstrap: &mut Value) {
    stickyctl::render::envoy::bootstrap_upstream_http2(bootstrap);
}

/// How many retries Envoy lets run at once per cluster in the demo (Envoy's
/// default is 3).
pub const MAX_CONCURRENT_RETRIES: u32 = 1024;

/// Lets every request use the route's retries when an instance dies under
/// load. The renderer's retry policy (connect-failure, reset; 2 retries on
/// other hosts) is what turns a dead pinned host into a fresh pick, but
/// Envoy's default circuit breaker allows only 3 retries in flight per
/// cluster: when a loaded instance is killed, every session on it retries at
/// once and the retries past the third become 503s (`upstream_rq_retry_overflow`).
/// Applied to every mode alike, so the comparison stays fair.
pub fn retry_headroom(bootstrap: &mut Value) {
    if let Some(clusters) = bootstrap
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
    {
        for c in clusters {
            c["circuit_breakers"] = json!({
                "thresholds": [{"priority": "DEFAULT", "max_retries": MAX_CONCURRENT_RETRIES}],
            });
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Which service the instances run.
    pub kind: Kind,
    /// The affinity mode.
    pub mode: Mode,
    /// (cluster, weight, instances).
    pub clusters: Vec<(String, u32, usize)>,
    /// Envoy's listener port on 127.0.0.1 (0: an ephemeral port).
    pub listen_port: u16,
}

/// A running stage: a [`Rig`] whose upstreams are demo instances (real
/// processes), so every change (scale-up, drain, removal, kill, weights)
/// is the rig's. Dropping it kills Envoy and every instance by PID.
pub struct Stage(Rig<Instance>);

impl Stage {
    /// Starts the instances, writes EDS and the bootstrap, starts Envoy and
    /// waits until every cluster has its hosts.
    pub fn start(spec: &StageSpec, artifacts: &Artifacts) -> Result<Stage, String> {
        let names: Vec<&str> = spec.clusters.iter().map(|c| c.0.as_str()).collect();
        let mut edits: Vec<fn(&mut Value)> = vec![retry_headroom];
        if spec.kind == Kind::Counter {
            edits.push(upstream_http2);
        }
        let rig = Spec {
            clusters: spec.clusters.clone(),
            affinity: Some(affinity(spec.mode, artifacts.wasm.clone())),
            plugin: Some(plugin_config(&names)),
            listen_port: spec.listen_port,
            envoy: Some(artifacts.envoy.clone()),
            edits,
            ..Spec::default()
        };
        let bin = artifacts.binaries.path(spec.kind).to_owned();
        Rig::start_with(rig, move |cluster, name| {
            let identity = Identity {
                name: name.to_owned(),
                version: cluster.to_owned(),
            };
            Instance::spawn(&bin, identity)
        })
        .map(Stage)
        .map_err(|e| e.to_string())
    }

    /// Names of the instances (killed ones included), sorted.
    pub fn instance_names(&self) -> Vec<String> {
        self.upstream_names()
    }

    /// An instance by name.
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.get(name)
    }
}

impl Deref for Stage {
    type Target = Rig<Instance>;
    fn deref(&self) -> &Rig<Instance> {
        &self.0
    }
}

impl DerefMut for Stage {
    fn deref_mut(&mut self) -> &mut Rig<Instance> {
        &mut self.0
    }
}
