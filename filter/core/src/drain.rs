//! Drain state of upstream hosts, as the control side writes it into endpoint
//! metadata (`filter_metadata.<namespace>.draining` / `.drain_deadline`).
//!
//! The filter can read a host's metadata only in the response phase, and each
//! read is a costly host call. So each worker keeps a small cache: a host's
//! metadata is re-read at most once per check interval, and the request phase
//! consults the cache (no host call) to stop pinning a host whose deadline has
//! passed. See docs/how-it-works.md ("Drain and deadlines") for the whole mechanism.

use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::{Equivalent, HashMap};

use crate::bytes;

/// FNV-1a: host keys are short and trusted (they come from Envoy's own
/// upstream address), so a seeded DoS-resistant hasher buys nothing here,
/// and this one keeps the random-seed machinery out of the wasm module.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Metadata key that marks a host as draining (bool).
pub const DRAINING_KEY: &str = "draining";
/// Metadata key holding the drain deadline (unix seconds, number).
pub const DEADLINE_KEY: &str = "drain_deadline";
/// The cache holds at most this many hosts; when full it starts over.
pub const MAX_HOSTS: usize = 4096;

/// What the metadata says about one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostDrain {
    /// The host takes no new sessions.
    pub draining: bool,
    /// After this instant (unix seconds) the host's sessions move elsewhere.
    pub deadline: Option<u64>,
}

impl HostDrain {
    /// Builds the state from decoded values: a deadline implies draining.
    pub fn new(draining: bool, deadline: Option<u64>) -> Self {
        Self {
            draining: draining || deadline.is_some(),
            deadline,
        }
    }

    /// Builds the state from the two raw metadata values as Envoy's property
    /// API returns them (see [`decode_deadline`] and [`decode_bool`]).
    pub fn from_metadata(draining: Option<&[u8]>, deadline: Option<&[u8]>) -> Self {
        Self::new(
            draining.is_some_and(decode_bool),
            deadline.and_then(decode_deadline),
        )
    }

    /// Whether the deadline has passed at `now`: the host's sessions must move.
    pub fn expired(&self, now: u64) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
}

/// Decodes a deadline property value: 8 bytes little-endian f64 (a JSON
/// number in metadata), or ASCII digits (a string). Negative, fractional
/// parts, NaN and infinities are handled: NaN/negative/inf mean "no usable
/// deadline"; a deadline in the far past means "already passed".
pub fn decode_deadline(raw: &[u8]) -> Option<u64> {
    if !raw.is_empty() && raw.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(raw).ok()?.parse::<u64>().ok();
    }
    let bytes: [u8; 8] = raw.try_into().ok()?;
    deadline_of_number(f64::from_le_bytes(bytes))
}

/// A deadline from a metadata number (unix seconds): NaN, negative and
/// infinite values mean "no usable deadline"; fractions are cut.
pub fn deadline_of_number(value: f64) -> Option<u64> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    // Saturates at u64::MAX for huge values: "never" in practice.
    #[allow(
        clippy::as_conversions,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    Some(value as u64)
}

/// Decodes a bool property value: one byte (a JSON bool), or the string "true".
pub fn decode_bool(raw: &[u8]) -> bool {
    matches!(raw, [1] | b"true" | b"True" | b"TRUE")
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: HostDrain,
    checked_at: u64,
}

/// A host ("ip:port") looked up in the cache: hashed as the key is, and
/// compared with [`bytes::same`] (slice `==` is a byte loop in wasm: about
/// 160 instructions more per lookup, two lookups per pinned request).
#[derive(Hash)]
struct HostKey<'a>(&'a [u8]);

impl Equivalent<Box<[u8]>> for HostKey<'_> {
    fn equivalent(&self, key: &Box<[u8]>) -> bool {
        bytes::same(self.0, key)
    }
}

/// Per-worker cache of host drain state, keyed by "ip:port".
#[derive(Debug, Default)]
pub struct DrainCache {
    hosts: HashMap<Box<[u8]>, Entry, BuildHasherDefault<Fnv>>,
}

impl DrainCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached state of `host`, if known.
    pub fn get(&self, host: &[u8]) -> Option<HostDrain> {
        self.hosts.get(&HostKey(host)).map(|e| e.state)
    }

    /// Whether `host`'s deadline has passed at `now`, as far as the cache knows.
    pub fn expired(&self, host: &[u8], now: u64) -> bool {
        self.get(host).is_some_and(|s| s.expired(now))
    }

    /// The cached state of `host` if it was read less than `interval`
    /// seconds before `now`; `None` when its metadata must be read again.
    /// One lookup where asking whether a check is due and then for the
    /// state took two, on every response.
    pub fn fresh(&self, host: &[u8], now: u64, interval: u64) -> Option<HostDrain> {
        self.hosts
            .get(&HostKey(host))
            .filter(|e| now.saturating_sub(e.checked_at) < interval)
            .map(|e| e.state)
    }

    /// Records what the metadata of `host` said at `now`.
    pub fn record(&mut self, host: &[u8], state: HostDrain, now: u64) {
        if let Some(entry) = self.hosts.get_mut(&HostKey(host)) {
            *entry = Entry {
                state,
                checked_at: now,
            };
            return;
        }
        if self.hosts.len() >= MAX_HOSTS {
            // Hosts churn; a full cache is mostly stale. Re-reading is cheap.
            self.hosts.clear();
        }
        self.hosts.insert(
            host.into(),
            Entry {
                state,
                checked_at: now,
            },
        );
    }

    /// Number of cached hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

#[cfg(test)]
mod tests;
