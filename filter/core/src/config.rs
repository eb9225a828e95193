//! Plugin configuration: the public JSON contract ([`wire`], read by the
//! filter's own strict reader) and the validated [`Config`] the filter runs
//! on. Every error names the offending field.

use std::fmt;

mod read;
pub mod wire;

pub use wire::PluginConfig;

use crate::keys::{Key, KeyId, Keyring};

/// The longest cluster name accepted (Istio names are well under this).
pub const MAX_CLUSTER_NAME: usize = 255;
/// The longest cookie/header name accepted.
pub const MAX_NAME: usize = 64;
/// Upper bound for every duration field: ten years, far from any overflow.
pub const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A configuration error: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the field, e.g. `cookie.same_site` or `keys[1].secret`.
    pub field: String,
    /// What is wrong, in words a platform engineer can act on.
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid sticky config: field `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// The `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax` (the default).
    Lax,
    /// `SameSite=None`; requires `secure`.
    None,
}

impl SameSite {
    /// The attribute value as written into `Set-Cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// Where the shard key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header (its first value).
    Header(String),
    /// A cookie.
    Cookie(String),
    /// The Nth segment of the path (1-based, before any `?`).
    PathSegment(usize),
    /// A query parameter (raw, not percent-decoded).
    Query(String),
}

/// What to do with a request that carries no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// Route it normally (the weighted split).
    Fallback,
    /// Answer 400.
    Reject,
}

/// Validated cookie settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// Cookie name (an RFC 6265 token).
    pub name: String,
    /// `Max-Age`; 0 means a browser-session cookie (no `Max-Age`).
    pub ttl_seconds: u64,
    /// `Path` attribute.
    pub path: String,
    /// Optional `Domain` attribute.
    pub domain: Option<String>,
    /// `Secure` attribute.
    pub secure: bool,
    /// `HttpOnly` attribute.
    pub http_only: bool,
    /// `SameSite` attribute.
    pub same_site: SameSite,
}

/// Validated session lifetime settings (GEP-1619 `sessionPersistence` spirit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session unused for this long gets a fresh pick; 0 disables.
    pub idle_timeout_seconds: u64,
    /// A session older than this gets a fresh pick; 0 disables.
    pub absolute_timeout_seconds: u64,
    /// Minimum time between two re-issues of an unchanged session's token.
    pub refresh_interval_seconds: u64,
    /// The longest a token stays valid after it was issued or refreshed,
    /// whatever the cookie's TTL (a browser-session cookie's token too):
    /// expiry bounds how long a copied token can be replayed.
    pub max_lifetime_seconds: u64,
}

/// Default of `session.max_lifetime_seconds`: one day.
pub const DEFAULT_MAX_LIFETIME: u64 = 24 * 3600;
/// Lower bound of `session.max_lifetime_seconds`.
pub const MIN_MAX_LIFETIME: u64 = 60;

/// Validated drain settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainConfig {
    /// `filter_metadata` namespace that carries `draining` / `drain_deadline`.
    pub metadata_namespace: String,
    /// How often (seconds) one worker re-reads a host's drain metadata.
    pub check_interval_seconds: u64,
}

/// Validated key-sharding settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardingConfig {
    /// Where the key comes from.
    pub key: KeySource,
    /// Shard clusters in shard order: key → `clusters[jump(fnv1a64(key), N)]`.
    pub clusters: Vec<String>,
    /// What a request without a key gets.
    pub missing_key: MissingKey,
    /// After this instant (unix seconds), a session whose key now maps to
    /// another shard moves there; before it (or with no deadline, until its
    /// token expires) it finishes on its old shard.
    pub reshard_deadline: Option<u64>,
}

/// Validated migration settings: which legacy session values are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationConfig {
    /// Name of Envoy's native `stateful_session` cookie to accept.
    pub cookie: Option<String>,
    /// Name of a legacy session header (Envoy `HeaderBasedSessionState`, gRPC A55 style).
    pub header: Option<String>,
    /// Cluster assumed for legacy values that name none.
    pub cluster: Option<String>,
    /// Honour the cluster a legacy value names (A55/A60 `;cluster`). Off by
    /// default: a legacy value is plain text, so the client could pick any
    /// allow-listed cluster and bypass the weighted split.
    pub trust_cluster: bool,
    /// `Path` used to expire the legacy cookie once migrated.
    pub cookie_path: String,
}

