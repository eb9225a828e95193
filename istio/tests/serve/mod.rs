//! Real processes for `stickyctl serve`'s end-to-end tests: the control plane
//! itself, endpoint files written atomically, and grpcio peers (backends and a
//! proxyless client) from the project venv. Every process is killed by its
//! PID when its handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub mod fleet;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A child killed (by PID) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test's files: policy, route, keys, endpoint directory.
pub struct Inputs {
    pub dir: tempfile::TempDir,
}

impl Inputs {
    /// The test policy and route (reviews-v1 90 / reviews-v2 10) and keys [k1].
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
        for f in ["policy.yaml", "route.yaml", "keys.json"] {
            std::fs::copy(data.join(f), dir.path().join(f)).unwrap();
        }
        std::fs::create_dir(dir.path().join("eps")).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `name` atomically (temp file + rename), as a deployer would.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// The endpoint file of `service`: (host, state, deadline) per endpoint.
    pub fn endpoints(&self, service: &str, eps: &[(&str, &str, Option<u64>)]) {
        let list: Vec<Value> = eps
            .iter()
            .map(|(host, state, deadline)| {
                let sa: SocketAddr = host.parse().unwrap();
                let mut e =
                    json!({"address": sa.ip().to_string(), "port": sa.port(), "state": state});
                if let Some(d) = deadline {
                    e["deadline"] = json!(d);
                }
                e
            })
            .collect();
        self.write(
            &format!("eps/{service}.json"),
            &json!({"service": service, "endpoints": list}).to_string(),
        );
    }

    /// Rewrites the route's weights (reviews-v1, reviews-v2).
    pub fn weights(&self, v1: u32, v2: u32) {
        let text = std::fs::read_to_string(self.path("route.yaml")).unwrap();
        let text = text
            .replace("weight: 90", &format!("weight: {v1}"))
            .replace("weight: 10", &format!("weight: {v2}"));
        self.write("route.yaml", &text);
    }
}

/// A running `stickyctl serve`.
pub struct ControlPlane {
    pub proc: Proc,
    pub xds: String,
    pub admin: String,
    pub log: PathBuf,
}

impl ControlPlane {
    /// Starts it on ephemeral ports; `extra` adds flags.
    pub fn start(inputs: &Inputs, extra: &[&str]) -> Self {
        Self::start_at(inputs, "127.0.0.1:0", extra)
    }

    /// Starts it with xDS on `listen` (a restart reuses the address).
    pub fn start_at(inputs: &Inputs, listen: &str, extra: &[&str]) -> Self {
        let mut args: Vec<std::ffi::OsString> = vec![
            "-p".into(),
            inputs.path("policy.yaml").into(),
            "-r".into(),
            inputs.path("route.yaml").into(),
            "--endpoints".into(),
            inputs.path("eps").into(),
            "--listen".into(),
            listen.into(),
        ];
        args.extend(extra.iter().map(Into::into));
        Self::spawn(inputs, &args, &[])
    }

    /// `stickyctl serve --keys KEYS --admin 127.0.0.1:0 ARGS` with `env`
    /// added; waits for its first stdout line (the bound addresses).
    pub fn spawn(inputs: &Inputs, args: &[std::ffi::OsString], env: &[(&str, &Path)]) -> Self {
        let log = inputs.path("serve.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_stickyctl"))
            .arg("serve")
            .arg("--keys")
            .arg(inputs.path("keys.json"))
            .args(["--admin", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "first line {line:?}: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Self {
            proc: Proc(child),
            xds: v["xds"].as_str().unwrap().to_owned(),
            admin: v["admin"].as_str().unwrap().to_owned(),
            log,
        }
    }

    /// GET on the admin HTTP interface.
    pub fn get(&self, path: &str) -> String {
        let body = stickyctl::admin::get(&self.admin, path).unwrap();
        String::from_utf8(body).unwrap()
    }

    /// A metric's value (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        self.get("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Push latencies (ms) the log reports for `group` and type (`eds`, `lds`, ...).
    pub fn applied_ms(&self, group: &str, ty: &str) -> Vec<f64> {
        self.log_text()
            .lines()
            .filter(|l| l.contains(&format!("({group}): applied {ty} ")))
            .filter_map(|l| {
                l.rsplit_once(" ms after")
                    .and_then(|(a, _)| a.rsplit_once(' '))
                    .and_then(|(_, ms)| ms.parse().ok())
            })
            .collect()
    }
}

pub fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "{} missing: run `make setup`",
        venv.display()
    );
    venv
}

pub fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/serve/grpc_peer.py")
}

/// A grpcio backend answering its name.
pub struct GrpcBackend {
    pub name: String,
    pub addr: String,
    pub proc: Proc,
}

impl GrpcBackend {
    pub fn start(name: &str) -> Self {
        let mut child = Command::new(python())
            .arg(peer_script())
            .args(["server", name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("grpc backend said {line:?}"))
            .to_owned();
        Self {
            name: name.to_owned(),
            addr,
            proc: Proc(child),
        }
    }
}

/// One proxyless call's outcome.
#[derive(Debug, Clone)]
pub struct Reply {
    pub backend: Option<String>,
    pub error: Option<String>,
}

/// A proxyless grpcio client on `xds:///TARGET`.
pub struct GrpcClient {
    proc: Proc,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl GrpcClient {
    pub fn start(bootstrap: &Path, target: &str) -> Self {
        let mut child = Command::new(python())
            .arg(peer_script())
            .args(["client", &format!("xds:///{target}")])
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            proc: Proc(child),
            stdin,
            stdout,
        }
    }

    /// One RPC in `session` (its cookie kept by the client).
    pub fn call(&mut self, session: &str) -> Reply {
        writeln!(self.stdin, "call {session}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        Reply {
            backend: v["backend"].as_str().map(str::to_owned),
            error: v["error"].as_str().map(str::to_owned),
        }
    }
}

/// Waits until `cond` holds, polling every 2 ms; false after `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let began = Instant::now();
    while began.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// An Envoy bootstrapped with node, admin and the ADS address of `cp` only
/// (what `render envoy --xds` writes), in `inputs`' directory `name`.
pub fn envoy_over_ads(
    inputs: &Inputs,
    cp: &ControlPlane,
    name: &str,
    env: &[(&str, &Path)],
) -> sticky_e2e::envoy::Envoy {
    let dir = inputs.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let boot = dir.join("envoy.json");
    std::fs::write(
        &boot,
        stickyctl::serve::bootstrap::envoy(name, &cp.xds, 0).to_string(),
    )
    .unwrap();
    let bin = sticky_e2e::artifact("STICKY_ENVOY", ".venv/envoy");
    sticky_e2e::envoy::Envoy::start(&bin, &boot, &dir, env)
        .unwrap_or_else(|e| panic!("{e}\n{}", cp.log_text()))
}

/// Every session's next request reaches the backend it is pinned to.
pub fn assert_all_stay(
    addr: SocketAddr,
    sessions: &mut [(sticky_e2e::client::Session, String)],
    why: &str,
) {
    for (s, want) in sessions.iter_mut() {
        let r = s.get(addr).unwrap();
        assert_eq!(r.status, 200, "{why}");
        assert_eq!(
            r.backend().as_deref(),
            Some(want.as_str()),
            "{} moved ({why})",
            s.id
        );
    }
}
