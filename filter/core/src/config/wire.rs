//! The plugin configuration as it is written (README "Configuration"): plain
//! structs mirroring the public JSON, every field optional so the defaults
//! live in one place, [`Config::from_wire`](super::Config::from_wire).
//!
//! The filter fills these from its own strict reader
//! ([`PluginConfig::from_json`]); tools build them and, with the `serde`
//! feature, serialise them, so the JSON shape is written down once.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// The whole plugin configuration document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct PluginConfig {
    /// `cookie`: the session cookie's attributes.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cookie: Option<Cookie>,
    /// `session_header`: the token header for cookie-less clients.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub session_header: Option<String>,
    /// `clusters`: the allow-list of clusters a session may name.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub clusters: Option<Vec<String>>,
    /// `keys`: token keys, the first seals, all open.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub keys: Option<Vec<Key>>,
    /// `host_header`: the internal header `stateful_session` reads.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub host_header: Option<String>,
    /// `cluster_header`: the internal header the first route matches.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cluster_header: Option<String>,
    /// `drain_metadata_namespace`: where endpoint drain metadata lives.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub drain_metadata_namespace: Option<String>,
    /// `drain_check_interval_seconds`: how often drain metadata is re-read.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub drain_check_interval_seconds: Option<u64>,
    /// `session`: session lifetime settings.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub session: Option<Session>,
    /// `migration`: the opt-in reader of legacy session values.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub migration: Option<Migration>,
    /// `sharding`: key-sharded routing.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub sharding: Option<Sharding>,
    /// `wrap`: wrap mode around the application's own session header.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub wrap: Option<Wrap>,
    /// `override_host`: the native build's direct upstream override.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub override_host: Option<OverrideHost>,
    /// `strict`: a pinned host that is gone is a 503, not a fresh pick.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub strict: Option<bool>,
}

/// `cookie`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Cookie {
    /// `name` (default `sticky`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub name: Option<String>,
    /// `ttl_seconds` (default 600; 0 is a browser-session cookie).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub ttl_seconds: Option<u64>,
    /// `path` (default `/`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub path: Option<String>,
    /// `domain` (default none).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub domain: Option<String>,
    /// `secure` (default true).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub secure: Option<bool>,
    /// `http_only` (default true).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub http_only: Option<bool>,
    /// `same_site`: `Strict`, `Lax` (default) or `None`, any case.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub same_site: Option<String>,
}

/// One entry of `keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Key {
    /// `id`: 1-32 characters of `[A-Za-z0-9._-]`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub id: Option<String>,
    /// `secret`: base64 of 32 random bytes.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub secret: Option<String>,
}

/// `session`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Session {
    /// `idle_timeout_seconds` (default 0: off).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub idle_timeout_seconds: Option<u64>,
    /// `absolute_timeout_seconds` (default 0: off).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub absolute_timeout_seconds: Option<u64>,
    /// `refresh_interval_seconds` (default a quarter of the idle timeout, at least 1).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub refresh_interval_seconds: Option<u64>,
    /// `max_lifetime_seconds` (default one day).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub max_lifetime_seconds: Option<u64>,
}

/// `migration`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Migration {
    /// `envoy_cookie`: Envoy's native `stateful_session` cookie name.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub envoy_cookie: Option<String>,
    /// `header`: a legacy session header.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub header: Option<String>,
    /// `cluster`: the cluster assumed for legacy values that name none.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cluster: Option<String>,
    /// `cookie_path`: `Path` used to expire the legacy cookie (default `/`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cookie_path: Option<String>,
    /// `trust_cluster`: honour the cluster a legacy value names (default false).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub trust_cluster: Option<bool>,
}

/// `sharding`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Sharding {
    /// `key`: where the shard key comes from (required).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub key: Option<ShardKey>,
    /// `clusters`: the shard clusters, shard 0 first.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub clusters: Option<Vec<String>>,
    /// `missing_key`: `fallback` (default) or `reject`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub missing_key: Option<String>,
    /// `reshard_deadline`: unix seconds after which sessions move shard.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub reshard_deadline: Option<u64>,
}

/// `sharding.key`: exactly one source must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ShardKey {
    /// `header`: a request header.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub header: Option<String>,
    /// `cookie`: a cookie.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cookie: Option<String>,
    /// `path_segment`: the Nth path segment, 1-based.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub path_segment: Option<u64>,
    /// `query`: a query parameter.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub query: Option<String>,
}

/// `wrap`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Wrap {
    /// `header`: the header the application mints its session id in (required).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub header: Option<String>,
    /// `max_id_bytes`: the longest id wrapped (default 256).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub max_id_bytes: Option<u64>,
    /// `issue_cookie`: also issue the session cookie (default false).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub issue_cookie: Option<bool>,
}

/// `override_host`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct OverrideHost {
    /// `strict`: a pinned host that is gone is a 503 (default false).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub strict: Option<bool>,
}

impl PluginConfig {
    /// The smallest valid document: an allow-list and one key.
    pub fn new(clusters: &[&str], key_id: &str, secret: &str) -> Self {
        Self {
            clusters: Some(clusters.iter().map(|c| (*c).to_owned()).collect()),
            keys: Some(vec![Key::new(key_id, secret)]),
            ..Self::default()
        }
    }

    /// Reads a JSON document with the filter's strict reader; shape and
    /// type errors name the field. Values are checked by
    /// [`Config::from_wire`](super::Config::from_wire).
    pub fn from_json(bytes: &[u8]) -> Result<Self, super::ConfigError> {
        super::read::plugin_config(bytes)
    }
}

impl Key {
    /// A key entry.
    pub fn new(id: &str, secret: &str) -> Self {
        Self {
            id: Some(id.to_owned()),
            secret: Some(secret.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests;
