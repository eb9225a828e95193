//! The affinity policy: a GKE-LBPolicy-like object that targets an HTTPRoute.
//!
//! ```yaml
//! apiVersion: sticky.dev/v1alpha1        # or networking.gke.io/v1
//! kind: LBPolicy
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: reviews}
//!   default:
//!     sessionAffinity: {type: GENERATED_STATEFUL_COOKIE, name: sticky, cookieTtlSec: 600}
//!     connectionDraining: {drainingTimeoutSec: 60}
//!   sessionPersistence: {...}           # or GEP-1619, any of its three shapes
//!   sticky: {idleTimeout: 30m, ...}     # our own extensions
//!   sticky: {wrap: {header: Mcp-Session-Id}}   # wrap mode: the app's own session header
//!   sharding: {key: {header: x-account}, shards: 4, ...}   # see `sharding`
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::input::duration;
use crate::input::names::token_name;
use crate::input::persistence::{self, Persistence};
use crate::input::sharding::{self, Sharding};
use crate::yaml::Document;

/// apiVersions accepted for the policy.
pub const API_VERSIONS: [&str; 2] = ["sticky.dev/v1alpha1", "networking.gke.io/v1"];
/// The policy kind.
pub const KIND: &str = "LBPolicy";
/// The only GKE session affinity type sticky implements.
pub const STATEFUL_COOKIE: &str = "GENERATED_STATEFUL_COOKIE";

/// Where a policy's session settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affinity {
    /// GKE `sessionAffinity: {type: GENERATED_STATEFUL_COOKIE}`.
    StatefulCookie {
        /// `name` (or its alias `cookieName`).
        cookie_name: Option<String>,
        /// `cookieTtlSec`.
        ttl_seconds: Option<u64>,
    },
    /// GEP-1619 `sessionPersistence` on the policy.
    Persistence(Persistence),
    /// Neither: the route's rule must carry `sessionPersistence`.
    FromRoute,
}

/// The policy's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (defaults to the policy's).
    pub namespace: Option<String>,
}

/// Cookie attributes the policy may set (sticky extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CookieAttributes {
    /// `Path`.
    pub path: Option<String>,
    /// `Domain`.
    pub domain: Option<String>,
    /// `Secure`.
    pub secure: Option<bool>,
    /// `HttpOnly`.
    pub http_only: Option<bool>,
    /// `SameSite`: Strict, Lax or None.
    pub same_site: Option<String>,
}

/// sticky's own extensions (`spec.sticky`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// Idle timeout, seconds (GEP-1619 v1.6 dropped it; we keep it).
    pub idle_timeout: Option<u64>,
    /// Minimum time between token refreshes, seconds.
    pub refresh_interval: Option<u64>,
    /// Header carrying the token for clients without cookies.
    pub session_header: Option<String>,
    /// Cookie attributes.
    pub cookie: CookieAttributes,
    /// Istio: the Service whose subsets the backends are (else the route's Service parentRef).
    pub service: Option<String>,
    /// Istio: the pod label that tells subsets apart (default `version`).
    pub subset_label: Option<String>,
    /// `filter_metadata` namespace of drain metadata.
    pub drain_metadata_namespace: Option<String>,
    /// stateful_session strict mode: a pinned host that is gone is a 503.
    pub strict: bool,
    /// Wrap mode: the application's own session header.
    pub wrap: Option<Wrap>,
}

/// `spec.sticky.wrap`: the application mints its own session id in a header
/// (MCP's `Mcp-Session-Id`); sticky seals it with the pinned backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Wrap {
    /// The header the application mints its session id in.
    pub header: String,
    /// Longest id wrapped, bytes (filter default 256, at most 1024).
    pub max_id_bytes: Option<u64>,
    /// Also issue the session cookie (default false).
    pub issue_cookie: Option<bool>,
}

