//! Wrap mode: the application's own session header (MCP's `Mcp-Session-Id`,
//! a game or chat session id) carries the session. A response's id is sealed
//! into a token that also names the cluster and host; a request's token is
//! opened, pins the request, and the original id is put back before the
//! request reaches the backend. The backend only ever sees its own ids, the
//! client only ever sees tokens, and Envoy replicas share nothing but keys.

use crate::config::{Config, WrapConfig};
use crate::host::Host;
use crate::metrics::Metric;
use crate::session::{self, Lookup};
use crate::token::{Claims, Reject};
use crate::worker::Worker;

/// Request phase: opens the value of the application's session header. On
/// success the claims pin the request and carry the original id, which the
/// request's edits put back ([`crate::edits::RequestEdits::wrap_id`]).
/// Anything else (an id that was never wrapped, a tampered,
/// expired or foreign token) stays untouched: the backend sees what the
/// client sent and decides, as it would without sticky; it is counted and
/// logged (rate-limited).
pub fn unwrap_request<H: Host>(
    cfg: &Config,
    wrap: &WrapConfig,
    worker: &mut Worker,
    host: &mut H,
    now: u64,
) -> Option<Claims> {
    let value = host.request_header(&wrap.header)?;
    let reason = match session::lookup(cfg, &[&value], now, &mut worker.tokens) {
        Lookup::Valid(claims) if !claims.app_id.is_empty() => {
            worker.wrapped.insert(&claims.app_id, &value);
            return Some(claims);
        }
        // A cookie token in the application's header wraps no id.
        Lookup::Valid(_) | Lookup::Absent => Reject::Malformed,
        Lookup::Rejected(reason) => reason,
    };
    host.count(Metric::WrapUnopened);
    host.count(Metric::TokensRejected(reason));
    if let Some(held) = worker.warnings.allow(now) {
        host.log_warn(&format!(
            "sticky: a {} value could not be opened ({}); passed to the backend untouched, as no session ({held} more since the last warning)",
            wrap.header,
            reason.as_str()
        ));
    }
    None
}

/// Response phase: the application's session id in the response, when
/// there is one to wrap. An id over `wrap.max_id_bytes`, or not UTF-8, is
/// left as it is (the client then holds a raw id: no affinity), counted and
/// logged.
pub fn minted_id<H: Host>(
    wrap: &WrapConfig,
    worker: &mut Worker,
    host: &mut H,
    now: u64,
) -> Option<Vec<u8>> {
    let id = host.response_header(&wrap.header)?;
    if id.is_empty() {
        return None;
    }
    let why = if id.len() > wrap.max_id_bytes {
        "is longer than wrap.max_id_bytes"
    } else if std::str::from_utf8(&id).is_err() {
        "is not UTF-8"
    } else {
        return Some(id);
    };
    host.count(Metric::WrapNotWrapped);
    if let Some(held) = worker.warnings.allow(now) {
        host.log_warn(&format!(
            "sticky: a {} {why}; sent to the client unwrapped, without affinity ({held} more since the last warning)",
            wrap.header,
        ));
    }
    None
}

#[cfg(test)]
mod tests;
