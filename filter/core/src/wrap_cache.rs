//! Wrap mode's per-worker memory of the token each application id last
//! arrived in. Servers may echo their session id on every response (the
//! official MCP Python SDK does); sealing a fresh token for each echo would
//! cost an AEAD seal per response and, since the client then presents a token
//! the token cache has never seen, an AEAD open per request. With this
//! memory, an echo of an unchanged session gets back the very token the
//! request came in with.

use crate::bytes;
use crate::shard::fnv1a64;

/// Number of slots (direct-mapped: a colliding id replaces the slot).
pub const SLOTS: usize = 256;
const _: () = assert!(SLOTS == 256, "slot() masks with SLOTS - 1");

struct Entry {
    app_id: Box<[u8]>,
    token: Box<[u8]>,
}

/// Application id → the token it last arrived in, bounded to [`SLOTS`].
#[derive(Default)]
pub struct WrapCache {
    slots: Vec<Option<Entry>>,
}

impl std::fmt::Debug for WrapCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.slots.iter().filter(|s| s.is_some()).count();
        f.debug_struct("WrapCache").field("used", &used).finish()
    }
}

fn slot(app_id: &[u8]) -> usize {
    usize::try_from(fnv1a64(app_id) & 255).unwrap_or(0)
}

impl WrapCache {
    /// The token `app_id` last arrived in, if remembered.
    pub fn get(&self, app_id: &[u8]) -> Option<&[u8]> {
        match self.slots.get(slot(app_id)) {
            Some(Some(e)) if bytes::same(&e.app_id, app_id) => Some(&e.token),
            _ => None,
        }
    }

    /// Remembers that `app_id` arrived in `token`.
    pub fn insert(&mut self, app_id: &[u8], token: &[u8]) {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        if let Some(s) = self.slots.get_mut(slot(app_id)) {
            if let Some(e) = s
                && bytes::same(&e.app_id, app_id)
                && bytes::same(&e.token, token)
            {
                return;
            }
            *s = Some(Entry {
                app_id: app_id.into(),
                token: token.into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_token_of_each_id_and_is_bounded() {
        let mut c = WrapCache::default();
        assert!(c.get(b"id").is_none());
        c.insert(b"id", b"t1");
        c.insert(b"id", b"t2");
        assert_eq!(c.get(b"id"), Some(&b"t2"[..]));
        assert!(c.get(b"other").is_none());
        for i in 0..(SLOTS * 4) {
            c.insert(format!("id{i}").as_bytes(), b"t");
        }
        assert_eq!(c.slots.len(), SLOTS);
    }
}
