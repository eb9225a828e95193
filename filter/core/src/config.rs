//! Plugin configuration: the public JSON contract (wire form) and the validated
//! [`Config`] the filter runs on. Every error names the offending field.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

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
}

/// Validated drain settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainConfig {
    /// `filter_metadata` namespace that carries `draining` / `drain_deadline`.
    pub metadata_namespace: String,
    /// How often (seconds) one worker re-reads a host's drain metadata.
    pub check_interval_seconds: u64,
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
}

impl Config {
    /// Parses and validates the plugin configuration JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire: WireConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "<root>".to_owned()
            } else {
                path
            };
            ConfigError::new(field, e.inner().to_string())
        })?;
        wire.validate()
    }

    /// Index of `cluster` on the allow-list, if it is there.
    pub fn cluster_index(&self, cluster: &[u8]) -> Option<usize> {
        self.clusters.iter().position(|c| c.as_bytes() == cluster)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireConfig {
    #[serde(default)]
    cookie: WireCookie,
    #[serde(default)]
    session_header: Option<String>,
    #[serde(default)]
    clusters: Option<Vec<String>>,
    #[serde(default)]
    keys: Option<Vec<WireKey>>,
    #[serde(default = "default_host_header")]
    host_header: String,
    #[serde(default = "default_cluster_header")]
    cluster_header: String,
    #[serde(default = "default_namespace")]
    drain_metadata_namespace: String,
    #[serde(default = "default_drain_check")]
    drain_check_interval_seconds: u64,
    #[serde(default)]
    session: WireSession,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCookie {
    #[serde(default = "default_cookie_name")]
    name: String,
    #[serde(default = "default_ttl")]
    ttl_seconds: u64,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default = "yes")]
    secure: bool,
    #[serde(default = "yes")]
    http_only: bool,
    #[serde(default = "default_same_site")]
    same_site: String,
}

