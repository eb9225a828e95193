//! The configurations under test and the Envoy that runs each: the same
//! backends, the same rendered bootstrap (stickyctl's renderer, as the e2e
//! tests and the demo use), one worker, only the affinity mode differs.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sticky_e2e::client;
use sticky_e2e::envoy::Envoy;
use sticky_e2e::{plan, plugin};
use stickyctl::eds::Endpoint;
use stickyctl::render::envoy::{Affinity, ClusterPlan, NativeWiring, bootstrap};

use crate::upstream::Upstream;

/// base64 of 32 bytes 0x11, the e2e rig's key: tokens stay valid across the
/// Envoy restarts of a run because every configuration shares the backends.
const KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
/// Module name of `bench/empty-module` (`lib<name>.so`).
pub const EMPTY_MODULE: &str = "sticky_bench_empty_module";
/// Session cookie name for every configuration that issues one.
pub const COOKIE: &str = "sticky";

/// One configuration of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    /// No session affinity: the weighted split on every request.
    None,
    /// Envoy's native `stateful_session` with its cookie (host only, unsealed).
    EnvoyCookie,
    /// A pass-through wasm filter in sticky's place: the wasm boundary alone.
    EmptyWasm,
    /// The empty filter setting sticky's two internal headers to constants,
    /// with `stateful_session` and the cluster-header route as for sticky: the
    /// floor of any wasm filter that steers Envoy this way.
    FloorWasm,
    /// sticky as proxy-wasm (`dist/sticky.wasm`) + `stateful_session` (header).
    StickyWasm,
    /// A pass-through Envoy dynamic module in sticky's place: the
    /// dynamic-module boundary alone (`bench/empty-module`).
    EmptyNative,
    /// sticky as an Envoy dynamic module (`dist/libsticky.so`), direct
    /// wiring: the module pins the host, no `stateful_session`.
    StickyNative,
    /// The same module, drop-in wiring: the wasm's bootstrap with the module
    /// in its place (`stateful_session` (header) pins the host).
    StickyNativeDropIn,
    /// A second build of sticky.wasm (`--compare-wasm`), to measure a change
    /// against `sticky-wasm` in the same run.
    StickyWasmB,
}

impl Variant {
    /// Every variant, in report order.
    pub const ALL: [Variant; 9] = [
        Variant::None,
        Variant::EnvoyCookie,
        Variant::EmptyWasm,
        Variant::FloorWasm,
        Variant::StickyWasm,
        Variant::EmptyNative,
        Variant::StickyNative,
        Variant::StickyNativeDropIn,
        Variant::StickyWasmB,
    ];

    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Variant::None => "none",
            Variant::EnvoyCookie => "envoy-cookie",
            Variant::EmptyWasm => "empty-wasm",
            Variant::FloorWasm => "floor-wasm",
            Variant::StickyWasm => "sticky-wasm",
            Variant::EmptyNative => "empty-native",
            Variant::StickyNative => "sticky-native",
            Variant::StickyNativeDropIn => "sticky-native-dropin",
            Variant::StickyWasmB => "sticky-wasm-b",
        }
    }

    /// What it is, for the report's legend.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::None => "no session affinity (weighted split on every request)",
            Variant::EnvoyCookie => {
                "Envoy's native `stateful_session` cookie (`CookieBasedSessionState`)"
            }
            Variant::EmptyWasm => "a pass-through proxy-wasm filter (V8) in sticky's place",
            Variant::FloorWasm => {
                "the empty filter setting sticky's two internal headers to constants (2 host calls) \
                 + `stateful_session` (header) + the cluster-header route: sticky's wiring without \
                 sticky's logic, the floor for any wasm filter that steers Envoy this way"
            }
            Variant::StickyWasm => "sticky, `dist/sticky.wasm` (V8) + `stateful_session` (header)",
            Variant::EmptyNative => {
                "a pass-through Envoy dynamic module (`bench/empty-module`, `native` profile) in \
                 sticky's place: the dynamic-module boundary alone"
            }
            Variant::StickyNative => {
                "sticky, `dist/libsticky.so` (Envoy dynamic module), direct wiring: the module \
                 pins the host (`set_upstream_override_host`), no `stateful_session`"
            }
            Variant::StickyNativeDropIn => {
                "sticky, `dist/libsticky.so`, drop-in wiring: the wasm's bootstrap with the module \
                 in its place + `stateful_session` (header)"
            }
            Variant::StickyWasmB => {
                "a second sticky.wasm build (`--compare-wasm`), wired like sticky-wasm"
            }
        }
    }

    /// Whether a response to a request without a session carries a cookie.
    pub fn issues_cookie(self) -> bool {
        matches!(
            self,
            Variant::EnvoyCookie
                | Variant::StickyWasm
                | Variant::StickyNative
                | Variant::StickyNativeDropIn
                | Variant::StickyWasmB
        )
    }
}

