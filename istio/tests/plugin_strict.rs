//! The policy's strict mode reaches the filter: the plugin JSON carries
//! `"strict": true` whenever `stateful_session` (or the module's upstream
//! override) is rendered strict, so the filter hands a session whose pinned
//! host is gone a cluster-only token after Envoy's 503.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use serde_json::Value;

fn plugin(policy: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "render",
        "envoy",
        "-p",
        policy,
        "-r",
        "route.yaml",
        "--keys",
        "keys.json",
        "--out",
        dir.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::ok(&args);
    serde_json::from_slice(&std::fs::read(dir.path().join("plugin.json")).unwrap()).unwrap()
}

#[test]
fn a_strict_policy_tells_the_filter_it_is_strict() {
    for extra in [
        &["--wasm", "/sticky.wasm"][..],
        &["--native", "sticky", "--wiring", "drop-in"][..],
        &["--native", "sticky", "--wiring", "direct"][..],
    ] {
        let strict = plugin("policy-strict.yaml", extra);
        assert_eq!(strict["strict"], Value::Bool(true), "{extra:?}: {strict}");
        let relaxed = plugin("policy.yaml", extra);
        assert!(relaxed.get("strict").is_none(), "{extra:?}: {relaxed}");
    }
}
