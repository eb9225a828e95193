//! An Envoy 1.40 process for tests: started from a bootstrap file with
//! ephemeral listener and admin ports, and killed by its PID when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stickyctl::eds::{self, Endpoint};

use crate::admin::Admin;

/// A running Envoy.
pub struct Envoy {
    child: Child,
    /// The admin interface (loopback).
    pub admin: Admin,
    /// The HTTP listener.
    pub listener: SocketAddr,
    /// The bootstrap it runs.
    pub config: PathBuf,
    /// Envoy's log file.
    pub log_path: PathBuf,
    /// How long Envoy took from spawn to /ready.
    pub startup: Duration,
}

/// Why Envoy did not come up.
#[derive(Debug)]
pub struct StartError {
    /// What happened.
    pub message: String,
    /// Envoy's log up to that point.
    pub log: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n--- envoy log ---\n{}", self.message, self.log)
    }
}

impl From<String> for StartError {
    /// A failure before Envoy ran: no log yet.
    fn from(message: String) -> Self {
        Self {
            message,
            log: String::new(),
        }
    }
}

impl Envoy {
    /// Starts Envoy with the bootstrap at `config` and waits until it is ready.
    pub fn start(
        bin: &Path,
        config: &Path,
        dir: &Path,
        extra_env: &[(&str, &Path)],
    ) -> Result<Self, StartError> {
        let admin_file = dir.join("admin-address");
        let log_path = dir.join("envoy.log");
        let _ = std::fs::remove_file(&admin_file);
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(config)
            .arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg("2")
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(&log_path)
            .arg("-l")
            .arg("info")
            // The log file is flushed on this interval (default 10 s): tests
            // read it right after the request that logged.
            .arg("--file-flush-interval-msec")
            .arg("200")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let began = Instant::now();
        let child = cmd.spawn().map_err(|e| StartError {
            message: format!("cannot spawn {}: {e}", bin.display()),
            log: String::new(),
        })?;
        let mut envoy = Envoy {
            child,
            admin: Admin::new(unreachable_addr()),
            listener: "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable_addr()),
            config: config.to_owned(),
            log_path,
            startup: Duration::ZERO,
        };
        let deadline = began + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(StartError {
                    message: format!("envoy exited: {status}"),
                    log: envoy.log(),
                });
            }
            if Instant::now() > deadline {
                return Err(StartError {
                    message: "envoy not ready after 30 s".into(),
                    log: envoy.log(),
                });
            }
            if let Some(admin) = std::fs::read_to_string(&admin_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                envoy.admin = Admin::new(admin);
                if envoy.admin.ready() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        envoy.startup = began.elapsed();
        envoy.listener = envoy.admin.listener().ok_or_else(|| StartError {
            message: "no listener address in /listeners".into(),
            log: envoy.log(),
        })?;
        Ok(envoy)
    }

    /// [`Envoy::start`] able to load the dynamic module `module`
    /// (`lib<name>.so`): its directory goes into
    /// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    pub fn start_with_module(
        bin: &Path,
        config: &Path,
        dir: &Path,
        module: Option<&Path>,
    ) -> Result<Self, StartError> {
        let search = module.map(|so| so.parent().unwrap_or(Path::new(".")));
        let env: Vec<(&str, &Path)> = search
            .map(|d| ("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", d))
            .into_iter()
            .collect();
        Self::start(bin, config, dir, &env)
    }

    /// Whether the process has exited, and its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// GET on the admin interface: (status, body).
    pub fn admin_get(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        self.admin.get(path)
    }

    /// POST on the admin interface: (status, body).
    pub fn admin_post(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        self.admin.post(path)
    }

    /// The value of one counter or gauge, by exact name.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.admin.stat(name)
    }

    /// Every stat line whose name contains `needle`.
    pub fn stats_matching(&self, needle: &str) -> Vec<(String, u64)> {
        self.admin.stats_matching(needle)
    }

    /// The log lines that betray a crashed filter (should be none).
    pub fn wasm_failures(&self) -> Vec<String> {
        wasm_failures(&self.log())
    }

    /// Waits until every `(cluster, hosts)` has that many members (EDS
    /// loaded); returns whether they all did within `timeout`.
    pub fn wait_members(&self, clusters: &[(&str, usize)], timeout: Duration) -> bool {
        self.wait_for(timeout, |e| {
            clusters.iter().all(|(c, n)| {
                e.stat(&format!("cluster.{c}.membership_total"))
                    == Some(u64::try_from(*n).unwrap_or(u64::MAX))
            })
        })
    }

    /// Writes `cluster`'s EDS file at `path` (version `version`) and waits
    /// until Envoy applied it.
    pub fn apply_eds(
        &self,
        path: &Path,
        cluster: &str,
        endpoints: &[Endpoint],
        version: u64,
    ) -> Result<(), String> {
        let stat = format!("cluster.{cluster}.update_success");
        let before = self.stat(&stat).unwrap_or(0);
        eds::write(path, cluster, endpoints, "sticky", version)
            .map_err(|e| format!("eds write: {e}"))?;
        if self.wait_for(Duration::from_secs(5), |e| {
            e.stat(&stat).unwrap_or(0) > before
        }) {
            Ok(())
        } else {
            Err(format!("Envoy did not apply the EDS update of {cluster}"))
        }
    }

    /// Waits until `cond` holds or `timeout` passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut(&Envoy) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cond(self)
    }

    /// Stops Envoy (SIGKILL by PID) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unreachable_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
}

/// The lines of an Envoy log that betray a crashed filter: a Rust panic, a
/// wasm trap, a failed VM.
pub fn wasm_failures(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("panicked at")
                || l.contains("Uncaught RuntimeError")
                || l.contains("Wasm VM failed")
        })
        .map(str::to_owned)
        .collect()
}
