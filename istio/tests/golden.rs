//! Golden-file tests: every output stickyctl writes, byte for byte.
//! Regenerate with `STICKY_BLESS=1 cargo test -p stickyctl --test golden`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{golden, ok, ok_with, run};

const KEYS: &str = "keys.json";

fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_in(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `stickyctl render envoy` of `policy` over route.yaml with two backends'
/// endpoints, into `out_dir`; returns stdout.
fn render_envoy(policy: &str, out_dir: &std::path::Path) -> String {
    ok(&[
        "render",
        "envoy",
        "-p",
        policy,
        "-r",
        "route.yaml",
        "--keys",
        KEYS,
        "--endpoint",
        "reviews-v1=10.0.0.1:9080,10.0.0.2:9080",
        "--endpoint",
        "reviews-v2=10.0.1.1:9080",
        "--eds-dir",
        "/etc/sticky/eds",
        "--out",
        out_dir.to_str().unwrap(),
    ])
}

#[test]
fn render_envoy_writes_bootstrap_plugin_config_and_eds_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("envoy");
    let stdout = render_envoy("policy.yaml", &out_dir);
    let files = files_in(&out_dir);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(&out_dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "eds/reviews-v1.json",
            "eds/reviews-v2.json",
            "envoy.json",
            "plugin.json"
        ]
    );
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    for (p, n) in files.iter().zip(&names) {
        golden(
            &format!("envoy-gke/{n}"),
            &std::fs::read_to_string(p).unwrap(),
        );
    }
}

#[test]
fn render_envoy_prints_the_bootstrap_without_out() {
    let stdout = ok(&[
        "render",
        "envoy",
        "-p",
        "policy.yaml",
        "-r",
        "route.yaml",
        "--keys",
        KEYS,
    ]);
    golden("envoy-gke-stdout.json", &stdout);
}

