//! `stickyctl render istio`: a resolved policy → the Istio objects that wire
//! sticky into sidecars and gateways. The evidence for each choice, read from
//! istio/istio sources, is cited in istio/README.md ("Istio wiring").
//!
//! - WasmPlugin (or TrafficExtension) running sticky on outbound (CLIENT) traffic;
//! - EnvoyFilter: `stateful_session` with `HeaderBasedSessionState` inserted
//!   before the router (so after every WasmPlugin phase) for SIDECAR_OUTBOUND
//!   and GATEWAY, and a CLUSTER MERGE of `override_host_status` for every
//!   backend cluster (istiod sets it on no subset cluster, and on a default
//!   cluster only with its own session filter enabled);
//! - VirtualService: per backend a route matching the cluster header's exact
//!   value, before the weighted route; exported to the policy's namespace and
//!   bound only to the parents where sticky runs (see [`bindings`]);
//! - the backends as Gateway API means them: each backendRef is a Service
//!   (`outbound|<port>||<service FQDN>`), or, when the policy asks for it
//!   (`spec.sticky.service` / `subsetLabel`), DestinationRule subsets of one
//!   Service (`outbound|<port>|<subset>|<service FQDN>`), see [`Backends`];
//! - the Service label `istio.io/persistent-session` on every Service whose
//!   pods are backends, which makes istiod send terminating pods as DRAINING
//!   instead of dropping them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::input::route::{BackendRef, Match, ParentRef, PathMatch, precedence};
use crate::input::sharding::Sharding;
use crate::input::workload::Service;
use crate::keys::Key;
use crate::plugin::{self, CLUSTER_HEADER, HOST_HEADER};
use crate::render::envoy::{override_host_status, stateful_session_filter};
use crate::resolve::{DEFAULT_SUBSET_LABEL, Resolved};

/// The Service label that makes istiod keep terminating pods as DRAINING.
pub const PERSISTENT_SESSION_LABEL: &str = "istio.io/persistent-session";
/// Its value: what istiod's own cookie filter would use if someone enabled
/// it (PILOT_ENABLE_PERSISTENT_SESSION_FILTER); distinct from sticky's cookie
/// so the two could never overwrite each other.
pub const PERSISTENT_SESSION_VALUE: &str = "sticky-drain";
/// The cluster domain.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";
/// The pod label the StatefulSet controller sets to the pod's own name: what
/// selects exactly one ordinal.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Where WasmPlugin / TrafficExtension run in istiod's filter order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// After Istio's stats, before fault/cors/telemetry (the default).
    Unspecified,
    /// Before Istio's authentication.
    Authn,
    /// Before Istio's authorization.
    Authz,
    /// Before Istio's stats.
    Stats,
}

impl Phase {
    fn wasm_plugin(self) -> &'static str {
        match self {
            Phase::Unspecified => "UNSPECIFIED_PHASE",
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
        }
    }
    fn traffic_extension(self) -> &'static str {
        match self {
            Phase::Unspecified => "UNSPECIFIED",
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
        }
    }
}

/// Which proxies run sticky.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// Every proxy in the namespace (mesh-wide in the root namespace).
    Namespace,
    /// Pods with these labels.
    Selector(BTreeMap<String, String>),
    /// Gateways or Services by reference: (kind, name).
    TargetRefs(Vec<(String, String)>),
}

/// Options of `render istio`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Module URL (oci://, file://, http(s)://).
    pub url: String,
    /// sha256 of the module (64 hex characters).
    pub sha256: Option<String>,
    /// Phase.
    pub phase: Phase,
    /// Priority within the phase.
    pub priority: Option<i32>,
    /// Which proxies.
    pub attach: Attach,
    /// Render a TrafficExtension (Istio 1.30+) instead of a WasmPlugin.
    pub traffic_extension: bool,
    /// FAIL_CLOSE, FAIL_OPEN or FAIL_RELOAD.
    pub fail_strategy: Option<String>,
    /// Accept FAIL_OPEN (refused otherwise: see [`FAIL_OPEN_RISK`]).
    pub allow_fail_open: bool,
    /// IfNotPresent or Always.
    pub image_pull_policy: Option<String>,
    /// Services to label (rendered whole, with the label added); each must
    /// be one the backends need labelled.
    pub services: Vec<Service>,
}

/// Why FAIL_OPEN is refused unless explicitly allowed.
pub const FAIL_OPEN_RISK: &str = "with FAIL_OPEN a plugin that fails to load or crashes is skipped, and nothing removes the client-sent x-sticky-cluster and x-sticky-host headers: the routes and stateful_session then obey them, so clients choose their cluster and pod";