/// Validated wrap-mode settings: the application's own session header,
/// sealed on the way out and restored on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapConfig {
    /// Header the application mints its session id in (e.g. `mcp-session-id`).
    pub header: String,
    /// Longest application session id that is wrapped, in bytes.
    pub max_id_bytes: usize,
    /// Also issue the session cookie (and `session_header`) in wrap mode.
    pub issue_cookie: bool,
}

/// Default of `wrap.max_id_bytes`.
pub const DEFAULT_WRAP_ID_BYTES: u64 = 256;
/// Upper bound of `wrap.max_id_bytes` (the sealed value stays under 1.5 KB).
pub const MAX_WRAP_ID_BYTES: u64 = 1024;

/// Validated settings of the native build's direct wiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverrideHostConfig {
    /// A pinned host that is gone is a 503 instead of a fresh pick.
    pub strict: bool,
}

/// The validated configuration the filter runs on.
#[derive(Debug)]
pub struct Config {
    /// Cookie settings.
    pub cookie: CookieConfig,
    /// Request/response header that carries the token for cookie-less clients.
    pub session_header: Option<String>,
    /// Allow-list of clusters a token may name; nothing else is ever written.
    pub clusters: Vec<String>,
    /// Token keys: the first seals, all open.
    pub keys: Keyring,
    /// Internal request header consumed by Envoy's `stateful_session` filter.
    pub host_header: String,
    /// Internal request header matched by the `cluster_header` route.
    pub cluster_header: String,
    /// Drain metadata settings.
    pub drain: DrainConfig,
    /// Session lifetime settings.
    pub session: SessionConfig,
    /// Opt-in reader of legacy session values (none by default).
    pub migration: Option<MigrationConfig>,
    /// Key-sharded routing (none by default).
    pub sharding: Option<ShardingConfig>,
    /// Wrap mode: the application's own session header (none by default).
    pub wrap: Option<WrapConfig>,
    /// Native build, direct wiring: pin the host with Envoy's upstream
    /// override instead of the `host_header` (none: the header, as the wasm).
    pub override_host: Option<OverrideHostConfig>,
    /// Strict mode: a pinned host that is gone is Envoy's 503, not a fresh
    /// pick (`stateful_session` with `strict: true`, or
    /// `override_host.strict`). The filter then hands out a token that
    /// keeps the cluster and names no host, so the next request recovers.
    pub strict: bool,
}

