//! `spec.sharding` of the policy: key-sharded routing to the pods of a
//! StatefulSet, one shard per ordinal.
//!
//! ```yaml
//! spec:
//!   sharding:
//!     key: {header: x-account}      # or {cookie: NAME}, {pathSegment: N}, {query: NAME}
//!     shards: 4                     # StatefulSet ordinals 0..3
//!     statefulSet: accounts         # pods accounts-0 .. accounts-3
//!     headlessService: accounts     # its spec.serviceName: per-pod DNS names
//!     service: accounts-rw          # optional: a ClusterIP Service over the same pods (Istio subsets)
//!     port: 8080
//!     missingKey: fallback          # or reject (400)
//! ```
//!
//! The filter maps a key to `shard = jump(fnv1a64(key), shards)`
//! (`sticky_core::shard`); shard `i` is the StatefulSet's pod `<statefulSet>-<i>`.

use serde::Deserialize;
use serde_json::Value;
use sticky_core::config::{KeySource, MissingKey};

use crate::error::Result;
use crate::input::names::token_name;
use crate::yaml::Document;

/// The most shards a policy may ask for (one Envoy cluster each).
pub const MAX_SHARDS: u32 = 1024;
/// The highest path segment the filter reads a key from.
pub const MAX_PATH_SEGMENT: u64 = 64;

/// Validated sharding settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharding {
    /// Where the key comes from (the filter's own type).
    pub key: KeySource,
    /// Number of shards: the StatefulSet's ordinals `0..shards`.
    pub shards: u32,
    /// The StatefulSet whose pods are the shards.
    pub stateful_set: String,
    /// Its governing headless Service (`spec.serviceName`): per-pod DNS names.
    pub headless_service: String,
    /// A ClusterIP Service selecting the same pods, whose subsets the shards
    /// become in Istio (default: the headless Service).
    pub service: Option<String>,
    /// The shard Service's port (Istio names subset clusters by it), which
    /// is also the port the DNS clusters dial on the pods: keep the
    /// Service's `targetPort` equal to it.
    pub port: u16,
    /// What a request without a key gets.
    pub missing_key: MissingKey,
}

impl Sharding {
    /// The pod name of shard `i`.
    pub fn pod(&self, i: u32) -> String {
        format!("{}-{i}", self.stateful_set)
    }

