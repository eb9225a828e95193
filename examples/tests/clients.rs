//! The two clients as a user runs them, through Envoy + sticky: the
//! browser-like shopper (cookie jar, HTTP/1.1) and the gRPC counter client
//! (HTTP/2, header mode). Both exit 0 only if every request reached the
//! instance holding their state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::process::Command;

use sticky_examples::instance::Kind;
use sticky_examples::stage::{Mode, Stage, StageSpec};

fn stage(kind: Kind) -> Stage {
    let spec = StageSpec {
        kind,
        mode: Mode::Sticky,
        clusters: vec![("v1".into(), 90, 2), ("v2".into(), 10, 2)],
        listen_port: 0,
    };
    Stage::start(&spec, &common::artifacts()).unwrap_or_else(|e| panic!("{e}"))
}

fn run(bin: &str, args: &[&str]) -> String {
    let out = Command::new(common::bin(bin)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn instances(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split("→ ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn shopper_keeps_its_cart_on_one_instance_through_envoy() {
    let stage = stage(Kind::Cart);
    let addr = stage.addr().to_string();
    for _ in 0..3 {
        let out = run("sticky-shopper", &["--envoy", &addr, "--items", "6"]);
        let seen = instances(&out);
        assert_eq!(seen.len(), 6, "{out}");
        assert!(seen.iter().all(|i| *i == seen[0]), "{out}");
        assert!(
            out.contains("cookie jar: ") && out.contains("sticky="),
            "{out}"
        );
        assert!(out.contains("cart="), "{out}");
    }
    assert!(stage.wasm_failures().is_empty());
}

#[test]
fn grpc_client_keeps_its_counter_with_the_session_header_over_http2() {
    let stage = stage(Kind::Counter);
    let addr = stage.addr().to_string();
    for i in 0..3 {
        let session = format!("grpc-{i}");
        let out = run(
            "sticky-counter-client",
            &["--envoy", &addr, "--calls", "6", "--session", &session],
        );
        let seen = instances(&out);
        assert_eq!(seen.len(), 6, "{out}");
        assert!(seen.iter().all(|i| *i == seen[0]), "{out}");
        assert!(out.contains("(sent x-sticky-session)"), "{out}");
    }
    let pinned = stage
        .sticky_counters()
        .into_iter()
        .find(|(k, _)| k.ends_with("sticky.requests_pinned"))
        .map_or(0, |(_, v)| v);
    assert!(pinned >= 15, "pinned {pinned}");
    assert!(stage.wasm_failures().is_empty());
}
