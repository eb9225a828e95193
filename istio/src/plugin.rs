//! The plugin config JSON (README "Configuration", the public contract),
//! built from a resolved policy and checked by the filter's own parser before
//! it is written anywhere.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::keys::Key;
use crate::resolve::Resolved;

/// The internal host header (the filter's default).
pub const HOST_HEADER: &str = "x-sticky-host";
/// The internal cluster header (the filter's default).
pub const CLUSTER_HEADER: &str = "x-sticky-cluster";

/// Builds the plugin config for `clusters` (the allow-list, in order) and,
/// when the policy shards, `shard_clusters` (shard order: shard 0 first).
pub fn config(
    resolved: &Resolved,
    clusters: &[String],
    shard_clusters: &[String],
    keys: &[Key],
) -> Result<Value> {
    let s = &resolved.session;
    let mut cookie = json!({
        "name": s.cookie_name,
        "ttl_seconds": s.ttl_seconds,
        "path": s.path,
        "secure": s.secure,
        "http_only": s.http_only,
        "same_site": s.same_site,
    });
    if let Some(d) = &s.domain {
        cookie["domain"] = json!(d);
    }
    let mut config = Map::new();
    config.insert("cookie".into(), cookie);
    if let Some(h) = &s.session_header {
        config.insert("session_header".into(), json!(h));
    }
    config.insert("clusters".into(), json!(clusters));
    config.insert("keys".into(), json!(keys));
    config.insert("host_header".into(), json!(HOST_HEADER));
    config.insert("cluster_header".into(), json!(CLUSTER_HEADER));
    config.insert(
        "drain_metadata_namespace".into(),
        json!(resolved.drain_namespace),
    );
    if s.idle_timeout.is_some() || s.absolute_timeout.is_some() || s.refresh_interval.is_some() {
        let mut session = json!({
            "idle_timeout_seconds": s.idle_timeout.unwrap_or(0),
            "absolute_timeout_seconds": s.absolute_timeout.unwrap_or(0),
        });
        if let Some(r) = s.refresh_interval {
            session["refresh_interval_seconds"] = json!(r);
        }
        config.insert("session".into(), session);
    }
    if let Some(sharding) = &resolved.policy.sharding {
        // The filter adds shard clusters to its allow-list itself.
        config.insert(
            "sharding".into(),
            json!({
                "key": sharding.key_json(),
                "clusters": shard_clusters,
                "missing_key": sharding.missing_key_str(),
            }),
        );
    }
    if let Some(wrap) = &resolved.policy.ext.wrap {
        let mut w = json!({"header": wrap.header.to_ascii_lowercase()});
        if let Some(n) = wrap.max_id_bytes {
            w["max_id_bytes"] = json!(n);
        }
        if let Some(c) = wrap.issue_cookie {
            w["issue_cookie"] = json!(c);
        }
        config.insert("wrap".into(), w);
    }
    if resolved.policy.ext.strict {
        // The filter must know: Envoy's 503 for a gone pinned host then
        // carries a cluster-only token, so the session recovers.
        config.insert("strict".into(), json!(true));
    }
    let value = Value::Object(config);
    check(&value)?;
    Ok(value)
}

/// Runs the filter's own config parser over `value`.
pub fn check(value: &Value) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::PluginConfig(e.to_string()))?;
    sticky_core::config::Config::from_json(&bytes)
        .map(|_| ())
        .map_err(|e| Error::PluginConfig(e.to_string()))
}
