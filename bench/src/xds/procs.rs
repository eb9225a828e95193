//! The real processes of the xDS benchmarks: `stickyctl serve`, the tonic
//! counter backends (`sticky-counter` from examples/), the grpcio load
//! generator, and the input files they read. Every child is killed by its
//! PID and reaped when its handle drops.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A child process, killed by PID and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the binaries and scripts the benchmark runs are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `stickyctl` (release).
    pub stickyctl: PathBuf,
    /// `sticky-counter` (release), the tonic demo backend.
    pub counter: PathBuf,
    /// The project venv's python (grpcio).
    pub python: PathBuf,
    /// bench/grpc_load.py.
    pub load_script: PathBuf,
    /// Envoy 1.40.
    pub envoy: PathBuf,
    /// dist/sticky.wasm.
    pub sticky_wasm: PathBuf,
    /// istio/testdata: the e2e tests' policy, route and keys.
    pub testdata: PathBuf,
}

impl Tools {
    /// The release binaries beside this executable (`STICKYCTL_BIN`,
    /// `STICKY_COUNTER_BIN` override), the venv, the test inputs.
    pub fn find(root: &Path, envoy: &Path, sticky_wasm: &Path) -> Result<Self, String> {
        let dir = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let bin = |var: &str, name: &str| -> Result<PathBuf, String> {
            let p = std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join(name));
            if p.exists() {
                Ok(p)
            } else {
                Err(format!(
                    "{} missing: `cargo build --release -p {} --bin {name}` (or set {var}); `make bench` does",
                    p.display(),
                    if name == "stickyctl" {
                        "stickyctl"
                    } else {
                        "sticky-examples"
                    }
                ))
            }
        };
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            return Err(format!("{} missing: run `make setup`", python.display()));
        }
        Ok(Self {
            stickyctl: bin("STICKYCTL_BIN", "stickyctl")?,
            counter: bin("STICKY_COUNTER_BIN", "sticky-counter")?,
            python,
            load_script: root.join("bench/grpc_load.py"),
            envoy: envoy.to_path_buf(),
            sticky_wasm: sticky_wasm.to_path_buf(),
            testdata: root.join("istio/testdata"),
        })
    }
}

/// The control plane's input files: the e2e tests' policy, route
/// (reviews-v1 90 / reviews-v2 10) and keys, and an endpoint directory.
pub struct Inputs {
    /// The temporary directory holding them.
    pub dir: tempfile::TempDir,
}

impl Inputs {
    /// Copies the test inputs into a fresh directory.
    pub fn new(tools: &Tools) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for f in ["policy.yaml", "route.yaml", "keys.json"] {
            std::fs::copy(tools.testdata.join(f), dir.path().join(f))
                .map_err(|e| format!("{f}: {e}"))?;
        }
        std::fs::create_dir(dir.path().join("eps")).map_err(|e| e.to_string())?;
        Ok(Self { dir })
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` as the endpoint file of `service` atomically (temp file
    /// + rename, as a deployer would); returns when the rename is done.
    pub fn write_endpoints(&self, service: &str, text: &str) -> Result<(), String> {
        let path = self.path(&format!("eps/{service}.json"));
        let tmp = self.path(&format!("eps/.{service}.json.tmp"));
        std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
    }
}

/// An endpoint file's text: `(address, state)` per endpoint.
pub fn endpoint_file(service: &str, eps: &[(SocketAddr, &str)]) -> String {
    let list: Vec<Value> = eps
        .iter()
        .map(|(a, state)| json!({"address": a.ip().to_string(), "port": a.port(), "state": state}))
        .collect();
    json!({"service": service, "endpoints": list}).to_string()
}

/// A running `stickyctl serve`.
pub struct ControlPlane {
    /// The process.
    pub proc: Proc,
    /// ADS address.
    pub xds: String,
    /// Its stderr (logs).
    pub log: PathBuf,
    /// Spawn → the first stdout line (inputs loaded, first snapshot built, bound).
    pub startup: Duration,
}

impl ControlPlane {
    /// Starts `stickyctl serve` on ephemeral ports over `inputs`.
    pub fn start(tools: &Tools, inputs: &Inputs, extra: &[&str]) -> Result<Self, String> {
        let log = inputs.path("serve.log");
        let began = Instant::now();
        let mut child = Command::new(&tools.stickyctl)
            .arg("serve")
            .arg("-p")
            .arg(inputs.path("policy.yaml"))
            .arg("-r")
            .arg(inputs.path("route.yaml"))
            .arg("--keys")
            .arg(inputs.path("keys.json"))
            .arg("--endpoints")
            .arg(inputs.path("eps"))
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", tools.stickyctl.display()))?;
        let first = first_line(&mut child, Duration::from_secs(60));
        let startup = began.elapsed();
        let proc = Proc(child);
        let v: Value = serde_json::from_str(&first).map_err(|e| {
            format!(
                "stickyctl serve's first line {first:?}: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;
        let field = |k: &str| v[k].as_str().map(str::to_owned).ok_or("no address");
        Ok(Self {
            xds: field("xds")?,
            proc,
            log,
            startup,
        })
    }

    /// Its resident memory now, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.proc.0.id())
    }

    /// The log's text.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `VmRSS` of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The first stdout line of `child` (empty after `timeout`); the rest of
/// stdout is drained so the child never blocks on a full pipe.
fn first_line(child: &mut Child, timeout: Duration) -> String {
    let Some(stdout) = child.stdout.take() else {
        return String::new();
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        for _ in lines {}
    });
    rx.recv_timeout(timeout).unwrap_or_default()
}

/// A `sticky-counter` (tonic, h2c) backend.
pub struct Counter {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process, stopped when this drops.
    _proc: Proc,
}

impl Counter {
    /// Starts one on 127.0.0.1, port 0.
    pub fn start(tools: &Tools, name: &str, version: &str) -> Result<Self, String> {
        let mut child = Command::new(&tools.counter)
            .args([
                "--name",
                name,
                "--version",
                version,
                "--listen",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", tools.counter.display()))?;
        let line = first_line(&mut child, Duration::from_secs(10));
        let proc = Proc(child);
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| format!("sticky-counter {name} said {line:?}"))?;
        Ok(Self { addr, _proc: proc })
    }
}
