//! The Gateway API HTTPRoute the policy targets: its parents, hostnames and
//! rules (matches, weighted backendRefs, rule-level `sessionPersistence`).
//! Fields stickyctl does not interpret are allowed but reported as notes.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::input::persistence::{self, Persistence};
use crate::input::policy::Metadata;
use crate::yaml::Document;

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// A parent of the route: a Gateway, or a Service (GAMMA, mesh routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    /// `Gateway` or `Service`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (defaults to the route's).
    pub namespace: String,
    /// Port, if given.
    pub port: Option<u16>,
}

/// A weighted backend of a rule (a Kubernetes Service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRef {
    /// Service name.
    pub name: String,
    /// Namespace (defaults to the route's).
    pub namespace: String,
    /// Service port.
    pub port: u16,
    /// Weight (Gateway API default 1).
    pub weight: u32,
    /// Field path of this backendRef (for messages).
    pub path: String,
}

/// How a request path is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `PathPrefix`.
    Prefix(String),
    /// `Exact`.
    Exact(String),
    /// `RegularExpression` (RE2).
    Regex(String),
}

/// A header or query parameter match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueMatch {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Regular expression rather than exact.
    pub regex: bool,
}

/// One HTTPRouteMatch (all of its conditions must hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Path condition.
    pub path: PathMatch,
    /// Header conditions.
    pub headers: Vec<ValueMatch>,
    /// Query parameter conditions.
    pub query: Vec<ValueMatch>,
    /// Method condition.
    pub method: Option<String>,
}

impl Match {
    /// Gateway API's default: every path.
    pub fn any() -> Self {
        Match {
            path: PathMatch::Prefix("/".to_owned()),
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        }
    }
}

/// One rule of the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `name`, or `r<index>`.
    pub name: String,
    /// Matches (any of them); never empty.
    pub matches: Vec<Match>,
    /// Weighted backends.
    pub backends: Vec<BackendRef>,
    /// Rule-level `sessionPersistence`.
    pub persistence: Option<Persistence>,
}

/// The route's (rule, match) pairs in Gateway API precedence: an Exact path,
/// then the longest PathPrefix, then RegularExpression; then a method match;
/// then more header matches; then more query matches; ties keep rule and
/// match order. Istio and Envoy take the first route that matches, so the
/// renderers emit routes in this order.
pub fn precedence(rules: &[Rule]) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = rules
        .iter()
        .enumerate()
        .flat_map(|(ri, r)| (0..r.matches.len()).map(move |mi| (ri, mi)))
        .collect();
    let key = |&(ri, mi): &(usize, usize)| {
        let m = rules.get(ri).and_then(|r| r.matches.get(mi));
        let (rank, len) = match m.map(|m| &m.path) {
            Some(PathMatch::Exact(p)) => (0u8, p.len()),
            Some(PathMatch::Prefix(p)) => (1, p.len()),
            Some(PathMatch::Regex(_)) | None => (2, 0),
        };
        (
            rank,
            std::cmp::Reverse(len),
            m.is_none_or(|m| m.method.is_none()),
            std::cmp::Reverse(m.map_or(0, |m| m.headers.len())),
            std::cmp::Reverse(m.map_or(0, |m| m.query.len())),
        )
    };
    pairs.sort_by_key(key);
    pairs
}