/// The rendered objects.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Kubernetes objects in apply order.
    pub objects: Vec<Value>,
    /// The plugin config inside the WasmPlugin.
    pub plugin_config: Value,
    /// `kubectl label` commands, one per Service to label that was not given to render.
    pub label_commands: Vec<String>,
    /// Things the user should know about the rendered objects.
    pub notes: Vec<String>,
    /// Things that weaken what was rendered (parents left unbound, FAIL_OPEN).
    pub warnings: Vec<String>,
}

/// How the route's backendRefs become Istio destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backends {
    /// Each backendRef is a Service of its own, as Gateway API means it: a
    /// canary across Services (`v1--helloworld` 90, `v2--helloworld` 10) is
    /// routed to each Service's host, cluster `outbound|<port>||<host>`.
    Services,
    /// Each backendRef stands for a subset of one Service, told apart by a
    /// pod label (Istio's bookinfo style: `reviews-v1` is subset `v1` of
    /// `reviews`, pods labelled `version: v1`). Only when the policy asks
    /// for it with `spec.sticky.service` or `spec.sticky.subsetLabel`.
    Subsets {
        /// The Service whose subsets the backends are.
        service: String,
        /// Its namespace.
        namespace: String,
        /// The pod label telling the subsets apart.
        label: String,
    },
}

impl Backends {
    /// The shape in words, as `check` and `render istio` report it.
    pub fn describe(&self) -> String {
        match self {
            Backends::Services => "backends: distinct Services (canary across Services)".to_owned(),
            Backends::Subsets { service, label, .. } => {
                format!("backends: subsets of {service} by label {label}")
            }
        }
    }
}

/// Which shape the policy's backends take.
pub fn backends(resolved: &Resolved) -> Result<Backends> {
    let ext = &resolved.policy.ext;
    if ext.service.is_none() && ext.subset_label.is_none() {
        return Ok(Backends::Services);
    }
    let parent = resolved.route.parents.iter().find(|p| p.kind == "Service");
    let service = match (&ext.service, parent) {
        (Some(s), _) => s.clone(),
        (None, Some(p)) => p.name.clone(),
        (None, None) => {
            return Err(resolved.policy.doc.error(
                "spec.sticky.service",
                "Istio subsets belong to one Service: name it here, or give the HTTPRoute a Service parentRef (GAMMA)",
            ));
        }
    };
    let namespace = match parent {
        Some(p) => p.namespace.clone(),
        None => resolved.route.namespace.clone(),
    };
    Ok(Backends::Subsets {
        service,
        namespace,
        label: ext
            .subset_label
            .clone()
            .unwrap_or_else(|| DEFAULT_SUBSET_LABEL.to_owned()),
    })
}

/// Where one backendRef goes in Istio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The destination host (a Service FQDN).
    pub host: String,
    /// The DestinationRule subset, if the backends are subsets.
    pub subset: Option<String>,
    /// The Service port.
    pub port: u16,
    /// Istio's cluster name for it (what the plugin's allow-list holds).
    pub cluster: String,
    /// A short name for route names (the subset, or the Service).
    pub short: String,
}

/// `<name>.<namespace>.svc.cluster.local`.
pub fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.{CLUSTER_DOMAIN}")
}

