//! The conversion on API object JSON as the API server returns it
//! (`testdata/kube/`, written from the Kubernetes API reference).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::DynamicObject;
use serde::de::DeserializeOwned;

use super::cache::decode;
use super::convert::{Backend, Converted, Objects, Params, convert};
use crate::serve::source::files::{Endpoint, State};

/// `2026-12-04T10:15:30Z`: the terminating Pod's deletionTimestamp.
const KILL_AT: u64 = 1_796_379_330;

fn fixture<K: DeserializeOwned>(name: &str) -> K {
    let path = format!("{}/testdata/kube/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn params(draining_timeout: Option<u64>) -> Params {
    let b = |service: &str, port| Backend {
        service: service.into(),
        namespace: "shop".into(),
        port,
    };
    Params {
        backends: vec![b("reviews-v1", 9080), b("reviews-v2", 80)],
        draining_timeout,
    }
}

fn services() -> Vec<Service> {
    vec![fixture("service-reviews-v1"), fixture("service-reviews-v2")]
}

fn pods(terminating: bool) -> Vec<Pod> {
    let v1b = if terminating {
        "pod-reviews-v1-8mfzt-terminating"
    } else {
        "pod-reviews-v1-8mfzt"
    };
    [
        "pod-reviews-v1-2xkqp",
        v1b,
        "pod-reviews-v2-qw4rt",
        "pod-reviews-v2-zz9km",
    ]
    .into_iter()
    .map(fixture)
    .collect()
}

fn run(slices: &[&str], pods: &[Pod], p: &Params) -> Converted {
    let slices: Vec<EndpointSlice> = slices.iter().map(|s| fixture(s)).collect();
    convert(
        Objects {
            namespace: "shop",
            slices: &slices,
            pods,
            services: &services(),
        },
        p,
    )
}

fn ep(ip: &str, port: u16, state: State, deadline: Option<u64>) -> Endpoint {
    Endpoint {
        address: ip.parse::<IpAddr>().unwrap(),
        port,
        state,
        deadline,
    }
}

#[test]
fn ready_endpoints_serve_on_the_slice_port_of_the_routes_service_port() {
    let c = run(
        &["endpointslice-reviews-v1", "endpointslice-reviews-v2"],
        &pods(false),
        &params(Some(30)),
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    // reviews-v1: Service port 9080 `http` → slice port `http` 9080 (not `metrics`).
    assert_eq!(
        c.endpoints["reviews-v1"],
        vec![
            ep("10.244.1.17", 9080, State::Serving, None),
            ep("10.244.2.23", 9080, State::Serving, None),
        ]
    );
    // reviews-v2: Service port 80 `http` (targetPort named) → slice port 8080;
    // the not-ready Pod is not served.
    assert_eq!(
        c.endpoints["reviews-v2"],
        vec![ep("10.244.1.31", 8080, State::Serving, None)]
    );
}

#[test]
fn serving_terminating_endpoint_drains_until_the_pod_is_killed() {
    let c = run(
        &["endpointslice-reviews-v1-terminating"],
        &pods(true),
        &params(None),
    );
    assert!(
        c.errors.iter().all(|e| !e.contains("reviews-v1")),
        "{:?}",
        c.errors
    );
    assert_eq!(
        c.endpoints["reviews-v1"],
        vec![
            ep("10.244.1.17", 9080, State::Serving, None),
            ep("10.244.2.23", 9080, State::Terminating, Some(KILL_AT)),
        ]
    );
}

#[test]
fn drain_deadline_is_capped_by_draining_timeout_from_the_delete() {
    // Deleted at KILL_AT - 60 (grace 60); drainingTimeoutSec 30 ends the drain 30 s in.
    let c = run(
        &["endpointslice-reviews-v1-terminating"],
        &pods(true),
        &params(Some(30)),
    );
    assert_eq!(c.endpoints["reviews-v1"][1].deadline, Some(KILL_AT - 30));
    // A cap longer than the grace period changes nothing: the Pod dies first.
    let c = run(
        &["endpointslice-reviews-v1-terminating"],
        &pods(true),
        &params(Some(600)),
    );
    assert_eq!(c.endpoints["reviews-v1"][1].deadline, Some(KILL_AT));
}

#[test]
fn terminating_endpoint_whose_pod_is_not_cached_yet_drains_without_deadline() {
    let c = run(
        &["endpointslice-reviews-v1-terminating"],
        &pods(false),
        &params(Some(30)),
    );
    assert_eq!(
        c.endpoints["reviews-v1"][1],
        ep("10.244.2.23", 9080, State::Terminating, None)
    );
}

#[test]
fn terminating_endpoint_no_longer_serving_is_not_served() {
    let mut s: EndpointSlice = fixture("endpointslice-reviews-v1-terminating");
    let c = s.endpoints[1].conditions.as_mut().unwrap();
    c.serving = Some(false);
    let c = convert(
        Objects {
            namespace: "shop",
            slices: &[s],
            pods: &pods(true),
            services: &services(),
        },
        &params(None),
    );
    assert_eq!(
        c.endpoints["reviews-v1"],
        vec![ep("10.244.1.17", 9080, State::Serving, None)]
    );
}

#[test]
fn bad_endpoints_are_refused_by_object_and_field_and_the_rest_is_served() {
    let c = run(
        &["endpointslice-reviews-v1", "endpointslice-bad-addresses"],
        &pods(false),
        &params(None),
    );
    assert_eq!(
        c.errors,
        vec![
            "EndpointSlice shop/reviews-v1-manual: endpoints[1].addresses[0]: \"10.244.3.300\" is not an IP address",
            "EndpointSlice shop/reviews-v1-manual: endpoints[2].addresses: empty",
        ]
    );
    // 10.244.1.17 is in both slices: once.
    assert_eq!(c.endpoints["reviews-v1"].len(), 2);
}

#[test]
fn an_object_that_does_not_decode_is_refused_naming_the_field() {
    let o: DynamicObject = fixture("endpointslice-port-as-string");
    let (field, message) = decode::<EndpointSlice>(&o).unwrap_err();
    assert_eq!(field, "ports[0].port");
    assert!(
        message.contains("invalid type: string \"8080\""),
        "{message}"
    );
    let o: DynamicObject = fixture("endpointslice-reviews-v1");
    assert!(decode::<EndpointSlice>(&o).is_ok());
}

#[test]
fn a_slice_without_address_type_is_refused_and_the_others_served() {
    // k8s-openapi decodes a missing required string as "": convert refuses it.
    let c = run(
        &[
            "endpointslice-reviews-v2",
            "endpointslice-missing-addresstype",
        ],
        &pods(false),
        &params(None),
    );
    assert_eq!(
        c.errors,
        vec![
            "EndpointSlice shop/reviews-v2-broken: addressType: \"\" is not served (IPv4 or IPv6 only)"
        ]
    );
    assert_eq!(c.endpoints["reviews-v2"].len(), 1);
}

#[test]
fn unknown_service_port_and_namespace_are_refused() {
    let mut p = params(None);
    p.backends[1].port = 8080;
    p.backends.push(Backend {
        service: "ratings".into(),
        namespace: "shop".into(),
        port: 9080,
    });
    p.backends.push(Backend {
        service: "details".into(),
        namespace: "other".into(),
        port: 9080,
    });
    let c = run(&["endpointslice-reviews-v2"], &pods(false), &p);
    assert_eq!(
        c.errors,
        vec![
            "Service shop/reviews-v2: spec.ports: no port 8080 (the HTTPRoute backendRef's port)",
            "Service shop/ratings: .: not found (an HTTPRoute backendRef names it)",
            "HTTPRoute backendRef other/details: namespace: only shop is watched",
        ]
    );
    // reviews-v1 exists but has no slice: present and empty.
    assert_eq!(c.endpoints.keys().collect::<Vec<_>>(), vec!["reviews-v1"]);
    assert!(c.endpoints["reviews-v1"].is_empty());
}

#[test]
fn a_pod_recreated_under_the_same_name_gives_no_deadline() {
    let mut ps = pods(true);
    ps[1].metadata.uid = Some("another-pod".into());
    let c = run(
        &["endpointslice-reviews-v1-terminating"],
        &ps,
        &params(None),
    );
    assert_eq!(c.endpoints["reviews-v1"][1].deadline, None);
}

mod api_policy {
    use serde_json::{Value, json};

    use crate::serve::source::policy::{ApiObjects, Names, load_api};

    fn testdata(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    /// A testdata file as the API server would return it.
    fn object(file: &str, api_version: &str) -> Value {
        let text = std::fs::read_to_string(testdata(file)).unwrap();
        let mut v: Value = serde_saphyr::from_str(&text).unwrap();
        v["apiVersion"] = json!(api_version);
        v["metadata"]["resourceVersion"] = json!("42");
        v["status"] = json!({"parents": []});
        crate::serve::source::policy::reduce(&v)
    }

    fn names() -> Names {
        Names {
            namespace: "default".into(),
            policy: "reviews".into(),
            route: "reviews".into(),
        }
    }

    #[test]
    fn api_objects_load_through_the_file_parsers() {
        let objects = ApiObjects {
            policy: Some(object("policy.yaml", "sticky.dev/v1alpha1")),
            route: Some(object("route.yaml", "gateway.networking.k8s.io/v1")),
        };
        let p = load_api(&names(), &objects, &testdata("keys.json")).unwrap();
        assert_eq!(p.resolved.policy.draining_timeout, Some(60));
    }

    #[test]
    fn a_bad_or_missing_object_is_refused_by_object_and_field() {
        let mut route = object("route.yaml", "gateway.networking.k8s.io/v1");
        route["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(-1);
        let objects = ApiObjects {
            policy: Some(object("policy.yaml", "sticky.dev/v1alpha1")),
            route: Some(route),
        };
        let e = load_api(&names(), &objects, &testdata("keys.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "HTTPRoute default/reviews: field `spec.rules[0].backendRefs[1].weight`: "
            ),
            "{e}"
        );
        let missing = ApiObjects {
            policy: None,
            ..objects
        };
        let e = load_api(&names(), &missing, &testdata("keys.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("LBPolicy default/reviews: not found in the API"),
            "{e}"
        );
    }
}
