//! `stickyctl serve` against real clients: an Envoy 1.40 running sticky's
//! wasm, bootstrapped with nothing but the ADS address, and a proxyless
//! grpcio client on `xds:///reviews`. Every request says which backend
//! answered: sessions stick, a DRAINING endpoint takes no new sessions but
//! keeps its pinned ones, removal at the deadline moves them without an
//! error; weights, key rotation and a refused bad policy are pushed live.
//! The push latency (endpoint file renamed → client applied it) is measured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod serve;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serve::{
    ControlPlane, GrpcBackend, GrpcClient, Inputs, assert_all_stay, envoy_over_ads, unix_now,
    wait_until,
};
use sticky_e2e::backend::Backend;
use sticky_e2e::client::Session;
use sticky_e2e::envoy::Envoy;
use stickyctl::admin::{HostState, host_state};

fn distribution(name: &str, mut ms: Vec<f64>) -> f64 {
    assert!(!ms.is_empty(), "no {name} latencies");
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    eprintln!(
        "{name} push latency (ms), n={}: min {:.1} median {median:.1} max {:.1}: {ms:.1?}",
        ms.len(),
        ms[0],
        ms[ms.len() - 1]
    );
    median
}

fn keys(ids: &[(&str, u8)]) -> String {
    use base64::Engine as _;
    let list: Vec<serde_json::Value> = ids
        .iter()
        .map(|(id, b)| {
            serde_json::json!({"id": id, "secret": base64::engine::general_purpose::STANDARD.encode([*b; 32])})
        })
        .collect();
    serde_json::json!({ "keys": list }).to_string()
}

#[test]
fn proxyless_grpc_sessions_stick_drain_and_move_at_the_deadline() {
    let inputs = Inputs::new();
    let g: Vec<GrpcBackend> = ["g1", "g2", "g3"]
        .into_iter()
        .map(GrpcBackend::start)
        .collect();
    let name_of = |addr: &str| g.iter().find(|b| b.addr == addr).unwrap().name.clone();
    inputs.endpoints(
        "reviews-v1",
        &[(&g[0].addr, "serving", None), (&g[1].addr, "serving", None)],
    );
    inputs.endpoints("reviews-v2", &[(&g[2].addr, "serving", None)]);
    let cp = ControlPlane::start(&inputs, &[]);
    let boot = inputs.path("grpc-bootstrap.json");
    std::fs::write(
        &boot,
        stickyctl::serve::bootstrap::grpc("grpc-test", &cp.xds).to_string(),
    )
    .unwrap();
    let mut c = GrpcClient::start(&boot, "reviews");

    let mut pinned: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..16 {
        let s = format!("s{i}");
        let r = c.call(&s);
        assert_eq!(r.error, None, "{s}");
        let b = r.backend.unwrap();
        for _ in 0..3 {
            assert_eq!(c.call(&s).backend.as_deref(), Some(b.as_str()), "{s} moved");
        }
        pinned.insert(s, b);
    }
    let on = |b: &str| pinned.values().filter(|x| *x == b).count();
    let victim = if on("g1") >= on("g2") { &g[0] } else { &g[1] };
    let other = if victim.name == "g1" { &g[1] } else { &g[0] };
    assert!(on(&victim.name) > 0, "no session on v1: {pinned:?}");

    let deadline = unix_now() + 3;
    let before = cp.applied_ms("grpc", "eds").len();
    inputs.endpoints(
        "reviews-v1",
        &[
            (&victim.addr, "terminating", Some(deadline)),
            (&other.addr, "serving", None),
        ],
    );
    assert!(wait_until(Duration::from_secs(5), || cp
        .applied_ms("grpc", "eds")
        .len()
        > before));
    for (s, b) in &pinned {
        assert_eq!(
            c.call(s).backend.as_deref(),
            Some(b.as_str()),
            "{s} left its draining host"
        );
    }
    for i in 0..30 {
        let r = c.call(&format!("new{i}"));
        assert_eq!(r.error, None);
        assert_ne!(
            r.backend.as_deref(),
            Some(victim.name.as_str()),
            "a new session got the draining host"
        );
    }
    // The deadline passes: the server removes the endpoint (gRPC enforces none).
    let before = cp.applied_ms("grpc", "eds").len();
    assert!(wait_until(Duration::from_secs(6), || cp
        .applied_ms("grpc", "eds")
        .len()
        > before));
    assert!(unix_now() >= deadline);
    for (s, b) in &pinned {
        let r = c.call(s);
        assert_eq!(r.error, None, "{s}: a client-visible error at the deadline");
        if *b == victim.name {
            assert_ne!(
                r.backend.as_deref(),
                Some(victim.name.as_str()),
                "{s} still on a removed host"
            );
        } else {
            assert_eq!(
                r.backend.as_deref(),
                Some(b.as_str()),
                "{s} moved off a live host"
            );
        }
    }
    // Push latency: toggle an endpoint's state, each change waited for.
    for i in 0..8 {
        let state = if i % 2 == 0 { "terminating" } else { "serving" };
        let before = cp.applied_ms("grpc", "eds").len();
        inputs.endpoints("reviews-v2", &[(&g[2].addr, state, None)]);
        assert!(wait_until(Duration::from_secs(5), || cp
            .applied_ms("grpc", "eds")
            .len()
            > before));
    }
    let median = distribution("grpc eds", cp.applied_ms("grpc", "eds"));
    assert!(median <= 100.0, "median {median} ms over the 100 ms target");
    assert_eq!(
        cp.metric("sticky_xds_nacks_total{group=\"grpc\",type=\"eds\"}"),
        0.0
    );
    assert_eq!(
        cp.metric("sticky_xds_clients_connected{group=\"grpc\"}"),
        1.0
    );
    let _ = name_of;
}