/// Where backendRef `b` goes, for backends of shape `shape`.
pub fn destination(resolved: &Resolved, shape: &Backends, b: &BackendRef) -> Result<Destination> {
    match shape {
        Backends::Services => {
            if !dns_label(&b.name) {
                return Err(resolved.route.doc.error(
                    &format!("{}.name", b.path),
                    format!(
                        "{:?} is not a Service name (a DNS label: lowercase letters, digits, '-')",
                        b.name
                    ),
                ));
            }
            let host = fqdn(&b.name, &b.namespace);
            Ok(Destination {
                cluster: format!("outbound|{}||{host}", b.port),
                host,
                subset: None,
                port: b.port,
                short: if b.namespace == resolved.route.namespace {
                    b.name.clone()
                } else {
                    format!("{}.{}", b.name, b.namespace)
                },
            })
        }
        Backends::Subsets {
            service, namespace, ..
        } => {
            let subset = subset_of(resolved, service, namespace, b)?;
            let host = fqdn(service, namespace);
            Ok(Destination {
                cluster: format!("outbound|{}|{subset}|{host}", b.port),
                host,
                subset: Some(subset.clone()),
                port: b.port,
                short: subset,
            })
        }
    }
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The subset a backend stands for, when the backends are subsets (an error
/// when they are distinct Services).
pub fn subset(resolved: &Resolved, b: &BackendRef) -> Result<String> {
    match backends(resolved)? {
        Backends::Subsets {
            service, namespace, ..
        } => subset_of(resolved, &service, &namespace, b),
        Backends::Services => Err(resolved.route.doc.error(
            &format!("{}.name", b.path),
            "names a Service of its own, not a subset (the policy sets neither spec.sticky.service nor subsetLabel)",
        )),
    }
}

/// The subset of `service` a backend stands for: its name less the `<service>-` prefix.
fn subset_of(
    resolved: &Resolved,
    service: &str,
    namespace: &str,
    b: &BackendRef,
) -> Result<String> {
    if b.namespace != namespace {
        return Err(resolved.route.doc.error(
            &format!("{}.namespace", b.path),
            format!(
                "subsets of {service} live in namespace {namespace}, this backend in {}",
                b.namespace
            ),
        ));
    }
    let name = b
        .name
        .strip_prefix(&format!("{service}-"))
        .unwrap_or(&b.name);
    if name == service {
        return Err(resolved.route.doc.error(
            &format!("{}.name", b.path),
            format!(
                "names the Service {service} itself; each backendRef must name a per-version Service ({service}-v1, {service}-v2) whose suffix is the subset"
            ),
        ));
    }
    if !dns_label(name) {
        return Err(resolved.route.doc.error(
            &format!("{}.name", b.path),
            format!("subset {name:?} is not a DNS label (lowercase letters, digits, '-')"),
        ));
    }
    Ok(name.to_owned())
}

/// Istio's cluster name of a backend: `outbound|<port>||<service FQDN>` for
/// a Service, `outbound|<port>|<subset>|<service FQDN>` for a subset.
pub fn cluster_name(resolved: &Resolved, b: &BackendRef) -> Result<String> {
    Ok(destination(resolved, &backends(resolved)?, b)?.cluster)
}

/// The subset of shard `i` (also the standalone cluster name): `shard-<i>`.
pub fn shard_subset(i: u32) -> String {
    format!("shard-{i}")
}

/// `<service>.<namespace>.svc.cluster.local` of the Service whose subsets
/// the shards are (in the route's namespace).
pub fn shard_host(resolved: &Resolved, sharding: &Sharding) -> String {
    fqdn(sharding.istio_service(), &resolved.route.namespace)
}

/// Istio's cluster name of shard `i`: `outbound|<port>|shard-<i>|<host>`,
/// as istiod's `BuildSubsetKey` names a DestinationRule subset's cluster.
pub fn shard_cluster_name(resolved: &Resolved, sharding: &Sharding, i: u32) -> String {
    format!(
        "outbound|{}|{}|{}",
        sharding.port,
        shard_subset(i),
        shard_host(resolved, sharding)
    )
}

fn metadata(name: &str, namespace: &str) -> Value {
    json!({
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "stickyctl"},
    })
}

/// Checks the options against the CRDs' CEL rules that a JSON-schema
/// validator cannot see.
fn check_options(opts: &Options) -> Result<()> {
    let scheme = opts.url.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("oci" | "file" | "http" | "https")) {
        return Err(Error::Usage(format!(
            "--url {:?}: must start with oci://, file://, http:// or https://",
            opts.url
        )));
    }
    if let Some(sha) = &opts.sha256
        && (sha.len() != 64
            || !sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(Error::Usage(format!(
            "--sha256 {sha:?}: must be 64 lowercase hex characters"
        )));
    }
    if let Attach::Selector(labels) = &opts.attach
        && labels
            .iter()
            .any(|(k, v)| k.is_empty() || k.contains('*') || v.contains('*'))
    {
        return Err(Error::Usage(
            "--selector: keys must be non-empty and neither keys nor values may hold '*'".into(),
        ));
    }
    if let Attach::TargetRefs(refs) = &opts.attach
        && refs.len() > 16
    {
        return Err(Error::Usage("--target-ref: at most 16".into()));
    }
    if let Some(f) = &opts.fail_strategy
        && !["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"].contains(&f.as_str())
    {
        return Err(Error::Usage(format!(
            "--fail-strategy {f:?}: must be FAIL_CLOSE, FAIL_OPEN or FAIL_RELOAD"
        )));
    }
    if opts.fail_strategy.as_deref() == Some("FAIL_OPEN") && !opts.allow_fail_open {
        return Err(Error::Usage(format!(
            "--fail-strategy FAIL_OPEN refused: {FAIL_OPEN_RISK}. Use FAIL_CLOSE (requests fail while the plugin is down; Istio's default) or FAIL_RELOAD (the plugin is reloaded), or pass --allow-fail-open to accept the risk"
        )));
    }
    if let Some(p) = &opts.image_pull_policy
        && !["IfNotPresent", "Always"].contains(&p.as_str())
    {
        return Err(Error::Usage(format!(
            "--image-pull-policy {p:?}: must be IfNotPresent or Always"
        )));
    }
    Ok(())
}

fn target_refs(refs: &[(String, String)]) -> Value {
    Value::Array(
        refs.iter()
            .map(|(kind, name)| {
                let group = if kind == "Service" {
                    ""
                } else {
                    "gateway.networking.k8s.io"
                };
                json!({"group": group, "kind": kind, "name": name})
            })
            .collect(),
    )
}

