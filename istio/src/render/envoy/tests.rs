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

fn routes(b: &Value) -> Vec<Value> {
    b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn each_allowed_cluster_has_an_exact_match_route_before_the_split() {
    let b = bootstrap(&plan(Affinity::StickyWasm {
        wasm_path: "/x.wasm".into(),
    }));
    let routes = routes(&b);
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["sticky_pinned_0", "sticky_pinned_1", "sticky_split"]
    );
    for (route, cluster) in routes.iter().zip(["v1", "v2"]) {
        assert_eq!(
            route["match"]["headers"],
            json!([{"name": "x-sticky-cluster", "string_match": {"exact": cluster}}])
        );
        assert_eq!(route["route"]["cluster"], cluster);
    }
    assert_eq!(
        routes[2]["route"]["weighted_clusters"]["clusters"][1]["weight"],
        10
    );
    let rc = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"];
    assert_eq!(
        rc["request_headers_to_remove"],
        json!(["x-sticky-host", "x-sticky-cluster"])
    );
}

#[test]
fn the_cluster_header_never_names_a_cluster_by_itself() {
    // A cluster in the bootstrap but not on the allow-list (weight 0 in the
    // split): were the filter bypassed, a client's header must not reach it.
    let mut p = plan(Affinity::StickyWasm {
        wasm_path: "/x.wasm".into(),
    });
    p.clusters.push(ClusterPlan {
        name: "admin".into(),
        weight: 0,
        eds_path: "/eds/admin.json".into(),
    });
    let b = bootstrap(&p);
    let text = b.to_string();
    assert!(!text.contains("present_match"), "{text}");
    assert!(!text.contains("cluster_header"), "{text}");
    assert!(!text.contains("safe_regex"), "{text}");
    let routes = routes(&b);
    let pinned: Vec<&str> = routes
        .iter()
        .filter_map(|r| r["route"]["cluster"].as_str())
        .collect();
    assert_eq!(pinned, ["v1", "v2"]);
}

#[test]
fn shard_clusters_on_the_allow_list_get_their_exact_routes_too() {
    let mut p = plan(Affinity::StickyNative {
        module: "sticky".into(),
        wiring: NativeWiring::Direct,
    });
    p.plugin_config = json!({"clusters": ["v1", "v2"], "sharding": {"clusters": ["shard-0"]}});
    p.clusters.push(ClusterPlan {
        name: "shard-0".into(),
        weight: 0,
        eds_path: "/eds/shard-0.json".into(),
    });
    let pinned: Vec<String> = routes(&bootstrap(&p))
        .iter()
        .filter_map(|r| r["match"]["headers"][0]["string_match"]["exact"].as_str())
        .map(str::to_owned)
        .collect();
    assert_eq!(pinned, ["v1", "v2", "shard-0"]);
    assert_eq!(p.allowed_clusters(), ["v1", "v2", "shard-0"]);
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

#[test]
fn client_sent_internal_headers_are_stripped_before_routing_and_every_filter() {
    let hcm = |b: &Value| {
        b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            .clone()
    };
    let b = bootstrap(&plan(Affinity::StickyWasm {
        wasm_path: "/x.wasm".into(),
    }));
    let early = &hcm(&b)["early_header_mutation_extensions"];
    assert_eq!(
        early[0]["name"],
        "envoy.http.early_header_mutation.header_mutation"
    );
    let removed: Vec<&str> = early[0]["typed_config"]["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["remove"].as_str().unwrap())
        .collect();
    assert_eq!(removed, ["x-sticky-host", "x-sticky-cluster"]);
    // Baselines without sticky carry no mutation.
    let b = bootstrap(&plan(Affinity::None));
    assert!(hcm(&b).get("early_header_mutation_extensions").is_none());
}
