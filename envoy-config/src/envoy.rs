//! An Envoy 1.40 process for tests: started from a bootstrap file with
//! ephemeral listener and admin ports, and killed by its PID when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Envoy.
pub struct Envoy {
    child: Child,
    /// Admin address (loopback).
    pub admin: SocketAddr,
    /// The HTTP listener.
    pub listener: SocketAddr,
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
            admin: "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable_addr()),
            listener: "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable_addr()),
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
                envoy.admin = admin;
                if envoy
                    .admin_get("/ready")
                    .map(|(s, _)| s == 200)
                    .unwrap_or(false)
                {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        envoy.startup = began.elapsed();
        envoy.listener = envoy.find_listener().ok_or_else(|| StartError {
            message: "no listener address in /listeners".into(),
            log: envoy.log(),
        })?;
        Ok(envoy)
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

    fn find_listener(&self) -> Option<SocketAddr> {
        let (_, body) = self.admin_get("/listeners?format=json").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let sa = &v["listener_statuses"][0]["local_address"]["socket_address"];
        let ip = sa["address"].as_str()?;
        let port = sa["port_value"].as_u64()?;
        format!("{ip}:{port}").parse().ok()
    }

    /// GET on the admin interface: (status, body).
    pub fn admin_get(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        admin_request(self.admin, "GET", path)
    }

    /// POST on the admin interface: (status, body).
    pub fn admin_post(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        admin_request(self.admin, "POST", path)
    }

    /// The value of one counter or gauge, by exact name.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let (_, body) = self
            .admin_get(&format!("/stats?filter=^{}$", escape_regex(name)))
            .ok()?;
        let text = String::from_utf8_lossy(&body);
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}: "))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Every stat line whose name contains `needle`.
    pub fn stats_matching(&self, needle: &str) -> Vec<(String, u64)> {
        let Ok((_, body)) = self.admin_get("/stats") else {
            return Vec::new();
        };
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
            .collect()
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

fn escape_regex(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if ".|[]()*+?^$\\".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

fn admin_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = raw.get(end + 4..).unwrap_or_default().to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        let Some(chunk) = b.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        b = b.get(start + size + 2..).unwrap_or_default();
    }
    out
}
