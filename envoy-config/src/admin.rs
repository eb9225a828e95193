//! The one client of Envoy's admin interface that the e2e suite, the
//! examples, the bench and the control-plane tests use: stats, runtime
//! overrides and listener discovery over stickyctl's small HTTP/1.1
//! [`request`](stickyctl::admin::request).

use std::net::SocketAddr;
use std::time::Duration;

/// Envoy's admin interface at one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin {
    /// The admin listener (loopback).
    pub addr: SocketAddr,
}

impl Admin {
    /// The admin interface at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        stickyctl::admin::request(self.addr, "GET", path, Duration::from_secs(10))
    }

    /// POST `path` without a body: (status, body).
    pub fn post(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        stickyctl::admin::request(self.addr, "POST", path, Duration::from_secs(10))
    }

    /// Whether `/ready` answers 200.
    pub fn ready(&self) -> bool {
        self.get("/ready").is_ok_and(|(s, _)| s == 200)
    }

    /// The value of one counter or gauge, by exact name.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let (_, body) = self
            .get(&format!("/stats?filter=^{}$", escape_regex(name)))
            .ok()?;
        let text = String::from_utf8_lossy(&body);
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}: "))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Every stat line whose name contains `needle`.
    pub fn stats_matching(&self, needle: &str) -> Vec<(String, u64)> {
        let Ok((_, body)) = self.get("/stats") else {
            return Vec::new();
        };
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
            .collect()
    }

    /// The first listener's address, from `/listeners`.
    pub fn listener(&self) -> Option<SocketAddr> {
        let (_, body) = self.get("/listeners?format=json").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let sa = &v["listener_statuses"][0]["local_address"]["socket_address"];
        let ip = sa["address"].as_str()?;
        let port = sa["port_value"].as_u64()?;
        format!("{ip}:{port}").parse().ok()
    }

    /// Shifts a weighted split live through the runtime admin layer: each
    /// cluster's weight under `prefix` (the plan's `runtime_key_prefix`).
    pub fn set_weights(&self, prefix: &str, weights: &[(&str, u32)]) -> Result<(), String> {
        let query: Vec<String> = weights
            .iter()
            .map(|(c, w)| format!("{prefix}.{c}={w}"))
            .collect();
        let (status, body) = self
            .post(&format!("/runtime_modify?{}", query.join("&")))
            .map_err(|e| format!("runtime_modify: {e}"))?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!(
                "runtime_modify: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        }
    }
}

impl std::fmt::Display for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
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
