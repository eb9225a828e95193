//! Session decisions: which candidate token holds, where a request goes, and
//! what token (if any) a response must carry. Pure functions; time is `now`.

use crate::config::Config;
use crate::drain::{DrainCache, HostDrain};
use crate::token::{self, Claims, Reject};
use crate::token_cache::TokenCache;

/// The outcome of reading a request's candidate tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No candidate at all.
    Absent,
    /// Candidates, none usable; the reason of the first one (or `Conflict`).
    Rejected(Reject),
    /// A usable session.
    Valid(Claims),
}

/// Where the request phase left a stream; drives the response phase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Stream {
    /// Not yet seen (or the filter did not run): the response does nothing.
    #[default]
    Untouched,
    /// No usable session: the response issues a fresh one.
    Fresh,
    /// Pinned to the claims' cluster and host.
    Pinned(Claims),
    /// Kept on the claims' cluster, host left to the load balancer: the token
    /// named no host, or its host's drain deadline has passed.
    Moving(Claims),
    /// A new key-sharded session: routed to the key's shard cluster (the
    /// claims' cluster and key hash), host left to the load balancer.
    Sharded(Claims),
    /// The filter answered the request itself (a shard key was required).
    Refused,
    /// Pinned by a legacy value (migration); the cluster may be empty
    /// (unknown). The response issues a sealed token.
    Legacy {
        /// What the legacy value said.
        claims: Claims,
        /// The legacy value came from a cookie (expire it once migrated).
        from_cookie: bool,
    },
}

/// Why a response (re)issues a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new session.
    Created,
    /// The pinned host did not serve the request (gone, unhealthy): re-pinned.
    Repinned,
    /// Same backend; the token was refreshed (idle timeout or sliding TTL).
    Refreshed,
    /// The session left a draining host whose deadline passed.
    Drained,
    /// A legacy session value was replaced by a sealed token.
    Migrated,
    /// Same backend; the token opened under a key other than the sealing
    /// key and was re-sealed under it (key rotation).
    Resealed,
}

/// What the response phase saw: the backend that served the request.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// `xds.cluster_name`.
    pub cluster: &'a [u8],
    /// `upstream.address`, "ip:port".
    pub host: &'a [u8],
}

/// Opens and checks every candidate. Valid tokens that disagree (an old
/// cookie of another Path or a sibling domain, or one injected beside the
/// session's own) do not cancel each other: the one seen most recently wins,
/// the first of equals. Tokens that opened before come from `cache`
/// (lifetime and allow-list are still checked here, every time).
pub fn lookup(cfg: &Config, candidates: &[&[u8]], now: u64, cache: &mut TokenCache) -> Lookup {
    let mut first_reject = None;
    let mut best: Option<Claims> = None;
    for value in candidates {
        let opened = match cache.get(value) {
            Some(claims) => Ok(claims.clone()),
            None => token::open(value, &cfg.keys).inspect(|claims| cache.insert(value, claims)),
        };
        match opened.and_then(|c| check(cfg, c, now)) {
            Ok(claims) => match &best {
                Some(b) if claims.last_seen <= b.last_seen => {}
                _ => best = Some(claims),
            },
            Err(reason) => {
                first_reject.get_or_insert(reason);
            }
        }
    }
    match (best, first_reject) {
        (Some(claims), _) => Lookup::Valid(claims),
        (None, Some(reason)) => Lookup::Rejected(reason),
        (None, None) => Lookup::Absent,
    }
}

/// Checks an opened token against the current config and clock.
fn check(cfg: &Config, claims: Claims, now: u64) -> Result<Claims, Reject> {
    if cfg.cluster_index(claims.cluster.as_bytes()).is_none() {
        return Err(Reject::UnknownCluster);
    }
    // The host was checked once, by `token::open` (a cached token opened).
    let s = &cfg.session;
    // A token without an expiry (issued before every token had one) lives
    // at most the maximum lifetime past its last refresh.
    let expires_at = match claims.expires_at {
        0 => claims
            .last_seen
            .saturating_add(cfg.session.max_lifetime_seconds),
        at => at,
    };
    let expired = now >= expires_at
        || (s.idle_timeout_seconds > 0
            && now.saturating_sub(claims.last_seen) >= s.idle_timeout_seconds)
        || (s.absolute_timeout_seconds > 0
            && now.saturating_sub(claims.issued_at) >= s.absolute_timeout_seconds);
    if expired {
        return Err(Reject::Expired);
    }
    Ok(claims)
}