/// A parent of the route that the VirtualService may bind, and whether
/// sticky runs in its proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The parent in words (`Gateway ingress/public`, `mesh (Service sample/helloworld)`).
    pub parent: String,
    /// Its entry in the VirtualService's `gateways` (`mesh` for sidecars).
    pub gateway: String,
    /// Field path of its parentRef in the route (`spec` for a route without parents).
    pub field: String,
    /// Why the WasmPlugin and EnvoyFilter do not reach its proxies, if they do not.
    pub outside: Option<String>,
}

impl Binding {
    /// The warning for a parent outside sticky's scope (None when inside).
    pub fn warning(&self) -> Option<String> {
        self.outside.as_ref().map(|why| {
            format!(
                "{} is outside sticky's scope: {why}. The VirtualService does not bind it, so this route does not apply there (bound, a client-sent x-sticky-cluster would pick the backend, with no sticky filter to remove it)",
                self.parent
            )
        })
    }

    fn is_mesh(&self) -> bool {
        self.gateway == "mesh"
    }
}

fn describe_attach(attach: &Attach) -> String {
    match attach {
        Attach::Namespace => "every proxy of the namespace".to_owned(),
        Attach::Selector(labels) => {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("pods labelled {}", l.join(","))
        }
        Attach::TargetRefs(refs) => {
            let r: Vec<String> = refs.iter().map(|(k, n)| format!("{k}/{n}")).collect();
            format!("--target-ref {}", r.join(", "))
        }
    }
}

/// The route's parents as VirtualService bindings: each Gateway parent, and
/// `mesh` for the Service parents (GAMMA; also a route without parents).
/// sticky runs where the WasmPlugin and EnvoyFilter reach: proxies of the
/// policy's namespace (a Gateway's proxies run in the Gateway's namespace,
/// as Istio deploys them), narrowed by `attach`.
pub fn bindings(resolved: &Resolved, attach: &Attach) -> Vec<Binding> {
    let route = &resolved.route;
    let ns = &resolved.policy.namespace;
    let mut out: Vec<Binding> = Vec::new();
    let services: Vec<(usize, &ParentRef)> = route
        .parents
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == "Service")
        .collect();
    if route.parents.is_empty() || !services.is_empty() {
        let (parent, field) = match services.first() {
            Some((i, p)) => (
                format!(
                    "mesh (the route's Service parent {}/{})",
                    p.namespace, p.name
                ),
                format!("spec.parentRefs[{i}]"),
            ),
            None => ("mesh".to_owned(), "spec".to_owned()),
        };
        let outside = match attach {
            Attach::Namespace | Attach::Selector(_) => None,
            // A Service targetRef attaches sticky to that Service's waypoint.
            Attach::TargetRefs(refs)
                if services
                    .iter()
                    .any(|(_, p)| refs.iter().any(|(k, n)| k == "Service" && *n == p.name)) =>
            {
                None
            }
            Attach::TargetRefs(_) => Some(format!(
                "sticky attaches to {} only, so sidecars do not run it; attach to the sidecars too (--selector, or no --target-ref), or to the Service (--target-ref Service/NAME, its waypoint)",
                describe_attach(attach)
            )),
        };
        out.push(Binding {
            parent,
            gateway: "mesh".to_owned(),
            field,
            outside,
        });
    }
    for (i, p) in route.parents.iter().enumerate() {
        if p.kind != "Gateway" {
            continue;
        }
        let gateway = if p.namespace == route.namespace {
            p.name.clone()
        } else {
            format!("{}/{}", p.namespace, p.name)
        };
        if out.iter().any(|b| b.gateway == gateway) {
            continue;
        }
        let outside = if &p.namespace != ns {
            Some(format!(
                "the WasmPlugin and EnvoyFilter live in namespace {ns} and reach no proxy of namespace {}; render the policy (and its route) in {} instead",
                p.namespace, p.namespace
            ))
        } else {
            match attach {
                Attach::Namespace | Attach::Selector(_) => None,
                Attach::TargetRefs(refs)
                    if refs.iter().any(|(k, n)| k == "Gateway" && *n == p.name) =>
                {
                    None
                }
                Attach::TargetRefs(_) => Some(format!(
                    "sticky attaches to {} only; add --target-ref Gateway/{}",
                    describe_attach(attach),
                    p.name
                )),
            }
        };
        out.push(Binding {
            parent: format!("Gateway {}/{}", p.namespace, p.name),
            gateway,
            field: format!("spec.parentRefs[{i}]"),
            outside,
        });
    }
    out
}

