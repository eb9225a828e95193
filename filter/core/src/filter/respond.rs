//! The response phase's token: facts from the host (the served backend, its
//! drain state), a pure decision ([`Token`]: nothing, the echoed token, or
//! a new sealed one and where it goes), then the writes.

use crate::config::{Config, WrapConfig};
use crate::drain::{DrainCache, HostDrain};
use crate::host::Host;
use crate::keys::NONCE_LEN;
use crate::metrics::Metric;
use crate::session::{self, Event, Served, Stream};
use crate::source::{CookieSource, HeaderSource, LegacyCookieSource, SessionSource, WrapSource};
use crate::token::{self, Claims};
use crate::worker::Worker;

/// What the response hands back, decided before anything is written.
enum Token<'a> {
    /// Nothing.
    Keep,
    /// The application echoed the id of an unchanged session: the token it
    /// came in with goes back out (no seal; the next request hits the token
    /// cache).
    Echo {
        /// The application's session header.
        wrap: &'a WrapConfig,
        /// The token the id arrived in.
        token: &'a [u8],
    },
    /// A new token for `claims`, sealed now.
    Seal {
        /// What the token says.
        claims: Claims,
        /// Why it is issued (counted), if it is news.
        event: Option<Event>,
        /// Through the cookie (and the session header).
        cookie: bool,
        /// Through the application's own header (wrap mode).
        wrap: Option<&'a WrapConfig>,
        /// The legacy cookie it replaces, expired.
        expire: Option<LegacyCookieSource<'a>>,
    },
}

/// Decides and writes the response's token: `Set-Cookie` (and the session
/// header) and, in wrap mode, the sealed application id. Returns whether
/// the application's header was wrapped.
pub(super) fn issue<H: Host>(
    cfg: &Config,
    worker: &mut Worker,
    stream: &Stream,
    host: &mut H,
    minted: Option<&[u8]>,
    now: u64,
) -> bool {
    // No upstream (a local reply): nothing to pin.
    let Some(served_host) = host.upstream_host() else {
        if let Stream::Pinned(claims) = stream {
            release_gone_host(cfg, claims, host, now);
        }
        return false;
    };
    let read_cluster;
    let cluster: &[u8] = match stream {
        Stream::Pinned(claims) if claims.host.as_bytes() == served_host.as_slice() => {
            claims.cluster.as_bytes()
        }
        _ => {
            read_cluster = host.upstream_cluster();
            match &read_cluster {
                Some(c) => c,
                None => return false,
            }
        }
    };
    let host_drain = drain_state(cfg, &mut worker.drain, host, &served_host, now);
    let served = Served {
        cluster,
        host: &served_host,
    };
    let decision = session::respond(cfg, stream, served, host_drain, now);
    let token = decide(
        cfg, worker, stream, served, host_drain, decision, minted, now,
    );
    write(cfg, host, token)
}

/// The response's token from the session decision and, in wrap mode, the
/// application's minted id. Pure.
#[allow(clippy::too_many_arguments)]
// One call site; inlined, the wasm is smaller (its size budget).
#[inline(always)]
fn decide<'a>(
    cfg: &'a Config,
    worker: &'a Worker,
    stream: &Stream,
    served: Served<'_>,
    host_drain: Option<HostDrain>,
    decision: Option<(Claims, Event)>,
    minted: Option<&[u8]>,
    now: u64,
) -> Token<'a> {
    if decision.is_none()
        && let (Some(wrap), Some(id), Stream::Pinned(old)) = (&cfg.wrap, minted, stream)
        && old.app_id == id
        && let Some(token) = worker.wrapped.get(id)
        && worker.tokens.get(token) == Some(old)
    {
        return Token::Echo { wrap, token };
    }
    let wrapped =
        minted.and_then(|id| session::wrap_minted(cfg, stream, served, host_drain, id, now));
    let (claims, event) = match (wrapped, decision) {
        // The wrap decides the token; an unchanged id's re-issue counts as
        // what the session decision saw (a refresh, a re-seal, a re-pin).
        (Some((claims, created)), decision) => (claims, created.or(decision.map(|(_, e)| e))),
        (None, Some((claims, event))) => (claims, Some(event)),
        (None, None) => return Token::Keep,
    };
    let cookie = cfg.issues_cookie();
    let wrap = cfg.wrap.as_ref().filter(|_| !claims.app_id.is_empty());
    if !cookie && wrap.is_none() {
        return Token::Keep;
    }
    let expire = match (stream, &cfg.migration) {
        (
            Stream::Legacy {
                from_cookie: true, ..
            },
            Some(migration),
        ) if cookie => LegacyCookieSource::of(migration),
        _ => None,
    };
    Token::Seal {
        claims,
        event,
        cookie,
        wrap,
        expire,
    }
}

