//! A stateful demo backend on 127.0.0.1: answers every request with its name,
//! and keeps a counter per session (header `x-session-id`), so a session that
//! lost its backend shows as a counter that restarted at 1. Asked with
//! `x-test-reflect-internal`, it answers with sticky's internal headers
//! (`x-sticky-cluster`, `x-sticky-host` naming itself), as a misbehaving
//! application could: the filter must keep them from clients. Under `/mcp` it
//! is a streamable-HTTP MCP server instead ([`crate::mcp`]): it mints its own
//! session ids and answers 404 to ids it did not mint.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A running backend.
pub struct Backend {
    /// Its name, reported in `x-backend` and the body.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    stopped: AtomicBool,
    requests: AtomicU64,
    sessions: Mutex<HashMap<String, u64>>,
    conns: Mutex<Vec<TcpStream>>,
    /// Internal header names a request must not carry when it arrives here.
    leaks: AtomicU64,
    /// The MCP server's sessions.
    mcp: Mutex<crate::mcp::Sessions>,
}

impl Backend {
    /// Starts a backend on an ephemeral loopback port.
    pub fn start(name: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let name = name.to_owned();
        let (st, nm) = (state.clone(), name.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(c) = conn.try_clone()
                    && let Ok(mut conns) = st.conns.lock()
                {
                    conns.push(c);
                }
                let (st, nm) = (st.clone(), nm.clone());
                thread::spawn(move || serve(conn, &nm, &st));
            }
        });
        Ok(Self { name, addr, state })
    }

    /// "127.0.0.1:port".
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests that arrived carrying an internal sticky header.
    pub fn leaks(&self) -> u64 {
        self.state.leaks.load(Ordering::SeqCst)
    }

    /// What the MCP server under `/mcp` minted and received so far.
    pub fn mcp(&self) -> crate::mcp::Sessions {
        self.state
            .mcp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops accepting and resets every open connection: a killed process.
    pub fn kill(&self) {
        if self.state.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(mut conns) = self.state.conns.lock() {
            for c in conns.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(conn: TcpStream, name: &str, state: &State) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut out = write_half;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let path = words.next().unwrap_or_default().to_owned();
        let mut mcp_id: Option<Vec<u8>> = None;
        let mut id_length: Option<usize> = None;
        let mut session = String::new();
        let mut length = 0usize;
        let mut close = false;
        let mut leaked = false;
        let mut reflect = false;
        loop {
            let mut h = Vec::new();
            match reader.read_until(b'\n', &mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if h.len() > 15 && h[..15].eq_ignore_ascii_case(b"mcp-session-id:") {
                // Kept as bytes: the test checks them byte for byte.
                let value = h[15..].trim_ascii().to_vec();
                mcp_id = Some(value);
            }
            let h = String::from_utf8_lossy(&h);
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((k, v)) = h.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "x-session-id" => session = v.to_owned(),
                "content-length" => length = v.parse().unwrap_or(0),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                "x-sticky-host" | "x-sticky-cluster" => leaked = true,
                "x-test-id-length" => id_length = v.parse().ok(),
                "x-test-reflect-internal" => reflect = true,
                _ => {}
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        state.requests.fetch_add(1, Ordering::SeqCst);
        if leaked {
            state.leaks.fetch_add(1, Ordering::SeqCst);
        }
        if path.starts_with("/mcp") {
            let mut sessions = state.mcp.lock().unwrap_or_else(|e| e.into_inner());
            let response = sessions.answer(name, &method, mcp_id.as_deref(), id_length, &body);
            drop(sessions);
            if out.write_all(&response).is_err() || close {
                return;
            }
            continue;
        }
        let count = if session.is_empty() {
            0
        } else {
            let mut s = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let c = s.entry(session).or_insert(0);
            *c += 1;
            *c
        };
        let payload = format!("{{\"backend\":\"{name}\",\"count\":{count}}}\n");
        let internal = if reflect {
            reflected_internal_headers(name, out.local_addr().ok())
        } else {
            String::new()
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-backend: {name}\r\nx-session-count: {count}\r\n{internal}content-length: {}\r\n\r\n{payload}",
            payload.len()
        );
        if out.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Response header lines naming this backend as sticky's internal headers
/// would: its cluster (the name without the `-N` suffix) and base64("ip:port").
fn reflected_internal_headers(name: &str, addr: Option<SocketAddr>) -> String {
    use base64::Engine as _;
    let cluster = name.rsplit_once('-').map_or(name, |(c, _)| c);
    let host = addr.map(|a| a.to_string()).unwrap_or_default();
    let host = base64::engine::general_purpose::STANDARD.encode(host);
    format!("x-sticky-cluster: {cluster}\r\nx-sticky-host: {host}\r\n")
}
