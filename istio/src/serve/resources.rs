//! The typed xDS resources of each group, built from the model: for Envoy
//! the rendered listener/routes/clusters (through [`super::envoy_pb`]); for
//! proxyless gRPC an api_listener with Envoy's cookie session state and the
//! same split; for both the same ClusterLoadAssignments with drain state.

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::StatefulSession;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::http::stateful_session::cookie::v3::CookieBasedSessionState;
use envoy_types::pb::envoy::r#type::http::v3::Cookie;
use envoy_types::pb::google::protobuf::{self as pbuf, Duration, Struct};
use envoy_types::util::pack_any;
use serde_json::json;

use crate::serve::envoy_pb;
use crate::serve::model::Model;
use crate::serve::snapshot::Resource;
use crate::serve::source::files::State;

/// The Envoy group's RouteConfiguration name (the rendered one's).
pub const ENVOY_ROUTES: &str = "sticky_routes";

/// Envoy's listener, its route table (typed, the proxyless routes derive
/// from it) and clusters.
pub fn envoy(
    model: &Model,
) -> Result<(Resource, route::RouteConfiguration, Vec<Resource>), String> {
    let (l, routes) = envoy_pb::listener(&model.envoy_listener, ENVOY_ROUTES)?;
    let name = l.name.clone();
    let clusters = model
        .envoy_clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            envoy_pb::eds_cluster(c, &format!("clusters[{i}]"))
                .map(|c| Resource::encoded(&c.name.clone(), c))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((Resource::encoded(&name, l), routes, clusters))
}

/// The proxyless group's Listener, RouteConfiguration and Clusters.
pub fn grpc(
    model: &Model,
    envoy_routes: &route::RouteConfiguration,
    now: u64,
) -> Result<(Resource, Resource, Vec<Resource>), String> {
    let name = &model.grpc_listener;
    let c = &model.grpc_cookie;
    let session = StatefulSession {
        session_state: Some(core::TypedExtensionConfig {
            name: "envoy.http.stateful_session.cookie".into(),
            typed_config: Some(pack_any(CookieBasedSessionState {
                cookie: Some(Cookie {
                    name: c.name.clone(),
                    path: c.path.clone(),
                    ttl: (c.ttl_seconds > 0).then(|| Duration {
                        seconds: i64::try_from(c.ttl_seconds).unwrap_or(i64::MAX),
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
            })),
        }),
        ..Default::default()
    };
    let manager = hcm::HttpConnectionManager {
        stat_prefix: name.clone(),
        http_filters: vec![
            hcm::HttpFilter {
                name: "envoy.filters.http.stateful_session".into(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(session))),
                ..Default::default()
            },
            hcm::HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(
                    Router::default(),
                ))),
                ..Default::default()
            },
        ],
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(envoy_pb::ads_source()),
                route_config_name: name.clone(),
            },
        )),
        ..Default::default()
    };
    // Clusters that still have endpoints: a session pinned to one of them
    // keeps it even when its weight drops to 0.
    let held: Vec<String> = model
        .clusters
        .iter()
        .filter(|s| !model.live_endpoints(s, now).is_empty())
        .map(|s| s.cluster.clone())
        .collect();
    let l = listener::Listener {
        name: name.clone(),
        api_listener: Some(listener::ApiListener {
            api_listener: Some(pack_any(manager)),
        }),
        ..Default::default()
    };
    Ok((
        Resource::encoded(name, l),
        Resource::encoded(name, grpc_routes(name, envoy_routes, &held, &c.name)),
        model
            .clusters
            .iter()
            .map(|s| Resource::encoded(&s.cluster, grpc_cluster(&s.cluster)))
            .collect(),
    ))
}