    /// The Service whose subsets the shards are in Istio.
    pub fn istio_service(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.headless_service)
    }

    /// Whether the Istio subsets sit on the headless Service itself.
    pub fn subsets_on_headless(&self) -> bool {
        self.istio_service() == self.headless_service
    }

    /// The stable DNS name of shard `i`'s pod:
    /// `<statefulSet>-<i>.<headlessService>.<namespace>.svc.cluster.local`.
    pub fn pod_dns(&self, i: u32, namespace: &str) -> String {
        format!(
            "{}.{}.{namespace}.svc.cluster.local",
            self.pod(i),
            self.headless_service
        )
    }

    /// The plugin config's `sharding.key` object.
    pub fn key_json(&self) -> Value {
        match &self.key {
            KeySource::Header(h) => serde_json::json!({"header": h}),
            KeySource::Cookie(c) => serde_json::json!({"cookie": c}),
            KeySource::PathSegment(n) => serde_json::json!({"path_segment": n}),
            KeySource::Query(q) => serde_json::json!({"query": q}),
        }
    }

    /// `fallback` or `reject`, as the plugin config spells it.
    pub fn missing_key_str(&self) -> &'static str {
        match self.missing_key {
            MissingKey::Fallback => "fallback",
            MissingKey::Reject => "reject",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    key: WireKey,
    shards: u32,
    stateful_set: String,
    headless_service: String,
    service: Option<String>,
    port: u16,
    missing_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireKey {
    header: Option<String>,
    cookie: Option<String>,
    path_segment: Option<u64>,
    query: Option<String>,
}

/// A Kubernetes DNS label (RFC 1123): 1-63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses and validates `spec.sharding` (`value`) of the policy `doc`.
pub fn parse(doc: &Document, value: &Value) -> Result<Sharding> {
    const AT: &str = "spec.sharding";
    let w: Wire = doc.parse_at(value, AT)?;
    let field = |f: &str| format!("{AT}.{f}");
    let mut sources = Vec::new();
    if let Some(h) = &w.key.header {
        token_name(doc, &field("key.header"), h)?;
        sources.push(KeySource::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = &w.key.cookie {
        token_name(doc, &field("key.cookie"), c)?;
        sources.push(KeySource::Cookie(c.clone()));
    }
    if let Some(n) = w.key.path_segment {
        if !(1..=MAX_PATH_SEGMENT).contains(&n) {
            return Err(doc.error(
                &field("key.pathSegment"),
                format!("must be 1-{MAX_PATH_SEGMENT} (1 = the first path segment), got {n}"),
            ));
        }
        sources.push(KeySource::PathSegment(usize::try_from(n).unwrap_or(1)));
    }
    if let Some(q) = &w.key.query {
        if q.is_empty() || q.len() > 64 || q.bytes().any(|b| b == b'&' || b == b'=' || b <= b' ') {
            return Err(doc.error(
                &field("key.query"),
                format!(
                    "{q:?} must be a 1-64 character query parameter name without '&', '=' or spaces"
                ),
            ));
        }
        sources.push(KeySource::Query(q.clone()));
    }
    let key = match <[KeySource; 1]>::try_from(sources) {
        Ok([key]) => key,
        Err(found) => {
            return Err(doc.error(
                &field("key"),
                format!(
                    "must name exactly one of header, cookie, pathSegment, query; got {}",
                    found.len()
                ),
            ));
        }
    };
    if !(1..=MAX_SHARDS).contains(&w.shards) {
        return Err(doc.error(
            &field("shards"),
            format!("must be 1-{MAX_SHARDS}, got {}", w.shards),
        ));
    }
    // The highest ordinal's pod name is a DNS label too (it is the pod's hostname).
    let last_pod = format!("{}-{}", w.stateful_set, w.shards.saturating_sub(1));
    if !dns_label(&w.stateful_set) || !dns_label(&last_pod) {
        return Err(doc.error(
            &field("statefulSet"),
            format!(
                "{:?} must be a DNS label (lowercase letters, digits, '-'), and so must its last pod's name {last_pod:?} (at most 63 characters)",
                w.stateful_set
            ),
        ));
    }
    for (name, v) in [
        ("headlessService", Some(&w.headless_service)),
        ("service", w.service.as_ref()),
    ] {
        if let Some(v) = v
            && !dns_label(v)
        {
            return Err(doc.error(
                &field(name),
                format!(
                    "{v:?} must be a Service name (a DNS label: lowercase letters, digits, '-')"
                ),
            ));
        }
    }
    if w.port == 0 {
        return Err(doc.error(&field("port"), "must be 1-65535, got 0"));
    }
    let missing_key = match w.missing_key.as_deref() {
        None | Some("fallback") => MissingKey::Fallback,
        Some("reject") => MissingKey::Reject,
        Some(other) => {
            return Err(doc.error(
                &field("missingKey"),
                format!(
                    "must be fallback (route it by the HTTPRoute's backendRefs) or reject (answer 400), got {other:?}"
                ),
            ));
        }
    };
    Ok(Sharding {
        key,
        shards: w.shards,
        stateful_set: w.stateful_set,
        headless_service: w.headless_service,
        service: w.service,
        port: w.port,
        missing_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_str;

    fn parse_text(text: &str) -> Result<Sharding> {
        let docs = parse_str("p.yaml", text)?;
        let doc = &docs[0];
        parse(doc, &doc.value["spec"]["sharding"])
    }

    const GOOD: &str = "spec:\n  sharding:\n    key: {header: X-Account}\n    shards: 4\n    statefulSet: accounts\n    headlessService: accounts\n    port: 8080\n";

    #[test]
    fn a_header_key_is_lowercased_and_defaults_apply() {
        let s = parse_text(GOOD).unwrap();
        assert_eq!(s.key, KeySource::Header("x-account".into()));
        assert_eq!(s.missing_key, MissingKey::Fallback);
        assert_eq!(s.pod(3), "accounts-3");
        assert_eq!(
            s.pod_dns(0, "bank"),
            "accounts-0.accounts.bank.svc.cluster.local"
        );
        assert!(s.subsets_on_headless());
    }

    #[test]
    fn errors_name_the_field_and_its_line() {
        let cases = [
            (
                GOOD.replace("{header: X-Account}", "{header: x, query: account}"),
                "p.yaml:3: field `spec.sharding.key`: must name exactly one",
            ),
            (
                GOOD.replace("{header: X-Account}", "{}"),
                "p.yaml:3: field `spec.sharding.key`: must name exactly one of header, cookie, pathSegment, query; got 0",
            ),
            (
                GOOD.replace("{header: X-Account}", "{pathSegment: 0}"),
                "p.yaml:3: field `spec.sharding.key.pathSegment`: must be 1-64",
            ),
            (
                GOOD.replace("{header: X-Account}", "{query: \"a=b\"}"),
                "p.yaml:3: field `spec.sharding.key.query`",
            ),
            (
                GOOD.replace("{header: X-Account}", "{cookie: \"a b\"}"),
                "p.yaml:3: field `spec.sharding.key.cookie`",
            ),
            (
                GOOD.replace("shards: 4", "shards: 0"),
                "p.yaml:4: field `spec.sharding.shards`: must be 1-1024, got 0",
            ),
            (
                GOOD.replace("shards: 4", "shards: -1"),
                "p.yaml:4: field `spec.sharding.shards`: invalid value",
            ),
            (
                GOOD.replace("statefulSet: accounts", "statefulSet: Accounts"),
                "p.yaml:5: field `spec.sharding.statefulSet`: \"Accounts\" must be a DNS label",
            ),
            (
                GOOD.replace("headlessService: accounts", "headlessService: a.b"),
                "p.yaml:6: field `spec.sharding.headlessService`",
            ),
            (
                GOOD.replace("port: 8080", "port: 0"),
                "p.yaml:7: field `spec.sharding.port`: must be 1-65535, got 0",
            ),
            (
                GOOD.replace("port: 8080", "port: 70000"),
                "p.yaml:7: field `spec.sharding.port`: invalid value",
            ),
            (
                format!("{GOOD}    missingKey: drop\n"),
                "p.yaml:8: field `spec.sharding.missingKey`: must be fallback",
            ),
            (
                format!("{GOOD}    replicas: 4\n"),
                "p.yaml:8: field `spec.sharding.replicas`: unknown field `replicas`",
            ),
        ];
        for (text, want) in cases {
            let err = parse_text(&text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text}\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn the_last_ordinal_must_keep_the_pod_name_a_dns_label() {
        let name = "a".repeat(61);
        let text = GOOD
            .replace("statefulSet: accounts", &format!("statefulSet: {name}"))
            .replace("shards: 4", "shards: 11");
        let err = parse_text(&text).unwrap_err().to_string();
        assert!(err.contains("-10\" (at most 63 characters)"), "{err}");
        assert!(parse_text(&text.replace("shards: 11", "shards: 10")).is_ok());
    }
}
