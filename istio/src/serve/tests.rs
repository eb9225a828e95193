//! Unit tests across the serve modules: a model from the test policy, its
//! snapshots, and one ADS stream's ACK / NACK / stale-nonce logic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::rpc::Status;
use prost::Message as _;

use super::model::{Model, Options};
use super::snapshot::{self, CLUSTER, ENDPOINT, Group, LISTENER, ROUTE, Snapshot};
use super::source::files::{Endpoint, State};
use super::source::policy::{self, Paths};
use super::stream::{Event, StreamState};
use crate::render::envoy::Affinity;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn endpoint(port: u16, state: State, deadline: Option<u64>) -> Endpoint {
    Endpoint {
        address: "10.0.0.1".parse().unwrap(),
        port,
        state,
        deadline,
    }
}

fn model(endpoints: BTreeMap<String, Vec<Endpoint>>) -> Model {
    model_with(
        endpoints,
        Affinity::StickyWasm {
            wasm_path: "/x/sticky.wasm".into(),
        },
    )
}

fn model_with(endpoints: BTreeMap<String, Vec<Endpoint>>, affinity: Affinity) -> Model {
    let inputs = policy::load(&Paths {
        policy: testdata("policy.yaml"),
        route: testdata("route.yaml"),
        keys: testdata("keys.json"),
    })
    .unwrap();
    let opts = Options {
        envoy_listen_address: "127.0.0.1".into(),
        envoy_listen_port: 0,
        affinity,
        grpc_listener: None,
        retry: true,
        upstream_http2: false,
    };
    Model::build(&inputs, &opts, endpoints).unwrap()
}

fn two_services() -> BTreeMap<String, Vec<Endpoint>> {
    BTreeMap::from([
        (
            "reviews-v1".to_owned(),
            vec![
                endpoint(1, State::Serving, None),
                endpoint(2, State::Terminating, Some(1_000)),
            ],
        ),
        (
            "reviews-v2".to_owned(),
            vec![endpoint(3, State::Serving, None)],
        ),
    ])
}

fn snap(m: &Model, now: u64) -> Snapshot {
    snapshot::build(m, now, Instant::now(), 1).unwrap()
}

fn cla(s: &Snapshot, cluster: &str) -> ClusterLoadAssignment {
    let r = &s.envoy.get(ENDPOINT).unwrap().resources[cluster];
    ClusterLoadAssignment::decode(r.any.value.as_slice()).unwrap()
}

#[test]
fn the_same_model_gives_the_same_versions() {
    let a = snap(&model(two_services()), 10);
    let b = snap(&model(two_services()), 10);
    for t in snapshot::TYPES {
        assert_eq!(
            a.envoy.get(t).unwrap().version,
            b.envoy.get(t).unwrap().version
        );
        assert_eq!(
            a.grpc.get(t).unwrap().version,
            b.grpc.get(t).unwrap().version
        );
    }
    assert!(a.same_content(&b));
}

#[test]
fn a_terminating_endpoint_is_draining_with_its_deadline_then_gone() {
    let m = model(two_services());
    let before = snap(&m, 999);
    let lbs = &cla(&before, "reviews-v1").endpoints[0].lb_endpoints;
    assert_eq!(lbs.len(), 2);
    assert_eq!(lbs[1].health_status, 3, "DRAINING");
    let meta = &lbs[1].metadata.as_ref().unwrap().filter_metadata["sticky"].fields;
    assert!(format!("{:?}", meta["drain_deadline"]).contains("NumberValue(1000.0)"));
    assert!(format!("{:?}", meta["draining"]).contains("BoolValue(true)"));
    assert_eq!(m.next_deadline(999), Some(1_000));
    let after = snap(&m, 1_000);
    assert_eq!(cla(&after, "reviews-v1").endpoints[0].lb_endpoints.len(), 1);
    assert_ne!(
        before.envoy.get(ENDPOINT).unwrap().version,
        after.envoy.get(ENDPOINT).unwrap().version
    );
    // Only EDS changed.
    for t in [LISTENER, ROUTE, CLUSTER] {
        assert_eq!(before.envoy.get(t), after.envoy.get(t));
    }
    assert_eq!(m.next_deadline(1_000), None);
}

