//! One demo set-up on loopback: demo instances (real processes) per cluster,
//! EDS files, an Envoy bootstrap rendered by stickyctl for an affinity mode,
//! and Envoy running it. Changes (scale-up, drain, removal, canary weights)
//! go through the same channels a control plane uses: EDS file renames and
//! Envoy's runtime admin layer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sticky_e2e::envoy::Envoy;
use sticky_e2e::{plan, plugin};
use stickyctl::eds::{Endpoint, Health};
use stickyctl::render::envoy::{Affinity, Plan, bootstrap};

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
        let find = |var: &str, default: &str, make: &str| -> Result<PathBuf, String> {
            let path = std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| sticky_e2e::root().join(default));
            if path.exists() {
                Ok(path)
            } else {
                Err(format!(
                    "{} not found (run `{make}` or set {var})",
                    path.display()
                ))
            }
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

/// A running stage. Dropping it kills Envoy and every instance by PID.
pub struct Stage {
    /// Envoy.
    pub envoy: Envoy,
    /// The rendered plan.
    pub plan: Plan,
    /// The rendered bootstrap file.
    pub config_path: PathBuf,
    kind: Kind,
    binaries: Binaries,
    instances: BTreeMap<String, Instance>,
    /// cluster → (instance name, endpoint) as last written to EDS.
    endpoints: BTreeMap<String, Vec<(String, Endpoint)>>,
    version: u64,
    _dir: tempfile::TempDir,
}