#[test]
fn render_envoy_keeps_rules_apart_and_istio_cluster_names_whole() {
    let stdout = ok(&[
        "render",
        "envoy",
        "-p",
        "policy-bare.yaml",
        "-r",
        "route-gateway.yaml",
        "--keys",
        KEYS,
        "--cluster-names",
        "istio",
        "--native",
        "sticky",
        "--listen",
        "127.0.0.1:8080",
    ]);
    golden("envoy-gateway-rules.json", &stdout);
    // Exact per-cluster routes: the pinned route of rule `web` cannot send a
    // session of the canary (rule `api` only) anywhere.
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let routes = v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
        .clone();
    let web_pinned: Vec<&str> = routes
        .iter()
        .filter(|r| {
            r["name"]
                .as_str()
                .unwrap()
                .starts_with("shop_web_m0_pinned")
        })
        .map(|r| r["route"]["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(
        web_pinned,
        ["outbound|8080|stable|shop.shop.svc.cluster.local"]
    );
}

fn istio(args: &[&str], name: &str) -> String {
    let mut all = vec!["render", "istio", "--keys", KEYS];
    all.extend_from_slice(args);
    let out = run(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    golden(name, &stdout);
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn render_istio_gke_policy_with_selector_and_service() {
    let stderr = istio(
        &[
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--url",
            "oci://ghcr.io/acme/sticky:0.1.0",
            "--sha256",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--selector",
            "app=productpage",
            "--service",
            "service.yaml",
        ],
        "istio-gke.yaml",
    );
    assert!(stderr.contains("GKE GENERATED_STATEFUL_COOKIE"), "{stderr}");
    // reviews-v1 was given (rendered, labelled); reviews-v2 was not.
    assert!(
        stderr.contains("kubectl label service reviews-v2 -n default")
            && !stderr.contains("kubectl label service reviews-v1 "),
        "{stderr}"
    );
}

fn docs_of(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["render", "istio", "--keys", KEYS];
    all.extend_from_slice(args);
    common::yaml_docs(&ok(&all))
}

fn kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap()
}

/// What both canary shapes share: backendRefs rendered as the Services they
/// are (host = the backend's FQDN, no subset, no DestinationRule), Istio's
/// default cluster names on the allow-list, a CLUSTER MERGE per cluster.
fn assert_canary_across_services(docs: &[serde_json::Value]) {
    let v1 = "outbound|5000||v1--helloworld.sample.svc.cluster.local";
    let v2 = "outbound|5000||v2--helloworld.sample.svc.cluster.local";
    assert!(docs.iter().all(|d| d["kind"] != "DestinationRule"));
    let wp = kind(docs, "WasmPlugin");
    assert_eq!(
        wp["spec"]["pluginConfig"]["clusters"],
        serde_json::json!([v1, v2])
    );
    let vs = kind(docs, "VirtualService");
    let http = vs["spec"]["http"].as_array().unwrap();
    let split = http.iter().find(|r| r["name"] == "r0-split").unwrap();
    assert_eq!(
        split["route"],
        serde_json::json!([
            {"destination": {"host": "v1--helloworld.sample.svc.cluster.local", "port": {"number": 5000}}, "weight": 90},
            {"destination": {"host": "v2--helloworld.sample.svc.cluster.local", "port": {"number": 5000}}, "weight": 10},
        ])
    );
    for (cluster, host) in [(v1, "v1--helloworld"), (v2, "v2--helloworld")] {
        let pinned = http
            .iter()
            .find(|r| r["match"][0]["headers"]["x-sticky-cluster"]["exact"] == cluster)
            .unwrap();
        assert_eq!(
            pinned["route"][0]["destination"]["host"],
            format!("{host}.sample.svc.cluster.local")
        );
    }
    let ef = kind(docs, "EnvoyFilter");
    let patched: Vec<&str> = ef["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["applyTo"] == "CLUSTER" && p["match"]["context"] == "SIDECAR_OUTBOUND")
        .map(|p| p["match"]["cluster"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(patched, [v1, v2]);
}

#[test]
fn render_istio_canary_across_services_on_the_mesh() {
    let args = [
        "-p",
        "policy-kubecon.yaml",
        "-r",
        "route-helloworld-gamma.yaml",
        "--url",
        "oci://ghcr.io/acme/sticky:0.1.0",
        "--selector",
        "app=sleep",
    ];
    let stderr = istio(&args, "istio-helloworld-gamma.yaml");
    assert!(
        stderr.contains("backends: distinct Services (canary across Services)"),
        "{stderr}"
    );
    for backend in ["v1--helloworld", "v2--helloworld"] {
        assert!(
            stderr.contains(&format!(
                "kubectl label service {backend} -n sample istio.io/persistent-session=sticky-drain"
            )),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("service helloworld "), "{stderr}");
    let docs = docs_of(&args);
    assert_canary_across_services(&docs);
    // GAMMA: the sidecars' route for the parent Service, bound to mesh only.
    let vs = &kind(&docs, "VirtualService")["spec"];
    assert_eq!(
        vs["hosts"],
        serde_json::json!(["helloworld.sample.svc.cluster.local"])
    );
    assert_eq!(vs["gateways"], serde_json::json!(["mesh"]));
    assert_eq!(vs["exportTo"], serde_json::json!(["."]));
}

#[test]
fn render_istio_canary_across_services_at_a_gateway() {
    let args = [
        "-p",
        "policy-kubecon.yaml",
        "-r",
        "route-helloworld-gateway.yaml",
        "--url",
        "oci://ghcr.io/acme/sticky:0.1.0",
        "--target-ref",
        "Gateway/helloworld-gateway",
    ];
    let stderr = istio(&args, "istio-helloworld-gateway.yaml");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    let docs = docs_of(&args);
    assert_canary_across_services(&docs);
    let vs = &kind(&docs, "VirtualService")["spec"];
    assert_eq!(vs["hosts"], serde_json::json!(["helloworld.example.com"]));
    assert_eq!(vs["gateways"], serde_json::json!(["helloworld-gateway"]));
    assert_eq!(vs["exportTo"], serde_json::json!(["."]));
}

#[test]
fn check_says_which_backend_shape_it_read() {
    for (policy, route, shape) in [
        (
            "policy-kubecon.yaml",
            "route-helloworld-gamma.yaml",
            "backends: distinct Services (canary across Services)",
        ),
        (
            "policy-bare.yaml",
            "route-gateway.yaml",
            "backends: subsets of shop by label track",
        ),
    ] {
        let out = run(&["check", "-p", policy, "-r", route]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("stickyctl: note: {shape}\n")),
            "{policy}: {stderr}"
        );
    }
}

#[test]
fn a_live_service_is_relabelled_without_server_owned_fields() {
    let out = ok(&[
        "render",
        "istio",
        "-p",
        "policy.yaml",
        "-r",
        "route.yaml",
        "--keys",
        KEYS,
        "--url",
        "oci://r/sticky:1",
        "--service",
        "service-live.yaml",
    ]);
    let docs = common::yaml_docs(&out);
    let svc = &docs[0];
    assert_eq!(svc["kind"], "Service");
    golden(
        "service-labelled.yaml",
        &stickyctl::yaml::to_yaml(svc).unwrap(),
    );
    assert_eq!(
        svc["metadata"]["labels"]["istio.io/persistent-session"],
        "sticky-drain"
    );
    assert!(svc.get("status").is_none() && svc["metadata"].get("resourceVersion").is_none());
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.17");
}

#[test]
fn render_istio_reports_the_v1_5_shape() {
    let stderr = istio(
        &[
            "-p",
            "policy-v1.5.yaml",
            "-r",
            "route.yaml",
            "--url",
            "file:///var/lib/sticky/sticky.wasm",
        ],
        "istio-v1.5.yaml",
    );
    assert!(
        stderr.contains("Gateway API v1.1-v1.5 (sessionName, cookieConfig, idleTimeout)"),
        "{stderr}"
    );
    // Each backend Service is labelled, not the parent reviews.
    for backend in ["reviews-v1", "reviews-v2"] {
        assert!(
            stderr.contains(&format!(
                "kubectl label service {backend} -n default istio.io/persistent-session=sticky-drain"
            )),
            "{stderr}"
        );
    }
    assert!(
        !stderr.contains("kubectl label service reviews -n"),
        "{stderr}"
    );
}

#[test]
fn render_istio_reports_the_v1_6_shape() {
    let stderr = istio(
        &[
            "-p",
            "policy-v1.6.yaml",
            "-r",
            "route.yaml",
            "--url",
            "oci://ghcr.io/acme/sticky:0.1.0",
            "--selector",
            "app=productpage",
        ],
        "istio-v1.6.yaml",
    );
    assert!(
        stderr.contains("Gateway API v1.6 (sessionName, cookieConfig)"),
        "{stderr}"
    );
}

#[test]
fn render_istio_reports_the_main_shape() {
    let stderr = istio(
        &[
            "-p",
            "policy-main.yaml",
            "-r",
            "route.yaml",
            "--url",
            "oci://ghcr.io/acme/sticky:0.1.0",
            "--selector",
            "app=productpage",
        ],
        "istio-main.yaml",
    );
    assert!(
        stderr.contains("Gateway API main 2026-08 (cookie, header)"),
        "{stderr}"
    );
}

#[test]
fn render_istio_gateway_traffic_extension_from_route_persistence() {
    let stderr = istio(
        &[
            "-p",
            "policy-bare.yaml",
            "-r",
            "route-gateway.yaml",
            "--url",
            "file:///var/lib/sticky/sticky.wasm",
            "--wasm-file",
            "keys.json",
            "--target-ref",
            "Gateway/public",
            "--traffic-extension",
            "--phase",
            "stats",
            "--priority",
            "10",
            "--fail-strategy",
            "FAIL_RELOAD",
        ],
        "istio-gateway-trafficextension.yaml",
    );
    assert!(
        stderr.contains("route-gateway.yaml: spec.rules[0].sessionPersistence"),
        "{stderr}"
    );
}

#[test]
fn render_istio_orders_overlapping_rules_by_precedence() {
    istio(
        &[
            "-p",
            "policy.yaml",
            "-r",
            "route-overlap.yaml",
            "--url",
            "oci://r/sticky:1",
        ],
        "istio-overlap.yaml",
    );
    let out = ok(&[
        "render",
        "istio",
        "-p",
        "policy.yaml",
        "-r",
        "route-overlap.yaml",
        "--keys",
        KEYS,
        "--url",
        "oci://r/sticky:1",
    ]);
    let docs = common::yaml_docs(&out);
    let vs = docs.iter().find(|d| d["kind"] == "VirtualService").unwrap();
    let names: Vec<&str> = vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "api-m1-pinned-reviews-api-9080",
            "api-m1-split",
            "api-m0-pinned-reviews-api-9080",
            "api-m0-split",
            "site-pinned-reviews-v1-9080",
            "site-pinned-reviews-v2-9080",
            "site-split",
        ]
    );
}

#[test]
fn render_istio_out_writes_one_file_per_object() {
    let tmp = tempfile::tempdir().unwrap();
    let stdout = ok(&[
        "render",
        "istio",
        "-p",
        "policy.yaml",
        "-r",
        "route.yaml",
        "--keys",
        KEYS,
        "--url",
        "oci://ghcr.io/acme/sticky:0.1.0",
        "--selector",
        "app=productpage",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "envoyfilter-reviews-sticky.yaml",
            "plugin.json",
            "virtualservice-reviews.yaml",
            "wasmplugin-reviews-sticky.yaml",
        ]
    );
    assert_eq!(stdout.lines().count(), 4);
    golden(
        "istio-gke-plugin.json",
        &std::fs::read_to_string(tmp.path().join("plugin.json")).unwrap(),
    );
}

#[test]
fn check_is_quiet_when_the_drain_timeline_holds() {
    let out = ok(&[
        "check",
        "-p",
        "policy.yaml",
        "-r",
        "route.yaml",
        "-w",
        "workloads-good.yaml",
    ]);
    assert_eq!(out, "");
}

#[test]
fn check_names_every_problem_with_its_reason() {
    let out = ok_with(
        &[
            "check",
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "-w",
            "workloads-bad.yaml",
        ],
        3,
    );
    golden("check-bad-workloads.txt", &out);
    for code in [
        "drain-exceeds-grace",
        "no-prestop",
        "probe-slower-than-prestop",
        "unknown-backend",
    ] {
        assert!(
            out.contains(&format!("warning[{code}]")),
            "{code} missing:\n{out}"
        );
    }
}

#[test]
fn check_warns_on_short_cookies_and_odd_weights() {
    let out = ok_with(
        &[
            "check",
            "-p",
            "policy-short-ttl.yaml",
            "-r",
            "route-odd-weights.yaml",
        ],
        3,
    );
    golden("check-ttl-weights.txt", &out);
    assert!(out.contains("warning[cookie-ttl-short]"));
    assert!(out.contains(
        "warning[weights-total]: route-odd-weights.yaml:10: field `spec.rules[0].backendRefs`"
    ));
}

#[test]
fn keys_retire_removes_exactly_one_key() {
    let out = ok(&["keys", "rotate", KEYS, "--retire", "k1"]);
    golden("keys-retired.json", &out);
}

#[test]
fn endpoints_drain_writes_status_and_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let eds = tmp.path().join("v1.json");
    stickyctl::eds::write(
        &eds,
        "outbound|9080|v1|reviews.default.svc.cluster.local",
        &[
            stickyctl::eds::Endpoint::healthy("10.0.0.1", 9080),
            stickyctl::eds::Endpoint::healthy("10.0.0.2", 9080),
        ],
        "sticky",
        1,
    )
    .unwrap();
    let e = eds.to_str().unwrap();
    let c = "outbound|9080|v1|reviews.default.svc.cluster.local";
    let out = ok(&[
        "endpoints",
        "drain",
        "--eds",
        e,
        "--cluster",
        c,
        "--host",
        "10.0.0.2:9080",
        "--timeout",
        "300",
        "--now",
        "1800000000",
    ]);
    assert_eq!(
        out,
        format!("drained 10.0.0.2:9080 in cluster {c} (drain_deadline 1800000300)\n")
    );
    golden("eds-drained.json", &std::fs::read_to_string(&eds).unwrap());
    ok(&[
        "endpoints",
        "add",
        "--eds",
        e,
        "--cluster",
        c,
        "--host",
        "10.0.0.3:9080",
        "--now",
        "1800000001",
    ]);
    ok(&[
        "endpoints",
        "remove",
        "--eds",
        e,
        "--cluster",
        c,
        "--host",
        "10.0.0.1:9080",
        "--now",
        "1800000002",
    ]);
    ok(&[
        "endpoints",
        "undrain",
        "--eds",
        e,
        "--cluster",
        c,
        "--host",
        "10.0.0.2:9080",
        "--now",
        "1800000003",
    ]);
    golden(
        "eds-after-add-remove-undrain.json",
        &std::fs::read_to_string(&eds).unwrap(),
    );
}

#[test]
fn render_envoy_sharded_writes_one_cluster_and_eds_file_per_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("envoy");
    ok(&[
        "render",
        "envoy",
        "-p",
        "policy-sharded.yaml",
        "-r",
        "route-sharded.yaml",
        "--keys",
        KEYS,
        "--endpoint",
        "accounts-v1=10.1.0.1:8080,10.1.0.2:8080",
        "--endpoint",
        "accounts-0=10.1.0.10:8080",
        "--endpoint",
        "accounts-3=10.1.0.13:8080",
        "--eds-dir",
        "/etc/sticky/eds",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let files = files_in(&out_dir);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(&out_dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "eds/accounts-v1.json",
            "eds/shard-0.json",
            "eds/shard-1.json",
            "eds/shard-2.json",
            "eds/shard-3.json",
            "envoy.json",
            "plugin.json"
        ]
    );
    for (p, n) in files.iter().zip(&names) {
        golden(
            &format!("envoy-sharded/{n}"),
            &std::fs::read_to_string(p).unwrap(),
        );
    }
    let plugin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("plugin.json")).unwrap())
            .unwrap();
    assert_eq!(
        plugin["sharding"],
        serde_json::json!({
            "key": {"header": "x-account"},
            "clusters": ["shard-0", "shard-1", "shard-2", "shard-3"],
            "missing_key": "fallback",
        })
    );
    // Shard 0's pod is in its EDS file; shard 1's awaits `stickyctl endpoints add`.
    let eds0 = std::fs::read_to_string(out_dir.join("eds/shard-0.json")).unwrap();
    assert!(eds0.contains("10.1.0.10"), "{eds0}");
}

