//! A complete standalone Envoy bootstrap for sticky: listener, the filter
//! chain (sticky → stateful_session → router; the native module's direct
//! wiring has no stateful_session), one exact-match route per allow-listed
//! cluster before the weighted split, EDS-fed clusters with `override_host_status`, retries
//! and a loopback admin. The same renderer also produces the comparison
//! set-ups (no affinity, Envoy's native cookie, ring hash) used by the demo and
//! the benchmarks, so every mode runs on identical wiring.

use std::path::PathBuf;

use serde_json::{Value, json};

/// How session affinity is provided.
#[derive(Debug, Clone, PartialEq)]
pub enum Affinity {
    /// sticky as a proxy-wasm filter loaded by V8.
    StickyWasm {
        /// Path of `sticky.wasm` on the proxy's disk.
        wasm_path: PathBuf,
    },
    /// sticky as an Envoy dynamic module (`libsticky.so`).
    StickyNative {
        /// Module name: Envoy loads `lib<name>.so` from `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
        module: String,
        /// How the module's pinned host reaches Envoy.
        wiring: NativeWiring,
    },
    /// A pass-through wasm filter in sticky's place (measures the wasm boundary).
    EmptyWasm {
        /// Path of the empty filter module.
        wasm_path: PathBuf,
    },
    /// Envoy's own `stateful_session` with its cookie (host only).
    EnvoyCookie {
        /// Cookie name.
        name: String,
        /// Cookie TTL in seconds.
        ttl_seconds: u64,
    },
    /// Ring-hash load balancing on a cookie Envoy generates.
    RingHash {
        /// Cookie name.
        cookie: String,
    },
    /// No affinity at all.
    None,
}

/// How the native module (`Affinity::StickyNative`) pins the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeWiring {
    /// The wasm's bootstrap with the module in the wasm filter's place: the
    /// module sets the internal host header and Envoy's header-based
    /// `stateful_session` (after it) pins the host; identical plugin JSON.
    DropIn,
    /// No `stateful_session` filter: the module pins the host itself with
    /// `set_upstream_override_host`; the plugin JSON gains `override_host`
    /// (`strict` from the policy's strict mode).
    Direct,
}

/// One upstream cluster of the weighted route.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPlan {
    /// Envoy cluster name (may contain `|`, as Istio's do).
    pub name: String,
    /// Weight in the default route's split.
    pub weight: u32,
    /// EDS file for this cluster.
    pub eds_path: PathBuf,
}

/// Everything the bootstrap needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Listener address.
    pub listen_address: String,
    /// Listener port (0 = ephemeral).
    pub listen_port: u16,
    /// Admin port on 127.0.0.1 (0 = ephemeral).
    pub admin_port: u16,
    /// Session affinity mode.
    pub affinity: Affinity,
    /// The plugin configuration JSON (sticky modes).
    pub plugin_config: Value,
    /// Clusters of the weighted split, in order.
    pub clusters: Vec<ClusterPlan>,
    /// Directory Envoy watches for EDS file renames.
    pub eds_dir: PathBuf,
    /// Retry connect failures and resets on another host (recommended).
    pub retry: bool,
    /// `stateful_session` strict mode: a pinned host that is gone is a 503.
    pub strict: bool,
    /// Runtime key prefix for live weight shifts (`POST /runtime_modify`).
    pub runtime_key_prefix: Option<String>,
    /// Upstream connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
}

impl Plan {
    /// Internal host header from the plugin config (or its default).
    pub fn host_header(&self) -> String {
        str_field(&self.plugin_config, "host_header", "x-sticky-host")
    }

    /// Internal cluster header from the plugin config (or its default).
    pub fn cluster_header(&self) -> String {
        str_field(&self.plugin_config, "cluster_header", "x-sticky-cluster")
    }