/// The proxyless route table: Envoy's split routes (not the pinned ones:
/// gRPC's cookie carries its cluster, gRFC A60), with gRPC's retry in place
/// of Envoy's, on every domain (gRPC matches the target name).
///
/// gRPC honours the cookie's cluster only if the route lists it with a
/// weight: at 90/10 → 0/100 its v1 sessions would all move to v2. So each
/// cluster of `held` whose weight is 0 gets a route of its own before the
/// split, taken by requests whose `cookie_name` cookie names that cluster
/// (the cookie is `base64("ip:port;cluster")`): pinned sessions stay, new
/// ones follow the weights. The route goes when the cluster's last
/// endpoint does (it is then not in `held`).
pub fn grpc_routes(
    name: &str,
    envoy_routes: &route::RouteConfiguration,
    held: &[String],
    cookie_name: &str,
) -> route::RouteConfiguration {
    let mut routes = Vec::new();
    for r in envoy_routes
        .virtual_hosts
        .iter()
        .flat_map(|vh| vh.routes.iter())
    {
        let Some(route::route::Action::Route(a)) = &r.action else {
            continue;
        };
        let Some(spec @ route::route_action::ClusterSpecifier::WeightedClusters(w)) =
            &a.cluster_specifier
        else {
            continue;
        };
        let retry_policy = a.retry_policy.as_ref().map(|_| grpc_retry());
        for c in &w.clusters {
            if c.weight.as_ref().is_some_and(|x| x.value > 0) || !held.contains(&c.name) {
                continue;
            }
            let mut m = r.r#match.clone().unwrap_or_default();
            m.headers.push(cookie_names_cluster(cookie_name, &c.name));
            routes.push(route::Route {
                name: format!("{}-held-{}", r.name, c.name),
                r#match: Some(m),
                action: Some(route::route::Action::Route(route::RouteAction {
                    cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                        c.name.clone(),
                    )),
                    retry_policy: retry_policy.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            });
        }
        routes.push(route::Route {
            name: r.name.clone(),
            r#match: r.r#match.clone(),
            action: Some(route::route::Action::Route(route::RouteAction {
                cluster_specifier: Some(spec.clone()),
                retry_policy,
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    route::RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![route::VirtualHost {
            name: name.to_owned(),
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// How gRPC's cookie `base64("ip:port;cluster")` ends for `cluster`: the
/// encoding of `;cluster` depends on where it falls in the 3-byte groups,
/// so the cookie ends, at a 4-character boundary, in base64(";cluster") or
/// in base64 of it without its first one or two bytes.
pub fn cookie_tails(cluster: &str) -> Vec<String> {
    use base64::Engine as _;
    let suffix = format!(";{cluster}");
    (0..3)
        .filter_map(|skip| suffix.as_bytes().get(skip..))
        .filter(|t| !t.is_empty())
        .map(|t| base64::engine::general_purpose::STANDARD.encode(t))
        .collect()
}

/// A `cookie` header whose `name` cookie names `cluster` (RE2, full match,
/// as gRPC and Envoy apply it).
fn cookie_names_cluster(name: &str, cluster: &str) -> route::HeaderMatcher {
    use envoy_types::pb::envoy::r#type::matcher::v3::{
        RegexMatcher, StringMatcher, string_matcher,
    };
    let tails: Vec<String> = cookie_tails(cluster)
        .iter()
        .map(|t| regex_escape(t))
        .collect();
    let regex = format!(
        "(?:.*[;,] *)?{}=(?:[A-Za-z0-9+/]{{4}})*(?:{})(?: *[;,].*)?",
        regex_escape(name),
        tails.join("|")
    );
    route::HeaderMatcher {
        name: "cookie".into(),
        header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                    regex,
                    ..Default::default()
                })),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// `s` as an RE2 literal.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc = !c.is_ascii_alphanumeric() && c != '_';
            esc.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Envoy's retry (a pinned host died mid-request) in gRPC's terms (gRFC
/// A44): a call that failed UNAVAILABLE is retried, and the retry's pick
/// falls back from the dead pinned host (gRFC A55), so the application sees
/// no error. Same condition as Envoy's `reset`: the backend may have seen it.
fn grpc_retry() -> route::RetryPolicy {
    route::RetryPolicy {
        retry_on: "unavailable".into(),
        num_retries: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 2 }),
        ..Default::default()
    }
}

fn grpc_cluster(name: &str) -> cluster::Cluster {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy};
    cluster::Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds.into())),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        lb_policy: LbPolicy::RoundRobin.into(),
        eds_cluster_config: Some(cluster::cluster::EdsClusterConfig {
            eds_config: Some(envoy_pb::ads_source()),
            service_name: name.to_owned(),
        }),
        // gRPC honours only these three; unset would mean no DRAINING host
        // keeps its sessions.
        common_lb_config: Some(envoy_pb::override_host_status(&[
            core::HealthStatus::Unknown,
            core::HealthStatus::Healthy,
            core::HealthStatus::Draining,
        ])),
        ..Default::default()
    }
}

fn value(kind: pbuf::value::Kind) -> pbuf::Value {
    pbuf::Value { kind: Some(kind) }
}

/// One ClusterLoadAssignment per cluster at `now`: terminating endpoints are
/// DRAINING with `filter_metadata.<ns>.{draining, drain_deadline}`; those
/// whose deadline passed are gone.
pub fn load_assignments(model: &Model, now: u64) -> Vec<Resource> {
    model
        .clusters
        .iter()
        .map(|c| {
            let eps = model.live_endpoints(c, now);
            let lb_endpoints = eps
                .iter()
                .map(|e| {
                    let draining = e.state == State::Terminating;
                    let metadata = draining.then(|| {
                        let mut fields = std::collections::HashMap::from([(
                            "draining".to_owned(),
                            value(pbuf::value::Kind::BoolValue(true)),
                        )]);
                        if let Some(d) = e.deadline {
                            // A JSON number, as `stickyctl endpoints drain` writes it.
                            #[allow(clippy::cast_precision_loss)]
                            let secs = d as f64;
                            fields.insert(
                                "drain_deadline".into(),
                                value(pbuf::value::Kind::NumberValue(secs)),
                            );
                        }
                        core::Metadata {
                            filter_metadata: std::collections::HashMap::from([(
                                model.drain_namespace.clone(),
                                Struct { fields },
                            )]),
                            ..Default::default()
                        }
                    });
                    endpoint::LbEndpoint {
                        health_status: if draining {
                            core::HealthStatus::Draining
                        } else {
                            core::HealthStatus::Healthy
                        }
                        .into(),
                        metadata,
                        host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
                            endpoint::Endpoint {
                                address: Some(envoy_pb::socket(
                                    &e.address.to_string(),
                                    u32::from(e.port),
                                )),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }
                })
                .collect();
            let cla = endpoint::ClusterLoadAssignment {
                cluster_name: c.cluster.clone(),
                endpoints: vec![endpoint::LocalityLbEndpoints {
                    lb_endpoints,
                    // gRPC requires a locality, and drops one without a weight.
                    locality: Some(core::Locality::default()),
                    load_balancing_weight: Some(envoy_types::pb::google::protobuf::UInt32Value {
                        value: 1,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let canonical = json!({
                "cluster": c.cluster, "ns": model.drain_namespace, "endpoints": eps,
            })
            .to_string();
            Resource::with_canonical(&c.cluster, cla, canonical.as_bytes())
        })
        .collect()
}
