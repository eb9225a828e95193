//! The sharded configuration `stickyctl render envoy` writes, run by a real
//! Envoy 1.40 with sticky: every key reaches the StatefulSet pod of its shard
//! (the pod reports its name), keyless requests take the route's backends
//! or get 400, and a pinned session stays on its shard pod.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;

use sticky_core::shard::shard_of;
use sticky_e2e::backend::Backend;
use sticky_e2e::client::{Session, send};
use sticky_e2e::envoy::Envoy;

/// Renders policy text `policy` (with route-sharded.yaml) into `dir` with the
/// given backends, and starts Envoy on it.
fn start(dir: &Path, policy: &str, backends: &[Backend]) -> Envoy {
    let envoy = common::envoy_bin().expect("Envoy 1.40 missing: run `make setup`");
    let wasm = sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm");
    let policy_path = dir.join("policy.yaml");
    std::fs::write(&policy_path, policy).unwrap();
    let out = dir.join("envoy");
    let mut args = vec![
        "render".to_owned(),
        "envoy".into(),
        "-p".into(),
        policy_path.display().to_string(),
        "-r".into(),
        common::data("route-sharded.yaml"),
        "--keys".into(),
        common::data("keys.json"),
        "--wasm".into(),
        wasm.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--admin-port".into(),
        "0".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    for b in backends {
        args.push("--endpoint".into());
        args.push(format!("{}={}", b.name, b.host()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::ok(&args);
    Envoy::start(&envoy, &out.join("envoy.json"), dir, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn policy() -> String {
    // Plain HTTP here: the test client keeps only non-Secure cookies over http.
    std::fs::read_to_string(common::data("policy-sharded.yaml"))
        .unwrap()
        .replace(
            "  sharding:\n",
            "  sticky:\n    cookie: {secure: false}\n  sharding:\n",
        )
}

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::start("accounts-v1").unwrap()];
    v.extend((0..4).map(|i| Backend::start(&format!("accounts-{i}")).unwrap()));
    v
}

#[test]
fn every_key_reaches_the_pod_of_its_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let pods = backends();
    let envoy = start(tmp.path(), &policy(), &pods);
    for i in 0..200 {
        let key = format!("account-{i}");
        let r = send(envoy.listener, "/", &[(b"x-account", key.as_bytes())]).unwrap();
        assert_eq!(r.status, 200, "{key}: {:?}", r.headers);
        assert_eq!(
            r.backend().unwrap(),
            format!("accounts-{}", shard_of(key.as_bytes(), 4)),
            "{key}"
        );
    }
    // No key: the HTTPRoute's backendRefs (missingKey: fallback).
    let r = send(envoy.listener, "/", &[]).unwrap();
    assert_eq!(r.backend().as_deref(), Some("accounts-v1"));
    // A session with its key stays on the pod of its shard.
    let mut s = Session::new("acct");
    s.extra.push((b"x-account".to_vec(), b"account-7".to_vec()));
    let want = format!("accounts-{}", shard_of(b"account-7", 4));
    for _ in 0..5 {
        let r = s.get(envoy.listener).unwrap();
        assert_eq!(r.backend().as_deref(), Some(want.as_str()));
    }
    let log = std::fs::read_to_string(&envoy.log_path).unwrap_or_default();
    assert!(!log.contains("panicked at"), "{log}");
}

#[test]
fn missing_key_reject_answers_400() {
    let tmp = tempfile::tempdir().unwrap();
    let pods = backends();
    let envoy = start(
        tmp.path(),
        &policy().replace("missingKey: fallback", "missingKey: reject"),
        &pods,
    );
    let r = send(envoy.listener, "/", &[]).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.backend().is_none());
    let r = send(envoy.listener, "/", &[(b"x-account", b"account-1")]).unwrap();
    assert_eq!(
        r.backend().unwrap(),
        format!("accounts-{}", shard_of(b"account-1", 4))
    );
}
