//! The filter's own reader of the plugin JSON into the wire model: shape and
//! type errors name the field, unknown fields are refused, `null` reads as
//! absent. Built on the strict [`crate::json`] parser instead of serde to keep
//! the wasm small (see filter/core/Cargo.toml for the measurement).

use super::ConfigError;
use super::wire::{
    Cookie, Key, Migration, OverrideHost, PluginConfig, Session, ShardKey, Sharding, Wrap,
};
use crate::json::{self, Json};

/// Parses `bytes` into the wire model.
pub(super) fn plugin_config(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
    let doc = json::parse(bytes)
        .map_err(|e| ConfigError::new("<root>", format!("not valid JSON: {e}")))?;
    let mut error = None;
    let config = Obj::new(String::new(), &doc, &mut error).map(|mut o| {
        let config = PluginConfig {
            cookie: o.object("cookie", cookie),
            session_header: o.string("session_header"),
            clusters: o.strings("clusters"),
            keys: o.array("keys", key),
            host_header: o.string("host_header"),
            cluster_header: o.string("cluster_header"),
            drain_metadata_namespace: o.string("drain_metadata_namespace"),
            drain_check_interval_seconds: o.u64("drain_check_interval_seconds"),
            session: o.object("session", session),
            migration: o.object("migration", migration),
            sharding: o.object("sharding", sharding),
            wrap: o.object("wrap", wrap),
            override_host: o.object("override_host", override_host),
            strict: o.bool("strict"),
        };
        o.finish();
        config
    });
    match (error, config) {
        (None, Some(config)) => Ok(config),
        (Some(e), _) => Err(e),
        // Obj::new records why it returned None.
        (None, None) => Err(ConfigError::new("<root>", "must be a JSON object")),
    }
}

fn cookie(o: &mut Obj<'_, '_>) -> Cookie {
    Cookie {
        name: o.string("name"),
        ttl_seconds: o.u64("ttl_seconds"),
        path: o.string("path"),
        domain: o.string("domain"),
        secure: o.bool("secure"),
        http_only: o.bool("http_only"),
        same_site: o.string("same_site"),
    }
}

fn key(o: &mut Obj<'_, '_>) -> Key {
    Key {
        id: o.string("id"),
        secret: o.string("secret"),
    }
}

fn session(o: &mut Obj<'_, '_>) -> Session {
    Session {
        idle_timeout_seconds: o.u64("idle_timeout_seconds"),
        absolute_timeout_seconds: o.u64("absolute_timeout_seconds"),
        refresh_interval_seconds: o.u64("refresh_interval_seconds"),
        max_lifetime_seconds: o.u64("max_lifetime_seconds"),
    }
}

fn migration(o: &mut Obj<'_, '_>) -> Migration {
    Migration {
        envoy_cookie: o.string("envoy_cookie"),
        header: o.string("header"),
        cluster: o.string("cluster"),
        cookie_path: o.string("cookie_path"),
        trust_cluster: o.bool("trust_cluster"),
    }
}

fn sharding(o: &mut Obj<'_, '_>) -> Sharding {
    Sharding {
        key: o.object("key", shard_key),
        clusters: o.strings("clusters"),
        missing_key: o.string("missing_key"),
        reshard_deadline: o.u64("reshard_deadline"),
    }
}

fn shard_key(o: &mut Obj<'_, '_>) -> ShardKey {
    ShardKey {
        header: o.string("header"),
        cookie: o.string("cookie"),
        path_segment: o.u64("path_segment"),
        query: o.string("query"),
    }
}

fn wrap(o: &mut Obj<'_, '_>) -> Wrap {
    Wrap {
        header: o.string("header"),
        max_id_bytes: o.u64("max_id_bytes"),
        issue_cookie: o.bool("issue_cookie"),
    }
}

fn override_host(o: &mut Obj<'_, '_>) -> OverrideHost {
    OverrideHost {
        strict: o.bool("strict"),
    }
}