fn envoy_start(inputs: &Inputs, cp: &ControlPlane, name: &str) -> Envoy {
    envoy_over_ads(inputs, cp, name, &[])
}

/// Waits until Envoy shows `host` of `cluster` as `want`; the time it took.
fn envoy_applied(
    envoy: &Envoy,
    cluster: &str,
    host: &str,
    since: Instant,
    want: &HostState,
) -> Duration {
    let admin = envoy.admin.to_string();
    let (ip, port) = host.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    loop {
        if host_state(&admin, cluster, ip, port).unwrap() == *want {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{host} never became {want:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn envoy_over_ads_sessions_stick_drain_rotate_keys_and_shift_weights() {
    let inputs = Inputs::new();
    inputs.write("keys.json", &keys(&[("k1", 0x11)]));
    let b: Vec<Backend> = ["b1", "b2", "b3", "b4"]
        .into_iter()
        .map(|n| Backend::start(n).unwrap())
        .collect();
    let host = |n: &str| b.iter().find(|x| x.name == n).unwrap().host();
    inputs.endpoints(
        "reviews-v1",
        &[
            (&host("b1"), "serving", None),
            (&host("b2"), "serving", None),
            (&host("b3"), "serving", None),
        ],
    );
    inputs.endpoints("reviews-v2", &[(&host("b4"), "serving", None)]);
    let wasm = sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm");
    let cp = ControlPlane::start(
        &inputs,
        &[
            "--wasm",
            wasm.to_str().unwrap(),
            "--envoy-listen",
            "127.0.0.1:0",
        ],
    );
    let envoy = envoy_start(&inputs, &cp, "envoy-a");
    let addr = envoy.listener;

    let mut sessions: Vec<(Session, String)> = (0..24)
        .map(|i| {
            let mut s = Session::new(format!("s{i}"));
            let r = s.get(addr).unwrap();
            assert_eq!(r.status, 200, "{}", cp.log_text());
            (s, r.backend().unwrap())
        })
        .collect();
    let check_all_stay =
        |sessions: &mut Vec<(Session, String)>, why: &str| assert_all_stay(addr, sessions, why);
    check_all_stay(&mut sessions, "steady");

    // Drain with a deadline: pinned stay, new ones avoid it; gone at the deadline.
    let v1 = ["b1", "b2", "b3"];
    let victim = *v1
        .iter()
        .max_by_key(|n| sessions.iter().filter(|(_, b)| b == *n).count())
        .unwrap();
    let deadline = unix_now() + 3;
    let eps_v1 = |drained: Option<(&str, Option<u64>)>| {
        let list: Vec<(String, &str, Option<u64>)> = v1
            .iter()
            .map(|n| match drained {
                Some((d, dl)) if d == *n => (host(n), "terminating", dl),
                _ => (host(n), "serving", None),
            })
            .collect();
        let refs: Vec<(&str, &str, Option<u64>)> =
            list.iter().map(|(h, s, d)| (h.as_str(), *s, *d)).collect();
        inputs.endpoints("reviews-v1", &refs);
    };
    let t = Instant::now();
    eps_v1(Some((victim, Some(deadline))));
    let mut times = vec![envoy_applied(
        &envoy,
        "reviews-v1",
        &host(victim),
        t,
        &HostState::Present("DRAINING".into()),
    )];
    check_all_stay(&mut sessions, "draining");
    for i in 0..30 {
        let mut s = Session::new(format!("new{i}"));
        let r = s.get(addr).unwrap();
        assert_eq!(r.status, 200);
        assert_ne!(
            r.backend().as_deref(),
            Some(victim),
            "a new session got the draining host"
        );
    }
    envoy_applied(&envoy, "reviews-v1", &host(victim), t, &HostState::Absent);
    assert!(unix_now() >= deadline, "removed before its deadline");
    for (s, want) in &mut sessions {
        let r = s.get(addr).unwrap();
        assert_eq!(r.status, 200, "a client-visible error at the deadline");
        let got = r.backend().unwrap();
        if want == victim {
            assert_ne!(got, victim);
            *want = got;
        } else {
            assert_eq!(&got, want, "{} moved off a live host", s.id);
        }
    }
    // Push latency: drain / undrain, each measured at Envoy's admin.
    eps_v1(None);
    for i in 0..8 {
        let t = Instant::now();
        let (d, want) = if i % 2 == 0 {
            (Some(("b1", None)), "DRAINING")
        } else {
            (None, "HEALTHY")
        };
        eps_v1(d);
        times.push(envoy_applied(
            &envoy,
            "reviews-v1",
            &host("b1"),
            t,
            &HostState::Present(want.into()),
        ));
    }
    let ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let median = distribution("envoy eds (file → envoy admin)", ms);
    assert!(median <= 100.0, "median {median} ms over the 100 ms target");
    distribution(
        "envoy eds (file event → ACK)",
        cp.applied_ms("envoy", "eds"),
    );
    check_all_stay(&mut sessions, "after drain toggles");

    // Key rotation: [k1] → [k2, k1] → [k2], no session lost, no restart.
    let lds = |e: &Envoy| e.stat("listener_manager.lds.update_success").unwrap_or(0);
    for (step, ks) in [
        ("[k2, k1]", keys(&[("k2", 0x22), ("k1", 0x11)])),
        ("[k2]", keys(&[("k2", 0x22)])),
    ] {
        let before = lds(&envoy);
        inputs.write("keys.json", &ks);
        assert!(
            envoy.wait_for(Duration::from_secs(10), |e| lds(e) > before
                && e.stat("listener_manager.total_listeners_warming") == Some(0)),
            "{step}: no new listener"
        );
        std::thread::sleep(Duration::from_millis(200));
        check_all_stay(&mut sessions, step);
    }

    distribution(
        "envoy lds, key rotation (file event → ACK)",
        cp.applied_ms("envoy", "lds"),
    );

    // A bad endpoint file is refused (file:line:field in the log); the last
    // good endpoints keep serving.
    inputs.write("eps/reviews-v2.json", r#"{"service": "reviews-v2", "endpoints": [{"address": "127.0.0.1", "port": 1, "state": "gone"}]}"#);
    assert!(wait_until(Duration::from_secs(5), || cp
        .metric("sticky_input_errors_current{source=\"endpoints\"}")
        == 1.0));
    assert!(
        cp.log_text()
            .contains("reviews-v2.json:1: field `endpoints[0].state`"),
        "{}",
        cp.log_text()
    );
    check_all_stay(&mut sessions, "bad endpoint file refused");
    inputs.endpoints("reviews-v2", &[(&host("b4"), "serving", None)]);
    assert!(wait_until(Duration::from_secs(5), || cp
        .metric("sticky_input_errors_current{source=\"endpoints\"}")
        == 0.0));

    // A bad policy is refused; traffic is unaffected.
    let good = std::fs::read_to_string(inputs.path("policy.yaml")).unwrap();
    inputs.write(
        "policy.yaml",
        &good.replace("cookieTtlSec: 3600", "cookieTtlSec: -5"),
    );
    assert!(wait_until(Duration::from_secs(5), || cp
        .metric("sticky_input_errors_current{source=\"policy\"}")
        == 1.0));
    check_all_stay(&mut sessions, "bad policy refused");
    inputs.write("policy.yaml", &good);
    assert!(wait_until(Duration::from_secs(5), || cp
        .metric("sticky_input_errors_current{source=\"policy\"}")
        == 0.0));

    // Canary 90/10 → 0/100: new sessions all on v2, pinned v1 sessions stay.
    let rds = |e: &Envoy| {
        e.stat("http.sticky_ingress.rds.sticky_routes.update_success")
            .unwrap_or(0)
    };
    let before = rds(&envoy);
    inputs.weights(0, 100);
    assert!(
        envoy.wait_for(Duration::from_secs(5), |e| rds(e) > before),
        "no RDS push"
    );
    for i in 0..20 {
        let mut s = Session::new(format!("canary{i}"));
        let r = s.get(addr).unwrap();
        assert_eq!(
            r.backend().as_deref(),
            Some("b4"),
            "0/100 split sent a new session to v1"
        );
    }
    check_all_stay(&mut sessions, "weights 0/100");
    assert_eq!(
        cp.metric("sticky_xds_nacks_total{group=\"envoy\",type=\"lds\"}"),
        0.0
    );
    assert!(!envoy.log().contains("panicked at"), "{}", envoy.log());
}

fn stickyctl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stickyctl"))
        .args(args)
        .output()
        .unwrap()
}

/// Two Envoy replicas running the native module (direct wiring) from one
/// control plane: a session opened on one is kept by the other, `stickyctl
/// endpoints --server` drains through the admin API, and a control-plane
/// restart leaves both serving, then resyncs them.
#[test]
fn two_native_envoys_follow_admin_changes_and_survive_a_control_plane_restart() {
    let inputs = Inputs::new();
    let b: Vec<Backend> = ["b1", "b2", "b3", "b4"]
        .into_iter()
        .map(|n| Backend::start(n).unwrap())
        .collect();
    let host = |n: &str| b.iter().find(|x| x.name == n).unwrap().host();
    inputs.endpoints(
        "reviews-v1",
        &[
            (&host("b1"), "serving", None),
            (&host("b2"), "serving", None),
            (&host("b3"), "serving", None),
        ],
    );
    inputs.endpoints("reviews-v2", &[(&host("b4"), "serving", None)]);
    let native = sticky_e2e::artifact("STICKY_NATIVE", "dist/libsticky.so");
    let search = native.parent().unwrap().to_owned();
    let flags = [
        "--native",
        "sticky",
        "--wiring",
        "direct",
        "--envoy-listen",
        "127.0.0.1:0",
    ];
    let cp = ControlPlane::start(&inputs, &flags);
    let env = [("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", search.as_path())];
    let a = envoy_over_ads(&inputs, &cp, "envoy-a", &env);
    let c = envoy_over_ads(&inputs, &cp, "envoy-b", &env);
    assert!(wait_until(Duration::from_secs(5), || cp
        .metric("sticky_xds_clients_connected{group=\"envoy\"}")
        == 2.0));

    let mut sessions: Vec<(Session, String)> = (0..16)
        .map(|i| {
            let mut s = Session::new(format!("s{i}"));
            let r = s.get(a.listener).unwrap();
            assert_eq!(r.status, 200);
            (s, r.backend().unwrap())
        })
        .collect();
    let stay = |sessions: &mut Vec<(Session, String)>, why: &str| {
        for (i, (s, want)) in sessions.iter_mut().enumerate() {
            // Alternate replicas: a session is one cookie, whichever proxy reads it.
            let addr = if i % 2 == 0 { a.listener } else { c.listener };
            let r = s.get(addr).unwrap();
            assert_eq!(r.status, 200, "{why}");
            assert_eq!(
                r.backend().as_deref(),
                Some(want.as_str()),
                "{} moved ({why})",
                s.id
            );
        }
    };
    stay(&mut sessions, "two replicas");

    let victim = ["b1", "b2", "b3"]
        .into_iter()
        .max_by_key(|n| sessions.iter().filter(|(_, b)| b == n).count())
        .unwrap();
    let t = Instant::now();
    let out = stickyctl(&[
        "endpoints",
        "drain",
        "--server",
        &cp.admin,
        "--cluster",
        "reviews-v1",
        "--host",
        &host(victim),
        "--timeout",
        "600",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line.contains("drained") && line.contains("drain_deadline"),
        "{line}"
    );
    for e in [&a, &c] {
        let took = envoy_applied(
            e,
            "reviews-v1",
            &host(victim),
            t,
            &HostState::Present("DRAINING".into()),
        );
        eprintln!(
            "admin drain applied by a replica in {:.1} ms",
            took.as_secs_f64() * 1000.0
        );
    }
    let file = std::fs::read_to_string(inputs.path("eps/reviews-v1.json")).unwrap();
    assert!(
        file.contains("terminating"),
        "the endpoint file is the source of truth: {file}"
    );
    stay(&mut sessions, "drained via --server");
    for i in 0..20 {
        let mut s = Session::new(format!("new{i}"));
        let r = s.get(c.listener).unwrap();
        assert_ne!(
            r.backend().as_deref(),
            Some(victim),
            "a new session got the draining host"
        );
    }
    let refused = stickyctl(&[
        "endpoints",
        "add",
        "--server",
        &cp.admin,
        "--cluster",
        "reviews-v1",
        "--host",
        &host("b1"),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already in"));

    // Control plane down: both replicas keep serving on their last config.
    let xds = cp.xds.clone();
    drop(cp);
    stay(&mut sessions, "control plane down");
    let cp = ControlPlane::start_at(&inputs, &xds, &flags);
    assert!(
        wait_until(Duration::from_secs(20), || cp
            .metric("sticky_xds_clients_connected{group=\"envoy\"}")
            == 2.0),
        "the replicas did not reconnect: {}",
        cp.log_text()
    );
    let t = Instant::now();
    let out = stickyctl(&[
        "endpoints",
        "undrain",
        "--server",
        &cp.admin,
        "--cluster",
        "reviews-v1",
        "--host",
        &host(victim),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for e in [&a, &c] {
        envoy_applied(
            e,
            "reviews-v1",
            &host(victim),
            t,
            &HostState::Present("HEALTHY".into()),
        );
    }
    stay(&mut sessions, "after the restart");
    assert_eq!(
        cp.metric("sticky_xds_nacks_total{group=\"envoy\",type=\"lds\"}"),
        0.0
    );
}