    /// The clusters a session may name: the plugin config's `clusters` and
    /// `sharding.clusters` (the filter's allow-list), in that order.
    pub fn allowed_clusters(&self) -> Vec<String> {
        let listed = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out = listed(&self.plugin_config["clusters"]);
        for c in listed(&self.plugin_config["sharding"]["clusters"]) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// The plugin configuration the filter is given: the plan's, with
    /// `override_host` added for the native module's direct wiring (removed
    /// for its drop-in wiring, which pins through `host_header`).
    pub fn filter_config(&self) -> Value {
        let mut config = self.plugin_config.clone();
        if let Some(fields) = config.as_object_mut() {
            match self.affinity {
                Affinity::StickyNative {
                    wiring: NativeWiring::Direct,
                    ..
                } => {
                    fields.insert("override_host".into(), json!({"strict": self.strict}));
                }
                Affinity::StickyNative {
                    wiring: NativeWiring::DropIn,
                    ..
                } => {
                    fields.remove("override_host");
                }
                // The wasm refuses `override_host` itself, naming the field.
                _ => {}
            }
        }
        config
    }

    fn uses_sticky(&self) -> bool {
        matches!(
            self.affinity,
            Affinity::StickyWasm { .. } | Affinity::StickyNative { .. }
        )
    }
}

fn str_field(v: &Value, key: &str, default: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

/// Renders the bootstrap as a JSON value (valid YAML too): one rule over
/// every cluster of the plan; a pinned session reaches its cluster through
/// the exact-match route of that cluster.
pub fn bootstrap(plan: &Plan) -> Value {
    bootstrap_with_routes(plan, &[RoutePlan::whole(plan)], &[])
}

/// One rule of the route table: its match, then one pinned route per
/// allow-listed cluster (the cluster header's exact value), then the split.
/// The header never names a cluster itself (no `cluster_header`, no presence
/// match): were the filter ever bypassed, a client-sent header could reach
/// only a cluster of this rule that sessions may name anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    /// Route name prefix.
    pub name: String,
    /// Envoy `RouteMatch` without headers added by sticky (e.g. `{"prefix": "/"}`).
    pub route_match: Value,
    /// (cluster name, weight) of the split, in order.
    pub clusters: Vec<(String, u32)>,
    /// Clusters reached only through the cluster header, never by the split
    /// (shard clusters of key-sharded routing), in order.
    pub pinned_only: Vec<String>,
}

impl RoutePlan {
    /// Every cluster of the plan, on every path.
    pub fn whole(plan: &Plan) -> Self {
        RoutePlan {
            name: "sticky".to_owned(),
            route_match: json!({"prefix": "/"}),
            clusters: plan
                .clusters
                .iter()
                .map(|c| (c.name.clone(), c.weight))
                .collect(),
            pinned_only: Vec::new(),
        }
    }
}

/// Renders the bootstrap with an explicit route table, in order, for the
/// given virtual host domains (none = every host).
pub fn bootstrap_with_routes(plan: &Plan, routes: &[RoutePlan], domains: &[String]) -> Value {
    let mut layers = vec![json!({"name": "static", "static_layer": {}})];
    if plan.runtime_key_prefix.is_some() {
        layers.push(json!({"name": "admin", "admin_layer": {}}));
    }
    json!({
        "node": {"id": "sticky", "cluster": "sticky"},
        "admin": {
            "address": socket("127.0.0.1", plan.admin_port),
        },
        "layered_runtime": {"layers": layers},
        "static_resources": {
            "listeners": [listener(plan, routes, domains)],
            "clusters": plan.clusters.iter().map(|c| cluster(plan, c)).collect::<Vec<_>>(),
        },
    })
}

fn socket(address: &str, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

fn listener(plan: &Plan, routes: &[RoutePlan], domains: &[String]) -> Value {
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "sticky_ingress",
        "codec_type": "AUTO",
        "route_config": route_config(plan, routes, domains),
        "http_filters": http_filters(plan),
    });
    if plan.uses_sticky() {
        hcm["early_header_mutation_extensions"] = early_header_mutation(plan);
    }
    json!({
        "name": "sticky_ingress",
        "address": socket(&plan.listen_address, plan.listen_port),
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm,
            }],
        }],
    })
}

