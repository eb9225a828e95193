//! Every error path of the command line: the exit status, and a message that
//! names the file, the line and the field (or the flag) that is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{data, fails, ok, run};

const POLICY: &str = "apiVersion: networking.gke.io/v1
kind: LBPolicy
metadata:
  name: reviews
  namespace: default
spec:
  targetRef:
    group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: reviews
  default:
    sessionAffinity:
      type: GENERATED_STATEFUL_COOKIE
      cookieName: sticky
      cookieTtlSec: 3600
    connectionDraining:
      drainingTimeoutSec: 60
";

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: default
spec:
  parentRefs:
  - group: \"\"
    kind: Service
    name: reviews
  rules:
  - backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 90
    - name: reviews-v2
      port: 9080
      weight: 10
";

/// Writes policy.yaml and route.yaml into a temp dir and runs `render istio`.
fn render_istio(policy: &str, route: &str, extra: &[&str]) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("policy.yaml");
    let r = tmp.path().join("route.yaml");
    std::fs::write(&p, policy).unwrap();
    std::fs::write(&r, route).unwrap();
    let keys = data("keys.json");
    let mut args = vec![
        "render",
        "istio",
        "-p",
        p.to_str().unwrap(),
        "-r",
        r.to_str().unwrap(),
        "--keys",
        &keys,
    ];
    if !extra.contains(&"--url") {
        args.extend(["--url", "oci://r/sticky:1"]);
    }
    args.extend_from_slice(extra);
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn expect_policy_error(policy: &str, want: &str) {
    let (code, err) = render_istio(policy, ROUTE, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(want), "want {want:?} in:\n{err}");
}

#[track_caller]
fn expect_route_error(route: &str, want: &str) {
    let (code, err) = render_istio(POLICY, route, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(want), "want {want:?} in:\n{err}");
}