impl Stage {
    /// Starts the instances, writes EDS and the bootstrap, starts Envoy and
    /// waits until every cluster has its hosts.
    pub fn start(spec: &StageSpec, artifacts: &Artifacts) -> Result<Stage, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let eds_dir = dir.path().join("eds");
        std::fs::create_dir_all(&eds_dir).map_err(|e| e.to_string())?;
        let mut instances = BTreeMap::new();
        let mut endpoints = BTreeMap::new();
        let mut clusters = Vec::new();
        for (cluster, weight, n) in &spec.clusters {
            let mut eps = Vec::new();
            for i in 0..*n {
                let inst = Instance::spawn(
                    artifacts.binaries.path(spec.kind),
                    Identity {
                        name: format!("{cluster}-{i}"),
                        version: cluster.clone(),
                    },
                )?;
                eps.push((
                    inst.identity.name.clone(),
                    Endpoint::healthy("127.0.0.1", inst.addr.port()),
                ));
                instances.insert(inst.identity.name.clone(), inst);
            }
            let plain: Vec<Endpoint> = eps.iter().map(|(_, e)| e.clone()).collect();
            clusters.push(plan::eds_cluster(&eds_dir, cluster, *weight, &plain)?);
            endpoints.insert(cluster.clone(), eps);
        }
        let names: Vec<&str> = spec.clusters.iter().map(|c| c.0.as_str()).collect();
        let plan = Plan {
            listen_port: spec.listen_port,
            ..plan::loopback(
                affinity(spec.mode, artifacts.wasm.clone()),
                plugin_config(&names),
                clusters,
                eds_dir,
            )
        };
        let mut config = bootstrap(&plan);
        if spec.kind == Kind::Counter {
            upstream_http2(&mut config);
        }
        retry_headroom(&mut config);
        let config_path = dir.path().join("envoy.json");
        plan::write_bootstrap(&config_path, &config)?;
        let envoy = Envoy::start(&artifacts.envoy, &config_path, dir.path(), &[])
            .map_err(|e| e.to_string())?;
        let stage = Stage {
            envoy,
            plan,
            config_path,
            kind: spec.kind,
            binaries: artifacts.binaries.clone(),
            instances,
            endpoints,
            version: 1,
            _dir: dir,
        };
        for (cluster, eps) in &stage.endpoints {
            if !stage
                .envoy
                .wait_members(&[(cluster.as_str(), eps.len())], Duration::from_secs(10))
            {
                return Err(format!("Envoy did not load the endpoints of {cluster}"));
            }
        }
        Ok(stage)
    }

    /// Envoy's listener.
    pub fn addr(&self) -> SocketAddr {
        self.envoy.listener
    }

    /// Names of the instances (killed ones included), sorted.
    pub fn instance_names(&self) -> Vec<String> {
        self.instances.keys().cloned().collect()
    }

    /// An instance by name.
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.get(name)
    }

    /// Starts one more instance in `cluster` and adds it to EDS (scale-up).
    pub fn add_instance(&mut self, cluster: &str) -> Result<String, String> {
        let n = self.endpoints.get(cluster).map_or(0, Vec::len);
        let name = format!("{cluster}-{n}");
        let inst = Instance::spawn(
            self.binaries.path(self.kind),
            Identity {
                name: name.clone(),
                version: cluster.to_owned(),
            },
        )?;
        let port = inst.addr.port();
        self.instances.insert(name.clone(), inst);
        let entry = (name.clone(), Endpoint::healthy("127.0.0.1", port));
        self.update(cluster, |eps| eps.push(entry))?;
        Ok(name)
    }

    /// Marks an instance DRAINING in EDS, with an optional deadline (unix
    /// seconds) in `filter_metadata.sticky.drain_deadline`.
    pub fn drain(&mut self, name: &str, deadline: Option<u64>) -> Result<(), String> {
        let cluster = self.cluster_of(name)?;
        self.update(&cluster, |eps| {
            for (n, e) in eps.iter_mut() {
                if n == name {
                    e.health = Health::Draining;
                    e.drain_deadline = deadline;
                }
            }
        })
    }

    /// Removes an instance from EDS (its process keeps running).
    pub fn remove(&mut self, name: &str) -> Result<(), String> {
        let cluster = self.cluster_of(name)?;
        self.update(&cluster, |eps| eps.retain(|(n, _)| n != name))
    }

    /// Kills an instance's process (SIGKILL by PID); EDS still lists it, as
    /// right after a crash.
    pub fn kill(&mut self, name: &str) -> Result<u32, String> {
        let inst = self
            .instances
            .get_mut(name)
            .ok_or_else(|| format!("no instance {name}"))?;
        let pid = inst.pid();
        inst.kill();
        Ok(pid)
    }

    /// Shifts the weighted split live (Envoy runtime admin layer).
    pub fn set_weights(&self, weights: &[(&str, u32)]) -> Result<(), String> {
        let prefix = self.plan.runtime_key_prefix.as_deref().unwrap_or_default();
        self.envoy.admin.set_weights(prefix, weights)
    }

    /// sticky's counters from Envoy's /stats (`wasmcustom.sticky.*`), non-zero only.
    pub fn sticky_counters(&self) -> Vec<(String, u64)> {
        self.envoy
            .stats_matching("wasmcustom.sticky")
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// Envoy log lines that betray a crashed filter (should be none).
    pub fn wasm_failures(&self) -> Vec<String> {
        self.envoy.wasm_failures()
    }

    fn cluster_of(&self, name: &str) -> Result<String, String> {
        self.instances
            .get(name)
            .map(|i| i.identity.version.clone())
            .ok_or_else(|| format!("no instance {name}"))
    }

    /// Rewrites a cluster's EDS file and waits until Envoy applied it.
    fn update(
        &mut self,
        cluster: &str,
        change: impl FnOnce(&mut Vec<(String, Endpoint)>),
    ) -> Result<(), String> {
        let eps = self
            .endpoints
            .get_mut(cluster)
            .ok_or_else(|| format!("no cluster {cluster}"))?;
        change(eps);
        let plain: Vec<Endpoint> = eps.iter().map(|(_, e)| e.clone()).collect();
        self.version = self.version.saturating_add(1);
        let path = self
            .plan
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .map(|c| c.eds_path.clone())
            .ok_or_else(|| format!("no EDS file for {cluster}"))?;
        self.envoy.apply_eds(&path, cluster, &plain, self.version)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.envoy.stop();
        for inst in self.instances.values_mut() {
            inst.kill();
        }
    }
}
