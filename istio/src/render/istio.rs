//! `stickyctl render istio`: a resolved policy → the Istio objects that wire
//! sticky into sidecars and gateways. The evidence for each choice, read from
//! istio/istio sources, is cited in istio/README.md ("Istio wiring").
//!
//! - WasmPlugin (or TrafficExtension) running sticky on outbound (CLIENT) traffic;
//! - EnvoyFilter: `stateful_session` with `HeaderBasedSessionState` inserted
//!   before the router (so after every WasmPlugin phase) for SIDECAR_OUTBOUND
//!   and GATEWAY, and a CLUSTER MERGE of `override_host_status` for every
//!   subset cluster (istiod sets it only on the default cluster);
//! - VirtualService: per subset a route matching the cluster header, before
//!   the weighted route;
//! - DestinationRule subsets;
//! - the Service label `istio.io/persistent-session`, which makes istiod send
//!   terminating pods as DRAINING instead of dropping them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::input::route::{BackendRef, Match, PathMatch, precedence};
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
    /// IfNotPresent or Always.
    pub image_pull_policy: Option<String>,
    /// The Service to label (rendered whole, with the label added).
    pub service: Option<Service>,
}

/// The rendered objects.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Kubernetes objects in apply order.
    pub objects: Vec<Value>,
    /// The plugin config inside the WasmPlugin.
    pub plugin_config: Value,
    /// A `kubectl label` command, when no Service was given to render.
    pub label_command: Option<String>,
    /// Things the user should know about the rendered objects.
    pub notes: Vec<String>,
}

/// The Service whose subsets the backends are.
pub fn service_name(resolved: &Resolved) -> Result<String> {
    if let Some(s) = &resolved.policy.ext.service {
        return Ok(s.clone());
    }
    if let Some(p) = resolved.route.parents.iter().find(|p| p.kind == "Service") {
        return Ok(p.name.clone());
    }
    Err(resolved.policy.doc.error(
        "spec.sticky.service",
        "Istio subsets belong to one Service: name it here, or give the HTTPRoute a Service parentRef (GAMMA)",
    ))
}

/// The Service's namespace (the route's).
fn service_namespace(resolved: &Resolved) -> String {
    resolved
        .route
        .parents
        .iter()
        .find(|p| p.kind == "Service")
        .map_or_else(|| resolved.route.namespace.clone(), |p| p.namespace.clone())
}