impl Config {
    /// Parses and validates the plugin configuration JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_wire(&PluginConfig::from_json(bytes)?)
    }

    /// Validates a wire document: fills the defaults, checks every value.
    pub fn from_wire(wire: &PluginConfig) -> Result<Self, ConfigError> {
        let cookie = cookie_config(wire.cookie.as_ref().unwrap_or(&wire::Cookie::default()))?;
        let host_header = owned_header_name(
            "host_header",
            wire.host_header.as_deref().unwrap_or("x-sticky-host"),
        )?;
        let cluster_header = owned_header_name(
            "cluster_header",
            wire.cluster_header.as_deref().unwrap_or("x-sticky-cluster"),
        )?;
        if host_header == cluster_header {
            return Err(ConfigError::new(
                "cluster_header",
                "must differ from host_header",
            ));
        }
        let session_header = match wire.session_header.as_deref() {
            None => None,
            Some(name) => {
                let name = owned_header_name("session_header", name)?;
                if name == host_header || name == cluster_header || name == "cookie" {
                    return Err(ConfigError::new(
                        "session_header",
                        "must differ from host_header, cluster_header and cookie",
                    ));
                }
                Some(name)
            }
        };
        let sharding = wire.sharding.as_ref().map(sharding_config).transpose()?;
        let mut clusters = cluster_list("clusters", wire.clusters.as_deref().unwrap_or_default())?;
        if let Some(sharding) = &sharding {
            // Shard clusters are on the allow-list: session tokens may name them.
            for shard in &sharding.clusters {
                if !clusters.contains(shard) {
                    clusters.push(shard.clone());
                }
            }
        }
        if clusters.is_empty() {
            return Err(ConfigError::new(
                "clusters",
                "must list at least one cluster (the allow-list of clusters a session may name)",
            ));
        }
        let keys = keys(wire.keys.as_deref().unwrap_or_default())?;
        let namespace = wire.drain_metadata_namespace.as_deref().unwrap_or("sticky");
        if namespace.is_empty() || namespace.bytes().any(|b| b == 0) {
            return Err(ConfigError::new(
                "drain_metadata_namespace",
                "must be a non-empty metadata namespace",
            ));
        }
        let drain = DrainConfig {
            metadata_namespace: namespace.to_owned(),
            check_interval_seconds: seconds(
                "drain_check_interval_seconds",
                wire.drain_check_interval_seconds.unwrap_or(1),
            )?,
        };
        let session = session_config(wire.session.as_ref().unwrap_or(&wire::Session::default()))?;
        let migration = wire
            .migration
            .as_ref()
            .map(|m| migration_config(m, &clusters, &host_header, &cluster_header))
            .transpose()?;
        let reserved = [
            host_header.as_str(),
            cluster_header.as_str(),
            session_header.as_deref().unwrap_or(""),
            "cookie",
        ];
        let wrap = wire
            .wrap
            .as_ref()
            .map(|w| wrap_config(w, &reserved))
            .transpose()?;
        let override_host = wire.override_host.as_ref().map(|o| OverrideHostConfig {
            strict: o.strict.unwrap_or(false),
        });
        let strict = wire.strict.unwrap_or(false) || override_host.is_some_and(|o| o.strict);
        Ok(Config {
            cookie,
            session_header,
            clusters,
            keys,
            host_header,
            cluster_header,
            drain,
            session,
            migration,
            sharding,
            wrap,
            override_host,
            strict,
        })
    }

    /// The start-up log line both builds write once a configuration loads.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "sticky {} configured: cookie \"{}\", {} clusters, {} keys",
            crate::VERSION,
            self.cookie.name,
            self.clusters.len(),
            self.keys.len()
        );
        if let Some(header) = &self.session_header {
            line.push_str(", session header ");
            line.push_str(header);
        }
        if let Some(sharding) = &self.sharding {
            line.push_str(&format!(
                ", sharding over {} shards",
                sharding.clusters.len()
            ));
        }
        if self.migration.is_some() {
            line.push_str(", migration reader on");
        }
        if let Some(wrap) = &self.wrap {
            line.push_str(", wrapping ");
            line.push_str(&wrap.header);
        }
        if let Some(direct) = &self.override_host {
            line.push_str(if direct.strict {
                ", upstream override (strict)"
            } else {
                ", upstream override"
            });
        }
        line
    }

    /// Whether responses carry the session cookie (and `session_header`):
    /// always, unless wrap mode is on without `wrap.issue_cookie`.
    pub fn issues_cookie(&self) -> bool {
        self.wrap.as_ref().is_none_or(|w| w.issue_cookie)
    }

    /// Index of `cluster` on the allow-list, if it is there.
    pub fn cluster_index(&self, cluster: &[u8]) -> Option<usize> {
        self.clusters.iter().position(|c| c.as_bytes() == cluster)
    }
}

