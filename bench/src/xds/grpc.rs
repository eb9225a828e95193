//! Unary gRPC three ways over the same tonic counter backends, all fed by one
//! `stickyctl serve`: proxyless grpcio (`xds:///reviews`, gRPC's own cookie,
//! gRFC A55), through Envoy + sticky.wasm (bootstrap from `stickyctl render
//! envoy --xds`), and through Envoy with no affinity. One load generator
//! (bench/grpc_load.py) for all three; paths interleaved over rounds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sticky_e2e::envoy::Envoy;

use crate::xds::procs::{ControlPlane, Counter, Inputs, Proc, Tools, endpoint_file};

/// One way a client reaches the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GrpcPath {
    /// grpcio's own xDS load balancing, fed by `stickyctl serve`.
    Proxyless,
    /// Through Envoy running sticky.wasm, fed by `stickyctl serve`.
    EnvoySticky,
    /// Through Envoy with no affinity (the same clusters and endpoints by ADS).
    EnvoyPlain,
}

impl GrpcPath {
    /// Every path, in report order.
    pub const ALL: [GrpcPath; 3] = [
        GrpcPath::Proxyless,
        GrpcPath::EnvoySticky,
        GrpcPath::EnvoyPlain,
    ];

    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            GrpcPath::Proxyless => "proxyless",
            GrpcPath::EnvoySticky => "envoy-sticky",
            GrpcPath::EnvoyPlain => "envoy-none",
        }
    }

    /// One line for the report.
    pub fn describe(self) -> &'static str {
        match self {
            GrpcPath::Proxyless => {
                "grpcio with target `xds:///reviews` (GRPC_XDS_BOOTSTRAP from `render envoy --xds`): gRPC's `stateful_session` cookie, `base64(ip:port;cluster)`, copied from `set-cookie` into `cookie` by the client (A55)"
            }
            GrpcPath::EnvoySticky => {
                "grpcio → Envoy (`render envoy --xds` bootstrap; listener, routes and sticky.wasm by LDS/RDS, endpoints by EDS) → backends: sticky's sealed token"
            }
            GrpcPath::EnvoyPlain => {
                "grpcio → Envoy, a static listener with the same 90/10 weighted route and no session filter; clusters and endpoints by ADS from the same control plane"
            }
        }
    }

    /// Whether a session gets a cookie on this path.
    pub fn sticky(self) -> bool {
        !matches!(self, GrpcPath::EnvoyPlain)
    }
}

/// One measured load.
#[derive(Debug, Clone, Default)]
pub struct GrpcSample {
    /// Completed calls per second.
    pub rps: f64,
    /// Latency percentiles, µs.
    pub p50_us: f64,
    /// p90, µs.
    pub p90_us: f64,
    /// p99, µs.
    pub p99_us: f64,
    /// Failed calls.
    pub errors: u64,
    /// Sessions run.
    pub sessions: u64,
    /// Sessions that were given a cookie.
    pub sessions_with_cookie: u64,
    /// Sessions answered by more than one backend.
    pub sessions_moved: u64,
}

/// The load's shape.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLoad {
    /// Rounds (paths interleaved within each, order rotated).
    pub rounds: usize,
    /// Measured seconds per load.
    pub seconds: f64,
    /// Warm-up seconds per load (not counted).
    pub warmup: f64,
    /// Client processes (one channel each).
    pub procs: u32,
    /// Concurrent sessions per process.
    pub sessions: u32,
}

/// Samples by path, one per round.
pub type GrpcResults = BTreeMap<GrpcPath, Vec<GrpcSample>>;

/// The no-affinity Envoy's clusters: static (it takes no CDS), HTTP/2 to the
/// gRPC backends like the clusters `stickyctl serve --upstream-protocol
/// http2` sends the sticky Envoy, endpoints by EDS over ADS from the same
/// server.
fn h2_cluster(name: &str) -> Value {
    json!({
        "name": name,
        "type": "EDS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "eds_cluster_config": {
            "service_name": name,
            "eds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "common_lb_config": {"override_host_status": {"statuses": ["UNKNOWN", "HEALTHY", "DRAINING"]}},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        },
    })
}

/// Envoy with no affinity: one listener routing 90/10 like the policy's route.
fn plain_listener() -> Value {
    let route = json!({
        "match": {"prefix": "/"},
        "route": {"weighted_clusters": {"clusters": [
            {"name": "reviews-v1", "weight": 90},
            {"name": "reviews-v2", "weight": 10},
        ]}},
    });
    json!({
        "name": "plain",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "plain",
                "codec_type": "AUTO",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }],
            },
        }]}],
    })
}

