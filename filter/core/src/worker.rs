//! What one worker (one wasm VM, or one Envoy worker thread for the native
//! build) keeps between requests: the drain cache, the opened-token cache and
//! the gate that keeps per-request warnings from flooding the proxy's log.

use crate::drain::DrainCache;
use crate::token_cache::TokenCache;
use crate::wrap_cache::WrapCache;

/// Per-worker state, created empty with each configuration.
#[derive(Debug, Default)]
pub struct Worker {
    /// Drain state of upstream hosts.
    pub drain: DrainCache,
    /// Tokens that opened, by their exact bytes.
    pub tokens: TokenCache,
    /// Wrap mode: the token each application id last arrived in.
    pub wrapped: WrapCache,
    /// Rate limit of per-request warnings.
    pub warnings: LogGate,
}

/// Lets one warning through per [`LogGate::INTERVAL_SECONDS`] and counts
/// the ones it held back, so a flood of bad requests costs one log line.
#[derive(Debug, Default)]
pub struct LogGate {
    next_at: u64,
    held: u64,
}

impl LogGate {
    /// Seconds between two warnings of one worker.
    pub const INTERVAL_SECONDS: u64 = 10;

    /// `Some(held back since the last one)` when a warning may be written now.
    pub fn allow(&mut self, now: u64) -> Option<u64> {
        if now < self.next_at {
            self.held = self.held.saturating_add(1);
            return None;
        }
        self.next_at = now.saturating_add(Self::INTERVAL_SECONDS);
        Some(std::mem::take(&mut self.held))
    }
}
