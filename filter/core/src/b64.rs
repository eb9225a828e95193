//! Base64 (RFC 4648), the few forms sticky needs: tokens are URL-safe
//! without padding and decoded strictly (canonical only); the host header is
//! standard with padding; key secrets and legacy values are decoded
//! leniently (either alphabet, padding optional).
//!
//! Why not the `base64` crate here: its general-purpose engine costs ~6 KB
//! of wasm, against a module size budget, for four small functions. The tests
//! check this codec against that crate byte for byte.

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const INVALID: u8 = 0xff;

/// Builds a decode table (symbol → 6-bit value, `INVALID` otherwise).
// Evaluated at compile time: a bad index would fail the build, never a request.
#[allow(
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]
const fn table(with_standard: bool) -> [u8; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        t[URL[i] as usize] = i as u8;
        if with_standard {
            t[STD[i] as usize] = i as u8;
        }
        i += 1;
    }
    t
}

/// URL-safe symbols only (strict token decoding).
const DECODE_URL: [u8; 256] = table(false);
/// Both alphabets (lenient decoding).
const DECODE_ANY: [u8; 256] = table(true);

/// Standard alphabet with padding (what Envoy's HeaderBasedSessionState reads).
pub fn encode_standard(input: &[u8]) -> String {
    encode(input, STD, true)
}

/// URL-safe alphabet without padding (tokens).
pub fn encode_url(input: &[u8]) -> String {
    encode(input, URL, false)
}

/// Encodes into a buffer of the final size, then makes the one `String`:
/// pushing `char`s costs a UTF-8 encoding and a capacity check per symbol
/// in wasm (the pinned path's host header: 2,422 → 1,000 instructions; a
/// sealed token: 11,501 → 3,000; `make fuel-profile`).
fn encode(input: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let sym = |v: u32| {
        let i = usize::try_from(v & 63).unwrap_or(0);
        alphabet.get(i).copied().unwrap_or(b'A')
    };
    let mut out = vec![b'='; input.len().div_ceil(3).saturating_mul(4)];
    let mut rest = input;
    let mut dst: &mut [u8] = &mut out;
    while let Some(([a, b, c], tail)) = rest.split_first_chunk::<3>()
        && let Some((quad, more)) = std::mem::take(&mut dst).split_first_chunk_mut::<4>()
    {
        let n = (u32::from(*a) << 16) | (u32::from(*b) << 8) | u32::from(*c);
        *quad = [sym(n >> 18), sym(n >> 12), sym(n >> 6), sym(n)];
        (rest, dst) = (tail, more);
    }
    if let Some(quad) = dst.first_chunk_mut::<4>() {
        match rest {
            [a] => {
                let n = u32::from(*a) << 16;
                *quad = [sym(n >> 18), sym(n >> 12), b'=', b'='];
            }
            [a, b] => {
                let n = (u32::from(*a) << 16) | (u32::from(*b) << 8);
                *quad = [sym(n >> 18), sym(n >> 12), sym(n >> 6), b'='];
            }
            _ => {}
        }
    }
    if !pad {
        out.truncate(input.len().saturating_mul(4).div_ceil(3));
    }
    // Every byte is from the ASCII alphabet or '=': always valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Strict decoding of URL-safe base64 without padding; `None` for anything
/// else, including non-canonical trailing bits.
pub fn decode_url(input: &[u8]) -> Option<Vec<u8>> {
    decode(input, &DECODE_URL)
}

/// Lenient decoding: standard or URL-safe symbols, padding optional.
pub fn decode_any(input: &[u8]) -> Option<Vec<u8>> {
    let unpadded = match input {
        [rest @ .., b'=', b'='] if input.len().is_multiple_of(4) => rest,
        [rest @ .., b'='] if input.len().is_multiple_of(4) => rest,
        _ => input,
    };
    decode(unpadded, &DECODE_ANY)
}

#[allow(clippy::as_conversions, clippy::cast_possible_truncation)]
fn decode(input: &[u8], table: &[u8; 256]) -> Option<Vec<u8>> {
    if input.len() % 4 == 1 {
        return None;
    }
    // `usize::from(u8)` is always < 256: these lookups never fail.
    let v = |c: u8| u32::from(table.get(usize::from(c)).copied().unwrap_or(INVALID));
    let mut out = Vec::with_capacity((input.len() / 4).saturating_mul(3).saturating_add(2));
    let mut quads = input.chunks_exact(4);
    for quad in &mut quads {
        let [a, b, c, d] = *quad else { return None };
        let (a, b, c, d) = (v(a), v(b), v(c), v(d));
        // INVALID has its high bit set; one test covers all four symbols.
        if (a | b | c | d) & 0x80 != 0 {
            return None;
        }
        let n = (a << 18) | (b << 12) | (c << 6) | d;
        out.push((n >> 16) as u8);
        out.push((n >> 8) as u8);
        out.push(n as u8);
    }
    match *quads.remainder() {
        [] => {}
        [a, b] => {
            let (a, b) = (v(a), v(b));
            // 12 bits carry 1 byte; the low 4 bits must be zero (canonical).
            if (a | b) & 0x80 != 0 || b & 0xf != 0 {
                return None;
            }
            out.push(((a << 2) | (b >> 4)) as u8);
        }
        [a, b, c] => {
            let (a, b, c) = (v(a), v(b), v(c));
            // 18 bits carry 2 bytes; the low 2 bits must be zero (canonical).
            if (a | b | c) & 0x80 != 0 || c & 0x3 != 0 {
                return None;
            }
            let n = (a << 12) | (b << 6) | c;
            out.push((n >> 10) as u8);
            out.push((n >> 2) as u8);
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests;