/// Removes client-sent internal headers before route selection and before
/// any filter runs: even a request the filter fails on (or a filter that is
/// bypassed) cannot steer with them. The filter sets its own copies later.
fn early_header_mutation(plan: &Plan) -> Value {
    json!([{
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            "mutations": [
                {"remove": plan.host_header()},
                {"remove": plan.cluster_header()},
            ],
        },
    }])
}

/// The route table: per rule, the pinned routes first, then the weighted split.
fn route_config(plan: &Plan, rules: &[RoutePlan], domains: &[String]) -> Value {
    let mut routes = Vec::new();
    let mut remove = Vec::new();
    let cluster_header = plan.cluster_header();
    let domains: Vec<&str> = if domains.is_empty() {
        vec!["*"]
    } else {
        domains.iter().map(String::as_str).collect()
    };
    let allowed = plan.allowed_clusters();
    for rule in rules {
        let with_header = |header: Value| {
            let mut m = rule.route_match.clone();
            let mut headers = m
                .get("headers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            headers.push(header);
            m["headers"] = Value::Array(headers);
            m
        };
        if plan.uses_sticky() {
            // Only clusters on the allow-list: the filter never writes another.
            let mut pinned: Vec<&String> = Vec::new();
            for c in rule
                .clusters
                .iter()
                .map(|(c, _)| c)
                .chain(&rule.pinned_only)
            {
                if allowed.contains(c) && !pinned.contains(&c) {
                    pinned.push(c);
                }
            }
            for (i, cluster) in pinned.into_iter().enumerate() {
                routes.push(json!({
                    "name": format!("{}_pinned_{i}", rule.name),
                    "match": with_header(json!({"name": cluster_header, "string_match": {"exact": cluster}})),
                    "route": route_action(plan, json!({"cluster": cluster})),
                }));
            }
        }
        let clusters: Vec<Value> = rule
            .clusters
            .iter()
            .map(|(name, weight)| json!({"name": name, "weight": weight}))
            .collect();
        let mut split = json!({"clusters": clusters});
        if let Some(prefix) = &plan.runtime_key_prefix {
            split["runtime_key_prefix"] = json!(prefix);
        }
        routes.push(json!({
            "name": format!("{}_split", rule.name),
            "match": rule.route_match,
            "route": route_action(plan, json!({"weighted_clusters": split})),
        }));
    }
    if plan.uses_sticky() {
        // Internal headers steer Envoy only; upstreams never see them.
        remove = vec![plan.host_header(), cluster_header];
    }
    let mut config = json!({
        "name": "sticky_routes",
        "virtual_hosts": [{"name": "sticky", "domains": domains, "routes": routes}],
    });
    if !remove.is_empty() {
        config["request_headers_to_remove"] = json!(remove);
    }
    config
}

fn route_action(plan: &Plan, target: Value) -> Value {
    let mut action = target;
    action["timeout"] = json!("15s");
    if plan.retry {
        // A pinned host that died: the router drops the host override on a
        // retry, so the retry is a fresh pick instead of a client-visible 5xx.
        action["retry_policy"] = json!({
            "retry_on": "connect-failure,refused-stream,reset",
            "num_retries": 2,
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
            }],
            "host_selection_retry_max_attempts": 3,
        });
    }
    if let Affinity::RingHash { cookie } = &plan.affinity {
        action["hash_policy"] = json!([{"cookie": {"name": cookie, "ttl": "3600s", "path": "/"}}]);
    }
    action
}