/// A parsed, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The document (for lines in later errors).
    pub doc: Document,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `spec.targetRef`.
    pub target: TargetRef,
    /// Session settings.
    pub affinity: Affinity,
    /// `connectionDraining.drainingTimeoutSec`.
    pub draining_timeout: Option<u64>,
    /// `spec.sticky`.
    pub ext: Extensions,
    /// `spec.sharding`: key-sharded routing to a StatefulSet's pods.
    pub sharding: Option<Sharding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Metadata,
    spec: WireSpec,
}

/// The part of `metadata` stickyctl reads (other fields are allowed).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireSpec {
    target_ref: WireTargetRef,
    #[serde(default)]
    default: WireDefault,
    session_persistence: Option<Value>,
    #[serde(default)]
    sticky: WireSticky,
    sharding: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireTargetRef {
    #[serde(default)]
    group: String,
    kind: String,
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireDefault {
    session_affinity: Option<WireAffinity>,
    connection_draining: Option<WireDraining>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireAffinity {
    #[serde(rename = "type")]
    kind: String,
    /// The cookie name as the Traffic Director LBPolicy (and the KubeCon EU
    /// 2023 talk) spell it.
    name: Option<String>,
    /// An alias of `name`.
    cookie_name: Option<String>,
    cookie_ttl_sec: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireDraining {
    draining_timeout_sec: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireSticky {
    idle_timeout: Option<String>,
    refresh_interval: Option<String>,
    session_header: Option<String>,
    #[serde(default)]
    cookie: CookieAttributes,
    service: Option<String>,
    subset_label: Option<String>,
    drain_metadata_namespace: Option<String>,
    #[serde(default)]
    strict: bool,
    wrap: Option<Wrap>,
}

/// Longest draining timeout GKE accepts (one hour), and ours.
pub const MAX_DRAINING_SECONDS: u64 = 3600;
/// Longest cookie TTL accepted (a day, GKE's bound for stateful cookies).
pub const MAX_COOKIE_TTL: u64 = 86_400;

/// Parses and validates a policy document.
pub fn parse(doc: Document) -> Result<Policy> {
    if !API_VERSIONS.contains(&doc.api_version()) {
        return Err(doc.error(
            "apiVersion",
            format!(
                "must be one of {}, got {:?}",
                API_VERSIONS.join(", "),
                doc.api_version()
            ),
        ));
    }
    if doc.kind() != KIND {
        return Err(doc.error("kind", format!("must be {KIND}, got {:?}", doc.kind())));
    }
    let w: Wire = doc.parse()?;
    let t = &w.spec.target_ref;
    if t.kind != "HTTPRoute" || !(t.group.is_empty() || t.group == "gateway.networking.k8s.io") {
        return Err(doc.error(
            "spec.targetRef.kind",
            format!(
                "must target an HTTPRoute (group gateway.networking.k8s.io), got {}/{}",
                t.group, t.kind
            ),
        ));
    }
    let target = TargetRef {
        group: "gateway.networking.k8s.io".to_owned(),
        kind: t.kind.clone(),
        name: t.name.clone(),
        namespace: t.namespace.clone(),
    };
    let affinity = match (
        &w.spec.default.session_affinity,
        &w.spec.session_persistence,
    ) {
        (Some(_), Some(_)) => {
            return Err(doc.error(
                "spec.sessionPersistence",
                "give either spec.default.sessionAffinity or spec.sessionPersistence, not both",
            ));
        }
        (Some(a), None) => {
            if a.kind != STATEFUL_COOKIE {
                return Err(doc.error(
                    "spec.default.sessionAffinity.type",
                    format!(
                        "sticky implements {STATEFUL_COOKIE} only, got {:?} (hash-based affinity loses sessions when pods change)",
                        a.kind
                    ),
                ));
            }
            if let Some(ttl) = a.cookie_ttl_sec
                && ttl > MAX_COOKIE_TTL
            {
                return Err(doc.error(
                    "spec.default.sessionAffinity.cookieTtlSec",
                    format!("must be at most {MAX_COOKIE_TTL} (24 hours), got {ttl}"),
                ));
            }
            let cookie_name = match (&a.name, &a.cookie_name) {
                (Some(_), Some(_)) => {
                    return Err(doc.error(
                        "spec.default.sessionAffinity.cookieName",
                        "give the cookie name once: `name`, or its alias `cookieName`, not both",
                    ));
                }
                (Some(n), None) => {
                    token_name(&doc, "spec.default.sessionAffinity.name", n)?;
                    Some(n.clone())
                }
                (None, Some(n)) => {
                    token_name(&doc, "spec.default.sessionAffinity.cookieName", n)?;
                    Some(n.clone())
                }
                (None, None) => None,
            };
            Affinity::StatefulCookie {
                cookie_name,
                ttl_seconds: a.cookie_ttl_sec,
            }
        }
        (None, Some(v)) => {
            Affinity::Persistence(persistence::parse(&doc, v, "spec.sessionPersistence")?)
        }
        (None, None) => Affinity::FromRoute,
    };
    let draining_timeout = match &w.spec.default.connection_draining {
        Some(d) if d.draining_timeout_sec > MAX_DRAINING_SECONDS => {
            return Err(doc.error(
                "spec.default.connectionDraining.drainingTimeoutSec",
                format!(
                    "must be at most {MAX_DRAINING_SECONDS} (one hour), got {}",
                    d.draining_timeout_sec
                ),
            ));
        }
        Some(d) => Some(d.draining_timeout_sec),
        None => None,
    };
    let s = w.spec.sticky;
    let dur = |field: &str, t: &Option<String>| -> Result<Option<u64>> {
        match t {
            None => Ok(None),
            Some(t) => duration::seconds(t).map(Some).ok_or_else(|| {
                doc.error(
                    field,
                    format!("{t:?} is not a duration (like 30m, 10s, 1h30m)"),
                )
            }),
        }
    };
    let idle_timeout = dur("spec.sticky.idleTimeout", &s.idle_timeout)?;
    let refresh_interval = dur("spec.sticky.refreshInterval", &s.refresh_interval)?;
    if let Some(h) = &s.session_header {
        token_name(&doc, "spec.sticky.sessionHeader", h)?;
    }
    if let Some(wrap) = &s.wrap {
        token_name(&doc, "spec.sticky.wrap.header", &wrap.header)?;
        if s.session_header
            .as_ref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&wrap.header))
        {
            return Err(doc.error(
                "spec.sticky.wrap.header",
                "must differ from spec.sticky.sessionHeader (wrap mode replaces the application's header; header mode adds sticky's own)",
            ));
        }
        let max = sticky_core::config::MAX_WRAP_ID_BYTES;
        if let Some(n) = wrap.max_id_bytes
            && !(1..=max).contains(&n)
        {
            return Err(doc.error(
                "spec.sticky.wrap.maxIdBytes",
                format!("must be 1-{max}, got {n}"),
            ));
        }
    }
    if let Some(ss) = &s.cookie.same_site
        && !["strict", "lax", "none"].contains(&ss.to_ascii_lowercase().as_str())
    {
        return Err(doc.error(
            "spec.sticky.cookie.sameSite",
            format!("must be Strict, Lax or None, got {ss:?}"),
        ));
    }
    if let Some(label) = &s.subset_label
        && (label.is_empty() || label.len() > 63)
    {
        return Err(doc.error(
            "spec.sticky.subsetLabel",
            "must be a 1-63 character label key",
        ));
    }
    let sharding = match &w.spec.sharding {
        Some(v) => Some(sharding::parse(&doc, v)?),
        None => None,
    };
    let namespace = w
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    Ok(Policy {
        name: w.metadata.name,
        namespace,
        target,
        affinity,
        draining_timeout,
        ext: Extensions {
            idle_timeout,
            refresh_interval,
            session_header: s.session_header,
            cookie: s.cookie,
            service: s.service,
            subset_label: s.subset_label,
            drain_metadata_namespace: s.drain_metadata_namespace,
            strict: s.strict,
            wrap: s.wrap,
        },
        sharding,
        doc,
    })
}