/// `<service>.<namespace>.svc.cluster.local`.
pub fn service_host(resolved: &Resolved) -> Result<String> {
    Ok(format!(
        "{}.{}.{CLUSTER_DOMAIN}",
        service_name(resolved)?,
        service_namespace(resolved)
    ))
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The subset a backend stands for: its name less the `<service>-` prefix.
pub fn subset(resolved: &Resolved, b: &BackendRef) -> Result<String> {
    let service = service_name(resolved)?;
    if b.namespace != service_namespace(resolved) {
        return Err(resolved.route.doc.error(
            &format!("{}.namespace", b.path),
            format!(
                "subsets of {service} live in namespace {}, this backend in {}",
                service_namespace(resolved),
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

/// Istio's subset cluster name: `outbound|<port>|<subset>|<host>`.
pub fn cluster_name(resolved: &Resolved, b: &BackendRef) -> Result<String> {
    Ok(format!(
        "outbound|{}|{}|{}",
        b.port,
        subset(resolved, b)?,
        service_host(resolved)?
    ))
}

/// The subset of shard `i` (also the standalone cluster name): `shard-<i>`.
pub fn shard_subset(i: u32) -> String {
    format!("shard-{i}")
}

/// `<service>.<namespace>.svc.cluster.local` of the Service whose subsets
/// the shards are (in the route's namespace).
pub fn shard_host(resolved: &Resolved, sharding: &Sharding) -> String {
    format!(
        "{}.{}.{CLUSTER_DOMAIN}",
        sharding.istio_service(),
        resolved.route.namespace
    )
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

fn subset_label(resolved: &Resolved) -> String {
    resolved
        .policy
        .ext
        .subset_label
        .clone()
        .unwrap_or_else(|| DEFAULT_SUBSET_LABEL.to_owned())
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

/// Renders every object.
pub fn render(resolved: &Resolved, keys: &[Key], opts: &Options) -> Result<Rendered> {
    check_options(opts)?;
    let host = service_host(resolved)?;
    let service = service_name(resolved)?;
    let ns = resolved.policy.namespace.clone();
    let name = format!("{}-sticky", resolved.policy.name);
    let backends = resolved.backends();
    let mut clusters = Vec::new();
    let mut subsets: Vec<(String, u16)> = Vec::new();
    for b in &backends {
        clusters.push(cluster_name(resolved, b)?);
        subsets.push((subset(resolved, b)?, b.port));
    }
    let sharding = resolved.policy.sharding.as_ref();
    let mut shard_clusters = Vec::new();
    // (host, subset, port) of every shard, for the EnvoyFilter's cluster patches.
    let mut shard_subsets: Vec<(String, String, u16)> = Vec::new();
    let mut notes = Vec::new();
    if let Some(sh) = sharding {
        for i in 0..sh.shards {
            let name = shard_cluster_name(resolved, sh, i);
            if clusters.contains(&name) {
                return Err(resolved.policy.doc.error(
                    "spec.sharding",
                    format!("shard cluster {name:?} is also a backendRef's subset cluster"),
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
        if sh.istio_service() != service {
            notes.push(format!(
                "label the shard Service too, so a terminating shard pod keeps its pinned sessions: kubectl label service {} -n {} {PERSISTENT_SESSION_LABEL}={PERSISTENT_SESSION_VALUE} --overwrite",
                sh.istio_service(),
                resolved.route.namespace
            ));
        }
    }
    let plugin_config = plugin::config(resolved, &clusters, &shard_clusters, keys)?;
    let mut objects = Vec::new();
    let mut label_command = None;
    match &opts.service {
        Some(svc) => {
            if svc.name != service || svc.namespace != service_namespace(resolved) {
                return Err(svc.doc.error(
                    "metadata.name",
                    format!(
                        "is {}/{}, but the subsets belong to {}/{service}",
                        svc.namespace,
                        svc.name,
                        service_namespace(resolved)
                    ),
                ));
            }
            let mut v = svc.doc.value.clone();
            // A Service fetched with `kubectl get -o yaml` carries server-owned
            // fields that would make the apply conflict.
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
            objects.push(v);
        }
        None => {
            label_command = Some(format!(
                "kubectl label service {service} -n {} {PERSISTENT_SESSION_LABEL}={PERSISTENT_SESSION_VALUE} --overwrite",
                service_namespace(resolved)
            ));
        }
    }
    let shard_dr = sharding.map(|sh| (shard_host(resolved, sh), shard_rule_subsets(sh)));
    match shard_dr {
        // One DestinationRule per host (istiod merges several unpredictably).
        Some((shard_host, shard_list)) if shard_host == host => {
            let mut dr = destination_rule(resolved, &name, &host, &subsets);
            if let Some(list) = dr["spec"]["subsets"].as_array_mut() {
                list.extend(shard_list);
            }
            objects.push(dr);
        }
        Some((shard_host, shard_list)) => {
            objects.push(destination_rule(resolved, &name, &host, &subsets));
            objects.push(json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": metadata(&format!("{name}-shards"), &resolved.route.namespace),
                "spec": {"host": shard_host, "subsets": shard_list},
            }));
        }
        None => objects.push(destination_rule(resolved, &name, &host, &subsets)),
    }
    objects.push(virtual_service(resolved, &host)?);
    objects.push(envoy_filter(
        resolved,
        &name,
        &host,
        &subsets,
        &shard_subsets,
        opts,
    ));
    objects.push(if opts.traffic_extension {
        traffic_extension(&name, &ns, &plugin_config, opts)
    } else {
        wasm_plugin(&name, &ns, &plugin_config, opts)
    });
    Ok(Rendered {
        objects,
        plugin_config,
        label_command,
        notes,
    })
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

fn destination_rule(
    resolved: &Resolved,
    name: &str,
    host: &str,
    subsets: &[(String, u16)],
) -> Value {
    let label = subset_label(resolved);
    let mut seen: Vec<&str> = Vec::new();
    let mut list = Vec::new();
    for (s, _) in subsets {
        if seen.contains(&s.as_str()) {
            continue;
        }
        seen.push(s);
        list.push(json!({"name": s, "labels": {label.clone(): s}}));
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": metadata(name, &service_namespace(resolved)),
        "spec": {"host": host, "subsets": list},
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

fn virtual_service(resolved: &Resolved, host: &str) -> Result<Value> {
    let route = &resolved.route;
    let gateways: Vec<String> = route
        .parents
        .iter()
        .filter(|p| p.kind == "Gateway")
        .map(|p| {
            if p.namespace == route.namespace {
                p.name.clone()
            } else {
                format!("{}/{}", p.namespace, p.name)
            }
        })
        .collect();
    let mesh = route.parents.is_empty() || route.parents.iter().any(|p| p.kind == "Service");
    let mut hosts = Vec::new();
    if mesh {
        hosts.push(host.to_owned());
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
    // subsets, then its weighted route. A more specific rule's split comes
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
            let subset = subset(resolved, b)?;
            let cluster = cluster_name(resolved, b)?;
            let destination = json!({"host": host, "subset": subset, "port": {"number": b.port}});
            http.push(json!({
                "name": format!("{}{suffix}-pinned-{subset}-{}", rule.name, b.port),
                "match": [istio_match(m, &[(CLUSTER_HEADER.to_owned(), cluster)])],
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
                    "match": [istio_match(m, &[(CLUSTER_HEADER.to_owned(), shard_cluster_name(resolved, sh, i))])],
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
    let mut spec = json!({"hosts": hosts, "http": http});
    if !gateways.is_empty() {
        let mut g = gateways;
        if mesh {
            g.push("mesh".to_owned());
        }
        spec["gateways"] = json!(g);
    }
    Ok(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata(&route.name, &route.namespace),
        "spec": spec,
    }))
}

/// The EnvoyFilter contexts sticky runs in (never SIDECAR_INBOUND: istiod
/// builds no session filter there either).
pub const CONTEXTS: [&str; 2] = ["SIDECAR_OUTBOUND", "GATEWAY"];

fn envoy_filter(
    resolved: &Resolved,
    name: &str,
    host: &str,
    subsets: &[(String, u16)],
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
    let every = subsets.iter().map(|(s, p)| (host, s.as_str(), *p)).chain(
        shard_subsets
            .iter()
            .map(|(h, s, p)| (h.as_str(), s.as_str(), *p)),
    );
    let every: Vec<(&str, &str, u16)> = every.collect();
    for context in CONTEXTS {
        for (host, subset, port) in &every {
            patches.push(json!({
                "applyTo": "CLUSTER",
                "match": {
                    "context": context,
                    "cluster": {"service": host, "subset": subset, "portNumber": port},
                },
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