pub use crate::addr::is_socket_addr;

/// Turns a lookup into the stream state, consulting the drain cache.
pub fn plan(lookup: Lookup, drain: &DrainCache, now: u64) -> Stream {
    match lookup {
        Lookup::Valid(claims) => {
            if claims.host.is_empty() || drain.expired(claims.host.as_bytes(), now) {
                Stream::Moving(claims)
            } else {
                Stream::Pinned(claims)
            }
        }
        Lookup::Absent | Lookup::Rejected(_) => Stream::Fresh,
    }
}

/// Decides which token the response carries. `host_drain` is the served
/// host's drain state as far as it is known.
pub fn respond(
    cfg: &Config,
    stream: &Stream,
    served: Served<'_>,
    host_drain: Option<HostDrain>,
    now: u64,
) -> Option<(Claims, Event)> {
    let (cluster, host) = pinnable(cfg, served)?;
    let drain = host_drain.unwrap_or_default();
    // A draining host takes no new pins: keep the cluster, let the LB re-pick.
    let pin_host = if drain.draining { "" } else { host };
    match stream {
        Stream::Untouched | Stream::Refused => None,
        Stream::Fresh => Some((
            issue(cfg, cluster, pin_host, Begun::new(now), now),
            Event::Created,
        )),
        Stream::Sharded(shard) => Some((
            issue(
                cfg,
                cluster,
                pin_host,
                Begun {
                    issued_at: now,
                    key_hash: shard.key_hash,
                    app_id: Vec::new(),
                },
                now,
            ),
            Event::Created,
        )),
        Stream::Legacy { .. } => Some((
            issue(cfg, cluster, pin_host, Begun::new(now), now),
            Event::Migrated,
        )),
        Stream::Pinned(old) if old.cluster != cluster || old.host != host => Some((
            issue(cfg, cluster, pin_host, Begun::of(old), now),
            Event::Repinned,
        )),
        Stream::Pinned(old) => respond_own_host(cfg, old, Some(drain), now),
        Stream::Moving(old) => {
            if pin_host.is_empty() && old.host.is_empty() && old.cluster == cluster {
                // Still no pinnable host; the token already says so.
                return refresh(cfg, old, now);
            }
            let event = if old.host.is_empty() {
                Event::Repinned
            } else {
                Event::Drained
            };
            Some((issue(cfg, cluster, pin_host, Begun::of(old), now), event))
        }
    }
}

/// [`respond`] for a pinned session whose own host served the response:
/// only the host's drain deadline and the refresh are left to decide. Its
/// claims passed the allow-list and address checks when the token opened
/// in this stream's request phase, so the hot path repeats neither (about
/// 1,400 wasm instructions per pinned request, `make fuel-profile`).
pub fn respond_own_host(
    cfg: &Config,
    old: &Claims,
    host_drain: Option<HostDrain>,
    now: u64,
) -> Option<(Claims, Event)> {
    if host_drain.unwrap_or_default().expired(now) {
        return Some((
            issue(cfg, &old.cluster, "", Begun::of(old), now),
            Event::Drained,
        ));
    }
    refresh(cfg, old, now)
}

/// The served cluster and host as text, if a token may name them: never a
/// cluster off the allow-list, nor a host that is not an address.
fn pinnable<'a>(cfg: &Config, served: Served<'a>) -> Option<(&'a str, &'a str)> {
    cfg.cluster_index(served.cluster)?;
    if !is_socket_addr(served.host) {
        return None;
    }
    Some((
        std::str::from_utf8(served.cluster).ok()?,
        std::str::from_utf8(served.host).ok()?,
    ))
}

/// Claims for a token issued at `now` for the session `session`.
fn issue(cfg: &Config, cluster: &str, host: &str, session: Begun, now: u64) -> Claims {
    let Begun {
        issued_at,
        key_hash,
        app_id,
    } = session;
    let absolute = cfg.session.absolute_timeout_seconds;
    // Every token expires: the cookie's TTL, capped by the server-side
    // maximum lifetime (a browser-session cookie's token too), and by the
    // absolute timeout.
    let mut expires_at = now.saturating_add(sliding_lifetime(cfg));
    if absolute > 0 {
        expires_at = expires_at.min(issued_at.saturating_add(absolute));
    }
    Claims {
        cluster: cluster.to_owned(),
        host: host.to_owned(),
        issued_at,
        expires_at,
        last_seen: now,
        key_hash,
        app_id,
        sealed_by_old_key: false,
    }
}

