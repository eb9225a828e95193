//! Envoy's admin interface, just enough to see when an EDS change has been
//! applied: `GET /clusters?format=json`, polled until a host shows the state
//! we wrote. Its small HTTP/1.1 [`request`] is also the real-Envoy harness's
//! admin transport (sticky-e2e depends on stickyctl, not the other way).

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};

/// What Envoy reports for one host of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostState {
    /// The cluster does not list the host.
    Absent,
    /// Listed, with its EDS health status (`HEALTHY`, `DRAINING`, ...).
    Present(String),
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Admin {
            addr: addr.to_owned(),
            message: "not an address (want HOST:PORT)".into(),
        })
}

/// `GET path` on the admin interface; the body on 200.
pub fn get(addr: &str, path: &str) -> Result<Vec<u8>> {
    let err = |m: String| Error::Admin {
        addr: addr.to_owned(),
        message: m,
    };
    let sa = resolve(addr)?;
    let (status, body) =
        request(sa, "GET", path, Duration::from_secs(5)).map_err(|e| err(e.to_string()))?;
    if status != 200 {
        return Err(err(format!("GET {path}: HTTP {status}")));
    }
    Ok(body)
}

/// One HTTP/1.1 request without a body on a fresh connection
/// (`connection: close`): the status and the body, de-chunked. The admin
/// client of stickyctl and of the real-Envoy harness (sticky-e2e).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    read_timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let io = |what: &str, e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| io("connect", e))?;
    s.set_read_timeout(Some(read_timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    )
    .map_err(|e| io("write", e))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| io("read", e))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "no HTTP response"))?;
    let head = String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.get(end.saturating_add(4)..).unwrap_or_default();
    Ok((
        status,
        if head.contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_vec()
        },
    ))
}

/// The payload of a `transfer-encoding: chunked` body (stops at the last
/// chunk or at the first malformed one).
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(b.get(..nl).unwrap_or_default()).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl.saturating_add(2);
        let Some(chunk) = b.get(start..start.saturating_add(size)) else {
            break;
        };
        out.extend_from_slice(chunk);
        b = b
            .get(start.saturating_add(size).saturating_add(2)..)
            .unwrap_or_default();
    }
    out
}

/// The state of `host` ("ip:port") in `cluster`, from `/clusters?format=json`.
pub fn host_state(addr: &str, cluster: &str, ip: &str, port: u16) -> Result<HostState> {
    let body = get(addr, "/clusters?format=json")?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| Error::Admin {
        addr: addr.to_owned(),
        message: format!("/clusters is not JSON: {e}"),
    })?;
    let statuses = v["cluster_statuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(c) = statuses.iter().find(|c| c["name"] == cluster) else {
        return Err(Error::Admin {
            addr: addr.to_owned(),
            message: format!("Envoy has no cluster {cluster:?}"),
        });
    };
    let hosts = c["host_statuses"].as_array().cloned().unwrap_or_default();
    Ok(hosts
        .iter()
        .find(|h| {
            let sa = &h["address"]["socket_address"];
            sa["address"] == ip && sa["port_value"].as_u64() == Some(u64::from(port))
        })
        .map_or(HostState::Absent, |h| {
            HostState::Present(
                h["health_status"]["eds_health_status"]
                    .as_str()
                    .unwrap_or("UNKNOWN")
                    .to_owned(),
            )
        }))
}

/// Polls until `want` holds for the host; returns the time since `since`.
pub fn wait_for(
    addr: &str,
    cluster: &str,
    ip: &str,
    port: u16,
    since: Instant,
    timeout: Duration,
    want: impl Fn(&HostState) -> bool,
) -> Result<Duration> {
    loop {
        let state = host_state(addr, cluster, ip, port)?;
        if want(&state) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > timeout {
            return Err(Error::Admin {
                addr: addr.to_owned(),
                message: format!(
                    "Envoy did not apply the change within {} ms (host is {state:?})",
                    timeout.as_millis()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn dechunk_joins_chunks_and_stops_at_the_last() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b"a\r\nshort"), b"");
        assert_eq!(dechunk(b""), b"");
    }
}
