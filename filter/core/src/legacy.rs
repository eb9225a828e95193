//! The legacy branch of the token codec: session values written by other
//! session-affinity implementations, accepted only when `migration` is
//! configured, so a deployment can switch to sticky without dropping live
//! sessions. The first response re-issues a sealed sticky token.
//!
//! Accepted values (optionally in double quotes):
//! * Envoy's native `stateful_session` cookie (1.40):
//!   base64(proto `{1: "ip:port", 2: expiry unix seconds}`);
//! * older Envoy cookies and `HeaderBasedSessionState` values: base64("ip:port");
//! * either of the above, or a plain "ip:port", followed by `;cluster:NAME`
//!   (the gRPC A55-style value that also names the cluster).

use prost::Message as _;

use crate::session::is_socket_addr;
use crate::token::Reject;

/// Longest legacy value read; longer ones are refused unread.
pub const MAX_LEGACY_CHARS: usize = 1024;

/// A session found in a legacy value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacySession {
    /// "ip:port" of the host that served it.
    pub host: String,
    /// The cluster, when the value named one.
    pub cluster: Option<String>,
    /// Expiry (unix seconds) the value carried; 0 = none.
    pub expires_at: u64,
}

/// Envoy's native cookie payload (`envoy.extensions.http.stateful_session.cookie` state).
#[derive(Clone, PartialEq, prost::Message)]
struct EnvoyCookie {
    #[prost(string, tag = "1")]
    address: String,
    #[prost(uint64, tag = "2")]
    expires: u64,
}

/// Parses a legacy session value. Expiry is checked against `now`.
pub fn open(value: &[u8], now: u64) -> Result<LegacySession, Reject> {
    if value.len() > MAX_LEGACY_CHARS {
        return Err(Reject::Oversized);
    }
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    };
    let text = std::str::from_utf8(value).map_err(|_| Reject::Malformed)?;
    const MARK: &[u8] = b";cluster:";
    let (body, cluster) = match value.windows(MARK.len()).position(|w| w == MARK) {
        Some(at) => {
            let body = text.get(..at).ok_or(Reject::Malformed)?;
            let cluster = text
                .get(at.saturating_add(MARK.len())..)
                .unwrap_or_default();
            if cluster.is_empty() {
                return Err(Reject::Malformed);
            }
            (body, Some(cluster.to_owned()))
        }
        None => (text, None),
    };
    let (host, expires_at) = if is_socket_addr(body.as_bytes()) {
        (body.to_owned(), 0)
    } else {
        decode(body)?
    };
    if expires_at != 0 && now >= expires_at {
        return Err(Reject::Expired);
    }
    Ok(LegacySession {
        host,
        cluster,
        expires_at,
    })
}

fn decode(body: &str) -> Result<(String, u64), Reject> {
    let raw = crate::b64::decode_any(body.as_bytes()).ok_or(Reject::Malformed)?;
    if is_socket_addr(&raw) {
        let host = String::from_utf8(raw).map_err(|_| Reject::Malformed)?;
        return Ok((host, 0));
    }
    let cookie = EnvoyCookie::decode(raw.as_slice()).map_err(|_| Reject::Malformed)?;
    if !is_socket_addr(cookie.address.as_bytes()) {
        return Err(Reject::Malformed);
    }
    Ok((cookie.address, cookie.expires))
}

#[cfg(test)]
mod tests;