/// The artifacts the variants load.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// Envoy 1.40.
    pub envoy: PathBuf,
    /// `dist/sticky.wasm`.
    pub sticky_wasm: PathBuf,
    /// The empty filter, built by the bench flow.
    pub empty_wasm: Option<PathBuf>,
    /// `dist/libsticky.so`, when `make native` succeeded.
    pub native: Option<PathBuf>,
    /// The pass-through dynamic module, built by the bench flow.
    pub empty_native: Option<PathBuf>,
    /// Another sticky.wasm to compare (`--compare-wasm`).
    pub compare_wasm: Option<PathBuf>,
}

impl Artifacts {
    /// Why `v` cannot run, if it cannot.
    pub fn missing(&self, v: Variant) -> Option<String> {
        match v {
            Variant::EmptyWasm | Variant::FloorWasm if self.empty_wasm.is_none() => {
                Some("empty filter not built (STICKY_EMPTY_WASM)".into())
            }
            Variant::StickyWasmB if self.compare_wasm.is_none() => {
                Some("no --compare-wasm given".into())
            }
            Variant::StickyNative | Variant::StickyNativeDropIn if self.native.is_none() => {
                Some("not available (`make native` did not produce dist/libsticky.so)".into())
            }
            Variant::EmptyNative if self.empty_native.is_none() => {
                Some("empty module not built (STICKY_EMPTY_NATIVE)".into())
            }
            _ => None,
        }
    }
}

/// Backends and EDS shared by every configuration of a run.
pub struct World {
    /// Upstreams by cluster, in split order.
    pub clusters: Vec<(String, u32, Vec<Upstream>)>,
    eds_dir: PathBuf,
    envoy_wrapper: PathBuf,
    dir: tempfile::TempDir,
}

impl World {
    /// Starts the upstreams (one cluster `v1` with two hosts, behind the
    /// same weighted-cluster route as production) and writes their EDS file.
    /// One cluster because Envoy's native cookie names only the host: under a
    /// real split the split re-runs on every request and a session pinned in
    /// one cluster is lost whenever the split picks another, so its "session"
    /// path would not be a hot path at all. `envoy_cpu` pins the Envoy
    /// process to one CPU.
    pub fn start(envoy: &Path, envoy_cpu: Option<u32>) -> Result<World, String> {
        Self::start_with(envoy, envoy_cpu, "")
    }

    /// [`World::start`] with upstreams whose responses also carry
    /// `upstream_extra` header lines (tests).
    pub fn start_with(
        envoy: &Path,
        envoy_cpu: Option<u32>,
        upstream_extra: &str,
    ) -> Result<World, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let eds_dir = dir.path().join("eds");
        std::fs::create_dir_all(&eds_dir).map_err(|e| e.to_string())?;
        let mut clusters = Vec::new();
        let (name, weight) = ("v1", 100);
        let ups = (0..2)
            .map(|_| Upstream::start_with(upstream_extra))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("upstream: {e}"))?;
        let eps: Vec<Endpoint> = ups
            .iter()
            .map(|u| Endpoint::healthy("127.0.0.1", u.addr.port()))
            .collect();
        plan::eds_cluster(&eds_dir, name, weight, &eps)?;
        clusters.push((name.to_owned(), weight, ups));
        let envoy_wrapper = write_wrapper(dir.path(), envoy, envoy_cpu)?;
        Ok(World {
            clusters,
            eds_dir,
            envoy_wrapper,
            dir,
        })
    }

    /// Renders the bootstrap for `v` and starts Envoy with one worker.
    pub fn start_envoy(&self, v: Variant, art: &Artifacts) -> Result<Envoy, String> {
        let names: Vec<&str> = self.clusters.iter().map(|c| c.0.as_str()).collect();
        let affinity = match v {
            Variant::None => Affinity::None,
            Variant::EnvoyCookie => Affinity::EnvoyCookie {
                name: COOKIE.into(),
                ttl_seconds: 600,
            },
            Variant::EmptyWasm => Affinity::EmptyWasm {
                wasm_path: art.empty_wasm.clone().ok_or("no empty filter")?,
            },
            Variant::FloorWasm => Affinity::StickyWasm {
                wasm_path: art.empty_wasm.clone().ok_or("no empty filter")?,
            },
            Variant::StickyWasm => Affinity::StickyWasm {
                wasm_path: art.sticky_wasm.clone(),
            },
            Variant::StickyWasmB => Affinity::StickyWasm {
                wasm_path: art.compare_wasm.clone().ok_or("no --compare-wasm")?,
            },
            Variant::EmptyNative => Affinity::StickyNative {
                module: EMPTY_MODULE.into(),
                wiring: NativeWiring::Direct,
            },
            Variant::StickyNative => Affinity::StickyNative {
                module: "sticky".into(),
                wiring: NativeWiring::Direct,
            },
            Variant::StickyNativeDropIn => Affinity::StickyNative {
                module: "sticky".into(),
                wiring: NativeWiring::DropIn,
            },
        };
        let plugin = match v {
            Variant::FloorWasm => self.floor_config(),
            _ => plugin_config(&names),
        };
        let clusters = self
            .clusters
            .iter()
            .map(|(name, weight, _)| ClusterPlan {
                name: name.clone(),
                weight: *weight,
                eds_path: self.eds_dir.join(format!("{}.json", plan::file_safe(name))),
            })
            .collect();
        let plan = plan::loopback(affinity, plugin, clusters, self.eds_dir.clone());
        let run_dir = tempfile::tempdir_in(self.dir.path()).map_err(|e| e.to_string())?;
        let config = run_dir.path().join("envoy.json");
        plan::write_bootstrap(&config, &bootstrap(&plan))?;
        let module = match v {
            Variant::StickyNative | Variant::StickyNativeDropIn => art.native.as_deref(),
            Variant::EmptyNative => art.empty_native.as_deref(),
            _ => None,
        };
        // The run directory lives as long as the world; Envoy's log stays readable.
        let run_dir = run_dir.keep();
        let envoy = Envoy::start_with_module(&self.envoy_wrapper, &config, &run_dir, module)
            .map_err(|e| format!("{} did not start: {e}", v.name()))?;
        let members: Vec<(&str, usize)> = self
            .clusters
            .iter()
            .map(|(c, _, ups)| (c.as_str(), ups.len()))
            .collect();
        if !envoy.wait_members(&members, Duration::from_secs(5)) {
            return Err(format!("{}: EDS not loaded within 5 s", v.name()));
        }
        Ok(envoy)
    }
}