fn cookie_config(obj: &wire::Cookie) -> Result<CookieConfig, ConfigError> {
    let name = obj.name.as_deref().unwrap_or("sticky");
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_tchar) {
        return Err(ConfigError::new(
            "cookie.name",
            "must be 1-64 characters of an RFC 6265 token (letters, digits, !#$%&'*+-.^_`|~)",
        ));
    }
    let path = obj.path.as_deref().unwrap_or("/");
    if !path.starts_with('/') || !path.bytes().all(is_attr_char) {
        return Err(ConfigError::new(
            "cookie.path",
            "must start with '/' and hold no ';', spaces or control characters",
        ));
    }
    let domain = obj.domain.as_deref();
    if let Some(domain) = domain
        && (domain.is_empty() || !domain.bytes().all(is_attr_char))
    {
        return Err(ConfigError::new(
            "cookie.domain",
            "must be a non-empty domain without ';', spaces or control characters",
        ));
    }
    let secure = obj.secure.unwrap_or(true);
    let http_only = obj.http_only.unwrap_or(true);
    let same_site_text = obj.same_site.as_deref().unwrap_or("Lax");
    let same_site = match same_site_text.to_ascii_lowercase().as_str() {
        "strict" => SameSite::Strict,
        "lax" => SameSite::Lax,
        "none" => SameSite::None,
        _ => {
            return Err(ConfigError::new(
                "cookie.same_site",
                format!("must be Strict, Lax or None, got \"{same_site_text}\""),
            ));
        }
    };
    if same_site == SameSite::None && !secure {
        return Err(ConfigError::new(
            "cookie.same_site",
            "None requires cookie.secure: true (browsers drop the cookie otherwise)",
        ));
    }
    let ttl_seconds = seconds("cookie.ttl_seconds", obj.ttl_seconds.unwrap_or(600))?;
    Ok(CookieConfig {
        name: name.to_owned(),
        ttl_seconds,
        path: path.to_owned(),
        domain: domain.map(str::to_owned),
        secure,
        http_only,
        same_site,
    })
}

fn session_config(obj: &wire::Session) -> Result<SessionConfig, ConfigError> {
    let idle = seconds(
        "session.idle_timeout_seconds",
        obj.idle_timeout_seconds.unwrap_or(0),
    )?;
    let absolute = seconds(
        "session.absolute_timeout_seconds",
        obj.absolute_timeout_seconds.unwrap_or(0),
    )?;
    // Refresh often enough that an active session never idles out, rarely
    // enough that most responses carry no Set-Cookie. A defaulted interval
    // is held to the same rule as an explicit one.
    let explicit = obj.refresh_interval_seconds;
    let refresh = match explicit {
        Some(r) => seconds("session.refresh_interval_seconds", r)?,
        None => (idle / 4).max(1),
    };
    if refresh == 0 || (idle > 0 && refresh >= idle) {
        return Err(match explicit {
            Some(_) => ConfigError::new(
                "session.refresh_interval_seconds",
                "must be at least 1 and shorter than session.idle_timeout_seconds",
            ),
            None => ConfigError::new(
                "session.idle_timeout_seconds",
                format!(
                    "{idle} is too short: the token is refreshed at most once a second, so an active session would idle out; use 0 (off) or at least 2"
                ),
            ),
        });
    }
    let max_lifetime = seconds(
        "session.max_lifetime_seconds",
        obj.max_lifetime_seconds.unwrap_or(DEFAULT_MAX_LIFETIME),
    )?;
    if max_lifetime < MIN_MAX_LIFETIME || max_lifetime < refresh.saturating_mul(2) {
        return Err(ConfigError::new(
            "session.max_lifetime_seconds",
            format!(
                "must be at least {MIN_MAX_LIFETIME} and at least twice session.refresh_interval_seconds ({refresh}), so an active session is refreshed before its token expires"
            ),
        ));
    }
    Ok(SessionConfig {
        idle_timeout_seconds: idle,
        absolute_timeout_seconds: absolute,
        refresh_interval_seconds: refresh,
        max_lifetime_seconds: max_lifetime,
    })
}

fn migration_config(
    obj: &wire::Migration,
    clusters: &[String],
    host_header: &str,
    cluster_header: &str,
) -> Result<MigrationConfig, ConfigError> {
    let cookie = match obj.envoy_cookie.as_deref() {
        Some(name) if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_tchar) => {
            return Err(ConfigError::new(
                "migration.envoy_cookie",
                "must be a cookie name (an RFC 6265 token of 1-64 characters)",
            ));
        }
        other => other.map(str::to_owned),
    };
    let header = obj
        .header
        .as_deref()
        .map(|h| header_name("migration.header", h))
        .transpose()?;
    if header
        .as_deref()
        .is_some_and(|h| h == host_header || h == cluster_header)
    {
        return Err(ConfigError::new(
            "migration.header",
            "must differ from host_header and cluster_header",
        ));
    }
    if cookie.is_none() && header.is_none() {
        return Err(ConfigError::new(
            "migration",
            "must name envoy_cookie, header, or both",
        ));
    }
    let cluster = obj.cluster.clone();
    if let Some(c) = &cluster
        && !clusters.contains(c)
    {
        return Err(ConfigError::new(
            "migration.cluster",
            format!("must be one of `clusters`, got \"{c}\""),
        ));
    }
    let cookie_path = obj.cookie_path.as_deref().unwrap_or("/");
    if !cookie_path.starts_with('/') || !cookie_path.bytes().all(is_attr_char) {
        return Err(ConfigError::new(
            "migration.cookie_path",
            "must start with '/' and hold no ';', spaces or control characters",
        ));
    }
    let cookie_path = cookie_path.to_owned();
    let trust_cluster = obj.trust_cluster.unwrap_or(false);
    Ok(MigrationConfig {
        cookie,
        header,
        cluster,
        trust_cluster,
        cookie_path,
    })
}