#[test]
fn render_envoy_sharded_dns_clusters_on_a_two_rule_route() {
    let stdout = ok(&[
        "render",
        "envoy",
        "-p",
        "policy-sharded-gateway.yaml",
        "-r",
        "route-gateway.yaml",
        "--keys",
        KEYS,
        "--cluster-names",
        "istio",
        "--shard-endpoints",
        "dns",
    ]);
    golden("envoy-sharded-dns.json", &stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let shard1 = v["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "outbound|9000|shard-1|carts.shop.svc.cluster.local")
        .unwrap();
    assert_eq!(shard1["type"], "STRICT_DNS");
    assert_eq!(
        shard1["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
        serde_json::json!({"address": "carts-1.carts.shop.svc.cluster.local", "port_value": 9000})
    );
    // Every rule reaches every shard through its own exact-match routes.
    let routes = v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
        .clone();
    for rule in ["shop_web_m0", "shop_api_m0"] {
        let shards: Vec<&str> = routes
            .iter()
            .filter(|r| r["name"].as_str().unwrap().starts_with(rule))
            .filter_map(|r| r["route"]["cluster"].as_str())
            .filter(|c| c.contains("|shard-"))
            .collect();
        assert_eq!(
            shards,
            [
                "outbound|9000|shard-0|carts.shop.svc.cluster.local",
                "outbound|9000|shard-1|carts.shop.svc.cluster.local"
            ],
            "{rule}"
        );
    }
}

#[test]
fn render_istio_sharded_adds_one_pod_subset_per_ordinal() {
    let stderr = istio(
        &[
            "-p",
            "policy-sharded.yaml",
            "-r",
            "route-sharded.yaml",
            "--url",
            "oci://ghcr.io/acme/sticky:0.1.0",
            "--selector",
            "app=web",
        ],
        "istio-sharded.yaml",
    );
    assert!(!stderr.contains("headless"), "{stderr}");
    let out = ok(&[
        "render",
        "istio",
        "-p",
        "policy-sharded.yaml",
        "-r",
        "route-sharded.yaml",
        "--keys",
        KEYS,
        "--url",
        "oci://r/sticky:1",
    ]);
    let docs = common::yaml_docs(&out);
    let drs: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|d| d["kind"] == "DestinationRule")
        .collect();
    // The backend accounts-v1 is a Service of its own: only the shards
    // need subsets.
    assert_eq!(drs.len(), 1, "one DestinationRule per host");
    assert_eq!(drs[0]["spec"]["host"], "accounts.bank.svc.cluster.local");
    assert_eq!(
        drs[0]["spec"]["subsets"][3],
        serde_json::json!({"name": "shard-3", "labels": {"statefulset.kubernetes.io/pod-name": "accounts-3"}})
    );
    let wp = docs.iter().find(|d| d["kind"] == "WasmPlugin").unwrap();
    assert_eq!(
        wp["spec"]["pluginConfig"]["sharding"]["clusters"][0],
        "outbound|8080|shard-0|accounts.bank.svc.cluster.local"
    );
}

#[test]
fn render_istio_sharded_gateway_puts_shards_in_their_own_destination_rule() {
    let stderr = istio(
        &[
            "-p",
            "policy-sharded-gateway.yaml",
            "-r",
            "route-gateway.yaml",
            "--url",
            "oci://ghcr.io/acme/sticky:0.1.0",
            "--target-ref",
            "Gateway/public",
        ],
        "istio-sharded-gateway.yaml",
    );
    // A Gateway gets EDS clusters even for a headless Service: no warning,
    // but the shard Service needs the drain label too.
    assert!(!stderr.contains("ORIGINAL_DST"), "{stderr}");
    assert!(
        stderr.contains("kubectl label service carts -n shop istio.io/persistent-session"),
        "{stderr}"
    );
}

#[test]
fn check_finds_shards_without_pods_and_wrong_services() {
    let out = ok_with(
        &[
            "check",
            "-p",
            "policy-sharded.yaml",
            "-r",
            "route-sharded.yaml",
            "-w",
            "workloads-sharded.yaml",
        ],
        3,
    );
    golden("check-sharded.txt", &out);
    assert!(out.contains(
        "warning[shard-replicas]: workloads-sharded.yaml:9: field `spec.replicas`: StatefulSet accounts has 3 replicas but the policy has 4 shards: shard 3 has no pod"
    ), "{out}");
    assert!(
        out.contains("warning[shard-service-name]: workloads-sharded.yaml:8"),
        "{out}"
    );
    assert!(
        out.contains("warning[shard-service-headless]: workloads-sharded.yaml:33"),
        "{out}"
    );
}

#[test]
fn check_warns_when_the_shard_service_lacks_the_shard_port() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("svc.yaml");
    std::fs::write(
        &w,
        "apiVersion: v1\nkind: Service\nmetadata: {name: accounts, namespace: bank}\nspec:\n  selector: {app: accounts}\n  ports: [{port: 80, targetPort: 8080}]\n",
    )
    .unwrap();
    let out = ok_with(
        &[
            "check",
            "-p",
            "policy-sharded.yaml",
            "-r",
            "route-sharded.yaml",
            "-w",
            w.to_str().unwrap(),
        ],
        3,
    );
    assert!(
        out.contains("warning[shard-port]: ")
            && out.contains(
                "svc.yaml:6: field `spec.ports`: Service accounts has no port 8080 (ports: [80])"
            ),
        "{out}"
    );
}

#[test]
fn render_envoy_wrap_mode_plugin_config() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("envoy");
    render_envoy("policy-mcp.yaml", &out_dir);
    let plugin = std::fs::read_to_string(out_dir.join("plugin.json")).unwrap();
    assert!(plugin.contains(r#""header": "mcp-session-id""#), "{plugin}");
    golden("envoy-mcp-plugin.json", &plugin);
}
