//! The control plane's Kubernetes manifests (`render::control_plane`):
//! least-privilege RBAC, hardened Pod, and offline validation of every
//! object against the Kubernetes OpenAPI schemas with `kubernetes-validate
//! --strict` (PyPI, installed into the project venv by `make
//! kubernetes-validate`). Without the tool the validation test is skipped
//! locally and FAILS under CI=true.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use stickyctl::render::control_plane::{Inputs, Options, render};

fn testdata(name: &str) -> String {
    std::fs::read_to_string(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn manifests(o: &Options) -> Vec<Value> {
    let (policy, route, keys) = (
        testdata("policy.yaml"),
        testdata("route.yaml"),
        testdata("keys.json"),
    );
    render(
        o,
        Inputs {
            policy: &policy,
            route: &route,
            keys: &keys,
        },
    )
    .unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// `$VENV/bin/kubernetes-validate` (VENV defaults to the workspace's `.venv`).
fn validator() -> Option<PathBuf> {
    let venv = std::env::var_os("VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv")));
    let tool = venv.join("bin/kubernetes-validate");
    if tool.is_file() {
        return Some(tool);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing under CI=true: run `make kubernetes-validate`",
        tool.display()
    );
    eprintln!(
        "SKIPPED: {} missing (`make kubernetes-validate` installs it)",
        tool.display()
    );
    None
}

/// Runs the validator on a YAML stream; (passed, output).
fn validate(tool: &PathBuf, yaml: &str, version: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control-plane.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(tool)
        .args(["--strict", "--kubernetes-version", version])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn control_plane_manifests_pass_strict_kubernetes_schema_validation() {
    let Some(tool) = validator() else { return };
    let mut opts = Options {
        watch_namespace: Some("shop".into()),
        extra_args: vec!["--native".into(), "sticky".into()],
        ..Options::default()
    };
    for o in [Options::default(), {
        opts.replicas = 2;
        opts
    }] {
        let yaml = stickyctl::yaml::stream(&manifests(&o)).unwrap();
        // The oldest and the newest Kubernetes the schemas cover here.
        for version in ["1.33.0", "1.37.0"] {
            let (ok, out) = validate(&tool, &yaml, version);
            assert!(ok, "kubernetes {version}:\n{out}\n{yaml}");
            assert_eq!(out.matches("passed for resource").count(), 7, "{out}");
        }
    }
    // The check is not vacuous: one unknown field fails it.
    let mut objects = manifests(&Options::default());
    objects[5]["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFs"] = json!(true);
    let (ok, out) = validate(&tool, &stickyctl::yaml::stream(&objects).unwrap(), "1.37.0");
    assert!(!ok && out.contains("readOnlyRootFs"), "{out}");
}

#[test]
fn role_allows_only_listing_and_watching_slices_pods_and_services_of_the_watched_namespace() {
    let o = Options {
        watch_namespace: Some("shop".into()),
        ..Options::default()
    };
    let objects = manifests(&o);
    let role = find(&objects, "Role");
    assert_eq!(role["metadata"]["namespace"], "shop");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["list", "watch"]},
        ])
    );
    assert!(objects.iter().all(|o| o["kind"] != "ClusterRole"));
    let binding = find(&objects, "RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], "shop");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sticky-control-plane", "namespace": "sticky-system"}])
    );
    let args = &find(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..4], ["serve", "--kubernetes", "--namespace", "shop"]);
}