/// A parsed HTTPRoute.
#[derive(Debug, Clone)]
pub struct Route {
    /// The document.
    pub doc: Document,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `spec.parentRefs`.
    pub parents: Vec<ParentRef>,
    /// `spec.hostnames`.
    pub hostnames: Vec<String>,
    /// `spec.rules`.
    pub rules: Vec<Rule>,
    /// Fields present that stickyctl does not render (told to the user).
    pub ignored: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    metadata: Metadata,
    spec: WireSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    #[serde(default)]
    parent_refs: Vec<WireParent>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Vec<WireRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireParent {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRule {
    name: Option<String>,
    #[serde(default)]
    matches: Vec<WireMatch>,
    #[serde(default)]
    backend_refs: Vec<WireBackend>,
    session_persistence: Option<Value>,
    filters: Option<Value>,
    timeouts: Option<Value>,
    retry: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireMatch {
    path: Option<WirePath>,
    #[serde(default)]
    headers: Vec<WireValueMatch>,
    #[serde(default)]
    query_params: Vec<WireValueMatch>,
    method: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePath {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireValueMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBackend {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    port: Option<u16>,
    weight: Option<i64>,
    filters: Option<Value>,
}

/// Gateway API's upper bound for a weight.
pub const MAX_WEIGHT: i64 = 1_000_000;

/// Parses and validates an HTTPRoute document.
pub fn parse(doc: Document) -> Result<Route> {
    if doc.kind() != "HTTPRoute" {
        return Err(doc.error("kind", format!("must be HTTPRoute, got {:?}", doc.kind())));
    }
    if !doc.api_version().starts_with(&format!("{GROUP}/")) {
        return Err(doc.error(
            "apiVersion",
            format!(
                "must be {GROUP}/v1 (or v1beta1), got {:?}",
                doc.api_version()
            ),
        ));
    }
    let w: Wire = doc.parse()?;
    let namespace = w
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let mut parents = Vec::new();
    for (i, p) in w.spec.parent_refs.iter().enumerate() {
        let kind = p.kind.clone().unwrap_or_else(|| "Gateway".to_owned());
        let group = p.group.clone().unwrap_or_else(|| {
            if kind == "Service" {
                String::new()
            } else {
                GROUP.to_owned()
            }
        });
        let ok = (kind == "Gateway" && group == GROUP) || (kind == "Service" && group.is_empty());
        if !ok {
            return Err(doc.error(
                &format!("spec.parentRefs[{i}].kind"),
                format!(
                    "must be a Gateway ({GROUP}) or a Service (core group), got {group}/{kind}"
                ),
            ));
        }
        parents.push(ParentRef {
            kind,
            name: p.name.clone(),
            namespace: p.namespace.clone().unwrap_or_else(|| namespace.clone()),
            port: p.port,
        });
    }
    let mut rules = Vec::new();
    let mut ignored = Vec::new();
    if w.spec.rules.is_empty() {
        return Err(doc.error("spec.rules", "the route has no rules"));
    }
    for (ri, r) in w.spec.rules.iter().enumerate() {
        let at = format!("spec.rules[{ri}]");
        for (field, v) in [
            ("filters", &r.filters),
            ("timeouts", &r.timeouts),
            ("retry", &r.retry),
        ] {
            if v.is_some() {
                ignored.push(format!("{at}.{field}"));
            }
        }
        let mut matches = Vec::new();
        for (mi, m) in r.matches.iter().enumerate() {
            matches.push(parse_match(&doc, m, &format!("{at}.matches[{mi}]"))?);
        }
        if matches.is_empty() {
            matches.push(Match::any());
        }
        if r.backend_refs.is_empty() {
            return Err(doc.error(&format!("{at}.backendRefs"), "the rule has no backendRefs"));
        }
        let mut backends = Vec::new();
        for (bi, b) in r.backend_refs.iter().enumerate() {
            let bat = format!("{at}.backendRefs[{bi}]");
            let kind = b.kind.as_deref().unwrap_or("Service");
            let group = b.group.as_deref().unwrap_or("");
            if kind != "Service" || !group.is_empty() {
                return Err(doc.error(
                    &format!("{bat}.kind"),
                    format!("sticky routes to Services only, got {group}/{kind}"),
                ));
            }
            let Some(port) = b.port else {
                return Err(doc.error(&format!("{bat}.port"), "a Service backendRef needs a port"));
            };
            let weight = b.weight.unwrap_or(1);
            if !(0..=MAX_WEIGHT).contains(&weight) {
                return Err(doc.error(
                    &format!("{bat}.weight"),
                    format!("must be between 0 and {MAX_WEIGHT}, got {weight}"),
                ));
            }
            if b.filters.is_some() {
                ignored.push(format!("{bat}.filters"));
            }
            if backends
                .iter()
                .any(|x: &BackendRef| x.name == b.name && x.port == port)
            {
                return Err(doc.error(
                    &format!("{bat}.name"),
                    format!("backend {}:{port} is listed twice in this rule", b.name),
                ));
            }
            backends.push(BackendRef {
                name: b.name.clone(),
                namespace: b.namespace.clone().unwrap_or_else(|| namespace.clone()),
                port,
                weight: u32::try_from(weight).unwrap_or(0),
                path: bat,
            });
        }
        let persistence = match &r.session_persistence {
            Some(v) => Some(persistence::parse(
                &doc,
                v,
                &format!("{at}.sessionPersistence"),
            )?),
            None => None,
        };
        rules.push(Rule {
            name: r.name.clone().unwrap_or_else(|| format!("r{ri}")),
            matches,
            backends,
            persistence,
        });
    }
    Ok(Route {
        name: w.metadata.name,
        namespace,
        parents,
        hostnames: w.spec.hostnames,
        rules,
        ignored,
        doc,
    })
}

fn parse_match(doc: &Document, m: &WireMatch, at: &str) -> Result<Match> {
    let path = match &m.path {
        None => PathMatch::Prefix("/".to_owned()),
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".to_owned());
            match p.kind.as_deref().unwrap_or("PathPrefix") {
                "PathPrefix" => PathMatch::Prefix(value),
                "Exact" => PathMatch::Exact(value),
                "RegularExpression" => PathMatch::Regex(value),
                other => {
                    return Err(doc.error(
                        &format!("{at}.path.type"),
                        format!("must be PathPrefix, Exact or RegularExpression, got {other:?}"),
                    ));
                }
            }
        }
    };
    let values = |list: &[WireValueMatch], field: &str| -> Result<Vec<ValueMatch>> {
        list.iter()
            .enumerate()
            .map(|(i, h)| {
                let regex = match h.kind.as_deref().unwrap_or("Exact") {
                    "Exact" => false,
                    "RegularExpression" => true,
                    other => {
                        return Err(doc.error(
                            &format!("{at}.{field}[{i}].type"),
                            format!("must be Exact or RegularExpression, got {other:?}"),
                        ));
                    }
                };
                Ok(ValueMatch {
                    name: h.name.clone(),
                    value: h.value.clone(),
                    regex,
                })
            })
            .collect()
    };
    Ok(Match {
        path,
        headers: values(&m.headers, "headers")?,
        query: values(&m.query_params, "queryParams")?,
        method: m.method.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(paths: &[PathMatch]) -> Rule {
        Rule {
            name: String::new(),
            matches: paths
                .iter()
                .map(|p| Match {
                    path: p.clone(),
                    ..Match::any()
                })
                .collect(),
            backends: Vec::new(),
            persistence: None,
        }
    }

    #[test]
    fn exact_then_longest_prefix_then_regex() {
        let rules = [
            rule(&[
                PathMatch::Prefix("/".into()),
                PathMatch::Regex("/x.*".into()),
            ]),
            rule(&[
                PathMatch::Prefix("/api".into()),
                PathMatch::Exact("/".into()),
            ]),
        ];
        assert_eq!(precedence(&rules), [(1, 1), (1, 0), (0, 0), (0, 1)]);
    }

    #[test]
    fn method_and_headers_break_path_ties() {
        let mut with_method = rule(&[PathMatch::Prefix("/".into())]);
        with_method.matches[0].method = Some("GET".into());
        let mut with_header = rule(&[PathMatch::Prefix("/".into())]);
        with_header.matches[0].headers.push(ValueMatch {
            name: "a".into(),
            value: "b".into(),
            regex: false,
        });
        let plain = rule(&[PathMatch::Prefix("/".into())]);
        assert_eq!(
            precedence(&[plain, with_header, with_method]),
            [(2, 0), (1, 0), (0, 0)]
        );
    }
}