#[test]
fn the_base_inputs_render() {
    let (code, err) = render_istio(POLICY, ROUTE, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    expect_policy_error(
        &POLICY.replace(
            "  name: reviews\n  namespace",
            "  name: reviews\n namespace",
        ),
        "policy.yaml:5: invalid YAML",
    );
}

#[test]
fn policy_errors_name_file_line_and_field() {
    let cases = [
        (
            POLICY.replace("networking.gke.io/v1", "v1"),
            "policy.yaml:1: field `apiVersion`: must be one of",
        ),
        (
            POLICY.replace("GENERATED_STATEFUL_COOKIE", "GENERATED_COOKIE"),
            "policy.yaml:13: field `spec.default.sessionAffinity.type`: sticky implements GENERATED_STATEFUL_COOKIE only",
        ),
        (
            POLICY.replace("cookieTtlSec: 3600", "cookieTtlSec: an hour"),
            "policy.yaml:15: field `spec.default.sessionAffinity.cookieTtlSec`: invalid type",
        ),
        (
            POLICY.replace("cookieTtlSec: 3600", "cookieTtlSec: 86401"),
            "policy.yaml:15: field `spec.default.sessionAffinity.cookieTtlSec`: must be at most 86400",
        ),
        (
            POLICY.replace("cookieTtlSec: 3600", "cookieTtlSecs: 3600"),
            "field `spec.default.sessionAffinity",
        ),
        (
            POLICY.replace("cookieName: sticky", "cookieName: my cookie"),
            "policy.yaml:14: field `spec.default.sessionAffinity.cookieName`",
        ),
        (
            POLICY.replace("drainingTimeoutSec: 60", "drainingTimeoutSec: 7200"),
            "policy.yaml:17: field `spec.default.connectionDraining.drainingTimeoutSec`: must be at most 3600",
        ),
        (
            POLICY.replace("kind: HTTPRoute", "kind: GRPCRoute"),
            "policy.yaml:9: field `spec.targetRef.kind`: must target an HTTPRoute",
        ),
        (
            POLICY.replace(
                "    name: reviews\n  default",
                "    name: ratings\n  default",
            ),
            "policy.yaml:10: field `spec.targetRef.name`: targets HTTPRoute default/ratings",
        ),
        (
            format!("{POLICY}  sessionPersistence:\n    sessionName: x\n"),
            "policy.yaml:18: field `spec.sessionPersistence`: give either",
        ),
        (
            format!("{POLICY}  sticky:\n    idleTimeout: 5 minutes\n"),
            "policy.yaml:19: field `spec.sticky.idleTimeout`",
        ),
        (
            format!("{POLICY}  sticky:\n    cookie:\n      sameSite: Sometimes\n"),
            "policy.yaml:20: field `spec.sticky.cookie.sameSite`",
        ),
        (
            format!("{POLICY}  sticky:\n    sessionHeader: \"x session\"\n"),
            "policy.yaml:19: field `spec.sticky.sessionHeader`",
        ),
        (
            format!("{POLICY}  sticky:\n    wrap:\n      header: \"mcp session\"\n"),
            "policy.yaml:20: field `spec.sticky.wrap.header`",
        ),
        (
            format!("{POLICY}  sticky:\n    wrap:\n      header: x-s\n      maxIdBytes: 4096\n"),
            "policy.yaml:21: field `spec.sticky.wrap.maxIdBytes`: must be 1-1024, got 4096",
        ),
        (
            format!("{POLICY}  sticky:\n    sessionHeader: X-S\n    wrap:\n      header: x-s\n"),
            "policy.yaml:21: field `spec.sticky.wrap.header`: must differ",
        ),
        (
            format!("{POLICY}  sticky:\n    wrap:\n      name: x-s\n"),
            "unknown field `name`",
        ),
        (format!("{POLICY}  extra: 1\n"), "unknown field `extra`"),
    ];
    for (policy, want) in cases {
        expect_policy_error(&policy, want);
    }
}

/// The plugin config of a `render istio` of `policy` (text) over route.yaml.
fn rendered_plugin(policy: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("policy.yaml");
    std::fs::write(&p, policy).unwrap();
    let out = ok(&[
        "render",
        "istio",
        "-p",
        p.to_str().unwrap(),
        "-r",
        "route.yaml",
        "--keys",
        "keys.json",
        "--url",
        "oci://r/sticky:1",
    ]);
    let docs = common::yaml_docs(&out);
    let wp = docs.iter().find(|d| d["kind"] == "WasmPlugin").unwrap();
    wp["spec"]["pluginConfig"].clone()
}

#[test]
fn the_kubecon_lbpolicy_names_its_cookie_with_name() {
    // testdata/policy-kubecon.yaml holds the talk's sessionAffinity line as is.
    let text = std::fs::read_to_string(data("policy-kubecon.yaml")).unwrap();
    assert!(text.contains(
        "sessionAffinity: {type: GENERATED_STATEFUL_COOKIE, name: \"global-session-cookie\", cookieTtlSec: 600}"
    ));
    let out = ok(&[
        "render",
        "istio",
        "-p",
        "policy-kubecon.yaml",
        "-r",
        "route-helloworld-gamma.yaml",
        "--keys",
        "keys.json",
        "--url",
        "oci://r/sticky:1",
    ]);
    let docs = common::yaml_docs(&out);
    let wp = docs.iter().find(|d| d["kind"] == "WasmPlugin").unwrap();
    let cookie = &wp["spec"]["pluginConfig"]["cookie"];
    assert_eq!(cookie["name"], "global-session-cookie");
    assert_eq!(cookie["ttl_seconds"], 600);
}

#[test]
fn cookie_name_stays_an_alias_of_name_but_not_beside_it() {
    let plugin = rendered_plugin(&POLICY.replace("cookieName: sticky", "cookieName: cart"));
    assert_eq!(plugin["cookie"]["name"], "cart");
    let plugin = rendered_plugin(&POLICY.replace("cookieName: sticky", "name: cart"));
    assert_eq!(plugin["cookie"]["name"], "cart");
    expect_policy_error(
        &POLICY.replace("cookieName: sticky", "cookieName: sticky\n      name: cart"),
        "policy.yaml:14: field `spec.default.sessionAffinity.cookieName`: give the cookie name once: `name`, or its alias `cookieName`, not both",
    );
    expect_policy_error(
        &POLICY.replace("cookieName: sticky", "name: my cookie"),
        "policy.yaml:14: field `spec.default.sessionAffinity.name`: \"my cookie\" must be 1-64 characters",
    );
}

#[test]
fn session_persistence_errors_name_the_field() {
    let base = POLICY.replace(
        "  default:\n    sessionAffinity:\n      type: GENERATED_STATEFUL_COOKIE\n      cookieName: sticky\n      cookieTtlSec: 3600\n",
        "  default:\n",
    );
    let sp = |block: &str| format!("{base}  sessionPersistence:\n{block}");
    let cases = [
        (
            sp("    sessionName: a\n    cookie:\n      name: b\n"),
            "policy.yaml:16: field `spec.sessionPersistence.cookie`: mixes `sessionName`",
        ),
        (
            sp("    absoluteTimeout: 1d\n"),
            "policy.yaml:15: field `spec.sessionPersistence.absoluteTimeout`",
        ),
        (
            sp("    type: Bearer\n"),
            "policy.yaml:15: field `spec.sessionPersistence.type`: must be Cookie or Header",
        ),
        (
            sp("    cookieConfig:\n      lifetimeType: Permanent\n"),
            "field `spec.sessionPersistence.cookieConfig.lifetimeType`: Permanent needs absoluteTimeout",
        ),
        (
            sp("    type: Header\n    cookieConfig:\n      lifetimeType: Session\n"),
            "field `spec.sessionPersistence.cookieConfig`: can only be set with type Cookie",
        ),
        (
            sp("    type: Cookie\n    header:\n      name: x\n"),
            "field `spec.sessionPersistence.header`: can only be set with type Header",
        ),
        (
            sp("    cookie:\n      path: shop\n"),
            "field `spec.sessionPersistence.cookie.path`: must start with '/'",
        ),
        (
            base.clone(),
            "policy.yaml:6: field `spec`: no session settings",
        ),
    ];
    for (policy, want) in cases {
        expect_policy_error(&policy, want);
    }
}

#[test]
fn route_errors_name_file_line_and_field() {
    let cases = [
        (ROUTE.replace("kind: HTTPRoute", "kind: GRPCRoute"), "no document of kind HTTPRoute"),
        (ROUTE.replace("weight: 10", "weight: -1"), "route.yaml:18: field `spec.rules[0].backendRefs[1].weight`: must be between 0 and 1000000"),
        (ROUTE.replace("weight: 10", "weight: 2000000"), "route.yaml:18: field `spec.rules[0].backendRefs[1].weight`"),
        (ROUTE.replace("      port: 9080\n      weight: 10", "      weight: 10"), "route.yaml:16: field `spec.rules[0].backendRefs[1].port`: a Service backendRef needs a port"),
        (ROUTE.replace("    - name: reviews-v2", "    - kind: ServiceImport\n      name: reviews-v2"), "route.yaml:16: field `spec.rules[0].backendRefs[1].kind`: sticky routes to Services only"),
        (ROUTE.replace("reviews-v2", "reviews-v1"), "field `spec.rules[0].backendRefs[1].name`: backend reviews-v1:9080 is listed twice"),
        (ROUTE.replace("  rules:\n  - backendRefs:", "  rules:\n  - matches:\n    - headers: [{type: RegularExpression, name: X-Sticky-Cluster, value: \".*\"}]\n    backendRefs:"), "route.yaml:13: field `spec.rules[0].matches[0].headers[0].name`: \"X-Sticky-Cluster\" is sticky's internal header"),
        (ROUTE.replace("    kind: Service\n", "    kind: Mesh\n"), "route.yaml:9: field `spec.parentRefs[0].kind`"),
        (ROUTE.replace("  rules:\n  - backendRefs:", "  rules:\n  - matches:\n    - path: {type: Glob, value: /x}\n    backendRefs:"), "route.yaml:13: field `spec.rules[0].matches[0].path.type`"),
        (ROUTE.replace("  rules:\n  - backendRefs:", "  rules:\n  - matches:\n    - headers: [{type: Prefix, name: a, value: b}]\n    backendRefs:"), "field `spec.rules[0].matches[0].headers[0].type`"),
        (ROUTE.split("  rules:").next().unwrap().to_owned() + "  rules: []\n", "route.yaml:11: field `spec.rules`: the route has no rules"),
        (ROUTE.replace("name: reviews-v1", "name: reviews-V1"), "route.yaml:13: field `spec.rules[0].backendRefs[0].name`: \"reviews-V1\" is not a Service name"),
    ];
    for (route, want) in cases {
        expect_route_error(&route, want);
    }
    // Backends as subsets of one Service (the policy asks for it).
    let subsets = format!("{POLICY}  sticky:\n    service: reviews\n");
    for (route, want) in [
        (
            ROUTE.replace("name: reviews-v1", "name: reviews"),
            "field `spec.rules[0].backendRefs[0].name`: names the Service reviews itself",
        ),
        (
            ROUTE.replace("name: reviews-v1", "name: reviews-V1"),
            "field `spec.rules[0].backendRefs[0].name`: subset \"V1\" is not a DNS label",
        ),
    ] {
        let (code, err) = render_istio(&subsets, &route, &[]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
}

#[test]
fn subsets_need_to_know_their_service() {
    let route = ROUTE.replace(
        "  - group: \"\"\n    kind: Service\n    name: reviews\n",
        "  - name: public\n",
    );
    let (code, err) = render_istio(
        &format!("{POLICY}  sticky:\n    subsetLabel: version\n"),
        &route,
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "policy.yaml:18: field `spec.sticky.service`: Istio subsets belong to one Service"
        ),
        "{err}"
    );
}

#[test]
fn a_gateway_parent_needs_no_sticky_service_for_distinct_services() {
    let route = ROUTE.replace(
        "  - group: \"\"\n    kind: Service\n    name: reviews\n",
        "  - name: public\n",
    );
    let (code, err) = render_istio(POLICY, &route, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("backends: distinct Services (canary across Services)"),
        "{err}"
    );
}

#[test]
fn rules_must_agree_on_session_persistence() {
    let bare = POLICY.replace(
        "  default:\n    sessionAffinity:\n      type: GENERATED_STATEFUL_COOKIE\n      cookieName: sticky\n      cookieTtlSec: 3600\n",
        "  default:\n",
    );
    let route = format!(
        "{ROUTE}    sessionPersistence: {{sessionName: a}}\n  - backendRefs:\n    - {{name: reviews-v1, port: 9080}}\n    sessionPersistence: {{sessionName: b}}\n"
    );
    let (code, err) = render_istio(&bare, &route, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "route.yaml:22: field `spec.rules[1].sessionPersistence`: differs from spec.rules[0]"
        ),
        "{err}"
    );
}

#[test]
fn bad_istio_flags_are_named() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["--url", "ftp://x/sticky.wasm"],
            "--url \"ftp://x/sticky.wasm\": must start with oci://",
        ),
        (
            &["--sha256", "ABC"],
            "--sha256 \"ABC\": must be 64 lowercase hex characters",
        ),
        (&["--selector", "app"], "--selector \"app\": want KEY=VALUE"),
        (
            &["--selector", "app=*"],
            "--selector: keys must be non-empty",
        ),
        (
            &["--target-ref", "Deployment/x"],
            "KIND must be Gateway or Service",
        ),
        (&["--target-ref", "Gateway"], "want KIND/NAME"),
        (
            &["--fail-strategy", "FAIL_LOUDLY"],
            "--fail-strategy \"FAIL_LOUDLY\"",
        ),
    ];
    for (extra, want) in cases {
        let (code, err) = render_istio(POLICY, ROUTE, extra);
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: want {want:?} in:\n{err}");
    }
}