impl Default for WireCookie {
    fn default() -> Self {
        Self {
            name: default_cookie_name(),
            ttl_seconds: default_ttl(),
            path: default_path(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: default_same_site(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WireSession {
    #[serde(default)]
    idle_timeout_seconds: u64,
    #[serde(default)]
    absolute_timeout_seconds: u64,
    #[serde(default)]
    refresh_interval_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireKey {
    id: String,
    secret: String,
}

fn default_cookie_name() -> String {
    "sticky".to_owned()
}
fn default_ttl() -> u64 {
    600
}
fn default_path() -> String {
    "/".to_owned()
}
fn yes() -> bool {
    true
}
fn default_same_site() -> String {
    "Lax".to_owned()
}
fn default_host_header() -> String {
    "x-sticky-host".to_owned()
}
fn default_cluster_header() -> String {
    "x-sticky-cluster".to_owned()
}
fn default_namespace() -> String {
    "sticky".to_owned()
}
fn default_drain_check() -> u64 {
    1
}

impl WireConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let cookie = self.cookie.validate()?;
        let host_header = header_name("host_header", self.host_header)?;
        let cluster_header = header_name("cluster_header", self.cluster_header)?;
        if host_header == cluster_header {
            return Err(ConfigError::new(
                "cluster_header",
                "must differ from host_header",
            ));
        }
        let session_header = match self.session_header {
            None => None,
            Some(name) => {
                let name = header_name("session_header", name)?;
                if name == host_header || name == cluster_header || name == "cookie" {
                    return Err(ConfigError::new(
                        "session_header",
                        "must differ from host_header, cluster_header and cookie",
                    ));
                }
                Some(name)
            }
        };
        let clusters = validate_clusters(self.clusters)?;
        let keys = validate_keys(self.keys)?;
        if self.drain_metadata_namespace.is_empty()
            || self.drain_metadata_namespace.bytes().any(|b| b == 0)
        {
            return Err(ConfigError::new(
                "drain_metadata_namespace",
                "must be a non-empty metadata namespace",
            ));
        }
        let drain = DrainConfig {
            metadata_namespace: self.drain_metadata_namespace,
            check_interval_seconds: seconds(
                "drain_check_interval_seconds",
                self.drain_check_interval_seconds,
            )?,
        };
        let session = self.session.validate()?;
        Ok(Config {
            cookie,
            session_header,
            clusters,
            keys,
            host_header,
            cluster_header,
            drain,
            session,
        })
    }
}

impl WireCookie {
    fn validate(self) -> Result<CookieConfig, ConfigError> {
        if self.name.is_empty() || self.name.len() > MAX_NAME || !self.name.bytes().all(is_tchar) {
            return Err(ConfigError::new(
                "cookie.name",
                "must be 1-64 characters of an RFC 6265 token (letters, digits, !#$%&'*+-.^_`|~)",
            ));
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(is_attr_char) {
            return Err(ConfigError::new(
                "cookie.path",
                "must start with '/' and hold no ';', spaces or control characters",
            ));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !domain.bytes().all(is_attr_char))
        {
            return Err(ConfigError::new(
                "cookie.domain",
                "must be a non-empty domain without ';', spaces or control characters",
            ));
        }
        let same_site = match self.same_site.to_ascii_lowercase().as_str() {
            "strict" => SameSite::Strict,
            "lax" => SameSite::Lax,
            "none" => SameSite::None,
            _ => {
                return Err(ConfigError::new(
                    "cookie.same_site",
                    format!("must be Strict, Lax or None, got {:?}", self.same_site),
                ));
            }
        };
        if same_site == SameSite::None && !self.secure {
            return Err(ConfigError::new(
                "cookie.same_site",
                "None requires cookie.secure: true (browsers drop the cookie otherwise)",
            ));
        }
        Ok(CookieConfig {
            name: self.name,
            ttl_seconds: seconds("cookie.ttl_seconds", self.ttl_seconds)?,
            path: self.path,
            domain: self.domain,
            secure: self.secure,
            http_only: self.http_only,
            same_site,
        })
    }
}

impl WireSession {
    fn validate(self) -> Result<SessionConfig, ConfigError> {
        let idle = seconds("session.idle_timeout_seconds", self.idle_timeout_seconds)?;
        let absolute = seconds(
            "session.absolute_timeout_seconds",
            self.absolute_timeout_seconds,
        )?;
        // Refresh often enough that an active session never idles out, rarely
        // enough that most responses carry no Set-Cookie.
        let refresh = match self.refresh_interval_seconds {
            Some(r) => {
                let r = seconds("session.refresh_interval_seconds", r)?;
                if r == 0 || (idle > 0 && r >= idle) {
                    return Err(ConfigError::new(
                        "session.refresh_interval_seconds",
                        "must be at least 1 and shorter than session.idle_timeout_seconds",
                    ));
                }
                r
            }
            None => (idle / 4).max(1),
        };
        Ok(SessionConfig {
            idle_timeout_seconds: idle,
            absolute_timeout_seconds: absolute,
            refresh_interval_seconds: refresh,
        })
    }
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

fn header_name(field: &str, name: String) -> Result<String, ConfigError> {
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_tchar) {
        return Err(ConfigError::new(
            field,
            "must be a 1-64 character HTTP header name",
        ));
    }
    // Envoy keeps header names lowercase (HTTP/2 requires it).
    Ok(name.to_ascii_lowercase())
}

fn validate_clusters(clusters: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let clusters = clusters.unwrap_or_default();
    if clusters.is_empty() {
        return Err(ConfigError::new(
            "clusters",
            "must list at least one cluster (the allow-list of clusters a session may name)",
        ));
    }
    for (i, name) in clusters.iter().enumerate() {
        let field = format!("clusters[{i}]");
        if name.is_empty()
            || name.len() > MAX_CLUSTER_NAME
            || !name.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(ConfigError::new(
                field,
                "must be 1-255 visible ASCII characters (a header value)",
            ));
        }
        if clusters.iter().take(i).any(|c| c == name) {
            return Err(ConfigError::new(
                field,
                format!("duplicate cluster {name:?}"),
            ));
        }
    }
    Ok(clusters)
}

fn validate_keys(keys: Option<Vec<WireKey>>) -> Result<Keyring, ConfigError> {
    let keys = keys.unwrap_or_default();
    if keys.is_empty() {
        return Err(ConfigError::new(
            "keys",
            "must hold at least one {\"id\", \"secret\"} key (the first seals, all open)",
        ));
    }
    let mut out: Vec<Key> = Vec::with_capacity(keys.len());
    for (i, key) in keys.into_iter().enumerate() {
        let id = KeyId::new(&key.id).ok_or_else(|| {
            ConfigError::new(
                format!("keys[{i}].id"),
                "must be 1-32 characters of [A-Za-z0-9._-]",
            )
        })?;
        if out.iter().any(|k| k.id() == &id) {
            return Err(ConfigError::new(
                format!("keys[{i}].id"),
                format!("duplicate key id {:?}", key.id),
            ));
        }
        let secret = decode_secret(key.secret.trim()).ok_or_else(|| {
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

fn decode_secret(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
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
