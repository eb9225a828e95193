//! The per-stream flow shared by every build, as a straight pipeline against
//! any [`Host`]: read the request's candidates, decide the stream
//! (`decide`), apply the header edits that decision calls for
//! ([`RequestEdits`]); on the response, decide the token and write it.

use crate::config::{Config, MigrationConfig, ShardingConfig};
use crate::config::{KeySource, MissingKey};
use crate::cookie::Candidates;
use crate::drain::{DrainCache, HostDrain};
use crate::edits::RequestEdits;
use crate::host::{Host, Pinning};
use crate::keys::NONCE_LEN;
use crate::legacy;
use crate::metrics::Metric;
use crate::session::{self, Event, Lookup, Served, Stream};
use crate::shard;
use crate::source::{
    CookieSource, HeaderSource, LegacyCookieSource, LegacyHeaderSource, SessionSource, WrapSource,
};
use crate::token::{self, Claims, Reject};
use crate::worker::Worker;
use crate::wrap;

/// Request phase: finds the session, decides where the request goes, and
/// writes the internal headers (client-sent copies never steer anything).
/// Returns the stream state the response phase needs.
pub fn on_request<H: Host>(cfg: &Config, worker: &mut Worker, host: &mut H, now: u64) -> Stream {
    let cookies = host.request_cookies();
    let stream = decide(cfg, worker, host, cookies.as_deref(), now);
    RequestEdits::of(&stream).apply(cfg, host);
    stream
}

/// Fails open: a request the filter could not handle goes on without
/// affinity, and without any internal header a client sent.
pub fn strip<H: Host>(cfg: &Config, host: &mut H) {
    host.remove_request_header(&cfg.host_header);
    host.remove_request_header(&cfg.cluster_header);
    host.clear_route_cache();
}

/// The request's session: the sticky token among the candidates (cookies,
/// session header), the application's own id (wrap mode), the shard key, or
/// a legacy value (migration).
fn decide<H: Host>(
    cfg: &Config,
    worker: &mut Worker,
    host: &mut H,
    cookies: Option<&[u8]>,
    now: u64,
) -> Stream {
    let header_source = cfg.session_header.as_deref().map(HeaderSource);
    let header = header_source.and_then(|s| host.request_header(s.0));
    let mut candidates = Candidates::default();
    if let Some(cookies) = cookies {
        CookieSource(&cfg.cookie).candidates(cookies, &mut candidates);
    }
    if let (Some(source), Some(header)) = (header_source, &header) {
        source.candidates(header, &mut candidates);
    }
    let mut lookup = session::lookup(cfg, candidates.as_slice(), now, &mut worker.tokens);
    if let Lookup::Rejected(reason) = &lookup {
        host.count(Metric::TokensRejected(*reason));
    }
    // The application's own session id, when it opens, decides the backend:
    // its state lives there, whatever a cookie says.
    if let Some(wrap) = &cfg.wrap
        && let Some(claims) = wrap::unwrap_request(cfg, wrap, worker, host, now)
    {
        lookup = Lookup::Valid(claims);
    }
    let drain = &worker.drain;
    match &cfg.sharding {
        Some(sharding) => shard_stream(sharding, lookup, cookies, host, drain, now),
        None => match (session::plan(lookup, drain, now), &cfg.migration) {
            (Stream::Fresh, Some(migration)) => {
                legacy_stream(cfg, migration, cookies, host, drain, now).unwrap_or(Stream::Fresh)
            }
            (stream, _) => stream,
        },
    }
}

/// Response phase: removes the internal headers Envoy or an upstream echoes,
/// and issues a token when the session is new, moved, or due for a refresh,
/// or (wrap mode) when the response carries the application's session id.
pub fn on_response<H: Host>(
    cfg: &Config,
    worker: &mut Worker,
    stream: &Stream,
    host: &mut H,
    now: u64,
) {
    let minted = match (&cfg.wrap, stream) {
        (None, _) | (_, Stream::Untouched | Stream::Refused) => None,
        (Some(wrap), _) => wrap::minted_id(wrap, worker, host, now),
    };
    // Internal headers never leave: an upstream that reflects the request's
    // cluster header is stripped here, whatever the route config says.
    host.remove_response_header(&cfg.cluster_header);
    let mut known = None;
    // stateful_session writes the host header into responses: never leak it.
    if let (Stream::Pinned(claims), Pinning::SessionFilter) = (stream, host.pinning()) {
        if host.response_header(&cfg.host_header).is_some() {
            host.remove_response_header(&cfg.host_header);
        } else if minted.is_none()
            && !(cfg.strict && host.response_header(":status").as_deref() == Some(b"503"))
        {
            // No echo: the pinned host served it (in strict mode a 503 may
            // instead mean it is gone). With its drain state cached and
            // fresh, the decision needs no host call; when it issues
            // nothing, reading upstream.address (a data-returning host
            // call) is skipped on the hot path.
            known = pinned_host_decision(cfg, &worker.drain, stream, claims, now);
            if let Some(None) = known {
                return;
            }
        }
    } else {
        // Removing blindly costs less than reading a present header's value.
        host.remove_response_header(&cfg.host_header);
    }
    if matches!(stream, Stream::Untouched | Stream::Refused) {
        return;
    }
    let wrapped = issue(cfg, worker, stream, host, minted.as_deref(), known, now);
    if minted.is_some() && !wrapped {
        // No pinnable backend (a local reply, a cluster off the allow-list):
        // the id goes out as the application sent it, without affinity.
        host.count(Metric::WrapNotWrapped);
    }
}

