//! Harness for real-Envoy end-to-end tests: loopback backends that report who
//! answered and keep per-session state, a small HTTP/1.1 client with a cookie
//! jar, and an Envoy process started from a bootstrap rendered by stickyctl.
//! Every process started here is stopped by its PID when its handle drops.

pub mod admin;
pub mod backend;
pub mod build;
pub mod client;
pub mod envoy;
pub mod fleet;
pub mod mcp;
pub mod plan;
pub mod plugin;
pub mod replica;
pub mod rig;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The path in env var `var`, or `default`; when it does not exist, an
/// error naming it and `hint` (how to get it).
pub fn locate(var: &str, default: PathBuf, hint: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os(var).map_or(default, PathBuf::from);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} not found ({hint})", path.display()))
    }
}

/// Path of an artifact from an env var or its default under the root; panics
/// with the command to run when it is missing (tests only).
pub fn artifact(var: &str, default: &str) -> PathBuf {
    let hint = format!("set {var} or run `make setup wasm` first");
    locate(var, root().join(default), &hint).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes a measured table to `results/NAME` when `STICKY_RECORD=1` (the
/// committed numbers the README quotes); otherwise leaves the tree clean.
pub fn record(name: impl AsRef<std::path::Path>, table: impl AsRef<[u8]>) {
    if std::env::var_os("STICKY_RECORD").is_some_and(|v| v == "1") {
        let out = root().join("results");
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::write(out.join(name), table);
    }
}