fn sharding_config(obj: &wire::Sharding) -> Result<ShardingConfig, ConfigError> {
    let key = obj.key.as_ref().ok_or_else(|| {
        ConfigError::new(
            "sharding.key",
            "is required: {\"header\" | \"cookie\" | \"path_segment\" | \"query\": ...}",
        )
    })?;
    let sources = [
        key.header
            .as_deref()
            .map(|h| header_name("sharding.key.header", h).map(KeySource::Header)),
        key.cookie.as_deref().map(|c| {
            if c.is_empty() || c.len() > MAX_NAME || !c.bytes().all(is_tchar) {
                Err(ConfigError::new(
                    "sharding.key.cookie",
                    "must be a cookie name",
                ))
            } else {
                Ok(KeySource::Cookie(c.to_owned()))
            }
        }),
        key.path_segment.map(|n| match usize::try_from(n) {
            Ok(n @ 1..=64) => Ok(KeySource::PathSegment(n)),
            _ => Err(ConfigError::new(
                "sharding.key.path_segment",
                "must be 1-64 (1 = the first segment)",
            )),
        }),
        key.query.as_deref().map(|q| {
            if q.is_empty() || q.bytes().any(|b| b == b'&' || b == b'=' || b <= b' ') {
                Err(ConfigError::new(
                    "sharding.key.query",
                    "must be a query parameter name",
                ))
            } else {
                Ok(KeySource::Query(q.to_owned()))
            }
        }),
    ];
    let mut chosen = sources.into_iter().flatten();
    let source = chosen.next().ok_or_else(|| {
        ConfigError::new(
            "sharding.key",
            "must name one of header, cookie, path_segment, query",
        )
    })??;
    if chosen.next().is_some() {
        return Err(ConfigError::new(
            "sharding.key",
            "must name exactly one source",
        ));
    }
    let clusters = cluster_list(
        "sharding.clusters",
        obj.clusters.as_deref().unwrap_or_default(),
    )?;
    if clusters.is_empty() {
        return Err(ConfigError::new(
            "sharding.clusters",
            "must list the shard clusters in shard order (shard-0 first)",
        ));
    }
    let missing_key = match obj.missing_key.as_deref().unwrap_or("fallback") {
        "fallback" => MissingKey::Fallback,
        "reject" => MissingKey::Reject,
        other => {
            return Err(ConfigError::new(
                "sharding.missing_key",
                format!("must be \"fallback\" or \"reject\", got \"{other}\""),
            ));
        }
    };
    let reshard_deadline = obj.reshard_deadline;
    Ok(ShardingConfig {
        key: source,
        clusters,
        missing_key,
        reshard_deadline,
    })
}

fn wrap_config(obj: &wire::Wrap, reserved: &[&str]) -> Result<WrapConfig, ConfigError> {
    let Some(name) = obj.header.as_deref() else {
        return Err(ConfigError::new(
            "wrap.header",
            "is required: the header the application mints its session id in",
        ));
    };
    let header = owned_header_name("wrap.header", name)?;
    if reserved.contains(&header.as_str()) {
        return Err(ConfigError::new(
            "wrap.header",
            "must differ from host_header, cluster_header, session_header and cookie",
        ));
    }
    let max = obj.max_id_bytes.unwrap_or(DEFAULT_WRAP_ID_BYTES);
    if max == 0 || max > MAX_WRAP_ID_BYTES {
        return Err(ConfigError::new(
            "wrap.max_id_bytes",
            format!("must be 1-{MAX_WRAP_ID_BYTES}"),
        ));
    }
    let max_id_bytes =
        usize::try_from(max).map_err(|_| ConfigError::new("wrap.max_id_bytes", "too large"))?;
    let issue_cookie = obj.issue_cookie.unwrap_or(false);
    Ok(WrapConfig {
        header,
        max_id_bytes,
        issue_cookie,
    })
}

