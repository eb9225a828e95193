//! The request-phase alternatives to a sticky token: a shard key routes a
//! new session (key-sharded routes), and a legacy value names one
//! (migration).

use crate::config::{Config, KeySource, MigrationConfig, MissingKey, ShardingConfig};
use crate::cookie::Candidates;
use crate::drain::DrainCache;
use crate::host::Host;
use crate::legacy;
use crate::metrics::Metric;
use crate::session::{self, Lookup, Stream};
use crate::shard;
use crate::source::{LegacyCookieSource, LegacyHeaderSource, SessionSource};
use crate::token::{Claims, Reject};

/// Key-sharded routing: the key's shard, unless the request's session token
/// was issued for the same key and may finish on its old shard.
pub(super) fn shard_stream<H: Host>(
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
        if sharding.missing_key == MissingKey::Reject {
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
pub(super) fn legacy_stream<H: Host>(
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