/// Runs the comparison.
pub fn run(tools: &Tools, load: GrpcLoad) -> Result<GrpcResults, String> {
    let inputs = Inputs::new(tools)?;
    let v1 = [
        Counter::start(tools, "v1-0", "v1")?,
        Counter::start(tools, "v1-1", "v1")?,
    ];
    let v2 = Counter::start(tools, "v2-0", "v2")?;
    let serving = |cs: &[&Counter]| -> Vec<_> { cs.iter().map(|c| (c.addr, "serving")).collect() };
    inputs.write_endpoints(
        "reviews-v1",
        &endpoint_file("reviews-v1", &serving(&[&v1[0], &v1[1]])),
    )?;
    inputs.write_endpoints("reviews-v2", &endpoint_file("reviews-v2", &serving(&[&v2])))?;
    let wasm = tools.sticky_wasm.to_string_lossy().into_owned();
    let cp = ControlPlane::start(
        tools,
        &inputs,
        &[
            "--wasm",
            &wasm,
            "--envoy-listen",
            "127.0.0.1:0",
            "--upstream-protocol",
            "http2",
        ],
    )?;

    // `stickyctl render envoy --xds`: Envoy's bootstrap and grpcio's.
    let out = inputs.path("rendered");
    let status = Command::new(&tools.stickyctl)
        .args(["render", "envoy", "-p"])
        .arg(inputs.path("policy.yaml"))
        .arg("-r")
        .arg(inputs.path("route.yaml"))
        .arg("--keys")
        .arg(inputs.path("keys.json"))
        .args([
            "--xds",
            &cp.xds,
            "--node-id",
            "bench-envoy",
            "--admin-port",
            "0",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("stickyctl render envoy --xds: {status}"));
    }
    let read = |p: &Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let rendered = read(&out.join("envoy.json"))?;
    let grpc_bootstrap = out.join("grpc-bootstrap.json");

    let clusters = json!([h2_cluster("reviews-v1"), h2_cluster("reviews-v2")]);
    // The sticky Envoy gets everything, HTTP/2 clusters included, from serve.
    let sticky_boot = rendered.clone();
    let mut plain_boot = rendered;
    plain_boot["node"]["id"] = json!("bench-envoy-none");
    if let Some(d) = plain_boot["dynamic_resources"].as_object_mut() {
        d.remove("lds_config");
        d.remove("cds_config");
    }
    plain_boot["static_resources"] = json!({"clusters": clusters, "listeners": [plain_listener()]});

    let wrapper = crate::setup::write_wrapper(inputs.dir.path(), &tools.envoy, None)?;
    let start_envoy = |name: &str, boot: &Value| -> Result<Envoy, String> {
        let dir = inputs.path(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("envoy.json");
        std::fs::write(&path, boot.to_string()).map_err(|e| e.to_string())?;
        Envoy::start(&wrapper, &path, &dir, &[])
            .map_err(|e| format!("{name}: {}\n{}\n{}", e.message, e.log, cp.log_text()))
    };
    let sticky = start_envoy("envoy-sticky", &sticky_boot)?;
    let plain = start_envoy("envoy-none", &plain_boot)?;

    let mut results = GrpcResults::new();
    let mut order = GrpcPath::ALL.to_vec();
    for round in 0..load.rounds.max(1) {
        for &path in &order {
            let (target, bootstrap) = match path {
                GrpcPath::Proxyless => ("xds:///reviews".to_owned(), Some(&grpc_bootstrap)),
                GrpcPath::EnvoySticky => (sticky.listener.to_string(), None),
                GrpcPath::EnvoyPlain => (plain.listener.to_string(), None),
            };
            let s = one_load(tools, &target, bootstrap.map(|p| p.as_path()), load)
                .map_err(|e| format!("{} (round {}): {e}", path.name(), round + 1))?;
            eprintln!(
                "  grpc {:<13} {:>7.0} calls/s  p50 {:>6.0} µs  p99 {:>6.0} µs  errors {}  sessions {} (cookie {}, moved {})",
                path.name(),
                s.rps,
                s.p50_us,
                s.p99_us,
                s.errors,
                s.sessions,
                s.sessions_with_cookie,
                s.sessions_moved
            );
            results.entry(path).or_default().push(s);
        }
        order.rotate_left(1);
    }
    drop((sticky, plain, cp, v1, v2));
    Ok(results)
}

/// One run of the load generator against `target`.
fn one_load(
    tools: &Tools,
    target: &str,
    bootstrap: Option<&Path>,
    load: GrpcLoad,
) -> Result<GrpcSample, String> {
    let mut cmd = Command::new(&tools.python);
    cmd.arg(&tools.load_script)
        .arg(target)
        .arg(load.seconds.to_string())
        .arg(load.procs.to_string())
        .arg(load.sessions.to_string())
        .arg(load.warmup.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(b) = bootstrap {
        cmd.env("GRPC_XDS_BOOTSTRAP", b);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    // Both pipes drained as they fill; the child is killed by PID if this
    // returns early. Bounded by the script's own timeouts (20 s to connect,
    // 10 s per call) and the run's length.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = std::io::Read::read_to_string(&mut r, &mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|o| Box::new(o) as _));
    let err = drain(child.stderr.take().map(|e| Box::new(e) as _));
    let mut proc = Proc(child);
    let limit = Duration::from_secs_f64(load.seconds + load.warmup + 60.0);
    let began = std::time::Instant::now();
    while proc.0.try_wait().map_err(|e| e.to_string())?.is_none() {
        if began.elapsed() > limit {
            return Err(format!("load generator still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let v: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("load generator output {stdout:?}: {e}\n{stderr}"))?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    if u("errors") > 0 {
        eprintln!("  errors, e.g. {}", v["error_samples"]);
    }
    Ok(GrpcSample {
        rps: f("rps"),
        p50_us: f("p50_us"),
        p90_us: f("p90_us"),
        p99_us: f("p99_us"),
        errors: u("errors"),
        sessions: u("sessions"),
        sessions_with_cookie: u("sessions_with_cookie"),
        sessions_moved: u("sessions_moved"),
    })
}
