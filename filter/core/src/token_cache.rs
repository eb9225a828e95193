//! A per-worker cache of opened tokens. A session presents the same token on
//! every request until it is refreshed, and opening one (base64, the AEAD,
//! the protobuf) is most of the filter's compute on the pinned path. The
//! cache maps the exact token bytes to what the token said; only tokens that
//! opened are stored, lifetime and allow-list checks still run on every
//! request, and a new configuration (new keys) starts with an empty cache.

use crate::bytes;
use crate::shard::fnv1a64;
use crate::token::Claims;

/// Number of slots (direct-mapped: a colliding token replaces the slot).
pub const SLOTS: usize = 1024;
const _: () = assert!(SLOTS == 1024, "slot() masks with SLOTS - 1");

struct Entry {
    token: Box<[u8]>,
    claims: Claims,
}

/// Token bytes → opened claims, bounded to [`SLOTS`] entries.
#[derive(Default)]
pub struct TokenCache {
    slots: Vec<Option<Entry>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.slots.iter().filter(|s| s.is_some()).count();
        f.debug_struct("TokenCache").field("used", &used).finish()
    }
}

/// Bytes at the end of a token that pick its slot: a sealed token ends in
/// its AEAD tag, 16 random-looking bytes (about 22 base64 characters), so
/// hashing more of it spreads slots no better and costs more on every
/// request. Other values only collide more, and a hit compares every byte.
const SLOT_TAIL: usize = 24;

fn slot(token: &[u8]) -> usize {
    let tail = token
        .get(token.len().saturating_sub(SLOT_TAIL)..)
        .unwrap_or(token);
    // SLOTS is a power of two: the low bits of the hash pick the slot.
    usize::try_from(fnv1a64(tail) & 1023).unwrap_or(0)
}

impl TokenCache {
    /// The claims of `token` if it opened before.
    pub fn get(&self, token: &[u8]) -> Option<&Claims> {
        match self.slots.get(slot(token)) {
            Some(Some(e)) if bytes::same(&e.token, token) => Some(&e.claims),
            _ => None,
        }
    }

    /// Remembers that `token` opened to `claims`.
    pub fn insert(&mut self, token: &[u8], claims: &Claims) {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        if let Some(s) = self.slots.get_mut(slot(token)) {
            *s = Some(Entry {
                token: token.into(),
                claims: claims.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(host: &str) -> Claims {
        Claims {
            cluster: "v1".into(),
            host: host.into(),
            ..Claims::default()
        }
    }

    #[test]
    fn remembers_exact_tokens_only() {
        let mut c = TokenCache::default();
        assert!(c.get(b"tok").is_none());
        c.insert(b"tok", &claims("10.0.0.1:80"));
        assert_eq!(c.get(b"tok").map(|c| c.host.as_str()), Some("10.0.0.1:80"));
        assert!(c.get(b"tok2").is_none());
        assert!(c.get(b"to").is_none());
    }

    #[test]
    fn tokens_differing_only_before_the_tail_are_told_apart() {
        let mut c = TokenCache::default();
        let tail = "T".repeat(SLOT_TAIL);
        c.insert(format!("a{tail}").as_bytes(), &claims("10.0.0.1:80"));
        assert!(c.get(format!("b{tail}").as_bytes()).is_none());
        c.insert(format!("b{tail}").as_bytes(), &claims("10.0.0.2:80"));
        assert_eq!(
            c.get(format!("b{tail}").as_bytes())
                .map(|c| c.host.as_str()),
            Some("10.0.0.2:80")
        );
    }

    #[test]
    fn is_bounded() {
        let mut c = TokenCache::default();
        for i in 0..(SLOTS * 4) {
            c.insert(format!("t{i}").as_bytes(), &claims("10.0.0.1:80"));
        }
        assert!(c.slots.len() == SLOTS);
        let hits = (0..(SLOTS * 4))
            .filter(|i| c.get(format!("t{i}").as_bytes()).is_some())
            .count();
        assert!(hits <= SLOTS);
    }
}