/// How long a token is valid after it was issued or refreshed: the cookie's
/// TTL, at most `session.max_lifetime_seconds`.
fn sliding_lifetime(cfg: &Config) -> u64 {
    let max = cfg.session.max_lifetime_seconds;
    match cfg.cookie.ttl_seconds {
        0 => max,
        ttl => ttl.min(max),
    }
}

/// What a re-issued token keeps from the session it continues.
#[derive(Clone)]
struct Begun {
    issued_at: u64,
    key_hash: u64,
    app_id: Vec<u8>,
}

impl Begun {
    /// A session that begins now.
    fn new(now: u64) -> Self {
        Self {
            issued_at: now,
            key_hash: 0,
            app_id: Vec::new(),
        }
    }

    /// The session `claims` belongs to.
    fn of(claims: &Claims) -> Self {
        Self {
            issued_at: claims.issued_at,
            key_hash: claims.key_hash,
            app_id: claims.app_id.clone(),
        }
    }
}

/// Wrap mode: the claims for a response that carries the application's
/// session id `app_id`. Pinned to the cluster and host that answered for it,
/// even when draining: the id's state lives on that backend. Past the host's
/// drain deadline it names the cluster only, like any session there, so the
/// next request moves ([`Event::Drained`] when the token it replaces named
/// that host). The id the request carried continues its session; a
/// different id starts a new one ([`Event::Created`]).
pub fn wrap_minted(
    cfg: &Config,
    stream: &Stream,
    served: Served<'_>,
    host_drain: Option<HostDrain>,
    app_id: &[u8],
    now: u64,
) -> Option<(Claims, Option<Event>)> {
    let (cluster, host) = pinnable(cfg, served)?;
    let host = if host_drain.unwrap_or_default().expired(now) {
        ""
    } else {
        host
    };
    let old = match stream {
        Stream::Pinned(c) | Stream::Moving(c) | Stream::Sharded(c) => Some(c),
        Stream::Legacy { claims, .. } => Some(claims),
        Stream::Fresh => None,
        Stream::Untouched | Stream::Refused => return None,
    };
    let (begun, event) = match old {
        Some(old) if old.app_id == app_id => {
            let drained = host.is_empty() && !old.host.is_empty();
            (Begun::of(old), drained.then_some(Event::Drained))
        }
        Some(old) => (
            Begun {
                issued_at: now,
                key_hash: old.key_hash,
                app_id: app_id.to_vec(),
            },
            Some(Event::Created),
        ),
        None => (
            Begun {
                app_id: app_id.to_vec(),
                ..Begun::new(now)
            },
            Some(Event::Created),
        ),
    };
    Some((issue(cfg, cluster, host, begun, now), event))
}

/// Strict mode, the pinned host gone: the session keeps its cluster and
/// names no host, so the load balancer picks its next host.
pub fn release_host(cfg: &Config, old: &Claims, now: u64) -> Option<(Claims, Event)> {
    cfg.cluster_index(old.cluster.as_bytes())?;
    Some((
        issue(cfg, &old.cluster, "", Begun::of(old), now),
        Event::Repinned,
    ))
}

/// A new token for an unchanged session, when one is due: re-sealed at once
/// when it opened under an old key ([`Event::Resealed`]: retiring that key
/// then drops no active session); otherwise refreshed, rate-limited to at
/// most one per refresh interval for the idle timeout, and one per half
/// lifetime for the sliding expiry.
fn refresh(cfg: &Config, old: &Claims, now: u64) -> Option<(Claims, Event)> {
    let fresh = || issue(cfg, &old.cluster, &old.host, Begun::of(old), now);
    if old.sealed_by_old_key {
        return Some((fresh(), Event::Resealed));
    }
    // The pinned path ends here on most requests: build no claims before.
    let since = now.saturating_sub(old.last_seen);
    if since < cfg.session.refresh_interval_seconds {
        return None;
    }
    let fresh = fresh();
    let idle_due = cfg.session.idle_timeout_seconds > 0;
    let lifetime = sliding_lifetime(cfg);
    let expiry_due = old.expires_at == 0
        || (now.saturating_add(lifetime / 2) >= old.expires_at
            && fresh.expires_at > old.expires_at);
    (idle_due || expiry_due).then_some((fresh, Event::Refreshed))
}

#[cfg(test)]
mod tests;
