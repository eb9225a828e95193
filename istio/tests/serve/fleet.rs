//! A fleet under steady traffic: "pods" that answer both HTTP/1.1 (for
//! Envoy) and gRPC (for proxyless clients) on one address, and traffic loops
//! that record, per request, which pod served which session.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sticky_e2e::backend::Backend;
use sticky_e2e::client::Session;

use super::{GrpcBackend, Proc, peer_script, python};

/// Unix time now, in seconds with fractions.
pub fn unix_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One pod: an HTTP backend and a grpcio backend of the same name behind one
/// address (a pod with one port), chosen per connection by its first bytes
/// (the HTTP/2 preface `PRI * HTTP/2.0` is gRPC).
pub struct Pod {
    pub name: String,
    pub addr: SocketAddr,
    stopped: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    http: Backend,
    grpc: Mutex<GrpcBackend>,
}

impl Pod {
    pub fn start(name: &str) -> Self {
        let http = Backend::start(name).unwrap();
        let grpc = GrpcBackend::start(name);
        let grpc_addr: SocketAddr = grpc.addr.parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (st, cs, http_addr) = (stopped.clone(), conns.clone(), http.addr);
        thread::spawn(move || {
            for down in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(down) = down else { continue };
                let cs = cs.clone();
                thread::spawn(move || splice(down, http_addr, grpc_addr, &cs));
            }
        });
        Self {
            name: name.to_owned(),
            addr,
            stopped,
            conns,
            http,
            grpc: Mutex::new(grpc),
        }
    }

    /// "127.0.0.1:PORT".
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The pod dies: its port refuses, its connections close, its processes end.
    pub fn kill(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = TcpStream::connect(self.addr);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        self.http.kill();
        let _ = self.grpc.lock().unwrap().proc.0.kill();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.kill();
    }
}

fn splice(down: TcpStream, http: SocketAddr, grpc: SocketAddr, conns: &Mutex<Vec<TcpStream>>) {
    let mut head = [0u8; 3];
    let _ = down.set_read_timeout(Some(Duration::from_secs(5)));
    let mut seen = 0;
    while seen < head.len() {
        match down.peek(&mut head) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen = n,
        }
        if seen < head.len() {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let _ = down.set_read_timeout(None);
    let to = if &head == b"PRI" { grpc } else { http };
    let Ok(up) = TcpStream::connect(to) else {
        return;
    };
    let _ = up.set_nodelay(true);
    let _ = down.set_nodelay(true);
    {
        let mut c = conns.lock().unwrap();
        for s in [&down, &up] {
            if let Ok(s) = s.try_clone() {
                c.push(s);
            }
        }
    }
    let (Ok(mut down_r), Ok(mut up_w)) = (down.try_clone(), up.try_clone()) else {
        return;
    };
    let there = thread::spawn(move || {
        let _ = std::io::copy(&mut down_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let (mut up_r, mut down_w) = (up, down);
    let _ = std::io::copy(&mut up_r, &mut down_w);
    let _ = down_w.shutdown(Shutdown::Write);
    let _ = there.join();
}

/// Which kind of client sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Envoy,
    Grpc,
}

/// Every request's record, shared by the loops and read by the test as it runs.
pub type Log = Arc<Mutex<Vec<Rec>>>;

/// One request's record.
#[derive(Debug, Clone)]
pub struct Rec {
    pub kind: Kind,
    /// Session, unique across the run ("envoy/e3", "grpc-a/g0").
    pub session: String,
    /// A new session's first request.
    pub new: bool,
    /// Sent and answered, unix seconds.
    pub t0: f64,
    pub t: f64,
    pub backend: Option<String>,
    pub error: Option<String>,
}

/// Requests in a loop through two Envoy replicas (alternating: a session
/// is one cookie, whichever replica reads it): `n` sessions in turn, and
/// every `every` requests a new session.
pub struct EnvoyLoop {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl EnvoyLoop {
    pub fn start(log: &Log, name: &str, replicas: [SocketAddr; 2], n: usize, every: usize) -> Self {
        let log = log.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let name = name.to_owned();
        let handle = thread::spawn(move || {
            let mut sessions: Vec<Session> = (0..n)
                .map(|i| Session::new(format!("{name}/e{i}")))
                .collect();
            let (mut i, mut fresh) = (0usize, 0usize);
            while !st.load(Ordering::SeqCst) {
                let addr = replicas[i % 2];
                let new = every > 0 && i % every == every - 1;
                let mut one;
                let s = if new {
                    one = Session::new(format!("{name}/n{fresh}"));
                    fresh += 1;
                    &mut one
                } else {
                    &mut sessions[i % n]
                };
                i += 1;
                let t0 = unix_f64();
                let (backend, error) = match s.get(addr) {
                    Ok(r) if r.status == 200 => (r.backend(), None),
                    Ok(r) => (r.backend(), Some(format!("status {}", r.status))),
                    Err(e) => (None, Some(e.to_string())),
                };
                log.lock().unwrap().push(Rec {
                    kind: Kind::Envoy,
                    session: s.id.clone(),
                    new,
                    t0,
                    t: unix_f64(),
                    backend,
                    error,
                });
                thread::sleep(Duration::from_millis(2));
            }
        });
        Self { stop, handle }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap();
    }
}

/// A proxyless grpcio client process (`grpc_peer.py loop`) on `xds:///TARGET`.
pub struct GrpcLoop {
    _proc: Proc,
    stdin: Option<ChildStdin>,
    handle: JoinHandle<()>,
}

impl GrpcLoop {
    pub fn start(
        log: &Log,
        name: &str,
        bootstrap: &std::path::Path,
        target: &str,
        n: usize,
        every: usize,
    ) -> Self {
        let mut child = Command::new(python())
            .arg(peer_script())
            .args([
                "loop",
                &format!("xds:///{target}"),
                &n.to_string(),
                &every.to_string(),
            ])
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let name = name.to_owned();
        let log = log.clone();
        let handle = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap();
                log.lock().unwrap().push(Rec {
                    kind: Kind::Grpc,
                    session: format!("{name}/{}", v["session"].as_str().unwrap()),
                    new: v["new"].as_bool().unwrap(),
                    t0: v["t0"].as_f64().unwrap(),
                    t: v["t"].as_f64().unwrap(),
                    backend: v["backend"].as_str().map(str::to_owned),
                    error: v["error"].as_str().map(str::to_owned),
                });
            }
        });
        Self {
            _proc: Proc(child),
            stdin,
            handle,
        }
    }

    /// Closes its stdin: it finishes the RPC in flight and exits.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        self.handle.join().unwrap();
    }
}