fn cluster_list(path: &str, items: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut clusters: Vec<String> = Vec::with_capacity(items.len());
    for (i, name) in items.iter().enumerate() {
        let field = format!("{path}[{i}]");
        if name.is_empty()
            || name.len() > MAX_CLUSTER_NAME
            || !name.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(ConfigError::new(
                field,
                "must be 1-255 visible ASCII characters (a header value)",
            ));
        }
        if clusters.contains(name) {
            return Err(ConfigError::new(
                field,
                format!("duplicate cluster \"{name}\""),
            ));
        }
        clusters.push(name.clone());
    }
    Ok(clusters)
}

fn keys(items: &[wire::Key]) -> Result<Keyring, ConfigError> {
    if items.is_empty() {
        return Err(ConfigError::new(
            "keys",
            "must hold at least one {\"id\", \"secret\"} key (the first seals, all open)",
        ));
    }
    let mut out: Vec<Key> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id_text = item.id.as_deref().unwrap_or_default();
        let id = KeyId::new(id_text).ok_or_else(|| {
            ConfigError::new(
                format!("keys[{i}].id"),
                "must be 1-32 characters of [A-Za-z0-9._-]",
            )
        })?;
        if out.iter().any(|k| k.id() == &id) {
            return Err(ConfigError::new(
                format!("keys[{i}].id"),
                format!("duplicate key id \"{id_text}\""),
            ));
        }
        let secret_text = item
            .secret
            .as_deref()
            .ok_or_else(|| ConfigError::new(format!("keys[{i}].secret"), "is required"))?;
        let secret = decode_secret(secret_text.trim()).ok_or_else(|| {
            ConfigError::new(
                format!("keys[{i}].secret"),
                "must be base64 (standard or URL-safe)",
            )
        })?;
        let secret: [u8; 32] = secret.as_slice().try_into().map_err(|_| {
            ConfigError::new(
                format!("keys[{i}].secret"),
                format!(
                    "must decode to exactly 32 random bytes, got {} (generate one with `stickyctl keys new` or `head -c32 /dev/urandom | base64`)",
                    secret.len()
                ),
            )
        })?;
        out.push(Key::new(id, &secret));
    }
    Ok(Keyring::new(out))
}

fn seconds(field: &str, value: u64) -> Result<u64, ConfigError> {
    if value > MAX_SECONDS {
        return Err(ConfigError::new(
            field,
            format!("must be at most {MAX_SECONDS} (ten years)"),
        ));
    }
    Ok(value)
}

fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_tchar) {
        return Err(ConfigError::new(
            field,
            "must be a 1-64 character HTTP header name",
        ));
    }
    // Envoy keeps header names lowercase (HTTP/2 requires it).
    Ok(name.to_ascii_lowercase())
}

/// Headers the filter must never set or strip: framing and connection
/// headers, the request's identity and credentials, and cookies.
const RESERVED_HEADERS: [&str; 17] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
    "location",
    "via",
];

/// A header name the filter writes or strips: never a reserved, pseudo
/// (`:path`) or Envoy-internal (`x-envoy-*`) header.
fn owned_header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let name = header_name(field, name)?;
    if RESERVED_HEADERS.contains(&name.as_str()) || name.starts_with("x-envoy-") {
        return Err(ConfigError::new(
            field,
            format!(
                "\"{name}\" is reserved (framing, connection, credentials, cookies or Envoy's own x-envoy-*): the filter sets and removes this header, pick a name of its own such as x-sticky-session"
            ),
        ));
    }
    Ok(name)
}

fn decode_secret(text: &str) -> Option<Vec<u8>> {
    crate::b64::decode_any(text.as_bytes())
}

/// RFC 7230 `tchar`: what header names and cookie names may hold.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_attr_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && b != b';' && b != b','
}

#[cfg(test)]
mod tests;