/// Decides and writes the response's token: `Set-Cookie` (and the session
/// header) and, in wrap mode, the sealed application id. Returns whether the
/// application's header was wrapped.
fn issue<H: Host>(
    cfg: &Config,
    worker: &mut Worker,
    stream: &Stream,
    host: &mut H,
    minted: Option<&[u8]>,
    known: Option<Decision>,
    now: u64,
) -> bool {
    let drain = &mut worker.drain;
    // No upstream (a local reply): nothing to pin.
    let Some(served_host) = host.upstream_host() else {
        if let Stream::Pinned(claims) = stream {
            release_gone_host(cfg, claims, host, now);
        }
        return false;
    };
    let read_cluster;
    let mut known = known;
    let cluster: &[u8] = match stream {
        Stream::Pinned(claims) if claims.host.as_bytes() == served_host.as_slice() => {
            claims.cluster.as_bytes()
        }
        _ => {
            known = None;
            read_cluster = host.upstream_cluster();
            match &read_cluster {
                Some(c) => c,
                None => return false,
            }
        }
    };
    let host_drain = drain_state(cfg, drain, host, &served_host, now);
    let served = Served {
        cluster,
        host: &served_host,
    };
    let decision = match known {
        Some(decision) => decision,
        None => session::respond(cfg, stream, served, host_drain, now),
    };
    if decision.is_none()
        && let (Some(wrap), Some(id), Stream::Pinned(old)) = (&cfg.wrap, minted, stream)
        && old.app_id == id
        && let Some(token) = worker.wrapped.get(id)
        && worker.tokens.get(token) == Some(old)
    {
        // The application echoed the id of an unchanged session: the token
        // it came in with goes back out (no seal; the next request hits the
        // token cache).
        host.set_response_header(&wrap.header, token);
        host.count(Metric::WrapWrapped);
        return true;
    }
    let wrapped =
        minted.and_then(|id| session::wrap_minted(cfg, stream, served, host_drain, id, now));
    let (claims, event) = match (wrapped, decision) {
        // The wrap decides the token; an unchanged id's re-issue counts as
        // what the session decision saw (a refresh, a re-seal, a re-pin).
        (Some((claims, created)), decision) => (claims, created.or(decision.map(|(_, e)| e))),
        (None, Some((claims, event))) => (claims, Some(event)),
        (None, None) => return false,
    };
    let cookie = cfg.issues_cookie();
    let wrap_out = cfg.wrap.as_ref().filter(|_| !claims.app_id.is_empty());
    if !cookie && wrap_out.is_none() {
        return false;
    }
    let Some(value) = seal(cfg, host, &claims) else {
        return false;
    };
    if cookie {
        write_token(cfg, host, &value);
        if let (
            Stream::Legacy {
                from_cookie: true, ..
            },
            Some(migration),
        ) = (stream, &cfg.migration)
            && let Some(legacy) = LegacyCookieSource::of(migration)
        {
            // The sealed token replaces it: expire the legacy cookie.
            legacy.write(host, &value);
        }
    }
    if let Some(event) = event {
        host.count(event.into());
    }
    match wrap_out {
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

/// Key-sharded routing: the key's shard, unless the request's session token
/// was issued for the same key and may finish on its old shard.
fn shard_stream<H: Host>(
    sharding: &ShardingConfig,
    lookup: Lookup,
    cookies: Option<&[u8]>,
    host: &mut H,
    drain: &DrainCache,
    now: u64,
) -> Stream {
    let header = match &sharding.key {
        KeySource::Header(name) => host.request_header(name),
        _ => None,
    };
    let path = match &sharding.key {
        KeySource::PathSegment(_) | KeySource::Query(_) => host.request_header(":path"),
        _ => None,
    };
    let Some(key) = shard::extract(&sharding.key, header.as_deref(), cookies, path.as_deref())
    else {
        if sharding.missing_key == MissingKey::Reject
            && host.send_local_reply(400, "sticky: this route needs a shard key\n")
        {
            return Stream::Refused;
        }
        return session::plan(lookup, drain, now);
    };
    let hash = shard::fnv1a64(key);
    let Some(target) = sharding
        .clusters
        .get(shard::shard_of(key, sharding.clusters.len()))
    else {
        return session::plan(lookup, drain, now);
    };
    if let Lookup::Valid(claims) = &lookup
        && claims.key_hash == hash
        && (claims.cluster == *target || sharding.reshard_deadline.is_none_or(|d| now < d))
    {
        return session::plan(lookup, drain, now);
    }
    Stream::Sharded(Claims {
        cluster: target.clone(),
        host: String::new(),
        issued_at: now,
        expires_at: 0,
        last_seen: now,
        key_hash: hash,
        app_id: Vec::new(),
        sealed_by_old_key: false,
    })
}

/// Migration: a session named by a legacy value (Envoy's native cookie, a
/// legacy session header) when the request has no usable sticky token.
/// Legacy values are plain text, so they get no more than a sealed token
/// would: a host past its drain deadline is not pinned, and the cluster a
/// value names counts only with `migration.trust_cluster`.
fn legacy_stream<H: Host>(
    cfg: &Config,
    migration: &MigrationConfig,
    cookies: Option<&[u8]>,
    host: &mut H,
    drain: &DrainCache,
    now: u64,
) -> Option<Stream> {
    let mut candidates = Candidates::default();
    if let (Some(legacy), Some(cookies)) = (LegacyCookieSource::of(migration), cookies) {
        legacy.candidates(cookies, &mut candidates);
    }
    let from_cookies = candidates.as_slice().len();
    let header_source = migration.header.as_deref().map(LegacyHeaderSource);
    let header = header_source.and_then(|s| host.request_header(s.0));
    if let (Some(source), Some(header)) = (header_source, &header) {
        source.candidates(header, &mut candidates);
    }
    for (i, value) in candidates.as_slice().iter().enumerate() {
        let Ok(session) = legacy::open(value, now) else {
            continue;
        };
        if drain.expired(session.host.as_bytes(), now) {
            // Its host is past the drain deadline: a fresh pick.
            continue;
        }
        // A legacy value is plain text: the cluster it names is honoured
        // only when the operator trusts it; otherwise the split decides.
        let named = session.cluster.as_ref().filter(|_| migration.trust_cluster);
        let cluster = match named.or(migration.cluster.as_ref()) {
            Some(c) if cfg.cluster_index(c.as_bytes()).is_some() => c.clone(),
            Some(_) => {
                host.count(Metric::TokensRejected(Reject::UnknownCluster));
                continue;
            }
            None => String::new(),
        };
        let claims = Claims {
            cluster,
            host: session.host,
            issued_at: now,
            expires_at: session.expires_at,
            last_seen: now,
            key_hash: 0,
            app_id: Vec::new(),
            sealed_by_old_key: false,
        };
        return Some(Stream::Legacy {
            claims,
            from_cookie: i < from_cookies,
        });
    }
    None
}

/// A decision the response phase may take before any host call.
type Decision = Option<(Claims, Event)>;

/// The token decision for a response served by the session's own pinned
/// host, when its drain state is cached and fresh (`None` otherwise). The
/// full path reuses it when the served host turns out to be the pinned one
/// (the same inputs), so the session is decided once.
fn pinned_host_decision(
    cfg: &Config,
    drain: &DrainCache,
    stream: &Stream,
    claims: &Claims,
    now: u64,
) -> Option<Decision> {
    let pinned = claims.host.as_bytes();
    if drain.needs_check(pinned, now, cfg.drain.check_interval_seconds) {
        return None;
    }
    let served = Served {
        cluster: claims.cluster.as_bytes(),
        host: pinned,
    };
    Some(session::respond(
        cfg,
        stream,
        served,
        drain.get(pinned),
        now,
    ))
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
    if !drain.needs_check(served_host, now, cfg.drain.check_interval_seconds) {
        return drain.get(served_host);
    }
    let state = host.host_drain(&cfg.drain.metadata_namespace);
    drain.record(served_host, state, now);
    Some(state)
}

#[cfg(test)]
mod tests;
