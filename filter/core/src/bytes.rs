//! Equality of the byte strings the caches compare whole on every request
//! (sealed tokens, application ids): eight bytes at a time, with no early
//! exit. Slice `==` is a byte loop in the wasm build (compiler-builtins'
//! `memcmp`): about 13 wasm instructions per byte, some 2,300 for one sealed
//! token on the pinned path (`make fuel-profile`).

/// Whether `a` and `b` hold the same bytes. Reads every byte of both when
/// their lengths match, so the time depends on the lengths alone.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Plain loops: iterator adapters are not inlined at the wasm's
    // opt-level "z" and cost more than the comparison of a short key.
    let (mut a, mut b) = (a, b);
    let mut diff = 0u64;
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        diff |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
        (a, b) = (rest_a, rest_b);
    }
    while let (Some((x, rest_a)), Some((y, rest_b))) = (a.split_first(), b.split_first()) {
        diff |= u64::from(x ^ y);
        (a, b) = (rest_a, rest_b);
    }
    diff == 0
}

#[cfg(test)]
mod tests;