/// Writes the decided token; returns whether the application's header was
/// wrapped.
// One call site; inlined, the decided token is never copied (about 200
// wasm instructions on a new session, host-tests).
#[inline(always)]
fn write<H: Host>(cfg: &Config, host: &mut H, token: Token<'_>) -> bool {
    let (claims, event, cookie, wrap, expire) = match token {
        Token::Keep => return false,
        Token::Echo { wrap, token } => {
            host.set_response_header(&wrap.header, token);
            host.count(Metric::WrapWrapped);
            return true;
        }
        Token::Seal {
            claims,
            event,
            cookie,
            wrap,
            expire,
        } => (claims, event, cookie, wrap, expire),
    };
    let Some(value) = seal(cfg, host, &claims) else {
        return false;
    };
    if cookie {
        write_token(cfg, host, &value);
    }
    if let Some(legacy) = expire {
        // The sealed token replaces it.
        legacy.write(host, &value);
    }
    if let Some(event) = event {
        host.count(event.into());
    }
    match wrap {
        Some(wrap) => {
            WrapSource(wrap).write(host, &value);
            host.count(Metric::WrapWrapped);
            true
        }
        None => false,
    }
}

/// Strict mode: Envoy answered 503 itself because the session's pinned host
/// is gone. The client gets a token that keeps the session's cluster but
/// names no host, so its next request is served by another host of the
/// cluster instead of a 503 on every request until the token expires. Any
/// other local reply (an overflow, a timeout) keeps the token as it is.
fn release_gone_host<H: Host>(cfg: &Config, claims: &Claims, host: &mut H, now: u64) {
    if !cfg.strict || !cfg.issues_cookie() || claims.host.is_empty() {
        return;
    }
    if host.response_code_details().as_deref() != Some(NO_HEALTHY_UPSTREAM) {
        return;
    }
    let Some((released, event)) = session::release_host(cfg, claims, now) else {
        return;
    };
    let Some(value) = seal(cfg, host, &released) else {
        return;
    };
    write_token(cfg, host, &value);
    host.count(event.into());
}

/// Seals `claims` under the sealing key with a fresh random nonce; `None`
/// when the host has no randomness (the response then carries no token).
fn seal<H: Host>(cfg: &Config, host: &mut H, claims: &Claims) -> Option<String> {
    let mut nonce = [0u8; NONCE_LEN];
    if !host.random(&mut nonce) {
        return None;
    }
    token::seal(claims, &cfg.keys, &nonce)
}

/// Envoy's response code details when no host could be picked (a strict
/// override whose host is gone, or an empty cluster).
const NO_HEALTHY_UPSTREAM: &[u8] = b"no_healthy_upstream";

/// Writes a sealed token into the response: `Set-Cookie` and, when
/// configured, the session header.
fn write_token<H: Host>(cfg: &Config, host: &mut H, value: &str) {
    CookieSource(&cfg.cookie).write(host, value);
    if let Some(name) = &cfg.session_header {
        HeaderSource(name).write(host, value);
    }
}

/// Whether a response served by the session's own pinned host issues
/// nothing: its drain state is cached and fresh, and no refresh or drain
/// move is due. When this says `false` the caller takes the full path, which
/// reads the served host and decides exactly as without this shortcut (a
/// bool, not the decision itself: carrying that to the full path cost the
/// hot path about 100 wasm instructions, measured in host-tests).
#[inline]
pub(super) fn pinned_host_needs_nothing(
    cfg: &Config,
    drain: &DrainCache,
    claims: &Claims,
    now: u64,
) -> bool {
    let pinned = claims.host.as_bytes();
    let Some(state) = drain.fresh(pinned, now, cfg.drain.check_interval_seconds) else {
        return false;
    };
    session::respond_own_host(cfg, claims, Some(state), now).is_none()
}

/// The served host's drain state: from the cache, re-read from endpoint
/// metadata at most once per check interval.
fn drain_state<H: Host>(
    cfg: &Config,
    drain: &mut DrainCache,
    host: &mut H,
    served_host: &[u8],
    now: u64,
) -> Option<HostDrain> {
    if let Some(state) = drain.fresh(served_host, now, cfg.drain.check_interval_seconds) {
        return Some(state);
    }
    let state = host.host_drain(&cfg.drain.metadata_namespace);
    drain.record(served_host, state, now);
    Some(state)
}
