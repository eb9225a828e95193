//! The session token: a versioned, sealed record of where a session lives.
//!
//! Wire form (then base64url without padding):
//! `[version=1][key id length][key id][24-byte nonce][ciphertext][16-byte tag]`.
//! The version and key id are authenticated as associated data; the payload is
//! the protobuf message [`TokenV1`]. A client can neither read the host nor
//! forge or edit a token. Anything that does not open is a [`Reject`].

use prost::Message as _;

use crate::keys::{Keyring, MAX_KEY_ID, NONCE_LEN, TAG_LEN};

/// The current token format version.
pub const VERSION_1: u8 = 1;
/// Longest encoded token accepted; longer values are rejected unread. Room
/// for a wrapped application session id of up to 1024 bytes.
pub const MAX_TOKEN_CHARS: usize = 2048;

/// What a token says about its session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// The cluster that serves the session.
    pub cluster: String,
    /// The host ("ip:port") that serves it; empty means "any host of the cluster".
    pub host: String,
    /// When the session started (unix seconds).
    pub issued_at: u64,
    /// When this token stops being valid (unix seconds); 0 = no expiry.
    pub expires_at: u64,
    /// When the token was last (re)issued, for the idle timeout (unix seconds).
    pub last_seen: u64,
    /// For key-sharded sessions, the hash of the shard key it was issued for; 0 otherwise.
    pub key_hash: u64,
    /// Wrap mode: the application's own session id (UTF-8), restored into
    /// the request before it reaches the backend; empty otherwise.
    pub app_id: Vec<u8>,
    /// Not part of the token: it opened under a key other than the sealing
    /// (first) key, so the response re-seals it under the sealing key.
    /// Set by [`open`]; [`seal`] ignores it.
    pub sealed_by_old_key: bool,
}

/// Why a token value was not accepted. Every variant means "no session".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not base64url, too short, or a payload that does not decode.
    Malformed,
    /// Longer than [`MAX_TOKEN_CHARS`].
    Oversized,
    /// A version byte this build does not know.
    UnknownVersion,
    /// Sealed with a key id that is not configured (retired or foreign).
    UnknownKey,
    /// The AEAD tag does not verify: edited, forged or truncated.
    Tampered,
    /// Past its expiry, idle timeout or absolute timeout.
    Expired,
    /// Names a cluster that is not on the allow-list.
    UnknownCluster,
    /// Several valid tokens that name different backends.
    Conflict,
}

impl Reject {
    /// Every reason, in metric order.
    pub const ALL: [Reject; 8] = [
        Reject::Malformed,
        Reject::Oversized,
        Reject::UnknownVersion,
        Reject::UnknownKey,
        Reject::Tampered,
        Reject::Expired,
        Reject::UnknownCluster,
        Reject::Conflict,
    ];

    /// Short name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Oversized => "oversized",
            Self::UnknownVersion => "unknown_version",
            Self::UnknownKey => "unknown_key",
            Self::Tampered => "tampered",
            Self::Expired => "expired",
            Self::UnknownCluster => "unknown_cluster",
            Self::Conflict => "conflict",
        }
    }
}

/// The v1 payload. Field numbers are part of the format: never reuse one.
#[derive(Clone, PartialEq, prost::Message)]
struct TokenV1 {
    #[prost(string, tag = "1")]
    cluster: String,
    #[prost(string, tag = "2")]
    host: String,
    #[prost(uint64, tag = "3")]
    issued_at: u64,
    #[prost(uint64, tag = "4")]
    expires_at: u64,
    #[prost(uint64, tag = "5")]
    last_seen: u64,
    #[prost(uint64, tag = "6")]
    key_hash: u64,
    /// A string, not bytes: prost's bytes codec costs ~5 KB of wasm, and
    /// wrap mode only wraps UTF-8 ids (MCP's are visible ASCII).
    #[prost(string, tag = "7")]
    app_id: String,
}

/// Seals `claims` with the keyring's first key. `None` if the keyring is
/// empty or the application id is not UTF-8.
pub fn seal(claims: &Claims, keys: &Keyring, nonce: &[u8; NONCE_LEN]) -> Option<String> {
    let key = keys.sealing()?;
    let kid = key.id().as_bytes();
    let kid_len = u8::try_from(kid.len()).ok()?;
    let payload = TokenV1 {
        cluster: claims.cluster.clone(),
        host: claims.host.clone(),
        issued_at: claims.issued_at,
        expires_at: claims.expires_at,
        last_seen: claims.last_seen,
        key_hash: claims.key_hash,
        app_id: String::from_utf8(claims.app_id.clone()).ok()?,
    };
    let mut body = Vec::with_capacity(payload.encoded_len().saturating_add(TAG_LEN));
    payload.encode(&mut body).ok()?;
    let mut aad = [0u8; 2 + MAX_KEY_ID];
    let aad_len = kid.len().saturating_add(2);
    let aad = aad.get_mut(..aad_len)?;
    let (head, rest) = aad.split_at_mut(2);
    head.copy_from_slice(&[VERSION_1, kid_len]);
    rest.copy_from_slice(kid);
    if !key.seal(nonce, aad, &mut body) {
        return None;
    }
    let mut raw = Vec::with_capacity(
        aad.len()
            .saturating_add(NONCE_LEN)
            .saturating_add(body.len()),
    );
    raw.extend_from_slice(aad);
    raw.extend_from_slice(nonce);
    raw.extend_from_slice(&body);
    Some(crate::b64::encode_url(&raw))
}

/// Opens a token value. Checks format, key, tag and that the host is an
/// address: lifetime and allow-list are the session's business
/// ([`crate::session`]).
pub fn open(value: &[u8], keys: &Keyring) -> Result<Claims, Reject> {
    if value.len() > MAX_TOKEN_CHARS {
        return Err(Reject::Oversized);
    }
    let raw = crate::b64::decode_url(value).ok_or(Reject::Malformed)?;
    let (&version, rest) = raw.split_first().ok_or(Reject::Malformed)?;
    if version != VERSION_1 {
        return Err(Reject::UnknownVersion);
    }
    let (&kid_len, rest) = rest.split_first().ok_or(Reject::Malformed)?;
    let kid_len = usize::from(kid_len);
    let kid = rest.get(..kid_len).ok_or(Reject::Malformed)?;
    let rest = rest.get(kid_len..).ok_or(Reject::Malformed)?;
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(Reject::Malformed);
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let key = keys.find(kid).ok_or(Reject::UnknownKey)?;
    let aad = raw
        .get(..kid_len.saturating_add(2))
        .ok_or(Reject::Malformed)?;
    let mut body = sealed.to_vec();
    if !key.open(nonce, aad, &mut body) {
        return Err(Reject::Tampered);
    }
    let payload = TokenV1::decode(body.as_slice()).map_err(|_| Reject::Malformed)?;
    // A host that is not an address is never pinned (checked here, once:
    // opened tokens are cached and the check is not repeated per request).
    if !payload.host.is_empty() && !crate::addr::is_socket_addr(payload.host.as_bytes()) {
        return Err(Reject::Malformed);
    }
    Ok(Claims {
        cluster: payload.cluster,
        host: payload.host,
        issued_at: payload.issued_at,
        expires_at: payload.expires_at,
        last_seen: payload.last_seen,
        key_hash: payload.key_hash,
        app_id: payload.app_id.into_bytes(),
        sealed_by_old_key: !keys.is_sealing(key),
    })
}

#[cfg(test)]
mod tests;
