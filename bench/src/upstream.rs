//! The benchmark's upstream: a minimal HTTP/1.1 server on loopback that
//! answers every request with the same small response, so the backends cost
//! far less than the proxy under test and are never the bottleneck.
//!
//! Why this and not the e2e `Backend`: that one parses every header into a
//! `String` and keeps per-session state under a mutex, which is right for
//! proving who answered and wrong for a throughput baseline. Why not Envoy's
//! `direct_response` on a second listener: in the same Envoy it would spend
//! the measured worker's own CPU on the upstream side and dilute every ratio;
//! in a second Envoy it costs several times more CPU per request than this
//! loop (full HCM, router, stats), CPU the 2-core machine needs for the
//! proxy under test. One thread per upstream connection is plenty: Envoy
//! keeps a pool of at most one connection per concurrent request.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// The response every request gets: names the upstream (`x-upstream: port`)
/// so tests can tell who answered; `extra` is more header lines.
fn response(port: u16, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-upstream: {port}\r\n{extra}content-length: 3\r\n\r\nok\n"
    )
    .into_bytes()
}
/// A request head larger than this closes the connection.
const MAX_HEAD: usize = 64 * 1024;

/// A running upstream; stops accepting when dropped.
pub struct Upstream {
    /// Its name in the fleet (`v1-0`).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    stopped: Arc<AtomicBool>,
}

impl Upstream {
    /// Starts upstream `name` on an ephemeral loopback port whose responses
    /// also carry `extra` header lines (each ending in `\r\n`; usually empty).
    pub fn start_with(name: &str, extra: &str) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let answer: Arc<[u8]> = response(addr.port(), extra).into();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        thread::Builder::new()
            .name(format!("upstream-{}", addr.port()))
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let answer = answer.clone();
                        let _ = thread::Builder::new()
                            .name("upstream-conn".into())
                            .spawn(move || serve(conn, &answer));
                    }
                }
            })?;
        Ok(Self {
            name: name.to_owned(),
            addr,
            stopped,
        })
    }
}

impl sticky_e2e::fleet::Upstream for Upstream {
    fn name(&self) -> &str {
        &self.name
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Stops accepting; connections already open are served until they close.
    fn kill(&mut self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(self.addr);
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        sticky_e2e::fleet::Upstream::kill(self);
    }
}

/// Answers requests until the peer closes; pipelined requests are answered
/// in one write.
fn serve(mut conn: TcpStream, answer: &[u8]) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0usize;
    let mut out = Vec::with_capacity(answer.len() * 4);
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD {
                return;
            }
            buf.resize(buf.len() * 2, 0);
        }
        let Some(free) = buf.get_mut(filled..) else {
            return;
        };
        match conn.read(free) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        let mut consumed = 0usize;
        while let Some(len) = buf.get(consumed..filled).and_then(request_len) {
            consumed += len;
            out.extend_from_slice(answer);
        }
        if !out.is_empty() {
            if conn.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
    }
}

/// Length of the first complete request (head + content-length body) in
/// `data`, or `None` if it is not complete yet.
fn request_len(data: &[u8]) -> Option<usize> {
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = data.get(..head_end)?;
    let body = content_length(head);
    let total = head_end.checked_add(body)?;
    (total <= data.len()).then_some(total)
}

fn content_length(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(colon);
            if !name.eq_ignore_ascii_case(b"content-length") {
                return None;
            }
            std::str::from_utf8(value.get(1..)?)
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .next()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_len_waits_for_the_whole_head_and_body() {
        assert_eq!(request_len(b"GET / HTTP/1.1\r\nhost: a\r\n"), None);
        assert_eq!(request_len(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        let post = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(request_len(post), None);
        let post = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(request_len(post), Some(post.len()));
    }

    #[test]
    fn answers_pipelined_requests() {
        let up = Upstream::start_with("v1-0", "").unwrap();
        let mut c = TcpStream::connect(up.addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
            .unwrap();
        let one = response(up.addr.port(), "");
        let mut got = vec![0u8; one.len() * 2];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, [one.clone(), one].concat());
    }
}
