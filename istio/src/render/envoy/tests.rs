use super::*;

fn plan(affinity: Affinity) -> Plan {
    Plan {
        listen_address: "127.0.0.1".into(),
        listen_port: 0,
        admin_port: 0,
        affinity,
        plugin_config: json!({"clusters": ["v1", "v2"]}),
        clusters: vec![
            ClusterPlan {
                name: "v1".into(),
                weight: 90,
                eds_path: "/eds/v1.json".into(),
            },
            ClusterPlan {
                name: "v2".into(),
                weight: 10,
                eds_path: "/eds/v2.json".into(),
            },
        ],
        eds_dir: "/eds".into(),
        retry: true,
        strict: false,
        runtime_key_prefix: Some("sticky.split".into()),
        connect_timeout_ms: 1000,
    }
}

#[test]
fn sticky_filters_come_in_order_before_the_router() {
    let b = bootstrap(&plan(Affinity::StickyWasm {
        wasm_path: "/x.wasm".into(),
    }));
    let filters = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"];
    let names: Vec<&str> = filters
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sticky",
            "envoy.filters.http.stateful_session",
            "envoy.filters.http.router"
        ]
    );
}

#[test]
fn cluster_header_route_precedes_the_split() {
    let b = bootstrap(&plan(Affinity::StickyWasm {
        wasm_path: "/x.wasm".into(),
    }));
    let rc = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"];
    let routes = rc["virtual_hosts"][0]["routes"].as_array().unwrap();
    assert_eq!(routes[0]["route"]["cluster_header"], "x-sticky-cluster");
    assert_eq!(
        routes[1]["route"]["weighted_clusters"]["clusters"][1]["weight"],
        10
    );
    assert_eq!(
        rc["request_headers_to_remove"],
        json!(["x-sticky-host", "x-sticky-cluster"])
    );
}

#[test]
fn every_cluster_overrides_host_status_including_draining() {
    let b = bootstrap(&plan(Affinity::StickyWasm {
        wasm_path: "/x.wasm".into(),
    }));
    for c in b["static_resources"]["clusters"].as_array().unwrap() {
        let statuses = &c["common_lb_config"]["override_host_status"]["statuses"];
        assert!(statuses.as_array().unwrap().contains(&json!("DRAINING")));
    }
}

#[test]
fn no_affinity_has_only_the_router() {
    let b = bootstrap(&plan(Affinity::None));
    let hcm =
        &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["http_filters"].as_array().unwrap().len(), 1);
    assert_eq!(
        hcm["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
