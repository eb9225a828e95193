//! The plugin config (README "Configuration", the public contract), built
//! as the filter's own wire model from a resolved policy and checked by the
//! filter's own validation before it is written anywhere.

use serde_json::Value;
use sticky_core::config::wire::{self, PluginConfig};
use sticky_core::config::{Config, KeySource};

use crate::error::{Error, Result};
use crate::keys::Key;
use crate::resolve::Resolved;

/// The internal host header (the filter's default).
pub const HOST_HEADER: &str = "x-sticky-host";
/// The internal cluster header (the filter's default).
pub const CLUSTER_HEADER: &str = "x-sticky-cluster";

/// Builds the plugin config for `clusters` (the allow-list, in order) and,
/// when the policy shards, `shard_clusters` (shard order: shard 0 first),
/// checked by the filter's own reader and validation, as JSON.
pub fn config(
    resolved: &Resolved,
    clusters: &[String],
    shard_clusters: &[String],
    keys: &[Key],
) -> Result<Value> {
    let wire = build(resolved, clusters, shard_clusters, keys);
    let value = serde_json::to_value(&wire).map_err(|e| Error::PluginConfig(e.to_string()))?;
    check(&value)?;
    Ok(value)
}

/// The wire model of [`config`], unchecked.
pub fn build(
    resolved: &Resolved,
    clusters: &[String],
    shard_clusters: &[String],
    keys: &[Key],
) -> PluginConfig {
    let s = &resolved.session;
    let timeouts =
        s.idle_timeout.is_some() || s.absolute_timeout.is_some() || s.refresh_interval.is_some();
    PluginConfig {
        cookie: Some(wire::Cookie {
            name: Some(s.cookie_name.clone()),
            ttl_seconds: Some(s.ttl_seconds),
            path: Some(s.path.clone()),
            domain: s.domain.clone(),
            secure: Some(s.secure),
            http_only: Some(s.http_only),
            same_site: Some(s.same_site.clone()),
        }),
        session_header: s.session_header.clone(),
        clusters: Some(clusters.to_vec()),
        keys: Some(
            keys.iter()
                .map(|k| wire::Key::new(&k.id, &k.secret))
                .collect(),
        ),
        host_header: Some(HOST_HEADER.to_owned()),
        cluster_header: Some(CLUSTER_HEADER.to_owned()),
        drain_metadata_namespace: Some(resolved.drain_namespace.clone()),
        session: timeouts.then(|| wire::Session {
            idle_timeout_seconds: Some(s.idle_timeout.unwrap_or(0)),
            absolute_timeout_seconds: Some(s.absolute_timeout.unwrap_or(0)),
            refresh_interval_seconds: s.refresh_interval,
            ..wire::Session::default()
        }),
        // The filter adds shard clusters to its allow-list itself.
        sharding: resolved
            .policy
            .sharding
            .as_ref()
            .map(|sharding| wire::Sharding {
                key: Some(shard_key(&sharding.key)),
                clusters: Some(shard_clusters.to_vec()),
                missing_key: Some(sharding.missing_key_str().to_owned()),
                ..wire::Sharding::default()
            }),
        wrap: resolved.policy.ext.wrap.as_ref().map(|w| wire::Wrap {
            header: Some(w.header.to_ascii_lowercase()),
            max_id_bytes: w.max_id_bytes,
            issue_cookie: w.issue_cookie,
        }),
        // The filter must know: Envoy's 503 for a gone pinned host then
        // carries a cluster-only token, so the session recovers.
        strict: resolved.policy.ext.strict.then_some(true),
        ..PluginConfig::default()
    }
}

/// `sharding.key` for a key source.
pub fn shard_key(source: &KeySource) -> wire::ShardKey {
    let mut key = wire::ShardKey::default();
    match source {
        KeySource::Header(h) => key.header = Some(h.clone()),
        KeySource::Cookie(c) => key.cookie = Some(c.clone()),
        KeySource::PathSegment(n) => key.path_segment = u64::try_from(*n).ok(),
        KeySource::Query(q) => key.query = Some(q.clone()),
    }
    key
}

/// Runs the filter's own config parser over `value`.
pub fn check(value: &Value) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::PluginConfig(e.to_string()))?;
    Config::from_json(&bytes)
        .map(|_| ())
        .map_err(|e| Error::PluginConfig(e.to_string()))
}
