//! Every Kubernetes object stickyctl renders (and the HTTPRoutes it reads)
//! against the real CRD schemas vendored in tests/schemas (Istio 1.31 line,
//! Gateway API v1.6.1 experimental). The schemas are closed the way the API
//! server's field validation closes them (unknown fields are errors), and the
//! CEL rules (`x-kubernetes-validations`) that matter are checked by hand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::PathBuf;

use common::{ok, yaml_docs};
use serde_json::Value;

/// The vendored CRDs (istio/tests/schemas/README.md names their sources).
fn schema_dir() -> PathBuf {
    common::crate_dir().join("tests/schemas")
}

/// Every CRD document of a file, by (group/version, kind).
fn crds(file: &str) -> Vec<(String, String, Value)> {
    let dir = schema_dir();
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut out = Vec::new();
    for d in stickyctl::yaml::parse_str(file, &text).unwrap() {
        let group = d.value["spec"]["group"].as_str().unwrap().to_owned();
        let kind = d.value["spec"]["names"]["kind"]
            .as_str()
            .unwrap()
            .to_owned();
        for v in d.value["spec"]["versions"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            let mut schema = v["schema"]["openAPIV3Schema"].clone();
            // The API server gives every object these, listed or not.
            for (field, ty) in [
                ("apiVersion", "string"),
                ("kind", "string"),
                ("metadata", "object"),
            ] {
                if schema["properties"].get(field).is_none() {
                    schema["properties"][field] = serde_json::json!({"type": ty});
                }
            }
            close(&mut schema);
            out.push((format!("{group}/{name}"), kind.clone(), schema));
        }
    }
    out
}

/// Unknown fields are errors wherever the schema lists the fields and does
/// not preserve unknown ones (what `kubectl apply --validate=strict` does).
fn close(schema: &mut Value) {
    if let Value::Object(m) = schema {
        let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if m.contains_key("properties") && !m.contains_key("additionalProperties") && !preserve {
            m.insert("additionalProperties".into(), Value::Bool(false));
        }
        for v in m.values_mut() {
            close(v);
        }
    } else if let Value::Array(a) = schema {
        a.iter_mut().for_each(close);
    }
}

fn validate(schemas: &[(String, String, Value)], obj: &Value) {
    let api = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let (_, _, schema) = schemas
        .iter()
        .find(|(a, k, _)| a == api && k == kind)
        .unwrap_or_else(|| panic!("no schema for {api} {kind}"));
    let v = jsonschema::draft4::new(schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(obj)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{api} {kind} {}:\n{}",
        obj["metadata"]["name"],
        errors.join("\n")
    );
}

/// The CEL rules of the CRDs that a JSON-schema validator cannot evaluate.
fn cel_rules(obj: &Value) {
    let spec = &obj["spec"];
    let kind = obj["kind"].as_str().unwrap();
    match kind {
        "WasmPlugin" | "TrafficExtension" => {
            assert!(
                spec.get("selector").is_none() || spec.get("targetRefs").is_none(),
                "only one of targetRefs or selector"
            );
            let wasm = if kind == "WasmPlugin" {
                spec
            } else {
                &spec["wasm"]
            };
            let url = wasm["url"].as_str().unwrap();
            let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
            assert!(
                ["http", "https", "file", "oci"].contains(&scheme),
                "url scheme {url}"
            );
            for r in spec["targetRefs"].as_array().into_iter().flatten() {
                assert!(
                    r.get("namespace").is_none(),
                    "cross namespace referencing is not supported"
                );
            }
            if let Some(labels) = spec["selector"]["matchLabels"].as_object() {
                assert!(labels.iter().all(|(k, v)| !k.is_empty()
                    && !k.contains('*')
                    && !v.as_str().unwrap().contains('*')));
            }
        }
        "EnvoyFilter" => {
            assert!(
                spec.get("workloadSelector").is_none() || spec.get("targetRefs").is_none(),
                "only one of targetRefs or workloadSelector"
            );
        }
        _ => {}
    }
}

fn istio_schemas() -> Vec<(String, String, Value)> {
    crds("istio-crds.yaml")
}

fn rendered(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["render", "istio", "--keys", "keys.json"];
    all.extend_from_slice(args);
    yaml_docs(&ok(&all))
}

