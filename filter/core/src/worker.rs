//! What one worker (one wasm VM, or one Envoy worker thread for the native
//! build) keeps between requests: the drain cache and the opened-token cache.

use crate::drain::DrainCache;
use crate::token_cache::TokenCache;

/// Per-worker state, created empty with each configuration.
#[derive(Debug, Default)]
pub struct Worker {
    /// Drain state of upstream hosts.
    pub drain: DrainCache,
    /// Tokens that opened, by their exact bytes.
    pub tokens: TokenCache,
}