/// Renders every object.
pub fn render(resolved: &Resolved, keys: &[Key], opts: &Options) -> Result<Rendered> {
    check_options(opts)?;
    let shape = backends(resolved)?;
    let route = &resolved.route;
    if matches!(shape, Backends::Services) && route.parents.is_empty() {
        return Err(route.doc.error(
            "spec",
            "the route has no parentRefs: attach it to a Gateway, or to a Service (GAMMA) whose clients the canary serves",
        ));
    }
    let ns = resolved.policy.namespace.clone();
    let name = format!("{}-sticky", resolved.policy.name);
    let mut dests: Vec<Destination> = Vec::new();
    for b in resolved.backends() {
        dests.push(destination(resolved, &shape, b)?);
    }
    let clusters: Vec<String> = dests.iter().map(|d| d.cluster.clone()).collect();
    let sharding = resolved.policy.sharding.as_ref();
    let mut shard_clusters = Vec::new();
    // (host, subset, port) of every shard, for the EnvoyFilter's cluster patches.
    let mut shard_subsets: Vec<(String, String, u16)> = Vec::new();
    let mut notes = vec![shape.describe()];
    let mut warnings = Vec::new();
    if opts.fail_strategy.as_deref() == Some("FAIL_OPEN") {
        warnings.push(format!(
            "--allow-fail-open: rendering failStrategy FAIL_OPEN; {FAIL_OPEN_RISK}. Prefer FAIL_CLOSE or FAIL_RELOAD"
        ));
    }
    // Every Service whose pods are backends: the Service label makes istiod
    // keep its terminating pods as DRAINING.
    let mut to_label: Vec<(String, String)> = Vec::new();
    match &shape {
        Backends::Subsets {
            service, namespace, ..
        } => to_label.push((namespace.clone(), service.clone())),
        Backends::Services => {
            for b in resolved.backends() {
                let key = (b.namespace.clone(), b.name.clone());
                if !to_label.contains(&key) {
                    to_label.push(key);
                }
            }
        }
    }
    if let Some(sh) = sharding {
        for i in 0..sh.shards {
            let name = shard_cluster_name(resolved, sh, i);
            if clusters.contains(&name) {
                return Err(resolved.policy.doc.error(
                    "spec.sharding",
                    format!("shard cluster {name:?} is also a backendRef's cluster"),
                ));
            }
            shard_clusters.push(name);
            shard_subsets.push((shard_host(resolved, sh), shard_subset(i), sh.port));
        }
        if sh.subsets_on_headless() && !gateways_only(&opts.attach) {
            notes.push(format!(
                "{}: the shard subsets sit on the headless Service {}; istiod gives sidecars ORIGINAL_DST (passthrough) clusters for headless Services, where a subset cannot pick a pod, so sidecars would not shard. Name a ClusterIP Service over the same pods in spec.sharding.service, attach to Gateways only (--target-ref Gateway/NAME), or set PILOT_ENABLE_EDS_FOR_HEADLESS_SERVICES=true on istiod",
                resolved.policy.doc.place("spec.sharding.headlessService"),
                sh.headless_service
            ));
        }
        let shard_service = (route.namespace.clone(), sh.istio_service().to_owned());
        if !to_label.contains(&shard_service) {
            notes.push(format!(
                "label the shard Service too, so a terminating shard pod keeps its pinned sessions: kubectl label service {} -n {} {PERSISTENT_SESSION_LABEL}={PERSISTENT_SESSION_VALUE} --overwrite",
                shard_service.1, shard_service.0
            ));
        }
    }
    let all = bindings(resolved, &opts.attach);
    let bound: Vec<&Binding> = all.iter().filter(|b| b.outside.is_none()).collect();
    if bound.is_empty() {
        let why: Vec<String> = all
            .iter()
            .filter_map(|b| b.outside.as_ref().map(|w| format!("{}: {w}", b.parent)))
            .collect();
        return Err(route.doc.error(
            all.first().map_or("spec", |b| b.field.as_str()),
            format!(
                "no parent of the route is in sticky's scope, so the VirtualService could bind none of them (bound, a client-sent x-sticky-cluster would pick the backend with no sticky filter to remove it). {}",
                why.join("; ")
            ),
        ));
    }
    for b in &all {
        if let Some(w) = b.warning() {
            warnings.push(format!("{}: {w}", route.doc.place(&b.field)));
        }
    }
    if bound.iter().any(|b| b.is_mesh()) && route.namespace == ns {
        notes.push(format!(
            "the VirtualService is exported to namespace {ns} only (where sticky runs): clients in other namespaces keep the Service's own routing"
        ));
    }
    let plugin_config = plugin::config(resolved, &clusters, &shard_clusters, keys)?;
    let mut objects = Vec::new();
    let mut label_commands = Vec::new();
    for svc in &opts.services {
        if !to_label.contains(&(svc.namespace.clone(), svc.name.clone())) {
            let want: Vec<String> = to_label.iter().map(|(n, s)| format!("{n}/{s}")).collect();
            return Err(svc.doc.error(
                "metadata.name",
                format!(
                    "is {}/{}, but the Services to label are {}",
                    svc.namespace,
                    svc.name,
                    want.join(", ")
                ),
            ));
        }
    }
    for (svc_ns, svc_name) in &to_label {
        match opts
            .services
            .iter()
            .find(|s| &s.namespace == svc_ns && &s.name == svc_name)
        {
            Some(svc) => objects.push(labelled(svc)),
            None => label_commands.push(format!(
                "kubectl label service {svc_name} -n {svc_ns} {PERSISTENT_SESSION_LABEL}={PERSISTENT_SESSION_VALUE} --overwrite"
            )),
        }
    }
    let shard_dr = sharding.map(|sh| (shard_host(resolved, sh), shard_rule_subsets(sh)));
    let shards_rule = |host: String, list: Vec<Value>| {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": metadata(&format!("{name}-shards"), &route.namespace),
            "spec": {"host": host, "subsets": list},
        })
    };
    match &shape {
        Backends::Services => {
            if let Some((shard_host, shard_list)) = shard_dr {
                objects.push(shards_rule(shard_host, shard_list));
            }
        }
        Backends::Subsets {
            service,
            namespace,
            label,
        } => {
            let mut dr = destination_rule(&name, service, namespace, label, &dests);
            match shard_dr {
                // One DestinationRule per host (istiod merges several unpredictably).
                Some((shard_host, shard_list)) if shard_host == fqdn(service, namespace) => {
                    if let Some(list) = dr["spec"]["subsets"].as_array_mut() {
                        list.extend(shard_list);
                    }
                    objects.push(dr);
                }
                Some((shard_host, shard_list)) => {
                    objects.push(dr);
                    objects.push(shards_rule(shard_host, shard_list));
                }
                None => objects.push(dr),
            }
        }
    }
    objects.push(virtual_service(resolved, &shape, &bound, opts)?);
    objects.push(envoy_filter(resolved, &name, &dests, &shard_subsets, opts));
    objects.push(if opts.traffic_extension {
        traffic_extension(&name, &ns, &plugin_config, opts)
    } else {
        wasm_plugin(&name, &ns, &plugin_config, opts)
    });
    Ok(Rendered {
        objects,
        plugin_config,
        label_commands,
        notes,
        warnings,
    })
}

