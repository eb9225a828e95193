//! `stickyctl render envoy`: a resolved policy → a complete standalone Envoy
//! bootstrap (through [`super::envoy`]), one EDS file per cluster, and the
//! plugin config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::eds::{self, Endpoint};
use crate::error::{Error, Result};
use crate::input::route::{BackendRef, Match, PathMatch, precedence};
use crate::keys::Key;
use crate::plugin;
use crate::render::envoy::{
    Affinity, ClusterPlan, Plan, RoutePlan, bootstrap_with_routes, dns_cluster,
};
use crate::render::istio;
use crate::resolve::Resolved;

/// How Envoy clusters are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// The backend Service's name (`reviews-v1`; `reviews-v1_9080` if a
    /// Service appears with two ports).
    Backend,
    /// Istio's subset cluster name (`outbound|9080|v1|reviews.default.svc.cluster.local`).
    Istio,
}

/// How a shard cluster (key-sharded routing) finds its StatefulSet pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardEndpoints {
    /// An EDS file per shard, like every other cluster (`--endpoint
    /// <pod>=IP:PORT`): works anywhere, and `stickyctl endpoints` drains it.
    Eds,
    /// STRICT_DNS on the pod's stable name
    /// `<statefulSet>-<i>.<headlessService>.<namespace>.svc.cluster.local`:
    /// for an Envoy running inside the Kubernetes cluster; follows the pod
    /// across restarts without anyone writing EDS files.
    Dns,
}

/// Options of `render envoy`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Listener address.
    pub listen_address: String,
    /// Listener port.
    pub listen_port: u16,
    /// Admin port (loopback).
    pub admin_port: u16,
    /// sticky as wasm (path) or native module (name).
    pub affinity: Affinity,
    /// Directory Envoy reads EDS files from (absolute, as Envoy sees it).
    pub eds_dir: PathBuf,
    /// Cluster naming.
    pub naming: Naming,
    /// Initial endpoints by backend name (or, for shards, pod name).
    pub endpoints: BTreeMap<String, Vec<(String, u16)>>,
    /// How shard clusters find their pod.
    pub shard_endpoints: ShardEndpoints,
    /// Retry policy on routes.
    pub retry: bool,
    /// Runtime key prefix for live weight shifts.
    pub runtime_key_prefix: Option<String>,
}

/// Everything `render envoy` writes.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The bootstrap.
    pub bootstrap: Value,
    /// The plugin config (also inside the bootstrap).
    pub plugin_config: Value,
    /// EDS files: (file name inside the EDS directory, content).
    pub eds: Vec<(String, Value)>,
    /// The plan the bootstrap was rendered from.
    pub plan: Plan,
}

/// The Envoy cluster name of a backend.
pub fn cluster_name(resolved: &Resolved, b: &BackendRef, naming: Naming) -> Result<String> {
    match naming {
        Naming::Istio => istio::cluster_name(resolved, b),
        Naming::Backend => {
            let ports = resolved
                .backends()
                .iter()
                .filter(|x| x.name == b.name && x.namespace == b.namespace)
                .count();
            Ok(if ports > 1 {
                format!("{}_{}", b.name, b.port)
            } else {
                b.name.clone()
            })
        }
    }
}

/// The shard clusters of a sharding policy, shard 0 first (none without
/// `spec.sharding`): `shard-<i>`, or Istio's subset cluster names.
pub fn shard_clusters(resolved: &Resolved, naming: Naming) -> Vec<String> {
    let Some(sh) = &resolved.policy.sharding else {
        return Vec::new();
    };
    (0..sh.shards)
        .map(|i| match naming {
            Naming::Backend => istio::shard_subset(i),
            Naming::Istio => istio::shard_cluster_name(resolved, sh, i),
        })
        .collect()
}

/// A file name for a cluster's EDS file (Istio names hold `|`).
pub fn eds_file_name(cluster: &str) -> String {
    let safe: String = cluster
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.json")
}

