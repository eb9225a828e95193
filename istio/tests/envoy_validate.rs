//! Every Envoy config stickyctl renders passes `envoy --mode validate`
//! (Envoy 1.40.0), and so do the Envoy parts of the Istio EnvoyFilter once
//! applied to a bootstrap the way istiod applies them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};

use common::{envoy_bin, envoy_validate, ok, yaml_docs};
use serde_json::{Value, json};

fn wasm() -> PathBuf {
    let p = std::env::var_os("STICKY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::crate_dir().join("../dist/sticky.wasm"));
    assert!(p.exists(), "{} missing: run `make wasm`", p.display());
    p
}

fn envoy() -> PathBuf {
    envoy_bin().expect("Envoy 1.40 missing: run `make setup` (or set STICKY_ENVOY)")
}

fn render_envoy(dir: &Path, extra: &[&str]) -> PathBuf {
    let w = wasm();
    let mut args = vec![
        "render",
        "envoy",
        "--keys",
        "keys.json",
        "--out",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-port",
        "0",
    ];
    if !extra.contains(&"--native") {
        args.extend(["--wasm", w.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    ok(&args);
    dir.join("envoy.json")
}

#[test]
fn rendered_bootstraps_pass_envoy_validate() {
    let envoy = envoy();
    let cases: [&[&str]; 9] = [
        &[
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--endpoint",
            "reviews-v1=10.0.0.1:9080",
        ],
        &[
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--upstream-protocol",
            "http2",
        ],
        &["-p", "policy-v1.6.yaml", "-r", "route.yaml", "--no-retry"],
        &[
            "-p",
            "policy-main.yaml",
            "-r",
            "route.yaml",
            "--cluster-names",
            "istio",
        ],
        &[
            "-p",
            "policy-bare.yaml",
            "-r",
            "route-gateway.yaml",
            "--cluster-names",
            "istio",
        ],
        &["-p", "policy.yaml", "-r", "route-overlap.yaml"],
        &[
            "-p",
            "policy-sharded.yaml",
            "-r",
            "route-sharded.yaml",
            "--endpoint",
            "accounts-0=10.1.0.10:8080",
        ],
        &[
            "-p",
            "policy-sharded-gateway.yaml",
            "-r",
            "route-gateway.yaml",
            "--cluster-names",
            "istio",
            "--shard-endpoints",
            "dns",
        ],
        &[
            "-p",
            "policy-sharded-path.yaml",
            "-r",
            "route-sharded.yaml",
            "--shard-endpoints",
            "dns",
        ],
    ];
    for case in cases {
        let tmp = tempfile::tempdir().unwrap();
        let config = render_envoy(tmp.path(), case);
        envoy_validate(&envoy, &config).unwrap_or_else(|log| panic!("{case:?}:\n{log}"));
    }
}

#[test]
fn the_native_module_bootstraps_pass_envoy_validate() {
    let so = std::env::var_os("STICKY_NATIVE")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::crate_dir().join("../dist/libsticky.so"));
    if !so.exists() {
        common::skip(&format!("{} absent (make native)", so.display()));
        return;
    }
    let dir = so.parent().unwrap();
    for (wiring, policy, session_filter, strict) in [
        ("direct", "policy.yaml", false, Some(false)),
        ("direct", "policy-strict.yaml", false, Some(true)),
        ("drop-in", "policy.yaml", true, None),
        ("drop-in", "policy-strict.yaml", true, None),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let config = render_envoy(
            tmp.path(),
            &[
                "-p",
                policy,
                "-r",
                "route.yaml",
                "--native",
                "sticky",
                "--wiring",
                wiring,
            ],
        );
        let text = std::fs::read_to_string(&config).unwrap();
        assert_eq!(
            text.contains("envoy.filters.http.stateful_session"),
            session_filter,
            "{wiring}: stateful_session"
        );
        let plugin: Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("plugin.json")).unwrap())
                .unwrap();
        assert_eq!(
            plugin
                .get("override_host")
                .map(|o| o["strict"].as_bool().unwrap()),
            strict,
            "{wiring} {policy}: {plugin}"
        );
        assert!(
            text.contains(&serde_json::to_string(&plugin.to_string()).unwrap()),
            "the module gets exactly plugin.json"
        );
        common::envoy_validate_env(
            &envoy(),
            &config,
            &[("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir)],
        )
        .unwrap_or_else(|log| panic!("{wiring} {policy}: {log}"));
    }
}

#[test]
fn envoy_validate_refuses_a_broken_bootstrap() {
    // The harness must be able to fail: a stateful_session with an unknown field.
    let tmp = tempfile::tempdir().unwrap();
    let config = render_envoy(tmp.path(), &["-p", "policy.yaml", "-r", "route.yaml"]);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        [1]["typed_config"]["no_such_field"] = json!(true);
    std::fs::write(&config, v.to_string()).unwrap();
    assert!(envoy_validate(&envoy(), &config).is_err());
}

fn http_filters(b: &mut Value) -> &mut Vec<Value> {
    b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"]
        .as_array_mut()
        .unwrap()
}

/// Proto-JSON merge as EnvoyFilter MERGE does it (objects merge, the rest replaces).
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// Applies an EnvoyFilter's patches for `context` to a bootstrap whose
/// clusters carry Istio names, as istiod would to a proxy's config.
fn apply_envoy_filter(bootstrap: &mut Value, ef: &Value, context: &str) -> usize {
    let mut applied = 0;
    for p in ef["spec"]["configPatches"].as_array().unwrap() {
        if p["match"]["context"] != context {
            continue;
        }
        match p["applyTo"].as_str().unwrap() {
            "HTTP_FILTER" => {
                assert_eq!(p["patch"]["operation"], "INSERT_BEFORE");
                let sub = p["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"]
                    .as_str()
                    .unwrap();
                let filters = http_filters(bootstrap);
                let at = filters.iter().position(|f| f["name"] == sub).unwrap();
                filters.insert(at, p["patch"]["value"].clone());
                applied += 1;
            }
            "CLUSTER" => {
                assert_eq!(p["patch"]["operation"], "MERGE");
                let m = &p["match"]["cluster"];
                // By exact name (a Service's default cluster), or by
                // service, subset and port (a subset cluster).
                let name = match m["name"].as_str() {
                    Some(name) => name.to_owned(),
                    None => format!(
                        "outbound|{}|{}|{}",
                        m["portNumber"],
                        m["subset"].as_str().unwrap(),
                        m["service"].as_str().unwrap()
                    ),
                };
                let clusters = bootstrap["static_resources"]["clusters"]
                    .as_array_mut()
                    .unwrap();
                let c = clusters.iter_mut().find(|c| c["name"] == name).unwrap();
                merge(c, &p["patch"]["value"]);
                applied += 1;
            }
            other => panic!("unexpected applyTo {other}"),
        }
    }
    applied
}

#[test]
fn envoy_filter_patches_validate_inside_a_bootstrap() {
    let envoy = envoy();
    for (policy, route) in [
        ("policy.yaml", "route.yaml"),
        ("policy-bare.yaml", "route-gateway.yaml"),
        ("policy-sharded.yaml", "route-sharded.yaml"),
        ("policy-sharded-gateway.yaml", "route-gateway.yaml"),
        ("policy-kubecon.yaml", "route-helloworld-gamma.yaml"),
    ] {
        let stream = ok(&[
            "render",
            "istio",
            "-p",
            policy,
            "-r",
            route,
            "--keys",
            "keys.json",
            "--url",
            "oci://ghcr.io/acme/sticky:0.1.0",
        ]);
        let docs = yaml_docs(&stream);
        let ef = docs.iter().find(|d| d["kind"] == "EnvoyFilter").unwrap();
        let wp = docs.iter().find(|d| d["kind"] == "WasmPlugin").unwrap();
        let vs = docs.iter().find(|d| d["kind"] == "VirtualService").unwrap();
        for context in ["SIDECAR_OUTBOUND", "GATEWAY"] {
            let tmp = tempfile::tempdir().unwrap();
            let config = render_envoy(
                tmp.path(),
                &["-p", policy, "-r", route, "--cluster-names", "istio"],
            );
            let mut b: Value =
                serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
            // What istiod builds before the patches: no session filter, no
            // override_host_status on subset clusters.
            http_filters(&mut b).retain(|f| f["name"] != "envoy.filters.http.stateful_session");
            for c in b["static_resources"]["clusters"].as_array_mut().unwrap() {
                c.as_object_mut().unwrap().remove("common_lb_config");
            }
            let n = apply_envoy_filter(&mut b, ef, context);
            let subsets = b["static_resources"]["clusters"].as_array().unwrap().len();
            assert_eq!(n, 1 + subsets, "{context}: every patch found its target");
            let names: Vec<String> = http_filters(&mut b)
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(
                names,
                [
                    "sticky",
                    "envoy.filters.http.stateful_session",
                    "envoy.filters.http.router"
                ],
                "stateful_session after the wasm filter, before the router"
            );
            for c in b["static_resources"]["clusters"].as_array().unwrap() {
                assert_eq!(
                    c["common_lb_config"]["override_host_status"]["statuses"],
                    json!(["UNKNOWN", "HEALTHY", "DEGRADED", "DRAINING"])
                );
            }
            // The plugin config inside the WasmPlugin is the one Envoy runs.
            let wasm_cfg =
                &http_filters(&mut b)[0]["typed_config"]["config"]["configuration"]["value"];
            let running: Value = serde_json::from_str(wasm_cfg.as_str().unwrap()).unwrap();
            assert_eq!(running["clusters"], wp["spec"]["pluginConfig"]["clusters"]);
            assert_eq!(running["sharding"], wp["spec"]["pluginConfig"]["sharding"]);
            std::fs::write(&config, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
            envoy_validate(&envoy, &config)
                .unwrap_or_else(|log| panic!("{policy} {context}:\n{log}"));
        }
        // Istio cluster names round-trip: allow-list (with the shard
        // clusters) = bootstrap clusters = the exact header values the pinned
        // routes match.
        let shards = wp["spec"]["pluginConfig"]["sharding"]["clusters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let allow: Vec<&str> = wp["spec"]["pluginConfig"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .chain(shards.iter())
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(
            allow
                .iter()
                .all(|c| c.starts_with("outbound|") && c.matches('|').count() == 3)
        );
        let mut pinned: Vec<&str> = vs["spec"]["http"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["match"][0]["headers"]["x-sticky-cluster"]["exact"].as_str())
            .collect();
        pinned.sort();
        pinned.dedup();
        let mut sorted = allow.clone();
        sorted.sort();
        assert_eq!(pinned, sorted);
    }
}

#[test]
fn upstream_http2_gives_every_cluster_http2_for_grpc_backends() {
    let tmp = tempfile::tempdir().unwrap();
    let config = render_envoy(
        tmp.path(),
        &[
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--upstream-protocol",
            "http2",
        ],
    );
    let boot: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let clusters = boot["static_resources"]["clusters"].as_array().unwrap();
    assert!(!clusters.is_empty());
    for c in clusters {
        let opts = &c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert!(
            opts["explicit_http_config"]["http2_protocol_options"].is_object(),
            "{c}"
        );
    }
    let default = render_envoy(tmp.path(), &["-p", "policy.yaml", "-r", "route.yaml"]);
    let text = std::fs::read_to_string(&default).unwrap();
    assert!(
        !text.contains("http2_protocol_options"),
        "HTTP/1.1 unless asked"
    );
}