/// The Service `svc` as given, with the persistent-session label added and
/// the fields the API server owns removed (a Service fetched with `kubectl
/// get -o yaml` carries them, and they would make the apply conflict).
fn labelled(svc: &Service) -> Value {
    let mut v = svc.doc.value.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(f);
        }
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(l) = labels.as_object_mut() {
            l.insert(
                PERSISTENT_SESSION_LABEL.into(),
                json!(PERSISTENT_SESSION_VALUE),
            );
        }
    }
    v
}

/// Whether sticky runs only in Gateways (which get EDS clusters even for
/// headless Services).
fn gateways_only(attach: &Attach) -> bool {
    matches!(attach, Attach::TargetRefs(refs) if refs.iter().all(|(kind, _)| kind == "Gateway"))
}

/// One DestinationRule subset per StatefulSet ordinal, selecting its pod by
/// the pod-name label the StatefulSet controller sets.
fn shard_rule_subsets(sharding: &Sharding) -> Vec<Value> {
    (0..sharding.shards)
        .map(|i| json!({"name": shard_subset(i), "labels": {POD_NAME_LABEL: sharding.pod(i)}}))
        .collect()
}

/// The DestinationRule of the backends' subsets of `service`.
fn destination_rule(
    name: &str,
    service: &str,
    namespace: &str,
    label: &str,
    dests: &[Destination],
) -> Value {
    let mut list: Vec<Value> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for s in dests.iter().filter_map(|d| d.subset.as_deref()) {
        if seen.contains(&s) {
            continue;
        }
        seen.push(s);
        list.push(json!({"name": s, "labels": {label: s}}));
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": metadata(name, namespace),
        "spec": {"host": fqdn(service, namespace), "subsets": list},
    })
}

/// An Istio HTTPMatchRequest for an HTTPRoute match, plus extra header conditions.
pub fn istio_match(m: &Match, extra_headers: &[(String, String)]) -> Value {
    let uri = match &m.path {
        PathMatch::Prefix(p) => json!({"prefix": p}),
        PathMatch::Exact(p) => json!({"exact": p}),
        PathMatch::Regex(r) => json!({"regex": r}),
    };
    let mut out = json!({"uri": uri});
    let mut headers = Map::new();
    for h in &m.headers {
        let v = if h.regex {
            json!({"regex": h.value})
        } else {
            json!({"exact": h.value})
        };
        headers.insert(h.name.to_ascii_lowercase(), v);
    }
    for (k, v) in extra_headers {
        headers.insert(k.clone(), json!({"exact": v}));
    }
    if !headers.is_empty() {
        out["headers"] = Value::Object(headers);
    }
    if !m.query.is_empty() {
        let mut q = Map::new();
        for p in &m.query {
            let v = if p.regex {
                json!({"regex": p.value})
            } else {
                json!({"exact": p.value})
            };
            q.insert(p.name.clone(), v);
        }
        out["queryParams"] = Value::Object(q);
    }
    if let Some(method) = &m.method {
        out["method"] = json!({"exact": method});
    }
    out
}