/// `--policy-name/--route-name`: the LBPolicy and HTTPRoute are watched in
/// the API, so the Role gains list/watch on exactly those two resources,
/// serve gets the names instead of files, and no ConfigMap is shipped.
#[test]
fn watching_the_policy_in_the_api_adds_httproutes_and_lbpolicies_to_the_role_and_drops_the_configmap()
 {
    let o = Options {
        watch_namespace: Some("shop".into()),
        policy_name: Some("reviews".into()),
        route_name: Some("reviews".into()),
        ..Options::default()
    };
    let objects = manifests(&o);
    let role = find(&objects, "Role");
    assert_eq!(role["metadata"]["namespace"], "shop");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["list", "watch"]},
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": ["list", "watch"]},
            {"apiGroups": ["sticky.dev"], "resources": ["lbpolicies"], "verbs": ["list", "watch"]},
        ])
    );
    assert!(objects.iter().all(|o| o["kind"] != "ConfigMap"));
    let pod = &find(&objects, "Deployment")["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args[..10],
        [
            "serve",
            "--kubernetes",
            "--namespace",
            "shop",
            "--policy-name",
            "reviews",
            "--route-name",
            "reviews",
            "--keys",
            "/etc/sticky/keys/keys.json"
        ]
    );
    assert_eq!(pod["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(pod["volumes"][0]["name"], "keys");
    // One name without the other is refused.
    let half = Options {
        policy_name: Some("reviews".into()),
        ..Options::default()
    };
    assert!(
        render(
            &half,
            Inputs {
                policy: "",
                route: "",
                keys: ""
            }
        )
        .is_err()
    );
    if let Some(tool) = validator() {
        let yaml = stickyctl::yaml::stream(&objects).unwrap();
        let (ok, out) = validate(&tool, &yaml, "1.37.0");
        assert!(ok, "{out}\n{yaml}");
        assert_eq!(out.matches("passed for resource").count(), 6, "{out}");
    }
}

#[test]
fn keys_go_in_a_secret_and_the_pod_runs_unprivileged() {
    let objects = manifests(&Options::default());
    let cm = find(&objects, "ConfigMap");
    assert!(cm["data"].get("keys.json").is_none());
    assert!(
        cm["data"]["policy.yaml"]
            .as_str()
            .unwrap()
            .contains("LBPolicy")
    );
    let secret = find(&objects, "Secret");
    assert!(
        secret["stringData"]["keys.json"]
            .as_str()
            .unwrap()
            .contains("\"k2\"")
    );
    let pod = &find(&objects, "Deployment")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http-admin");
    let svc = find(&objects, "Service");
    assert_eq!(svc["spec"]["ports"][0]["name"], "grpc-xds");
    assert_eq!(svc["spec"]["ports"][0]["port"], 18000);
    assert_eq!(svc["spec"]["ports"][1]["port"], 18001);
}

#[test]
fn bad_names_and_ports_are_refused() {
    let inputs = Inputs {
        policy: "",
        route: "",
        keys: "",
    };
    let bad = [
        Options {
            name: "Sticky_CP".into(),
            ..Options::default()
        },
        Options {
            watch_namespace: Some("-shop".into()),
            ..Options::default()
        },
        Options {
            admin_port: 18000,
            ..Options::default()
        },
        Options {
            image: " ".into(),
            ..Options::default()
        },
    ];
    for o in bad {
        assert!(render(&o, inputs).is_err(), "{o:?}");
    }
}

/// `stickyctl render control-plane` (the CLI a user runs) prints the same
/// manifests, and they pass the validator too.
#[test]
fn render_control_plane_on_the_command_line_prints_valid_manifests() {
    let out = Command::new(env!("CARGO_BIN_EXE_stickyctl"))
        .args([
            "render",
            "control-plane",
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--keys",
            "keys.json",
            "--namespace",
            "sticky-system",
            "--watch-namespace",
            "shop",
            "--image",
            "ghcr.io/acme/stickyctl:0.1.0",
            "--",
            "--native",
            "sticky",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata"))
        .output()
        .unwrap();
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
    ] {
        assert!(yaml.contains(&format!("kind: {kind}\n")), "{kind}:\n{yaml}");
    }
    assert!(
        yaml.contains("namespace: shop"),
        "the Role sits where it watches"
    );
    assert!(
        yaml.contains("--native"),
        "extra serve arguments reach the Deployment"
    );
    if let Some(tool) = validator() {
        let (ok, text) = validate(&tool, &yaml, "1.37.0");
        assert!(ok, "{text}\n{yaml}");
    }
    // A policy that does not render is refused before anything is printed.
    let bad = Command::new(env!("CARGO_BIN_EXE_stickyctl"))
        .args([
            "render",
            "control-plane",
            "-p",
            "route.yaml",
            "-r",
            "route.yaml",
            "--keys",
            "keys.json",
            "--image",
            "x",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
}
