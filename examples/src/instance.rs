//! Demo instances as real processes: `sticky-cart` or `sticky-counter`
//! started on an ephemeral loopback port, stopped by their PID (SIGKILL, as a
//! crashed or evicted pod) when asked or when the handle drops.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::Identity;

/// Which demo service an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sticky-cart`: HTTP/1.1 (and h2c) shopping cart.
    Cart,
    /// `sticky-counter`: gRPC over h2c.
    Counter,
}

/// Where the service binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `sticky-cart`.
    pub cart: PathBuf,
    /// `sticky-counter`.
    pub counter: PathBuf,
}

impl Binaries {
    /// The binaries built beside the running executable (`cargo build
    /// --bins`), unless `STICKY_CART_BIN` / `STICKY_COUNTER_BIN` name others.
    pub fn beside_current_exe() -> Result<Self, String> {
        let dir = std::env::current_exe()
            .map_err(|e| format!("current executable: {e}"))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let find = |var: &str, name: &str| {
            let hint = format!(
                "build it with `cargo build --release -p sticky-examples --bins`, or set {var}"
            );
            sticky_e2e::locate(var, dir.join(name), &hint)
        };
        Ok(Self {
            cart: find("STICKY_CART_BIN", "sticky-cart")?,
            counter: find("STICKY_COUNTER_BIN", "sticky-counter")?,
        })
    }

    /// The binary of `kind`.
    pub fn path(&self, kind: Kind) -> &Path {
        match kind {
            Kind::Cart => &self.cart,
            Kind::Counter => &self.counter,
        }
    }
}

/// A running demo instance.
pub struct Instance {
    /// Who it is.
    pub identity: Identity,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    killed: bool,
}

impl Instance {
    /// Starts `bin` on 127.0.0.1 port 0 and waits (at most 10 s) for the
    /// `listening on ADDR` line.
    pub fn spawn(bin: &Path, identity: Identity) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .args(["--name", &identity.name, "--version", &identity.version])
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not report its address (got {line:?})",
                identity.name
            ));
        };
        Ok(Self {
            identity,
            addr,
            child,
            killed: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it was killed.
    pub fn is_killed(&self) -> bool {
        self.killed
    }

    /// SIGKILL by PID and reap: its in-memory sessions are gone.
    pub fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl sticky_e2e::fleet::Upstream for Instance {
    fn name(&self) -> &str {
        &self.identity.name
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn kill(&mut self) {
        Instance::kill(self);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