/// The match of a pinned route: the rule's match and the cluster header's
/// exact value; with a `--selector`, only for the proxies that run sticky
/// (`sourceLabels`), so another sidecar seeing the VirtualService never
/// honours a client-sent header.
fn pinned_match(m: &Match, cluster: &str, attach: &Attach) -> Value {
    let mut out = istio_match(m, &[(CLUSTER_HEADER.to_owned(), cluster.to_owned())]);
    if let Attach::Selector(labels) = attach {
        out["sourceLabels"] = json!(labels);
    }
    out
}

fn virtual_service(
    resolved: &Resolved,
    shape: &Backends,
    bound: &[&Binding],
    opts: &Options,
) -> Result<Value> {
    let route = &resolved.route;
    let mesh = bound.iter().any(|b| b.is_mesh());
    let gateways: Vec<String> = bound
        .iter()
        .filter(|b| !b.is_mesh())
        .map(|b| b.gateway.clone())
        .collect();
    let mut hosts = Vec::new();
    if mesh {
        match shape {
            Backends::Subsets {
                service, namespace, ..
            } => hosts.push(fqdn(service, namespace)),
            Backends::Services => {
                for p in route.parents.iter().filter(|p| p.kind == "Service") {
                    let h = fqdn(&p.name, &p.namespace);
                    if !hosts.contains(&h) {
                        hosts.push(h);
                    }
                }
            }
        }
    }
    if !gateways.is_empty() {
        if route.hostnames.is_empty() {
            hosts.push("*".to_owned());
        } else {
            hosts.extend(route.hostnames.iter().cloned());
        }
    }
    let strict = resolved.policy.ext.strict;
    // A dead pinned host: the retry is a fresh pick (previous_hosts), unless
    // strict mode wants the 503.
    let retries = if strict {
        json!({"attempts": 0})
    } else {
        json!({"attempts": 2, "retryOn": "connect-failure,refused-stream,reset", "retryIgnorePreviousHosts": true})
    };
    let headers = json!({
        "request": {"remove": [HOST_HEADER, CLUSTER_HEADER]},
        "response": {"remove": [HOST_HEADER]},
    });
    // Per (rule, match) in Gateway API precedence: the pinned routes of its
    // backends, then its weighted route. A more specific rule's split comes
    // before a less specific rule's pinned routes, so a session never pulls
    // a request into another rule's backends.
    let mut http = Vec::new();
    for (ri, mi) in precedence(&route.rules) {
        let Some(rule) = route.rules.get(ri) else {
            continue;
        };
        let Some(m) = rule.matches.get(mi) else {
            continue;
        };
        let suffix = if rule.matches.len() > 1 {
            format!("-m{mi}")
        } else {
            String::new()
        };
        let mut destinations = Vec::new();
        for b in &rule.backends {
            let d = destination(resolved, shape, b)?;
            let mut destination = json!({"host": d.host, "port": {"number": d.port}});
            if let Some(s) = &d.subset {
                destination["subset"] = json!(s);
            }
            http.push(json!({
                "name": format!("{}{suffix}-pinned-{}-{}", rule.name, d.short, d.port),
                "match": [pinned_match(m, &d.cluster, &opts.attach)],
                "route": [{"destination": destination.clone()}],
                "headers": headers.clone(),
                "retries": retries.clone(),
            }));
            destinations.push(json!({"destination": destination, "weight": b.weight}));
        }
        if let Some(sh) = &resolved.policy.sharding {
            for i in 0..sh.shards {
                let destination = json!({
                    "host": shard_host(resolved, sh),
                    "subset": shard_subset(i),
                    "port": {"number": sh.port},
                });
                http.push(json!({
                    "name": format!("{}{suffix}-{}", rule.name, shard_subset(i)),
                    "match": [pinned_match(m, &shard_cluster_name(resolved, sh, i), &opts.attach)],
                    "route": [{"destination": destination}],
                    "headers": headers.clone(),
                    "retries": retries.clone(),
                }));
            }
        }
        http.push(json!({
            "name": format!("{}{suffix}-split", rule.name),
            "match": [istio_match(m, &[])],
            "route": destinations,
            "headers": headers.clone(),
            "retries": retries.clone(),
        }));
    }
    let mut bind: Vec<String> = gateways;
    if mesh {
        bind.push("mesh".to_owned());
    }
    // Only proxies of the policy's namespace (where the WasmPlugin and
    // EnvoyFilter reach) see the routes that follow the cluster header.
    let export = if route.namespace == resolved.policy.namespace {
        ".".to_owned()
    } else {
        resolved.policy.namespace.clone()
    };
    Ok(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata(&route.name, &route.namespace),
        "spec": {"hosts": hosts, "gateways": bind, "exportTo": [export], "http": http},
    }))
}