impl World {
    /// The floor filter's configuration: pin every request to `v1`'s first host.
    fn floor_config(&self) -> Value {
        let host = self
            .clusters
            .first()
            .and_then(|(_, _, ups)| ups.first())
            .map(|u| u.addr.to_string())
            .unwrap_or_default();
        // Standard base64 with padding: what HeaderBasedSessionState decodes.
        let encoded = STANDARD.encode(host);
        json!(format!("x-sticky-cluster=v1;x-sticky-host={encoded}"))
    }
}

/// sticky's plugin configuration: the e2e rig's default (cookie, the session
/// header for API clients, both clusters allowed).
pub fn plugin_config(clusters: &[&str]) -> Value {
    plugin::to_json(&plugin::loopback(
        COOKIE,
        "x-sticky-session",
        clusters,
        "k1",
        KEY,
    ))
}

/// The e2e harness starts Envoy with two workers (what the functional tests
/// need); the benchmark measures one. This wrapper rewrites the
/// `--concurrency` argument and `exec`s Envoy (pinned with taskset when asked),
/// so the harness's PID is Envoy's own and stopping it stops Envoy.
pub fn write_wrapper(dir: &Path, envoy: &Path, cpu: Option<u32>) -> Result<PathBuf, String> {
    let pin = match cpu {
        Some(c) => format!("taskset -c {c} "),
        None => String::new(),
    };
    let script = format!(
        "#!/bin/bash\n\
         # Written by sticky-bench: one Envoy worker, optionally pinned.\n\
         args=(\"$@\")\n\
         for ((i = 0; i < ${{#args[@]}}; i++)); do\n\
         \x20 if [[ ${{args[i]}} == --concurrency ]]; then args[i+1]=1; fi\n\
         done\n\
         exec {pin}'{}' \"${{args[@]}}\"\n",
        envoy.display()
    );
    let path = dir.join("envoy-1-worker");
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// The `Cookie` value the hot path sends: a session the proxy issued (one
/// request without a cookie, then its `Set-Cookie`), verified to be accepted
/// without a new `Set-Cookie`. Variants without sessions get a stand-in of a
/// sticky token's size, so every variant parses the same request bytes.
pub fn session_cookie(v: Variant, addr: SocketAddr) -> Result<String, String> {
    if !v.issues_cookie() {
        return Ok(format!("{COOKIE}={}", "A".repeat(STAND_IN_TOKEN_CHARS)));
    }
    let first = client::send(addr, "/", &[]).map_err(|e| format!("{}: {e}", v.name()))?;
    let set = first
        .header("set-cookie")
        .ok_or_else(|| format!("{}: no Set-Cookie on a new session", v.name()))?;
    let cookie = set.split(';').next().unwrap_or_default().trim().to_owned();
    let again = client::send(addr, "/", &[(b"cookie", cookie.as_bytes())])
        .map_err(|e| format!("{}: {e}", v.name()))?;
    if again.status != 200 || again.header("set-cookie").is_some() {
        return Err(format!(
            "{}: the issued cookie was not accepted as a session (status {}, set-cookie {:?})",
            v.name(),
            again.status,
            again.header("set-cookie")
        ));
    }
    Ok(cookie)
}

/// Length of a sticky token with the bench's config (cluster `v1`, a
/// loopback host): what the stand-in cookie of affinity-less variants mimics.
const STAND_IN_TOKEN_CHARS: usize = 107;