#[test]
fn rendered_istio_objects_match_their_crd_schemas() {
    let schemas = istio_schemas();
    let cases: [&[&str]; 6] = [
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
            "--priority",
            "5",
            "--image-pull-policy",
            "Always",
        ],
        &[
            "-p",
            "policy-v1.5.yaml",
            "-r",
            "route.yaml",
            "--url",
            "file:///var/lib/sticky.wasm",
        ],
        &[
            "-p",
            "policy-v1.6.yaml",
            "-r",
            "route.yaml",
            "--url",
            "oci://r/sticky:1",
            "--phase",
            "authz",
        ],
        &[
            "-p",
            "policy-main.yaml",
            "-r",
            "route.yaml",
            "--url",
            "oci://r/sticky:1",
            "--traffic-extension",
            "--selector",
            "app=web",
            "--fail-strategy",
            "FAIL_OPEN",
            "--allow-fail-open",
        ],
        &[
            "-p",
            "policy-bare.yaml",
            "-r",
            "route-gateway.yaml",
            "--url",
            "https://example.com/sticky.wasm",
            "--target-ref",
            "Gateway/public",
            "--traffic-extension",
            "--phase",
            "stats",
        ],
        &[
            "-p",
            "policy-bare.yaml",
            "-r",
            "route-gateway.yaml",
            "--url",
            "oci://r/sticky:1",
            "--target-ref",
            "Gateway/public",
        ],
    ];
    let canary: [&[&str]; 2] = [
        &[
            "-p",
            "policy-kubecon.yaml",
            "-r",
            "route-helloworld-gamma.yaml",
            "--url",
            "oci://r/sticky:1",
            "--selector",
            "app=sleep",
            "--service",
            "service-helloworld-v1.yaml",
        ],
        &[
            "-p",
            "policy-kubecon.yaml",
            "-r",
            "route-helloworld-gateway.yaml",
            "--url",
            "oci://r/sticky:1",
            "--target-ref",
            "Gateway/helloworld-gateway",
            "--traffic-extension",
        ],
    ];
    let sharded: [&[&str]; 2] = [
        &[
            "-p",
            "policy-sharded.yaml",
            "-r",
            "route-sharded.yaml",
            "--url",
            "oci://r/sticky:1",
            "--selector",
            "app=web",
        ],
        &[
            "-p",
            "policy-sharded-gateway.yaml",
            "-r",
            "route-gateway.yaml",
            "--url",
            "oci://r/sticky:1",
            "--target-ref",
            "Gateway/public",
            "--traffic-extension",
        ],
    ];
    let mut kinds = std::collections::BTreeSet::new();
    for case in cases.into_iter().chain(canary).chain(sharded) {
        for obj in rendered(case) {
            let kind = obj["kind"].as_str().unwrap().to_owned();
            if kind == "Service" {
                continue; // a core type, not a CRD
            }
            validate(&schemas, &obj);
            cel_rules(&obj);
            kinds.insert(kind);
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "DestinationRule",
            "EnvoyFilter",
            "TrafficExtension",
            "VirtualService",
            "WasmPlugin"
        ]
    );
}

#[test]
fn the_schema_check_catches_a_misspelled_field() {
    let schemas = istio_schemas();
    let mut obj = rendered(&[
        "-p",
        "policy.yaml",
        "-r",
        "route.yaml",
        "--url",
        "oci://r/s:1",
    ])
    .into_iter()
    .find(|o| o["kind"] == "WasmPlugin")
    .unwrap();
    obj["spec"]["pluginname"] = Value::String("sticky".into());
    let (_, _, schema) = schemas.iter().find(|(_, k, _)| k == "WasmPlugin").unwrap();
    assert!(!jsonschema::draft4::is_valid(schema, &obj));
    obj["spec"].as_object_mut().unwrap().remove("pluginname");
    obj["spec"]["sha256"] = Value::String("ABC".into());
    assert!(!jsonschema::draft4::is_valid(schema, &obj));
}

#[test]
fn test_routes_match_the_gateway_api_schema() {
    let schemas = crds("gateway-api-v1.6.1-experimental-httproutes.yaml");
    for f in [
        "route.yaml",
        "route-gateway.yaml",
        "route-odd-weights.yaml",
        "route-sharded.yaml",
        "route-helloworld-gamma.yaml",
        "route-helloworld-gateway.yaml",
    ] {
        let text = std::fs::read_to_string(common::data(f)).unwrap();
        for doc in yaml_docs(&text) {
            validate(&schemas, &doc);
        }
    }
}