/// The EnvoyFilter contexts sticky runs in (never SIDECAR_INBOUND: istiod
/// builds no session filter there either).
pub const CONTEXTS: [&str; 2] = ["SIDECAR_OUTBOUND", "GATEWAY"];

fn envoy_filter(
    resolved: &Resolved,
    name: &str,
    dests: &[Destination],
    shard_subsets: &[(String, String, u16)],
    opts: &Options,
) -> Value {
    let mut patches = Vec::new();
    for context in CONTEXTS {
        patches.push(json!({
            "applyTo": "HTTP_FILTER",
            "match": {
                "context": context,
                "listener": {"filterChain": {"filter": {
                    "name": "envoy.filters.network.http_connection_manager",
                    "subFilter": {"name": "envoy.filters.http.router"},
                }}},
            },
            "patch": {
                "operation": "INSERT_BEFORE",
                "value": stateful_session_filter(HOST_HEADER, resolved.policy.ext.strict),
            },
        }));
    }
    // A subset cluster by service, subset and port; a Service's default
    // cluster by its exact name (a match without subset would also patch
    // every subset cluster of the Service).
    let mut every: Vec<Value> = Vec::new();
    for d in dests {
        let m = match &d.subset {
            Some(s) => json!({"service": d.host, "subset": s, "portNumber": d.port}),
            None => json!({"name": d.cluster}),
        };
        if !every.contains(&m) {
            every.push(m);
        }
    }
    for (host, subset, port) in shard_subsets {
        every.push(json!({"service": host, "subset": subset, "portNumber": port}));
    }
    for context in CONTEXTS {
        for cluster in &every {
            patches.push(json!({
                "applyTo": "CLUSTER",
                "match": {"context": context, "cluster": cluster},
                "patch": {
                    "operation": "MERGE",
                    "value": {"common_lb_config": override_host_status()},
                },
            }));
        }
    }
    let mut spec = json!({"configPatches": patches});
    match &opts.attach {
        Attach::Namespace => {}
        Attach::Selector(labels) => spec["workloadSelector"] = json!({"labels": labels}),
        Attach::TargetRefs(refs) => spec["targetRefs"] = target_refs(refs),
    }
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": metadata(name, &resolved.policy.namespace),
        "spec": spec,
    })
}

fn wasm_fields(plugin_config: &Value, opts: &Options) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("url".into(), json!(opts.url));
    if let Some(sha) = &opts.sha256 {
        m.insert("sha256".into(), json!(sha));
    }
    if let Some(p) = &opts.image_pull_policy {
        m.insert("imagePullPolicy".into(), json!(p));
    }
    m.insert("pluginName".into(), json!("sticky"));
    if let Some(f) = &opts.fail_strategy {
        m.insert("failStrategy".into(), json!(f));
    }
    m.insert("type".into(), json!("HTTP"));
    m.insert("pluginConfig".into(), plugin_config.clone());
    m
}

fn attach(spec: &mut Map<String, Value>, opts: &Options) {
    match &opts.attach {
        Attach::Namespace => {}
        Attach::Selector(labels) => {
            spec.insert("selector".into(), json!({"matchLabels": labels}));
        }
        Attach::TargetRefs(refs) => {
            spec.insert("targetRefs".into(), target_refs(refs));
        }
    }
}

fn wasm_plugin(name: &str, ns: &str, plugin_config: &Value, opts: &Options) -> Value {
    let mut spec = Map::new();
    attach(&mut spec, opts);
    spec.insert("phase".into(), json!(opts.phase.wasm_plugin()));
    if let Some(p) = opts.priority {
        spec.insert("priority".into(), json!(p));
    }
    // Outbound traffic of sidecars and gateways (CLIENT), where istiod puts
    // stateful_session too; never inbound.
    spec.insert("match".into(), json!([{"mode": "CLIENT"}]));
    spec.extend(wasm_fields(plugin_config, opts));
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": metadata(name, ns),
        "spec": spec,
    })
}

fn traffic_extension(name: &str, ns: &str, plugin_config: &Value, opts: &Options) -> Value {
    let mut spec = Map::new();
    attach(&mut spec, opts);
    spec.insert("phase".into(), json!(opts.phase.traffic_extension()));
    if let Some(p) = opts.priority {
        spec.insert("priority".into(), json!(p));
    }
    spec.insert("match".into(), json!([{"mode": "CLIENT"}]));
    spec.insert(
        "wasm".into(),
        Value::Object(wasm_fields(plugin_config, opts)),
    );
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "TrafficExtension",
        "metadata": metadata(name, ns),
        "spec": spec,
    })
}
