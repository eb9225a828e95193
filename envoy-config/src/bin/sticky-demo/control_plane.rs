//! The demo's control-plane act: `stickyctl serve` feeding two Envoys
//! (bootstrapped by `stickyctl render envoy --xds`: node, admin, ADS address)
//! and a proxyless grpcio client (`xds:///reviews`) from a directory of
//! endpoint files. A pod turns "terminating" in its file; its sessions stay
//! until the drain deadline the control plane gives it (the policy's
//! drainingTimeoutSec), then move, with no error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sticky_e2e::backend::Backend;
use sticky_e2e::client::Session;
use sticky_e2e::envoy::Envoy;
use stickyctl::admin::{HostState, host_state};

/// Seconds a terminating pod drains (the demo policy's drainingTimeoutSec).
const DRAIN_SECONDS: u64 = 4;

/// A child process killed by its PID and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn python() -> PathBuf {
    sticky_e2e::root().join(".venv/bin/python")
}

fn peer_script() -> PathBuf {
    sticky_e2e::root().join("istio/tests/serve/grpc_peer.py")
}

fn stickyctl() -> PathBuf {
    std::env::var_os("STICKYCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| sticky_e2e::root().join("target/release/stickyctl"))
}

/// A pod with one port: an HTTP backend (for Envoy) and a grpcio backend
/// (for the proxyless client), chosen per connection by its first bytes.
struct Pod {
    name: String,
    addr: SocketAddr,
    _http: Backend,
    _grpc: Proc,
}

impl Pod {
    fn start(name: &str) -> Result<Self, String> {
        let http = Backend::start(name).map_err(e)?;
        let mut child = Command::new(python())
            .arg(peer_script())
            .args(["server", name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|x| format!("{}: {x} (run `make setup`)", python().display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line).map_err(e)?;
        }
        let grpc: SocketAddr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("grpc backend said {line:?}"))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(e)?;
        let addr = listener.local_addr().map_err(e)?;
        let http_addr = http.addr;
        std::thread::spawn(move || {
            for down in listener.incoming().flatten() {
                std::thread::spawn(move || splice(down, http_addr, grpc));
            }
        });
        Ok(Self {
            name: name.to_owned(),
            addr,
            _http: http,
            _grpc: Proc(child),
        })
    }
}

fn splice(down: TcpStream, http: SocketAddr, grpc: SocketAddr) {
    let mut head = [0u8; 3];
    let _ = down.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        match down.peek(&mut head) {
            Ok(n) if n >= head.len() => break,
            Ok(0) | Err(_) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let _ = down.set_read_timeout(None);
    let Ok(up) = TcpStream::connect(if &head == b"PRI" { grpc } else { http }) else {
        return;
    };
    let (Ok(mut down_r), Ok(mut up_w)) = (down.try_clone(), up.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut down_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let (mut up_r, mut down_w) = (up, down);
    let _ = std::io::copy(&mut up_r, &mut down_w);
    let _ = down_w.shutdown(Shutdown::Write);
}

/// The proxyless client: one RPC per `call SESSION` line (grpc_peer.py).
struct GrpcClient {
    _proc: Proc,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl GrpcClient {
    fn start(bootstrap: &Path) -> Result<Self, String> {
        let mut child = Command::new(python())
            .arg(peer_script())
            .args(["client", "xds:///reviews"])
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(e)?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Self {
            _proc: Proc(child),
            stdin,
            stdout,
        })
    }

    /// The backend that answered, or the error.
    fn call(&mut self, session: &str) -> Result<String, String> {
        writeln!(self.stdin, "call {session}").map_err(e)?;
        self.stdin.flush().map_err(e)?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(e)?;
        let v: Value = serde_json::from_str(&line).map_err(e)?;
        match (v["backend"].as_str(), v["error"].as_str()) {
            (Some(b), _) => Ok(b.to_owned()),
            (None, err) => Err(format!("gRPC error: {}", err.unwrap_or("?"))),
        }
    }
}

/// One demo session: through the Envoys (alternating replicas) or proxyless.
enum Client {
    Web(Session),
    Grpc(String),
}

struct Act {
    envoys: Vec<Envoy>,
    grpc: GrpcClient,
    turn: usize,
}

impl Act {
    fn ask(&mut self, c: &mut Client) -> Result<String, String> {
        self.turn += 1;
        match c {
            Client::Web(s) => {
                let envoy = &self.envoys[self.turn % self.envoys.len()];
                let r = s.get(envoy.listener).map_err(e)?;
                match (r.status, r.backend()) {
                    (200, Some(b)) => Ok(b),
                    (status, _) => Err(format!("HTTP {status}")),
                }
            }
            Client::Grpc(id) => self.grpc.call(id),
        }
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    std::fs::write(&tmp, text).map_err(e)?;
    std::fs::rename(&tmp, path).map_err(e)
}

fn endpoint_file(dir: &Path, service: &str, pods: &[(&Pod, &str)]) -> Result<(), String> {
    let list: Vec<Value> = pods
        .iter()
        .map(|(p, state)| {
            json!({"address": p.addr.ip().to_string(), "port": p.addr.port(), "state": state})
        })
        .collect();
    write_atomically(
        &dir.join(format!("{service}.json")),
        &json!({"service": service, "endpoints": list}).to_string(),
    )
}

/// Runs the act; every process it started is stopped when it returns.
pub fn run() -> Result<(), String> {
    println!(
        "\n== control plane: `stickyctl serve` feeds two Envoys and a proxyless gRPC client from endpoint files"
    );
    let scratch = tempfile::Builder::new()
        .prefix("sticky-demo-control-plane")
        .tempdir()
        .map_err(e)?;
    let dir = scratch.path();
    let testdata = sticky_e2e::root().join("istio/testdata");
    let policy = std::fs::read_to_string(testdata.join("policy.yaml")).map_err(e)?;
    std::fs::write(
        dir.join("policy.yaml"),
        policy.replace(
            "drainingTimeoutSec: 60",
            &format!("drainingTimeoutSec: {DRAIN_SECONDS}"),
        ),
    )
    .map_err(e)?;
    for f in ["route.yaml", "keys.json"] {
        std::fs::copy(testdata.join(f), dir.join(f)).map_err(e)?;
    }
    let eps = dir.join("eps");
    std::fs::create_dir(&eps).map_err(e)?;
    let pods: Vec<Pod> = ["pod-a", "pod-b", "pod-c"]
        .into_iter()
        .map(Pod::start)
        .collect::<Result<_, _>>()?;
    endpoint_file(
        &eps,
        "reviews-v1",
        &[(&pods[0], "serving"), (&pods[1], "serving")],
    )?;
    endpoint_file(&eps, "reviews-v2", &[(&pods[2], "serving")])?;

    let wasm = sticky_e2e::root().join("dist/sticky.wasm");
    let path = |p: &Path| p.display().to_string();
    let mut serve = Command::new(stickyctl())
        .args(["serve", "-p", &path(&dir.join("policy.yaml"))])
        .args(["-r", &path(&dir.join("route.yaml"))])
        .args([
            "--keys",
            &path(&dir.join("keys.json")),
            "--endpoints",
            &path(&eps),
        ])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--wasm", &path(&wasm), "--envoy-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("serve.log")).map_err(e)?)
        .spawn()
        .map_err(|x| format!("{}: {x} (make demo builds it)", stickyctl().display()))?;
    let mut first = String::new();
    if let Some(out) = serve.stdout.take() {
        BufReader::new(out).read_line(&mut first).map_err(e)?;
    }
    let serve = Proc(serve);
    let bound: Value =
        serde_json::from_str(&first).map_err(|x| format!("stickyctl serve said {first:?}: {x}"))?;
    let xds = bound["xds"].as_str().unwrap_or_default().to_owned();
    let admin = bound["admin"].as_str().unwrap_or_default().to_owned();
    println!(
        "   stickyctl serve pid {}: xDS (ADS) on {xds}, /metrics on http://{admin}; endpoint files: pod-a pod-b (reviews-v1, 90) pod-c (reviews-v2, 10)",
        serve.0.id()
    );

    let envoy_bin = sticky_e2e::root().join(".venv/envoy");
    let mut envoys = Vec::new();
    for node in ["fleet-a", "fleet-b"] {
        let out = dir.join(node);
        let rendered = Command::new(stickyctl())
            .args(["render", "envoy", "-p", &path(&dir.join("policy.yaml"))])
            .args(["-r", &path(&dir.join("route.yaml")), "--xds", &xds])
            .args(["--node-id", node, "--admin-port", "0", "--out", &path(&out)])
            .output()
            .map_err(e)?;
        if !rendered.status.success() {
            return Err(String::from_utf8_lossy(&rendered.stderr).into_owned());
        }
        let envoy = Envoy::start(&envoy_bin, &out.join("envoy.json"), &out, &[])
            .map_err(|x| format!("{}: {}", x.message, x.log))?;
        println!(
            "   Envoy {node} pid {} on http://{}: bootstrap from `stickyctl render envoy --xds` (node, admin, ADS address only)",
            envoy.pid(),
            envoy.listener
        );
        envoys.push(envoy);
    }
    let grpc = GrpcClient::start(&dir.join("fleet-a/grpc-bootstrap.json"))?;
    println!(
        "   grpcio client on xds:///reviews (GRPC_XDS_BOOTSTRAP=fleet-a/grpc-bootstrap.json), no proxy"
    );
    let mut act = Act {
        envoys,
        grpc,
        turn: 0,
    };

    println!("\n-- six sessions, three through the Envoys (alternating replicas), three proxyless");
    let mut clients: Vec<(String, Client)> = ["web-1", "web-2", "web-3"]
        .into_iter()
        .map(|n| (n.to_owned(), Client::Web(Session::new(n))))
        .chain(
            ["grpc-1", "grpc-2", "grpc-3"]
                .into_iter()
                .map(|n| (n.to_owned(), Client::Grpc(n.to_owned()))),
        )
        .collect();
    let mut pinned = BTreeMap::new();
    for (name, c) in &mut clients {
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(act.ask(c)?);
        }
        println!("   {name:<7}{}", seen.join(" → "));
        pinned.insert(name.clone(), seen.last().cloned().unwrap_or_default());
    }
    let on = |p: &str| pinned.values().filter(|b| *b == p).count();
    let victim = if on("pod-a") >= on("pod-b") {
        &pods[0]
    } else {
        &pods[1]
    };
    let other = if victim.name == "pod-a" {
        &pods[1]
    } else {
        &pods[0]
    };

    println!(
        "\n-- {} turns terminating (its endpoint file rewritten, no deadline in it): the control plane gives it drainingTimeoutSec = {DRAIN_SECONDS} s",
        victim.name
    );
    let t = Instant::now();
    endpoint_file(
        &eps,
        "reviews-v1",
        &[(victim, "terminating"), (other, "serving")],
    )?;
    let (ip, port) = (victim.addr.ip().to_string(), victim.addr.port());
    let mut applied = Vec::new();
    for envoy in &act.envoys {
        let a = envoy.admin.to_string();
        while host_state(&a, "reviews-v1", &ip, port).map_err(e)?
            != HostState::Present("DRAINING".into())
        {
            if t.elapsed() > Duration::from_secs(10) {
                return Err("the Envoys never saw the drain".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        applied.push(format!("{:.0} ms", t.elapsed().as_secs_f64() * 1000.0));
    }
    let status: Value =
        serde_json::from_slice(&stickyctl::admin::get(&admin, "/status").map_err(e)?).map_err(e)?;
    let deadline = status["endpoints"]["reviews-v1"]
        .as_array()
        .and_then(|l| l.iter().find_map(|x| x["deadline"].as_u64()))
        .unwrap_or(0);
    println!(
        "   EDS {} DRAINING at both Envoys after {}; drain deadline {} (in {} s)",
        victim.name,
        applied.join(" and "),
        deadline,
        deadline.saturating_sub(unix_now())
    );

    println!(
        "\n-- one request per session every second: pinned sessions stay until the deadline, then move"
    );
    let mut errors = 0usize;
    let mut fresh = 0usize;
    let (mut new_on_victim, mut on_victim_after) = (0usize, 0usize);
    let began = Instant::now();
    for tick in 0..=(DRAIN_SECONDS + 2) {
        let wake = Duration::from_secs(tick);
        if let Some(d) = wake.checked_sub(began.elapsed()) {
            std::thread::sleep(d);
        }
        let mut line = Vec::new();
        let after = unix_now() > deadline;
        for (name, c) in &mut clients {
            match act.ask(c) {
                Ok(b) => {
                    on_victim_after += usize::from(after && b == victim.name);
                    line.push(format!("{name} {b}"));
                }
                Err(x) => {
                    errors += 1;
                    line.push(format!("{name} ERROR {x}"));
                }
            }
        }
        let mut new = Vec::new();
        for i in 0..2 {
            fresh += 1;
            let mut c = if i == 0 {
                Client::Web(Session::new(format!("new-{fresh}")))
            } else {
                Client::Grpc(format!("new-{fresh}"))
            };
            let b = act.ask(&mut c).unwrap_or_else(|x| {
                errors += 1;
                x
            });
            new_on_victim += usize::from(b == victim.name);
            new.push(b);
        }
        let when = unix_now();
        let phase = if when >= deadline {
            "after the deadline"
        } else {
            "draining"
        };
        println!(
            "   t+{tick}s ({phase:<18}) {} | new sessions → {}",
            line.join(", "),
            new.join(", ")
        );
    }
    println!(
        "   {errors} client-visible errors; {new_on_victim} new sessions on {} while it drained, {on_victim_after} requests served by it after its deadline (the server removed it from EDS: gRPC enforces no deadline itself)",
        victim.name
    );
    println!(
        "\n== stopping stickyctl serve (pid {}), both Envoys, the gRPC client and the pods",
        serve.0.id()
    );
    drop(act);
    drop(serve);
    drop(pods);
    if errors > 0 || new_on_victim > 0 || on_victim_after > 0 {
        return Err(format!(
            "{errors} errors, {new_on_victim} new sessions on the draining pod, {on_victim_after} requests after its deadline"
        ));
    }
    Ok(())
}