#[test]
fn grpc_gets_its_own_listener_envoy_the_rendered_one() {
    let s = snap(&model(two_services()), 0);
    let names = |g: Group| -> Vec<String> {
        s.group(g)
            .get(LISTENER)
            .unwrap()
            .resources
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(names(Group::Grpc), ["reviews"]);
    assert_eq!(names(Group::Envoy), ["sticky_ingress"]);
    let l = Listener::decode(
        s.grpc.get(LISTENER).unwrap().resources["reviews"]
            .any
            .value
            .as_slice(),
    )
    .unwrap();
    let text = format!("{:?}", l.api_listener.unwrap().api_listener.unwrap());
    assert!(text.contains("HttpConnectionManager"));
}

#[test]
fn grpc_routes_retry_unavailable_so_a_dead_pinned_host_is_no_error() {
    use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route};
    let s = snap(&model(two_services()), 0);
    let rc = RouteConfiguration::decode(
        s.grpc.get(ROUTE).unwrap().resources["reviews"]
            .any
            .value
            .as_slice(),
    )
    .unwrap();
    let routes = &rc.virtual_hosts[0].routes;
    assert!(!routes.is_empty());
    for r in routes {
        let Some(route::Action::Route(a)) = &r.action else {
            panic!("{r:?}")
        };
        let retry = a.retry_policy.as_ref().expect("a retry policy");
        assert_eq!(retry.retry_on, "unavailable");
        assert_eq!(retry.num_retries.as_ref().map(|n| n.value), Some(2));
    }
}

#[test]
fn grpc_cookie_tails_match_every_address_length() {
    use base64::Engine as _;
    let tails = super::resources::cookie_tails("reviews-v1");
    assert_eq!(tails.len(), 3);
    for host in [
        "1.2.3.4:5",
        "10.0.0.1:80",
        "127.0.0.1:50061",
        "[::1]:9080",
        "10.244.13.207:8080",
    ] {
        let cookie = base64::engine::general_purpose::STANDARD.encode(format!("{host};reviews-v1"));
        let ends = (0..cookie.len())
            .step_by(4)
            .any(|k| tails.iter().any(|t| cookie.get(k..) == Some(t.as_str())));
        assert!(ends, "{host}: {cookie} ends in none of {tails:?}");
        let other = base64::engine::general_purpose::STANDARD.encode(format!("{host};reviews-v2"));
        let ends = (0..other.len())
            .step_by(4)
            .any(|k| tails.iter().any(|t| other.get(k..) == Some(t.as_str())));
        assert!(!ends, "{host}: v2's cookie matched v1");
    }
}

#[test]
fn a_zero_weight_cluster_with_endpoints_keeps_its_grpc_sessions() {
    use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route, route_action};
    let s = snap(&model(two_services()), 0);
    let mut envoy = RouteConfiguration::decode(
        s.envoy
            .get(ROUTE)
            .unwrap()
            .resources
            .values()
            .next()
            .unwrap()
            .any
            .value
            .as_slice(),
    )
    .unwrap();
    for r in &mut envoy.virtual_hosts[0].routes {
        if let Some(route::Action::Route(a)) = &mut r.action
            && let Some(route_action::ClusterSpecifier::WeightedClusters(w)) =
                &mut a.cluster_specifier
        {
            for c in &mut w.clusters {
                c.weight = Some(envoy_types::pb::google::protobuf::UInt32Value {
                    value: if c.name == "reviews-v1" { 0 } else { 100 },
                });
            }
        }
    }
    let name = |rc: &RouteConfiguration| -> Vec<String> {
        rc.virtual_hosts[0]
            .routes
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    let held = super::resources::grpc_routes("reviews", &envoy, &["reviews-v1".into()], "sticky");
    let names = name(&held);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("-held-reviews-v1"), "{names:?}");
    let text = format!("{:?}", held.virtual_hosts[0].routes[0]);
    assert!(
        text.contains("sticky=") && text.contains("Cluster(\"reviews-v1\")"),
        "{text}"
    );
    // No endpoints left in v1: no held route, its sessions follow the weights.
    let gone = super::resources::grpc_routes("reviews", &envoy, &[], "sticky");
    assert_eq!(name(&gone).len(), 1);
}

