//! A minimal HTTP/1.1 client that can send any bytes (hostile tests), and a
//! browser-like session with a cookie jar or a session header.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercase.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// First value of a header, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// All values of a header.
    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The status line and headers as text, for assertion messages.
    pub fn head(&self) -> String {
        let mut out = format!("HTTP {}", self.status);
        for (k, v) in &self.headers {
            out.push_str(&format!("\n{k}: {}", String::from_utf8_lossy(v)));
        }
        out
    }

    /// The backend that answered (`x-backend`), if a backend did.
    pub fn backend(&self) -> Option<String> {
        self.header("x-backend")
    }

    /// The backend's per-session counter.
    pub fn count(&self) -> Option<u64> {
        self.header("x-session-count").and_then(|c| c.parse().ok())
    }
}

/// Sends one GET on a fresh connection (`connection: close`).
pub fn send(addr: SocketAddr, path: &str, headers: &[(&[u8], &[u8])]) -> std::io::Result<Response> {
    request(addr, "GET", path, headers, b"")
}

/// Sends one request with a body on a fresh connection (`connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut req = Vec::with_capacity(256 + body.len());
    req.extend_from_slice(
        format!("{method} {path} HTTP/1.1\r\nhost: sticky.test\r\nconnection: close\r\n")
            .as_bytes(),
    );
    if !body.is_empty() || method != "GET" {
        req.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    for (k, v) in headers {
        req.extend_from_slice(k);
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(&req)?;
    read_response(&mut s)
}

/// Reads one response: headers, then `content-length` bytes of body (or to
/// EOF without one). Never waits for the server to close a connection it may
/// keep open, and gives up after 20 s in all.
fn read_response(s: &mut TcpStream) -> std::io::Result<Response> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse(&raw[..end + 4])?;
            if let Some(len) = head
                .header("content-length")
                .and_then(|l| l.parse::<usize>().ok())
                && raw.len() >= end + 4 + len
            {
                raw.truncate(end + 4 + len);
                return parse(&raw);
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "response not complete after 20 s",
            ));
        }
        match s.read(&mut chunk) {
            Ok(0) => return parse(&raw),
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad HTTP response");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// A client session: a cookie jar, or a session header for cookie-less clients.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Cookies by name.
    pub jar: BTreeMap<String, String>,
    /// Header mode: the session header's name, and the token once issued.
    pub header: Option<(String, Option<String>)>,
    /// Sent as `x-session-id` so backends count per session.
    pub id: String,
    /// Extra headers sent on every request.
    pub extra: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Session {
    /// A cookie-jar session with a backend-visible id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// A header-mode session (never sends or keeps cookies).
    pub fn header_mode(id: impl Into<String>, header: &str) -> Self {
        Self {
            id: id.into(),
            header: Some((header.to_owned(), None)),
            ..Self::default()
        }
    }

    /// The headers this session sends.
    pub fn headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut h = vec![(b"x-session-id".to_vec(), self.id.clone().into_bytes())];
        match &self.header {
            Some((name, Some(token))) => {
                h.push((name.clone().into_bytes(), token.clone().into_bytes()))
            }
            Some((_, None)) => {}
            None if !self.jar.is_empty() => {
                let cookie: Vec<String> =
                    self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
                h.push((b"cookie".to_vec(), cookie.join("; ").into_bytes()));
            }
            None => {}
        }
        h.extend(self.extra.iter().cloned());
        h
    }

    /// Sends a request and absorbs `Set-Cookie` / the session header.
    pub fn get(&mut self, addr: SocketAddr) -> std::io::Result<Response> {
        let headers = self.headers();
        let refs: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let r = send(addr, "/", &refs)?;
        self.absorb(&r);
        Ok(r)
    }

    /// Takes the session state a response hands out.
    pub fn absorb(&mut self, r: &Response) {
        match &mut self.header {
            Some((name, token)) => {
                if let Some(t) = r.header(name) {
                    *token = Some(t);
                }
            }
            None => {
                for sc in r.headers_named("set-cookie") {
                    let pair = sc.split(';').next().unwrap_or_default();
                    if let Some((k, v)) = pair.split_once('=') {
                        self.jar.insert(k.trim().to_owned(), v.trim().to_owned());
                    }
                }
            }
        }
    }
}
