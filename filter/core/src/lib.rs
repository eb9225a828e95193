//! sticky's core: configuration, the sealed session token, cookie parsing and
//! the session decisions, with no dependency on proxy-wasm or Envoy. The wasm
//! and native builds adapt [`host::Host`], keep a [`plugin::Plugin`] per
//! filter configuration and call its per-stream entry points.

#![forbid(unsafe_code)]

/// sticky's version, written in the start-up log line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod addr;
pub mod b64;
pub mod bytes;
pub mod config;
pub mod cookie;
pub mod drain;
pub mod edits;
pub mod filter;
pub mod host;
pub mod json;
pub mod keys;
pub mod legacy;
pub mod metrics;
pub mod plugin;
pub mod session;
pub mod shard;
pub mod source;
pub mod token;
pub mod token_cache;
pub mod worker;
pub mod wrap;
pub mod wrap_cache;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