/// A JSON object read field by field; a field nobody read is an error.
///
/// Readers return `None` on a bad value and record the first error in the
/// shared slot instead of returning early: no unwinding of half-built
/// structs on every field, which keeps the wasm small.
struct Obj<'a, 'e> {
    path: String,
    entries: &'a [(String, Json)],
    used: Vec<bool>,
    error: &'e mut Option<ConfigError>,
}

impl<'a, 'e> Obj<'a, 'e> {
    fn new(path: String, value: &'a Json, error: &'e mut Option<ConfigError>) -> Option<Self> {
        match value {
            Json::Object(entries) => Some(Self {
                path,
                used: vec![false; entries.len()],
                entries,
                error,
            }),
            other => {
                let field = if path.is_empty() {
                    "<root>".to_owned()
                } else {
                    path
                };
                fail(
                    error,
                    field,
                    format!("must be a JSON object, got {}", other.kind()),
                );
                None
            }
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`, marking it read; `null` reads as absent.
    fn take(&mut self, key: &str) -> Option<&'a Json> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        if let Some(used) = self.used.get_mut(i) {
            *used = true;
        }
        match self.entries.get(i) {
            Some((_, Json::Null)) | None => None,
            Some((_, value)) => Some(value),
        }
    }

    /// Records "`field` must be `want`, got ..." (unless an error came first).
    fn wrong<T>(&mut self, field: String, want: &str, got: &Json) -> Option<T> {
        fail(
            self.error,
            field,
            format!("must be {want}, got {}", got.kind()),
        );
        None
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Json::String(s) => Some(s.clone()),
            other => self.wrong(self.field(key), "a string", other),
        }
    }

    fn u64(&mut self, key: &str) -> Option<u64> {
        let value = self.take(key)?;
        match value.as_u64() {
            Some(n) => Some(n),
            None => self.wrong(self.field(key), "a whole number >= 0", value),
        }
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        match self.take(key)? {
            Json::Bool(b) => Some(*b),
            other => self.wrong(self.field(key), "true or false", other),
        }
    }

    /// A nested object, read by `read` and then checked for unknown fields.
    fn object<T>(&mut self, key: &str, read: fn(&mut Obj<'a, '_>) -> T) -> Option<T> {
        let value = self.take(key)?;
        let mut inner = Obj::new(self.field(key), value, self.error)?;
        let out = read(&mut inner);
        inner.finish();
        Some(out)
    }

    fn items(&mut self, key: &str) -> Option<&'a [Json]> {
        match self.take(key)? {
            Json::Array(items) => Some(items),
            other => self.wrong(self.field(key), "an array", other),
        }
    }

    /// An array of objects, each read by `read`; errors name `key[i]`.
    fn array<T>(&mut self, key: &str, read: fn(&mut Obj<'a, '_>) -> T) -> Option<Vec<T>> {
        let items = self.items(key)?;
        let field = self.field(key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(mut inner) = Obj::new(format!("{field}[{i}]"), item, self.error) {
                out.push(read(&mut inner));
                inner.finish();
            }
        }
        Some(out)
    }

    /// An array of strings; errors name `key[i]`.
    fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        let items = self.items(key)?;
        let field = self.field(key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Json::String(s) => out.push(s.clone()),
                other => return self.wrong(format!("{field}[{i}]"), "a string", other),
            }
        }
        Some(out)
    }

    /// Refuses the first field nobody read: a typo must not pass silently.
    fn finish(self) {
        let unknown = self
            .entries
            .iter()
            .zip(&self.used)
            .find(|(_, used)| !**used)
            .map(|((key, _), _)| key);
        if let Some(key) = unknown {
            fail(
                self.error,
                self.field(key),
                format!("unknown field `{key}`"),
            );
        }
    }
}

/// Records an error unless an earlier one is already there: the first wins.
fn fail(slot: &mut Option<ConfigError>, field: String, message: String) {
    if slot.is_none() {
        *slot = Some(ConfigError::new(field, message));
    }
}