/// Renders the standalone Envoy set-up.
pub fn render(resolved: &Resolved, keys: &[Key], opts: &Options) -> Result<Rendered> {
    let backends = resolved.backends();
    let mut clusters = Vec::new();
    let mut names = Vec::new();
    let mut eds = Vec::new();
    for b in &backends {
        let name = cluster_name(resolved, b, opts.naming)?;
        let file = eds_file_name(&name);
        if eds.iter().any(|(f, _): &(String, Value)| *f == file) {
            return Err(resolved.route.doc.error(
                &format!("{}.name", b.path),
                format!("cluster {name:?} maps to the same EDS file as another cluster"),
            ));
        }
        let endpoints: Vec<Endpoint> = opts
            .endpoints
            .get(&b.name)
            .map(|eps| eps.iter().map(|(a, p)| Endpoint::healthy(a, *p)).collect())
            .unwrap_or_default();
        eds.push((
            file.clone(),
            eds::render(&name, &endpoints, &resolved.drain_namespace, 1),
        ));
        clusters.push(ClusterPlan {
            name: name.clone(),
            weight: b.weight,
            eds_path: opts.eds_dir.join(&file),
        });
        names.push(name);
    }
    let shard_names = shard_clusters(resolved, opts.naming);
    let mut shard_pods = Vec::new();
    let mut dns_shards = Vec::new();
    if let Some(sh) = &resolved.policy.sharding {
        for (i, name) in (0..sh.shards).zip(&shard_names) {
            let file = eds_file_name(name);
            if names.contains(name) || eds.iter().any(|(f, _)| *f == file) {
                return Err(resolved.policy.doc.error(
                    "spec.sharding",
                    format!(
                        "shard cluster {name:?} collides with a backendRef's cluster or EDS file"
                    ),
                ));
            }
            let pod = sh.pod(i);
            match opts.shard_endpoints {
                ShardEndpoints::Eds => {
                    let endpoints: Vec<Endpoint> = opts
                        .endpoints
                        .get(&pod)
                        .map(|eps| eps.iter().map(|(a, p)| Endpoint::healthy(a, *p)).collect())
                        .unwrap_or_default();
                    eds.push((
                        file.clone(),
                        eds::render(name, &endpoints, &resolved.drain_namespace, 1),
                    ));
                    // Weight 0: reached through the cluster header only.
                    clusters.push(ClusterPlan {
                        name: name.clone(),
                        weight: 0,
                        eds_path: opts.eds_dir.join(&file),
                    });
                    shard_pods.push(pod);
                }
                ShardEndpoints::Dns => {
                    dns_shards.push((
                        name.clone(),
                        sh.pod_dns(i, &resolved.route.namespace),
                        sh.port,
                    ));
                }
            }
        }
    }
    for backend in opts.endpoints.keys() {
        if !backends.iter().any(|b| &b.name == backend) && !shard_pods.contains(backend) {
            return Err(Error::Usage(format!(
                "--endpoint names {backend:?}, which is no backendRef of HTTPRoute {}{}",
                resolved.route.name,
                if dns_shards.is_empty() {
                    " nor a shard's pod"
                } else {
                    " (DNS shard clusters take no --endpoint)"
                }
            )));
        }
    }
    let plugin_config = plugin::config(resolved, &names, &shard_names, keys)?;
    let plan = Plan {
        listen_address: opts.listen_address.clone(),
        listen_port: opts.listen_port,
        admin_port: opts.admin_port,
        affinity: opts.affinity.clone(),
        plugin_config,
        clusters,
        eds_dir: opts.eds_dir.clone(),
        retry: opts.retry,
        strict: resolved.policy.ext.strict,
        runtime_key_prefix: opts.runtime_key_prefix.clone(),
        connect_timeout_ms: 1000,
    };
    let single = resolved.route.rules.len() == 1
        && resolved
            .route
            .rules
            .first()
            .is_some_and(|r| r.matches == [Match::any()]);
    let mut routes = Vec::new();
    for (ri, mi) in precedence(&resolved.route.rules) {
        let Some(rule) = resolved.route.rules.get(ri) else {
            continue;
        };
        let Some(m) = rule.matches.get(mi) else {
            continue;
        };
        let rule_clusters = rule
            .backends
            .iter()
            .map(|b| Ok((cluster_name(resolved, b, opts.naming)?, b.weight)))
            .collect::<Result<Vec<_>>>()?;
        routes.push(RoutePlan {
            name: if single {
                "sticky".to_owned()
            } else {
                format!("{}_{}_m{mi}", resolved.route.name, rule.name)
            },
            route_match: envoy_match(m),
            clusters: rule_clusters,
            pinned_only: shard_names.clone(),
        });
    }
    let mut bootstrap = bootstrap_with_routes(&plan, &routes, &resolved.route.hostnames);
    if let Some(list) = bootstrap["static_resources"]["clusters"].as_array_mut() {
        for (name, host, port) in &dns_shards {
            list.push(dns_cluster(&plan, name, host, *port));
        }
    }
    Ok(Rendered {
        bootstrap,
        // What the filter in the bootstrap is given (plugin.json).
        plugin_config: plan.filter_config(),
        eds,
        plan,
    })
}

/// An Envoy `RouteMatch` for an HTTPRoute match.
pub fn envoy_match(m: &Match) -> Value {
    let mut out = match &m.path {
        PathMatch::Prefix(p) => json!({"prefix": p}),
        PathMatch::Exact(p) => json!({"path": p}),
        PathMatch::Regex(r) => json!({"safe_regex": {"regex": r}}),
    };
    let mut headers: Vec<Value> = m
        .headers
        .iter()
        .map(|h| {
            let sm = if h.regex {
                json!({"safe_regex": {"regex": h.value}})
            } else {
                json!({"exact": h.value})
            };
            json!({"name": h.name.to_ascii_lowercase(), "string_match": sm})
        })
        .collect();
    if let Some(method) = &m.method {
        headers.push(json!({"name": ":method", "string_match": {"exact": method}}));
    }
    if !headers.is_empty() {
        out["headers"] = Value::Array(headers);
    }
    if !m.query.is_empty() {
        out["query_parameters"] = Value::Array(
            m.query
                .iter()
                .map(|q| {
                    let sm = if q.regex {
                        json!({"safe_regex": {"regex": q.value}})
                    } else {
                        json!({"exact": q.value})
                    };
                    json!({"name": q.name, "string_match": sm})
                })
                .collect(),
        );
    }
    out
}

/// Writes the rendered files into `dir`: envoy.json, plugin.json, eds/*.json.
pub fn write(rendered: &Rendered, dir: &Path) -> Result<Vec<PathBuf>> {
    let eds_dir = dir.join("eds");
    std::fs::create_dir_all(&eds_dir).map_err(|e| Error::io(&eds_dir, e))?;
    let mut written = Vec::new();
    let mut put = |path: PathBuf, text: String| -> Result<()> {
        eds::write_atomic(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))?;
        written.push(path);
        Ok(())
    };
    put(
        dir.join("envoy.json"),
        crate::yaml::to_json(&rendered.bootstrap),
    )?;
    put(
        dir.join("plugin.json"),
        crate::yaml::to_json(&rendered.plugin_config),
    )?;
    for (file, value) in &rendered.eds {
        put(eds_dir.join(file), crate::yaml::to_json(value))?;
    }
    Ok(written)
}
