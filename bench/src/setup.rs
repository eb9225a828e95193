//! The configurations under test and the Envoy that runs each: the same
//! backends, the same rendered bootstrap (stickyctl's renderer, as the e2e
//! tests and the demo use), one worker, only the affinity mode differs.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sticky_e2e::client;
use sticky_e2e::envoy::Envoy;
use sticky_e2e::fleet::{Fleet, native_module};
use sticky_e2e::rig::default_plugin;
use stickyctl::render::envoy::{Affinity, NativeWiring, bootstrap};

use crate::upstream::Upstream;

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
    /// The upstreams and their EDS files.
    pub fleet: Fleet<Upstream>,
    envoy_wrapper: PathBuf,
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
        let extra = upstream_extra.to_owned();
        let fleet = Fleet::start(&[("v1".into(), 100, 2)], move |_, name| {
            Upstream::start_with(name, &extra).map_err(|e| format!("upstream: {e}"))
        })?;
        let envoy_wrapper = write_wrapper(fleet.dir(), envoy, envoy_cpu)?;
        Ok(World {
            fleet,
            envoy_wrapper,
        })
    }

    /// Renders the bootstrap for `v` and starts Envoy with one worker.
    pub fn start_envoy(&self, v: Variant, art: &Artifacts) -> Result<Envoy, String> {
        if let Some(why) = art.missing(v) {
            return Err(format!("{}: {why}", v.name()));
        }
        let mut affinity = match v {
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
        let module = match v {
            Variant::EmptyNative => art.empty_native.as_deref(),
            _ => art.native.as_deref(),
        };
        let module = native_module(&mut affinity, module)?;
        let plugin = match v {
            Variant::FloorWasm => self.floor_config(),
            // The e2e rig's default (cookie `sticky`, the session header, key
            // `k1`): tokens stay valid across the Envoy restarts of a run.
            _ => default_plugin(&self.fleet.cluster_names()),
        };
        let plan = self.fleet.plan(affinity, plugin);
        self.fleet
            .launch(
                &bootstrap(&plan),
                Some(&self.envoy_wrapper),
                module.as_deref(),
            )
            .map_err(|e| format!("{} did not start: {e}", v.name()))
    }

    /// The floor filter's configuration: pin every request to `v1`'s first host.
    fn floor_config(&self) -> Value {
        let host = self
            .fleet
            .get("v1-0")
            .map(|u| u.addr.to_string())
            .unwrap_or_default();
        // Standard base64 with padding: what HeaderBasedSessionState decodes.
        let encoded = STANDARD.encode(host);
        json!(format!("x-sticky-cluster=v1;x-sticky-host={encoded}"))
    }
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
