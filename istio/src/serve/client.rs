//! The client side of the admin API, for `stickyctl endpoints ... --server`:
//! one `POST /endpoints` over a plain TCP connection (no HTTP client crate
//! for one request).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::serve::source::edit::Change;

/// Sends `change` to the control plane's admin address; its JSON answer.
pub fn send(server: &str, change: &Change) -> Result<Value> {
    let err = |m: String| Error::Admin {
        addr: server.to_owned(),
        message: m,
    };
    let addr = server
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| err("not an address (want HOST:PORT)".into()))?;
    let body = serde_json::to_string(change).map_err(|e| err(e.to_string()))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| err(format!("connect: {e}")))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "POST /endpoints HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())
        .map_err(|e| err(format!("send: {e}")))?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)
        .map_err(|e| err(format!("read: {e}")))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| err("malformed HTTP response".into()))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let value: Value = serde_json::from_str(body.trim())
        .map_err(|e| err(format!("HTTP {status}, body not JSON: {e}")))?;
    if status == "200" {
        Ok(value)
    } else {
        Err(err(format!(
            "refused: {}",
            value["error"].as_str().unwrap_or(body)
        )))
    }
}