#[test]
fn nodes_are_grouped_by_metadata_id_or_agent() {
    let mut n = Node {
        id: "grpc-client-7".into(),
        ..Default::default()
    };
    assert_eq!(snapshot::classify(&n), Group::Grpc);
    n.id = "edge-1".into();
    assert_eq!(snapshot::classify(&n), Group::Envoy);
    n.user_agent_name = "gRPC C-core".into();
    assert_eq!(snapshot::classify(&n), Group::Grpc);
}

fn request(ty: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: ty.into(),
        resource_names: names.iter().map(|s| (*s).to_owned()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

#[test]
fn a_stream_answers_exactly_what_is_asked_at_once() {
    let s = snap(&model(two_services()), 0);
    let mut st = StreamState::new();
    let mut first = request(ENDPOINT, &["reviews-v2"], "", "");
    first.node = Some(Node {
        id: "grpc-1".into(),
        ..Default::default()
    });
    let (r, _) = st.on_request(&first, &s, Instant::now());
    let r = r.unwrap();
    // One name asked, one resource sent; nothing waits for the others.
    assert_eq!(r.resources.len(), 1);
    assert_eq!(st.group(), Group::Grpc);
    // gRPC sends the node only once: later requests do not reset it.
    let (none, ev) = st.on_request(
        &request(ENDPOINT, &["reviews-v2"], &r.version_info, &r.nonce),
        &s,
        Instant::now(),
    );
    assert!(none.is_none());
    assert!(matches!(ev[0], Event::Acked { .. }));
    assert_eq!(st.node().unwrap().id, "grpc-1");
    // A wildcard CDS request gets every cluster.
    let (c, _) = st.on_request(&request(CLUSTER, &[], "", ""), &s, Instant::now());
    assert_eq!(c.unwrap().resources.len(), 2);
}

#[test]
fn a_nack_is_reported_and_not_answered_until_the_content_changes() {
    let m = model(two_services());
    let s = snap(&m, 0);
    let mut st = StreamState::new();
    let (r, _) = st.on_request(
        &request(ENDPOINT, &["reviews-v1"], "", ""),
        &s,
        Instant::now(),
    );
    let r = r.unwrap();
    let mut nack = request(ENDPOINT, &["reviews-v1"], "", &r.nonce);
    nack.error_detail = Some(Status {
        code: 3,
        message: "bad cookie".into(),
        details: vec![],
    });
    let (none, ev) = st.on_request(&nack, &s, Instant::now());
    assert!(none.is_none());
    assert_eq!(
        ev,
        [Event::Nacked {
            type_url: ENDPOINT.into(),
            version: String::new(),
            message: "bad cookie".into()
        }]
    );
    // Same content again: nothing pushed.
    let (pushed, _) = st.on_snapshot(&s);
    assert!(pushed.is_empty());
    // New content (the deadline passed): pushed, and its ACK measures latency.
    let mut later =
        snapshot::build(&m, 1_000, Instant::now() - Duration::from_millis(5), 2).unwrap();
    later.generation = 2;
    let (pushed, _) = st.on_snapshot(&later);
    assert_eq!(pushed.len(), 1);
    let (_, ev) = st.on_request(
        &request(
            ENDPOINT,
            &["reviews-v1"],
            &pushed[0].version_info,
            &pushed[0].nonce,
        ),
        &later,
        Instant::now(),
    );
    match &ev[0] {
        Event::Acked {
            latency: Some(l), ..
        } => assert!(*l >= Duration::from_millis(5)),
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_stale_nonce_is_ignored() {
    let m = model(two_services());
    let s = snap(&m, 0);
    let mut st = StreamState::new();
    let (r1, _) = st.on_request(
        &request(ENDPOINT, &["reviews-v1"], "", ""),
        &s,
        Instant::now(),
    );
    let r1 = r1.unwrap();
    let (pushed, _) = st.on_snapshot(&snap(&m, 1_000));
    assert_eq!(pushed.len(), 1);
    // The ACK of the first response arrives after the second was sent.
    let (none, ev) = st.on_request(
        &request(
            ENDPOINT,
            &["reviews-v1", "reviews-v2"],
            &r1.version_info,
            &r1.nonce,
        ),
        &s,
        Instant::now(),
    );
    assert!(none.is_none());
    assert_eq!(
        ev,
        [Event::Stale {
            type_url: ENDPOINT.into()
        }]
    );
}

#[test]
fn a_push_goes_only_to_clients_whose_resources_changed() {
    let m = model(two_services());
    let s = snap(&m, 0);
    let mut st = StreamState::new();
    st.on_request(
        &request(ENDPOINT, &["reviews-v2"], "", ""),
        &s,
        Instant::now(),
    );
    // reviews-v1 loses its drained endpoint; this client watches v2 only.
    let (pushed, _) = st.on_snapshot(&snap(&m, 1_000));
    assert!(pushed.is_empty());
}

/// The xDS listener and `render envoy`'s bootstrap agree on what matters:
/// the filter chain, the plugin JSON, the routes and the clusters.
#[test]
fn the_xds_listener_agrees_with_the_rendered_bootstrap() {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::config::route::v3::route::Action;
    use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
    use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_filter::ConfigType,
    };
    use envoy_types::pb::google::protobuf::StringValue;
    use serde_json::Value;

    let inputs = policy::load(&Paths {
        policy: testdata("policy.yaml"),
        route: testdata("route.yaml"),
        keys: testdata("keys.json"),
    })
    .unwrap();
    // What `stickyctl render envoy --wasm /x/sticky.wasm` writes.
    let rendered = crate::render::standalone::render(
        &inputs.resolved,
        &inputs.keys,
        &crate::render::standalone::Options {
            listen_address: "0.0.0.0".into(),
            listen_port: 10000,
            admin_port: 9901,
            affinity: Affinity::StickyWasm {
                wasm_path: "/x/sticky.wasm".into(),
            },
            eds_dir: "/etc/sticky/eds".into(),
            naming: crate::render::standalone::Naming::Backend,
            endpoints: BTreeMap::new(),
            shard_endpoints: crate::render::standalone::ShardEndpoints::Eds,
            retry: true,
            runtime_key_prefix: Some("sticky.split".into()),
        },
    )
    .unwrap();
    let boot = &rendered.bootstrap["static_resources"];
    let hcm_json = &boot["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];

    let s = snap(&model(two_services()), 0);
    let listener = Listener::decode(
        s.envoy.get(LISTENER).unwrap().resources["sticky_ingress"]
            .any
            .value
            .as_slice(),
    )
    .unwrap();
    let filter = &listener.filter_chains[0].filters[0];
    let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
        &filter.config_type
    else {
        panic!("no HCM")
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    // The same filters, in the same order, with the same types.
    let names: Vec<(String, String)> = hcm
        .http_filters
        .iter()
        .map(|f| match &f.config_type {
            Some(ConfigType::TypedConfig(a)) => (f.name.clone(), a.type_url.clone()),
            _ => (f.name.clone(), String::new()),
        })
        .collect();
    let rendered_names: Vec<(String, String)> = hcm_json["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["typed_config"]["@type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(names, rendered_names);
    assert_eq!(
        hcm.early_header_mutation_extensions.len(),
        hcm_json["early_header_mutation_extensions"]
            .as_array()
            .map_or(0, Vec::len)
    );
    // The same plugin JSON, byte for byte.
    let Some(ConfigType::TypedConfig(w)) = &hcm.http_filters[0].config_type else {
        panic!("no wasm")
    };
    let wasm = Wasm::decode(w.value.as_slice()).unwrap();
    let conf = wasm.config.unwrap().configuration.unwrap();
    let plugin = StringValue::decode(conf.value.as_slice()).unwrap().value;
    assert_eq!(
        plugin,
        hcm_json["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        serde_json::from_str::<Value>(&plugin).unwrap(),
        rendered.plugin_config
    );
    // The same routes: names, and the cluster or split (weights) each one takes.
    let routes = RouteConfiguration::decode(
        s.envoy.get(ROUTE).unwrap().resources["sticky_routes"]
            .any
            .value
            .as_slice(),
    )
    .unwrap();
    let got: Vec<(String, String)> = routes.virtual_hosts[0]
        .routes
        .iter()
        .map(|r| {
            let Some(Action::Route(a)) = &r.action else {
                panic!()
            };
            let target = match a.cluster_specifier.as_ref().unwrap() {
                ClusterSpecifier::Cluster(c) => c.clone(),
                ClusterSpecifier::WeightedClusters(w) => w
                    .clusters
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.weight.unwrap().value))
                    .collect::<Vec<_>>()
                    .join(","),
                o => format!("{o:?}"),
            };
            (r.name.clone(), target)
        })
        .collect();
    let want: Vec<(String, String)> = hcm_json["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let a = &r["route"];
            let target = match a["cluster"].as_str() {
                Some(c) => c.to_owned(),
                None => a["weighted_clusters"]["clusters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| format!("{}={}", c["name"].as_str().unwrap(), c["weight"]))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            (r["name"].as_str().unwrap().to_owned(), target)
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        routes.request_headers_to_remove,
        hcm_json["route_config"]["request_headers_to_remove"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    );
    // The same clusters, each with override_host_status.
    let clusters: Vec<String> = s
        .envoy
        .get(CLUSTER)
        .unwrap()
        .resources
        .keys()
        .cloned()
        .collect();
    let rendered_clusters: Vec<String> = boot["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(clusters, rendered_clusters);
    for r in s.envoy.get(CLUSTER).unwrap().resources.values() {
        let c = Cluster::decode(r.any.value.as_slice()).unwrap();
        let statuses = c
            .common_lb_config
            .unwrap()
            .override_host_status
            .unwrap()
            .statuses;
        assert!(statuses.contains(&3), "DRAINING in {statuses:?}");
    }
}

#[test]
fn both_native_wirings_are_served() {
    use crate::render::envoy::NativeWiring;
    for (wiring, filters) in [
        (NativeWiring::Direct, "sticky,envoy.filters.http.router"),
        (
            NativeWiring::DropIn,
            "sticky,envoy.filters.http.stateful_session,envoy.filters.http.router",
        ),
    ] {
        let m = model_with(
            two_services(),
            Affinity::StickyNative {
                module: "sticky".into(),
                wiring,
            },
        );
        let s = snap(&m, 0);
        let l = Listener::decode(
            s.envoy.get(LISTENER).unwrap().resources["sticky_ingress"]
                .any
                .value
                .as_slice(),
        )
        .unwrap();
        use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as L;
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
            HttpConnectionManager, http_filter::ConfigType,
        };
        let Some(L::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
            panic!("no HCM")
        };
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.join(","), filters, "{wiring:?}");
        let Some(ConfigType::TypedConfig(first)) = &hcm.http_filters[0].config_type else {
            panic!("no config")
        };
        assert!(
            first.type_url.ends_with("DynamicModuleFilter"),
            "{wiring:?}"
        );
    }
}

#[test]
fn upstream_http2_reaches_the_envoy_clusters_for_grpc_backends() {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    const KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let mut m = model(two_services());
    let clusters = |m: &Model| -> Vec<Cluster> {
        snap(m, 0)
            .envoy
            .get(CLUSTER)
            .unwrap()
            .resources
            .values()
            .map(|r| Cluster::decode(r.any.value.as_slice()).unwrap())
            .collect()
    };
    assert!(
        clusters(&m)
            .iter()
            .all(|c| c.typed_extension_protocol_options.is_empty()),
        "HTTP/1.1 unless asked"
    );
    for c in &mut m.envoy_clusters {
        crate::render::envoy::upstream_http2(c);
    }
    let h2 = clusters(&m);
    assert_eq!(h2.len(), 2);
    for c in h2 {
        let any = &c.typed_extension_protocol_options[KEY];
        assert_eq!(
            any.type_url,
            format!("type.googleapis.com/{KEY}"),
            "{}",
            c.name
        );
    }
}
