//! Key-sharded routing: every request for a key (account, tenant, room) goes
//! to the shard cluster that owns it.
//!
//! The mapping is documented and stable: `shard = jump(fnv1a64(key), N)`,
//! Lamping & Veach's jump consistent hash over the 64-bit FNV-1a hash of the
//! key's raw bytes. Growing N to N+1 moves only the keys the new shard takes
//! (≈ 1/(N+1) of them), where `key mod N` would move ≈ N/(N+1).

use crate::config::KeySource;
use crate::cookie::{self, Candidates};

/// Longest key used; longer keys are cut (they still hash deterministically).
pub const MAX_KEY: usize = 256;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Jump consistent hash: the bucket in `0..buckets` for `key` (0 if `buckets` is 0).
// The algorithm is defined with float arithmetic; every conversion is bounded
// (see below), so the casts cannot truncate or lose meaningful precision.
#[allow(
    clippy::as_conversions,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let step = f64::from(1u32 << 31) / ((key >> 33).wrapping_add(1)) as f64;
        // Bounded: `step` <= 2^31 and `b + 1` <= `buckets`, far inside i64.
        j = (b.wrapping_add(1) as f64 * step) as i64;
    }
    u32::try_from(b.max(0)).unwrap_or(0)
}

/// The shard index of `key` among `shards`.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    let n = u32::try_from(shards).unwrap_or(u32::MAX);
    usize::try_from(jump(fnv1a64(key), n)).unwrap_or(0)
}

/// Extracts the key: `header` is the source header's value (when the source
/// is a header), `cookies` the joined Cookie headers, `path` the `:path`.
pub fn extract<'a>(
    source: &KeySource,
    header: Option<&'a [u8]>,
    cookies: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    let key = match source {
        KeySource::Header(_) => header.map(|h| h.split(|&b| b == b',').next().unwrap_or(h)),
        KeySource::Cookie(name) => {
            let mut found = Candidates::default();
            cookie::find_cookies(cookies?, name.as_bytes(), &mut found);
            found.as_slice().first().copied()
        }
        KeySource::PathSegment(n) => {
            let path = path?;
            let path = path.split(|&b| b == b'?').next().unwrap_or(path);
            path.split(|&b| b == b'/')
                .filter(|s| !s.is_empty())
                .nth(n.saturating_sub(1))
        }
        KeySource::Query(name) => {
            let path = path?;
            let at = path.iter().position(|&b| b == b'?')?;
            let query = path.get(at.saturating_add(1)..)?;
            query.split(|&b| b == b'&').find_map(|pair| {
                let eq = pair.iter().position(|&b| b == b'=')?;
                let (k, v) = pair.split_at(eq);
                (k == name.as_bytes()).then(|| v.get(1..).unwrap_or_default())
            })
        }
    }?;
    let key = trim(key);
    if key.is_empty() {
        return None;
    }
    Some(key.get(..MAX_KEY).unwrap_or(key))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests;