fn http_filters(plan: &Plan) -> Vec<Value> {
    let mut filters = Vec::new();
    match &plan.affinity {
        Affinity::StickyWasm { wasm_path } => {
            filters.push(wasm_filter("sticky", wasm_path, &plan.filter_config()));
            filters.push(stateful_session_filter(&plan.host_header(), plan.strict));
        }
        Affinity::EmptyWasm { wasm_path } => {
            filters.push(wasm_filter("empty", wasm_path, &json!({})));
        }
        Affinity::StickyNative { module, wiring } => {
            filters.push(json!({
                "name": "sticky",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                    "dynamic_module_config": {"name": module},
                    "filter_name": "sticky",
                    "filter_config": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": plan.filter_config().to_string(),
                    },
                },
            }));
            if *wiring == NativeWiring::DropIn {
                filters.push(stateful_session_filter(&plan.host_header(), plan.strict));
            }
        }
        Affinity::EnvoyCookie { name, ttl_seconds } => {
            filters.push(json!({
                "name": "envoy.filters.http.stateful_session",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
                    "session_state": {
                        "name": "envoy.http.stateful_session.cookie",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.http.stateful_session.cookie.v3.CookieBasedSessionState",
                            "cookie": {"name": name, "ttl": format!("{ttl_seconds}s"), "path": "/"},
                        },
                    },
                    "strict": plan.strict,
                },
            }));
        }
        Affinity::RingHash { .. } | Affinity::None => {}
    }
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    filters
}

fn wasm_filter(name: &str, path: &std::path::Path, config: &Value) -> Value {
    json!({
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": path.display().to_string()}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": config.to_string(),
                },
                // A filter that cannot start must not silently pass traffic.
                "fail_open": false,
            },
        },
    })
}

/// Envoy's `stateful_session` reading the host sticky chose from the internal
/// header (`HeaderBasedSessionState`); the same value goes into Istio's EnvoyFilter.
pub fn stateful_session_filter(host_header: &str, strict: bool) -> Value {
    json!({
        "name": "envoy.filters.http.stateful_session",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
            "session_state": {
                "name": "envoy.http.stateful_session.header",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.stateful_session.header.v3.HeaderBasedSessionState",
                    "name": host_header,
                },
            },
            "strict": strict,
        },
    })
}

/// `common_lb_config` that keeps DRAINING hosts reachable for pinned sessions
/// while the load balancer never picks them for new ones.
pub fn override_host_status() -> Value {
    json!({"override_host_status": {"statuses": ["UNKNOWN", "HEALTHY", "DEGRADED", "DRAINING"]}})
}

/// A cluster on one DNS name (re-resolved, every address a host): a
/// StatefulSet pod's stable name follows the pod across restarts.
pub fn dns_cluster(plan: &Plan, name: &str, host: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STRICT_DNS",
        "connect_timeout": format!("{}s", plan.connect_timeout_ms as f64 / 1000.0),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(host, port)}}]}],
        },
        "common_lb_config": override_host_status(),
    })
}

fn cluster(plan: &Plan, c: &ClusterPlan) -> Value {
    let lb_policy = match plan.affinity {
        Affinity::RingHash { .. } => "RING_HASH",
        _ => "ROUND_ROBIN",
    };
    json!({
        "name": c.name,
        "type": "EDS",
        "connect_timeout": format!("{}s", plan.connect_timeout_ms as f64 / 1000.0),
        "lb_policy": lb_policy,
        "eds_cluster_config": {
            "service_name": c.name,
            "eds_config": {
                "resource_api_version": "V3",
                "path_config_source": {
                    "path": c.eds_path.display().to_string(),
                    "watched_directory": {"path": plan.eds_dir.display().to_string()},
                },
            },
        },
        // Pinned sessions keep reaching DRAINING hosts; the LB never picks them.
        "common_lb_config": override_host_status(),
        // A killed pod fails every pinned request at once; Envoy's default of 3
        // concurrent retries per cluster would turn the excess into 503s.
        "circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "max_retries": 1024}]},
    })
}

#[cfg(test)]
mod tests;

/// HTTP/2 to the upstream (gRPC backends): Envoy's clusters speak HTTP/1.1
/// unless told otherwise, and gRPC needs HTTP/2 end to end.
pub fn upstream_http2(cluster: &mut Value) {
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        },
    });
}

/// [`upstream_http2`] on every static cluster of a bootstrap.
pub fn bootstrap_upstream_http2(bootstrap: &mut Value) {
    if let Some(clusters) = bootstrap
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
    {
        clusters.iter_mut().for_each(upstream_http2);
    }
}
