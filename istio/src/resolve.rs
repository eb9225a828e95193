//! Policy + HTTPRoute → one resolved description of the session settings and
//! the weighted backends, which every renderer and `check` work from.

use crate::error::Result;
use crate::input::persistence::{Carrier, Lifetime, Persistence};
use crate::input::policy::{Affinity, Policy};
use crate::input::route::{BackendRef, Route};
use crate::plugin::{CLUSTER_HEADER, HOST_HEADER};

/// The filter's default cookie name.
pub const DEFAULT_COOKIE: &str = "sticky";
/// The filter's default cookie TTL.
pub const DEFAULT_TTL: u64 = 600;
/// The session header used for `type: Header` without a name.
pub const DEFAULT_SESSION_HEADER: &str = "x-sticky-session";
/// The default `filter_metadata` namespace for drain state.
pub const DEFAULT_DRAIN_NAMESPACE: &str = "sticky";
/// The default pod label telling Istio subsets apart.
pub const DEFAULT_SUBSET_LABEL: &str = "version";

/// The session settings, merged from wherever the user wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Cookie name.
    pub cookie_name: String,
    /// Cookie TTL (0 = browser-session cookie).
    pub ttl_seconds: u64,
    /// Cookie path.
    pub path: String,
    /// Cookie domain.
    pub domain: Option<String>,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`.
    pub same_site: String,
    /// Header carrying the token for clients without cookies.
    pub session_header: Option<String>,
    /// Idle timeout, seconds.
    pub idle_timeout: Option<u64>,
    /// Absolute timeout, seconds.
    pub absolute_timeout: Option<u64>,
    /// Refresh interval, seconds.
    pub refresh_interval: Option<u64>,
    /// Where the settings came from, in words.
    pub source: String,
}

/// A policy applied to its route.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The policy.
    pub policy: Policy,
    /// The route.
    pub route: Route,
    /// Session settings.
    pub session: Session,
    /// Drain metadata namespace.
    pub drain_namespace: String,
    /// Things the user should know (shape used, fields not rendered).
    pub notes: Vec<String>,
}

impl Resolved {
    /// Every backend of every rule, first occurrence only, in route order.
    pub fn backends(&self) -> Vec<&BackendRef> {
        let mut out: Vec<&BackendRef> = Vec::new();
        for rule in &self.route.rules {
            for b in &rule.backends {
                if !out
                    .iter()
                    .any(|x| x.name == b.name && x.namespace == b.namespace && x.port == b.port)
                {
                    out.push(b);
                }
            }
        }
        out
    }
}

/// Applies `policy` to `route`.
pub fn resolve(policy: Policy, route: Route) -> Result<Resolved> {
    let t = &policy.target;
    let target_ns = t
        .namespace
        .clone()
        .unwrap_or_else(|| policy.namespace.clone());
    if t.name != route.name || target_ns != route.namespace {
        return Err(policy.doc.error(
            "spec.targetRef.name",
            format!(
                "targets HTTPRoute {target_ns}/{}, but {} holds HTTPRoute {}/{}",
                t.name, route.doc.file, route.namespace, route.name
            ),
        ));
    }
    // sticky sets its internal headers; a route matching on them (by
    // presence, regex or value) would route on whatever a client sent.
    for (ri, rule) in route.rules.iter().enumerate() {
        for (mi, m) in rule.matches.iter().enumerate() {
            for (hi, h) in m.headers.iter().enumerate() {
                if [CLUSTER_HEADER, HOST_HEADER].contains(&h.name.to_ascii_lowercase().as_str()) {
                    return Err(route.doc.error(
                        &format!("spec.rules[{ri}].matches[{mi}].headers[{hi}].name"),
                        format!(
                            "{:?} is sticky's internal header: sticky sets it and the rendered routes match its exact values; a route cannot match on it",
                            h.name
                        ),
                    ));
                }
            }
        }
    }
    let mut notes = Vec::new();
    for f in &route.ignored {
        notes.push(format!(
            "{}: `{f}` is not rendered by stickyctl (apply it separately if you need it)",
            route.doc.file
        ));
    }
    let route_persistence: Vec<(usize, &Persistence)> = route
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.persistence.as_ref().map(|p| (i, p)))
        .collect();
    let ext = &policy.ext;
    let mut session = Session {
        cookie_name: DEFAULT_COOKIE.to_owned(),
        ttl_seconds: DEFAULT_TTL,
        path: "/".to_owned(),
        domain: None,
        secure: true,
        http_only: true,
        same_site: "Lax".to_owned(),
        session_header: None,
        idle_timeout: None,
        absolute_timeout: None,
        refresh_interval: None,
        source: String::new(),
    };
    match &policy.affinity {
        Affinity::StatefulCookie {
            cookie_name,
            ttl_seconds,
        } => {
            if let Some(n) = cookie_name {
                session.cookie_name = n.clone();
            }
            if let Some(t) = ttl_seconds {
                session.ttl_seconds = *t;
            }
            session.source = format!(
                "{}: spec.default.sessionAffinity (GKE GENERATED_STATEFUL_COOKIE)",
                policy.doc.file
            );
            if !route_persistence.is_empty() {
                notes.push(format!(
                    "{}: the route's sessionPersistence is overridden by the policy",
                    route.doc.file
                ));
            }
        }
        Affinity::Persistence(p) => {
            apply_persistence(&mut session, p);
            session.source = format!(
                "{}: spec.sessionPersistence, {}",
                policy.doc.file,
                p.shape.label()
            );
            if !route_persistence.is_empty() {
                notes.push(format!(
                    "{}: the route's sessionPersistence is overridden by the policy",
                    route.doc.file
                ));
            }
        }
        Affinity::FromRoute => {
            let Some((first_i, first)) = route_persistence.first() else {
                return Err(policy.doc.error(
                    "spec",
                    "no session settings: give spec.default.sessionAffinity, spec.sessionPersistence, or sessionPersistence on the route's rules",
                ));
            };
            // One filter config serves the whole route: the rules must agree.
            if let Some((i, _)) = route_persistence.iter().find(|(_, p)| p != first) {
                return Err(route.doc.error(
                    &format!("spec.rules[{i}].sessionPersistence"),
                    format!("differs from spec.rules[{first_i}].sessionPersistence; one policy has one session setting"),
                ));
            }
            apply_persistence(&mut session, first);
            session.source = format!(
                "{}: spec.rules[{first_i}].sessionPersistence, {}",
                route.doc.file,
                first.shape.label()
            );
        }
    }
    if let Some(idle) = ext.idle_timeout {
        session.idle_timeout = Some(idle);
    }
    if let Some(r) = ext.refresh_interval {
        session.refresh_interval = Some(r);
    }
    if let Some(h) = &ext.session_header {
        session.session_header = Some(h.to_ascii_lowercase());
    }
    let c = &ext.cookie;
    if let Some(p) = &c.path {
        session.path = p.clone();
    }
    if c.domain.is_some() {
        session.domain = c.domain.clone();
    }
    if let Some(s) = c.secure {
        session.secure = s;
    }
    if let Some(h) = c.http_only {
        session.http_only = h;
    }
    if let Some(s) = &c.same_site {
        session.same_site = s.clone();
    }
    Ok(Resolved {
        drain_namespace: ext
            .drain_metadata_namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_DRAIN_NAMESPACE.to_owned()),
        session,
        notes,
        policy,
        route,
    })
}

fn apply_persistence(session: &mut Session, p: &Persistence) {
    match p.carrier {
        Carrier::Cookie => {
            if let Some(n) = &p.name {
                session.cookie_name = n.clone();
            }
        }
        Carrier::Header => {
            session.session_header = Some(
                p.name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SESSION_HEADER.to_owned())
                    .to_ascii_lowercase(),
            );
        }
    }
    if let Some(path) = &p.cookie_path {
        session.path = path.clone();
    }
    session.ttl_seconds = match p.lifetime {
        Lifetime::Permanent => p.absolute_timeout.unwrap_or(DEFAULT_TTL),
        // A session cookie: the browser drops it; the token's own lifetime
        // is the absolute timeout, if any.
        Lifetime::Session => 0,
    };
    session.absolute_timeout = p.absolute_timeout;
    session.idle_timeout = p.idle_timeout;
}