#[test]
fn a_service_file_for_another_service_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = tmp.path().join("svc.yaml");
    std::fs::write(
        &svc,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ratings\nspec: {}\n",
    )
    .unwrap();
    let (code, err) = render_istio(POLICY, ROUTE, &["--service", svc.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("svc.yaml:4: field `metadata.name`: is default/ratings"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let p = data("policy.yaml");
    let r = data("route.yaml");
    // --url is required; --selector and --target-ref exclude each other.
    let err = fails(&["render", "istio", "-p", &p, "-r", &r], 2);
    assert!(err.contains("--url"), "{err}");
    let err = fails(
        &[
            "render",
            "istio",
            "-p",
            &p,
            "-r",
            &r,
            "--url",
            "oci://x/y:1",
            "--selector",
            "a=b",
            "--target-ref",
            "Gateway/g",
        ],
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(&["render", "kubernetes"], 2);
    assert!(err.contains("unrecognized subcommand"), "{err}");
    let err = fails(
        &[
            "keys",
            "rotate",
            "keys.json",
            "--id",
            "k9",
            "--retire",
            "k1",
        ],
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn missing_files_are_named() {
    let err = fails(&["check", "-p", "nope.yaml", "-r", "route.yaml"], 1);
    assert!(
        err.contains("stickyctl: error: nope.yaml: No such file"),
        "{err}"
    );
    let err = fails(
        &[
            "render",
            "envoy",
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--keys",
            "nokeys.json",
        ],
        1,
    );
    assert!(err.contains("nokeys.json: No such file"), "{err}");
}

#[test]
fn two_policies_in_one_file_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("two.yaml");
    std::fs::write(&p, format!("{POLICY}---\n{POLICY}")).unwrap();
    let err = fails(&["check", "-p", p.to_str().unwrap(), "-r", "route.yaml"], 1);
    assert!(
        err.contains("two.yaml:20: field `kind`: 2 documents of kind LBPolicy"),
        "{err}"
    );
}

#[test]
fn render_envoy_flag_errors() {
    let base = [
        "render",
        "envoy",
        "-p",
        "policy.yaml",
        "-r",
        "route.yaml",
        "--keys",
        "keys.json",
    ];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    let err = fails(&with(&base, &["--endpoint", "ratings=10.0.0.1:80"]), 1);
    assert!(
        err.contains("--endpoint names \"ratings\", which is no backendRef"),
        "{err}"
    );
    let err = fails(&with(&base, &["--endpoint", "reviews-v1"]), 1);
    assert!(err.contains("want BACKEND=IP:PORT"), "{err}");
    let err = fails(&with(&base, &["--endpoint", "reviews-v1=host:80"]), 1);
    assert!(err.contains("--host \"host:80\": want IP:PORT"), "{err}");
    let err = fails(&with(&base, &["--listen", "everywhere"]), 1);
    assert!(
        err.contains("--listen \"everywhere\": want IP:PORT"),
        "{err}"
    );
}

fn keys_file(text: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("keys.json");
    std::fs::write(&p, text).unwrap();
    let s = p.to_str().unwrap().to_owned();
    (tmp, s)
}

#[test]
fn key_file_errors_name_the_key() {
    let (_t, short) =
        keys_file("{\n  \"keys\": [\n    {\"id\": \"k1\", \"secret\": \"c2hvcnQ=\"}\n  ]\n}\n");
    let err = fails(&["keys", "rotate", &short], 1);
    assert!(
        err.contains("keys.json:3: field `keys[0].secret`: must be base64 of exactly 32 bytes"),
        "{err}"
    );
    let key = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let (_t, dup) = keys_file(&format!(
        "{{\"keys\": [\n{{\"id\": \"k1\", \"secret\": \"{key}\"}},\n{{\"id\": \"k1\", \"secret\": \"{key}\"}}]}}\n"
    ));
    let err = fails(&["keys", "rotate", &dup], 1);
    assert!(
        err.contains("keys.json:3: field `keys[1].id`: duplicate key id"),
        "{err}"
    );
    let (_t, none) = keys_file("{\"cookie\": {}}\n");
    let err = fails(&["keys", "rotate", &none], 1);
    assert!(err.contains("no `keys` here"), "{err}");
    let (_t, extra) = keys_file(&format!(
        "{{\"keys\": [{{\"id\": \"k1\", \"secret\": \"{key}\", \"kid\": 1}}]}}\n"
    ));
    let err = fails(&["keys", "rotate", &extra], 1);
    assert!(err.contains("unknown field `kid`"), "{err}");
}

#[test]
fn key_rotation_errors() {
    let err = fails(&["keys", "rotate", "keys.json", "--id", "k1"], 1);
    assert!(err.contains("key id \"k1\" is already in use"), "{err}");
    let err = fails(&["keys", "rotate", "keys.json", "--retire", "k7"], 1);
    assert!(
        err.contains("no key \"k7\" to retire (keys: k2, k1)"),
        "{err}"
    );
    let err = fails(&["keys", "new", "--id", "bad id"], 1);
    assert!(err.contains("must be 1-32 characters"), "{err}");
    let key = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let (_t, one) = keys_file(&format!(
        "{{\"keys\": [{{\"id\": \"k1\", \"secret\": \"{key}\"}}]}}\n"
    ));
    let err = fails(&["keys", "rotate", &one, "--retire", "k1"], 1);
    assert!(
        err.contains("\"k1\" is the only key; rotate first"),
        "{err}"
    );
}

#[test]
fn keys_rotate_puts_a_new_key_first_and_keeps_the_old() {
    let key = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let (_t, f) = keys_file(&format!(
        "{{\"keys\": [{{\"id\": \"k1\", \"secret\": \"{key}\"}}]}}\n"
    ));
    ok(&["keys", "rotate", &f, "--in-place"]);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    let ids: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["k2", "k1"]);
    assert_eq!(v["keys"][1]["secret"], key);
    assert_ne!(v["keys"][0]["secret"], key);
    // The rotated file is a valid filter keyring.
    stickyctl::plugin::check(&serde_json::json!({"clusters": ["v1"], "keys": v["keys"]})).unwrap();
    ok(&["keys", "rotate", &f, "--retire", "k1", "--in-place"]);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 1);
    assert_eq!(v["keys"][0]["id"], "k2");
}

#[test]
fn keys_rotate_edits_a_rendered_wasm_plugin_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    ok(&[
        "render",
        "istio",
        "-p",
        "policy.yaml",
        "-r",
        "route.yaml",
        "--keys",
        "keys.json",
        "--url",
        "oci://r/s:1",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    let wp = tmp.path().join("wasmplugin-reviews-sticky.yaml");
    let out = ok(&["keys", "rotate", wp.to_str().unwrap()]);
    let docs = common::yaml_docs(&out);
    let ids: Vec<&str> = docs[0]["spec"]["pluginConfig"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["k3", "k2", "k1"]);
    assert_eq!(docs[0]["spec"]["url"], "oci://r/s:1");
}

#[test]
fn keys_new_prints_one_fresh_key() {
    let a: serde_json::Value = serde_json::from_str(&ok(&["keys", "new"])).unwrap();
    let b: serde_json::Value =
        serde_json::from_str(&ok(&["keys", "new", "--id", "2026-11"])).unwrap();
    assert_eq!(a["keys"][0]["id"], "k1");
    assert_eq!(b["keys"][0]["id"], "2026-11");
    assert_ne!(a["keys"][0]["secret"], b["keys"][0]["secret"]);
    stickyctl::plugin::check(&serde_json::json!({"clusters": ["v1"], "keys": a["keys"]})).unwrap();
}

#[test]
fn endpoint_errors_name_the_file_cluster_and_host() {
    let tmp = tempfile::tempdir().unwrap();
    let eds = tmp.path().join("v1.json");
    stickyctl::eds::write(
        &eds,
        "v1",
        &[stickyctl::eds::Endpoint::healthy("10.0.0.1", 80)],
        "sticky",
        1,
    )
    .unwrap();
    let e = eds.to_str().unwrap();
    let err = fails(
        &[
            "endpoints",
            "drain",
            "--eds",
            e,
            "--cluster",
            "v2",
            "--host",
            "10.0.0.1:80",
        ],
        1,
    );
    assert!(
        err.contains("v1.json: field `resources`: no cluster \"v2\" here (clusters: v1)"),
        "{err}"
    );
    let err = fails(
        &[
            "endpoints",
            "undrain",
            "--eds",
            e,
            "--cluster",
            "v1",
            "--host",
            "10.0.0.9:80",
        ],
        1,
    );
    assert!(
        err.contains("10.0.0.9:80 is not in cluster \"v1\""),
        "{err}"
    );
    let err = fails(
        &[
            "endpoints",
            "add",
            "--eds",
            e,
            "--cluster",
            "v1",
            "--host",
            "10.0.0.1:80",
        ],
        1,
    );
    assert!(
        err.contains("10.0.0.1:80 is already in cluster \"v1\""),
        "{err}"
    );
    let err = fails(
        &[
            "endpoints",
            "remove",
            "--eds",
            e,
            "--cluster",
            "v1",
            "--host",
            "10.0.0.1",
        ],
        1,
    );
    assert!(err.contains("--host \"10.0.0.1\": want IP:PORT"), "{err}");
    let err = fails(
        &[
            "endpoints",
            "remove",
            "--eds",
            "none.json",
            "--cluster",
            "v1",
            "--host",
            "10.0.0.1:80",
        ],
        1,
    );
    assert!(err.contains("none.json: No such file"), "{err}");
    std::fs::write(&eds, "{\n  \"resources\": [\n    oops\n}").unwrap();
    let err = fails(
        &[
            "endpoints",
            "remove",
            "--eds",
            e,
            "--cluster",
            "v1",
            "--host",
            "10.0.0.1:80",
        ],
        1,
    );
    assert!(err.contains("v1.json:3: not JSON"), "{err}");
}

#[test]
fn an_unreachable_admin_is_an_error_after_the_write() {
    let tmp = tempfile::tempdir().unwrap();
    let eds = tmp.path().join("v1.json");
    stickyctl::eds::write(
        &eds,
        "v1",
        &[stickyctl::eds::Endpoint::healthy("10.0.0.1", 80)],
        "sticky",
        1,
    )
    .unwrap();
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("127.0.0.1:{port}");
    let err = fails(
        &[
            "endpoints",
            "drain",
            "--eds",
            eds.to_str().unwrap(),
            "--cluster",
            "v1",
            "--host",
            "10.0.0.1:80",
            "--admin",
            &admin,
        ],
        1,
    );
    assert!(
        err.contains(&format!("envoy admin {admin}: connect")),
        "{err}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&eds).unwrap()).unwrap();
    assert_eq!(
        v["resources"][0]["endpoints"][0]["lb_endpoints"][0]["health_status"],
        "DRAINING"
    );
}

#[test]
fn check_flag_and_workload_errors() {
    let err = fails(
        &[
            "check",
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--typical-session",
            "a while",
        ],
        1,
    );
    assert!(err.contains("--typical-session \"a while\""), "{err}");
    let err = fails(
        &[
            "check",
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "-w",
            "keys.json",
        ],
        1,
    );
    assert!(
        err.contains("keys.json: holds no Deployment, StatefulSet or Service"),
        "{err}"
    );
}

#[test]
fn help_has_examples() {
    let out = ok(&["--help"]);
    assert!(
        out.contains("Examples:") && out.contains("kubectl apply -f -"),
        "{out}"
    );
    for sub in [
        &["render", "envoy"][..],
        &["render", "istio"],
        &["check"],
        &["keys", "rotate"],
        &["endpoints", "drain"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = ok(&args);
        assert!(out.contains("Example"), "{sub:?} --help:\n{out}");
    }
}

fn sharded(block: &str) -> String {
    format!("{POLICY}  sharding:\n{block}")
}

const SHARDING: &str = "    key: {header: x-account}
    shards: 4
    statefulSet: reviews
    headlessService: reviews-pods
    service: reviews
    port: 9080
";

#[test]
fn sharding_errors_name_file_line_and_field() {
    // The policy's sharding block starts on line 18; `key` is line 19.
    let (code, err) = render_istio(&sharded(SHARDING), ROUTE, &[]);
    assert_eq!(code, 0, "{err}");
    for (from, to, want) in [
        (
            "{header: x-account}",
            "{header: x-account, cookie: a}",
            "policy.yaml:19: field `spec.sharding.key`: must name exactly one of header, cookie, pathSegment, query; got 2",
        ),
        (
            "{header: x-account}",
            "{header: \"x account\"}",
            "policy.yaml:19: field `spec.sharding.key.header`",
        ),
        (
            "{header: x-account}",
            "{path: 2}",
            "policy.yaml:19: field `spec.sharding.key.path`: unknown field `path`",
        ),
        (
            "shards: 4",
            "shards: 2000",
            "policy.yaml:20: field `spec.sharding.shards`: must be 1-1024, got 2000",
        ),
        (
            "shards: 4",
            "shards: four",
            "policy.yaml:20: field `spec.sharding.shards`: invalid type",
        ),
        (
            "statefulSet: reviews",
            "statefulSet: reviews_db",
            "policy.yaml:21: field `spec.sharding.statefulSet`",
        ),
        (
            "    port: 9080\n",
            "",
            "policy.yaml:18: field `spec.sharding`: missing field `port`",
        ),
        (
            "port: 9080",
            "port: 9080\n    missingKey: ignore",
            "policy.yaml:25: field `spec.sharding.missingKey`: must be fallback",
        ),
    ] {
        let block = SHARDING.replace(from, to);
        let (code, err) = render_istio(&sharded(&block), ROUTE, &[]);
        assert_eq!(code, 1, "{block}\n{err}");
        assert!(
            err.starts_with("stickyctl: error: ") && err.contains(want),
            "want {want:?} in:\n{err}"
        );
    }
}

#[test]
fn shard_subsets_on_a_headless_service_warn_for_sidecars_only() {
    let block = SHARDING.replace("    service: reviews\n", "");
    let (code, err) = render_istio(&sharded(&block), ROUTE, &["--selector", "app=web"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("policy.yaml:22: field `spec.sharding.headlessService`: the shard subsets sit on the headless Service reviews-pods; istiod gives sidecars ORIGINAL_DST"),
        "{err}"
    );
    let gateway_route = ROUTE.replace(
        "  - group: \"\"\n    kind: Service\n    name: reviews\n",
        "  - name: public\n",
    );
    let (code, err) = render_istio(
        &sharded(&block),
        &gateway_route,
        &["--target-ref", "Gateway/public"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("ORIGINAL_DST"), "{err}");
}

#[test]
fn dns_shard_clusters_take_no_endpoint_flag() {
    let err = fails(
        &[
            "render",
            "envoy",
            "-p",
            "policy-sharded.yaml",
            "-r",
            "route-sharded.yaml",
            "--keys",
            "keys.json",
            "--shard-endpoints",
            "dns",
            "--endpoint",
            "accounts-0=10.0.0.1:8080",
        ],
        1,
    );
    assert!(
        err.contains("--endpoint names \"accounts-0\", which is no backendRef of HTTPRoute accounts (DNS shard clusters take no --endpoint)"),
        "{err}"
    );
}

/// `render istio` of POLICY over `route` (text) with `extra`: (exit status, stdout, stderr).
fn render_istio_full(route: &str, extra: &[&str]) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("policy.yaml");
    let r = tmp.path().join("route.yaml");
    std::fs::write(&p, POLICY).unwrap();
    std::fs::write(&r, route).unwrap();
    let keys = data("keys.json");
    let mut args = vec![
        "render",
        "istio",
        "-p",
        p.to_str().unwrap(),
        "-r",
        r.to_str().unwrap(),
        "--keys",
        &keys,
        "--url",
        "oci://r/sticky:1",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `check` of POLICY over `route` (text) with `extra`: (exit status, stdout, stderr).
fn check_full(route: &str, extra: &[&str]) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("policy.yaml");
    let r = tmp.path().join("route.yaml");
    std::fs::write(&p, POLICY).unwrap();
    std::fs::write(&r, route).unwrap();
    let mut args = vec![
        "check",
        "-p",
        p.to_str().unwrap(),
        "-r",
        r.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn virtual_service(stdout: &str) -> serde_json::Value {
    common::yaml_docs(stdout)
        .into_iter()
        .find(|d| d["kind"] == "VirtualService")
        .unwrap()
}

#[test]
fn fail_open_is_refused_with_the_reason_and_what_to_use_instead() {
    let (code, out, err) = render_istio_full(ROUTE, &["--fail-strategy", "FAIL_OPEN"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    for want in [
        "stickyctl: error: --fail-strategy FAIL_OPEN refused",
        "clients choose their cluster and pod",
        "Use FAIL_CLOSE",
        "FAIL_RELOAD",
        "--allow-fail-open",
    ] {
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
    for ok_strategy in ["FAIL_CLOSE", "FAIL_RELOAD"] {
        let (code, _, err) = render_istio_full(ROUTE, &["--fail-strategy", ok_strategy]);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("WARNING"), "{err}");
    }
}

#[test]
fn allow_fail_open_renders_it_with_a_loud_warning() {
    let (code, out, err) = render_istio_full(
        ROUTE,
        &["--fail-strategy", "FAIL_OPEN", "--allow-fail-open"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("stickyctl: WARNING: --allow-fail-open: rendering failStrategy FAIL_OPEN")
            && err.contains("clients choose their cluster and pod"),
        "{err}"
    );
    let wp = common::yaml_docs(&out)
        .into_iter()
        .find(|d| d["kind"] == "WasmPlugin")
        .unwrap();
    assert_eq!(wp["spec"]["failStrategy"], "FAIL_OPEN");
}

#[test]
fn the_virtual_service_is_exported_only_where_sticky_runs() {
    let (code, out, err) = render_istio_full(ROUTE, &[]);
    assert_eq!(code, 0, "{err}");
    let vs = virtual_service(&out);
    assert_eq!(vs["spec"]["exportTo"], serde_json::json!(["."]));
    assert_eq!(vs["spec"]["gateways"], serde_json::json!(["mesh"]));
    // With a selector, only the selected proxies follow the cluster header.
    let (code, out, err) = render_istio_full(ROUTE, &["--selector", "app=productpage"]);
    assert_eq!(code, 0, "{err}");
    for r in virtual_service(&out)["spec"]["http"].as_array().unwrap() {
        let m = &r["match"][0];
        if m["headers"].get("x-sticky-cluster").is_some() {
            assert_eq!(m["sourceLabels"], serde_json::json!({"app": "productpage"}));
        } else {
            assert!(m.get("sourceLabels").is_none(), "{r}");
        }
    }
}

/// ROUTE with these parentRefs instead of the Service reviews.
fn with_parents(parents: &str) -> String {
    ROUTE.replace(
        "  - group: \"\"\n    kind: Service\n    name: reviews\n",
        parents,
    )
}

#[test]
fn a_gateway_in_another_namespace_is_left_unbound_with_a_warning() {
    let route = with_parents("  - name: public\n  - name: edge\n    namespace: ingress\n");
    let (code, out, err) = render_istio_full(&route, &[]);
    assert_eq!(code, 0, "{err}");
    let vs = virtual_service(&out);
    assert_eq!(vs["spec"]["gateways"], serde_json::json!(["public"]));
    assert!(
        err.contains("stickyctl: WARNING: ")
            && err.contains("route.yaml:9: field `spec.parentRefs[1]`: Gateway ingress/edge is outside sticky's scope: the WasmPlugin and EnvoyFilter live in namespace default and reach no proxy of namespace ingress"),
        "{err}"
    );
    let (code, out, _) = check_full(&route, &[]);
    assert_eq!(code, 3);
    assert!(
        out.contains("warning[parent-out-of-scope]: ")
            && out.contains("route.yaml:9: field `spec.parentRefs[1]`: Gateway ingress/edge is outside sticky's scope"),
        "{out}"
    );
    assert!(!out.contains("Gateway default/public"), "{out}");
}

#[test]
fn mesh_is_left_unbound_when_sticky_attaches_to_a_gateway_only() {
    let route =
        with_parents("  - group: \"\"\n    kind: Service\n    name: reviews\n  - name: public\n");
    let attach = ["--target-ref", "Gateway/public"];
    let (code, out, err) = render_istio_full(&route, &attach);
    assert_eq!(code, 0, "{err}");
    let vs = virtual_service(&out);
    assert_eq!(vs["spec"]["gateways"], serde_json::json!(["public"]));
    assert_eq!(vs["spec"]["hosts"], serde_json::json!(["*"]));
    let want = "mesh (the route's Service parent default/reviews) is outside sticky's scope: sticky attaches to --target-ref Gateway/public only, so sidecars do not run it";
    assert!(err.contains(want), "{err}");
    let (code, out, _) = check_full(&route, &attach);
    assert_eq!(code, 3);
    assert!(
        out.contains("warning[parent-out-of-scope]: ") && out.contains(want),
        "{out}"
    );
    // Attached to sidecars and the Gateway alike: both bound, no warning.
    let (code, out, err) = render_istio_full(&route, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        virtual_service(&out)["spec"]["gateways"],
        serde_json::json!(["public", "mesh"])
    );
    assert!(!err.contains("WARNING"), "{err}");
    let (code, out, _) = check_full(&route, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_route_with_no_parent_in_scope_is_refused() {
    let route = with_parents("  - name: edge\n    namespace: ingress\n");
    let (code, out, err) = render_istio_full(&route, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains(
            "route.yaml:8: field `spec.parentRefs[0]`: no parent of the route is in sticky's scope"
        ) && err.contains(
            "Gateway ingress/edge: the WasmPlugin and EnvoyFilter live in namespace default"
        ),
        "{err}"
    );
}
