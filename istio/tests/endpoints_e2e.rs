//! `stickyctl endpoints` against a real Envoy 1.40 running sticky: the EDS
//! rewrite is picked up, new sessions avoid a drained host at once while
//! pinned sessions stay, and the apply time stickyctl measures through
//! `--admin` stays under the 100 ms target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::process::Command;

use sticky_e2e::client::Session;
use sticky_e2e::rig::{Rig, Spec};

/// An Istio-style cluster name: `|` must survive EDS, plugin config, cookie
/// and the cluster-header route.
const CLUSTER: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";

fn stickyctl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stickyctl"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stickyctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs an endpoints command with --admin; returns the apply time in ms.
fn timed(rig: &Rig, verb: &str, host: &str, extra: &[&str]) -> f64 {
    let eds = rig.plan.clusters[0].eds_path.to_str().unwrap().to_owned();
    let admin = rig.envoy.admin.to_string();
    let mut args = vec![
        "endpoints",
        verb,
        "--eds",
        &eds,
        "--cluster",
        CLUSTER,
        "--host",
        host,
        "--admin",
        &admin,
    ];
    args.extend_from_slice(extra);
    let line = stickyctl(&args);
    let ms = line
        .trim()
        .rsplit_once("envoy applied it in ")
        .and_then(|(_, t)| t.strip_suffix(" ms"))
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no apply time in {line:?}"));
    eprintln!("{line}");
    ms
}

#[test]
fn drain_is_applied_by_envoy_within_100_ms_and_new_sessions_avoid_the_host() {
    let rig = Rig::start(Spec {
        clusters: vec![(CLUSTER.into(), 100, 3)],
        ..Spec::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut sessions: Vec<(Session, String)> = (0..24)
        .map(|i| {
            let mut s = Session::new(format!("s{i}"));
            let r = s.get(rig.addr()).unwrap();
            assert_eq!(r.status, 200);
            (s, r.backend().unwrap())
        })
        .collect();
    let victim = sessions[0].1.clone();
    let host = rig.backend(&victim).host();

    let mut times = vec![timed(&rig, "drain", &host, &["--timeout", "600"])];
    // Pinned sessions keep their host; new sessions never get it.
    for (s, b) in &mut sessions {
        let r = s.get(rig.addr()).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.backend().as_ref(),
            Some(&*b),
            "{} moved off its draining host",
            s.id
        );
    }
    for i in 0..30 {
        let mut s = Session::new(format!("new{i}"));
        let r = s.get(rig.addr()).unwrap();
        assert_ne!(
            r.backend(),
            Some(victim.clone()),
            "a new session landed on the draining host"
        );
    }
    // The deadline went into the file as a JSON number.
    let eds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rig.plan.clusters[0].eds_path).unwrap())
            .unwrap();
    let lbs = eds["resources"][0]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap();
    let drained = lbs
        .iter()
        .find(|l| l["health_status"] == "DRAINING")
        .unwrap();
    assert!(drained["metadata"]["filter_metadata"]["sticky"]["drain_deadline"].is_u64());

    times.push(timed(&rig, "undrain", &host, &[]));
    times.push(timed(&rig, "drain", &host, &[]));
    times.push(timed(&rig, "remove", &host, &[]));
    times.push(timed(&rig, "add", &host, &[]));
    times.push(timed(&rig, "drain", &host, &["--timeout", "30"]));
    // Removed, then re-added: the host serves again.
    assert!(rig.wasm_failures().is_empty(), "{:?}", rig.wasm_failures());
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    eprintln!("EDS apply times (ms): {times:?}; median {median:.1}");
    assert!(
        median < 100.0,
        "median apply time {median:.1} ms is over the 100 ms target: {times:?}"
    );
    assert!(times.iter().all(|t| *t < 1000.0), "{times:?}");
}
