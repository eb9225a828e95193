//! `stickyctl serve --kubernetes`: endpoints come from EndpointSlices, Pods
//! and Services read through kube's real client stack from a loopback fake
//! API server (tests/fake_kube) that answers list and watch with API object
//! JSON, and a real Envoy 1.40 running sticky's wasm, bootstrapped with the
//! ADS address only, serves real backends. Every request says which backend
//! answered: a Pod that starts terminating (`kubectl delete pod`: the slice's
//! endpoint turns `serving && terminating`, the Pod gets its
//! `deletionTimestamp`) keeps its pinned sessions and takes no new ones,
//! until its deadline moves them; a deleted slice removes its endpoint; a
//! malformed slice is refused by object and field while traffic goes on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod fake_kube;
mod serve;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kube::objects::{pod, service, slice};
use fake_kube::{RunningApi, Shared};
use serde_json::json;
use serve::{ControlPlane, assert_all_stay, envoy_over_ads, unix_now, wait_until};
use sticky_e2e::backend::Backend;
use sticky_e2e::client::Session;
use stickyctl::admin::HostState;

const NS: &str = "default";

#[test]
fn serve_from_kubernetes_drains_a_terminating_pod_and_drops_a_deleted_slice() {
    let inputs = serve::Inputs::new();
    let backends: Vec<Backend> = [
        "reviews-v1-a",
        "reviews-v1-b",
        "reviews-v1-c",
        "reviews-v2-a",
    ]
    .into_iter()
    .map(|n| Backend::start(n).unwrap())
    .collect();
    let port = |n: &str| backends.iter().find(|b| b.name == n).unwrap().addr.port();
    let api: Shared = Arc::default();
    {
        let mut a = api.lock().unwrap();
        a.namespaces = vec![NS.into()];
        for s in ["reviews-v1", "reviews-v2"] {
            a.event("services", "ADDED", service(NS, s));
        }
        for b in &backends {
            a.event("pods", "ADDED", pod(NS, &b.name, None));
            let svc = b.name.rsplit_once('-').unwrap().0;
            a.event(
                "endpointslices",
                "ADDED",
                slice(NS, svc, &b.name, b.addr.port(), false),
            );
        }
    }
    let running = RunningApi::start(api.clone());
    let kubeconfig = inputs.path("kubeconfig");
    running.write_kubeconfig(&kubeconfig, NS);

    let wasm = sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm");
    let args: Vec<std::ffi::OsString> = vec![
        "-p".into(),
        inputs.path("policy.yaml").into(),
        "-r".into(),
        inputs.path("route.yaml").into(),
        "--kubernetes".into(),
        "--namespace".into(),
        NS.into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--wasm".into(),
        wasm.into(),
        "--envoy-listen".into(),
        "127.0.0.1:0".into(),
    ];
    let cp = ControlPlane::spawn(&inputs, &args, &[("KUBECONFIG", &kubeconfig)]);
    let log_text = || cp.log_text();
    let admin = cp.admin.clone();
    let get = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                &format!("http://{admin}{path}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        wait_until(Duration::from_secs(10), || get("/readyz")
            .ends_with("\n200")),
        "never ready after the first Kubernetes list:\n{}",
        log_text()
    );

    let envoy = envoy_over_ads(&inputs, &cp, "envoy-k8s", &[]);
    let addr = envoy.listener;

    // Sessions over the endpoints the API server listed.
    let mut sessions: Vec<(Session, String)> = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        let mut s = Session::new(format!("s{}", sessions.len()));
        match s.get(addr) {
            Ok(r) if r.status == 200 => {
                sessions.push((s, r.backend().unwrap()));
                sessions.len() >= 30
            }
            _ => false,
        }
    }));
    let on = |sessions: &[(Session, String)], b: &str| sessions.iter().filter(|s| s.1 == b).count();
    assert!(
        on(&sessions, "reviews-v1-a") > 0,
        "no session on the victim"
    );
    let check =
        |sessions: &mut Vec<(Session, String)>, why: &str| assert_all_stay(addr, sessions, why);
    check(&mut sessions, "steady");

    // `kubectl delete pod reviews-v1-a` (grace 60 s, the policy's
    // drainingTimeoutSec 60): the Pod is killed 4 s from now.
    let kill_at = unix_now() + 4;
    {
        let mut a = api.lock().unwrap();
        a.event("pods", "MODIFIED", pod(NS, "reviews-v1-a", Some(kill_at)));
        a.event(
            "endpointslices",
            "MODIFIED",
            slice(NS, "reviews-v1", "reviews-v1-a", port("reviews-v1-a"), true),
        );
    }
    let admin_url = envoy.admin.to_string();
    let victim = format!("127.0.0.1:{}", port("reviews-v1-a"));
    assert!(
        wait_until(Duration::from_secs(5), || {
            stickyctl::admin::host_state(
                &admin_url,
                "reviews-v1",
                "127.0.0.1",
                port("reviews-v1-a"),
            )
            .is_ok_and(|s| s == HostState::Present("DRAINING".into()))
        }),
        "{victim} never became DRAINING in Envoy\n{}",
        log_text()
    );
    check(&mut sessions, "draining: pinned sessions stay");
    for i in 0..20 {
        let mut s = Session::new(format!("new{i}"));
        let r = s.get(addr).unwrap();
        assert_eq!(r.status, 200);
        assert_ne!(
            r.backend().as_deref(),
            Some("reviews-v1-a"),
            "a new session on a draining pod"
        );
    }

    // A slice the API server should never hold (an address that is not
    // one): refused by object and field, everything else keeps serving.
    {
        let mut bad = slice(NS, "reviews-v2", "reviews-v2-bad", 1, false);
        bad["endpoints"][0]["addresses"] = json!(["not-an-ip"]);
        api.lock().unwrap().event("endpointslices", "ADDED", bad);
    }
    assert!(
        wait_until(Duration::from_secs(5), || get("/metrics")
            .contains("sticky_input_errors_total{source=\"kubernetes\"}")),
        "the bad slice was not counted\n{}",
        log_text()
    );
    assert!(
        log_text().contains("reviews-v2-bad-slice"),
        "{}",
        log_text()
    );
    check(&mut sessions, "a refused object changes nothing");

    // Past the deadline the endpoint leaves EDS: its sessions move, once,
    // within their cluster, without an error.
    let wait = Duration::from_secs(kill_at.saturating_sub(unix_now()) + 1);
    std::thread::sleep(wait);
    let start = Instant::now();
    for (s, want) in sessions.iter_mut() {
        let r = s.get(addr).unwrap();
        assert_eq!(r.status, 200);
        let now_on = r.backend().unwrap();
        if *want == "reviews-v1-a" {
            assert!(
                now_on.starts_with("reviews-v1-"),
                "left its cluster: {now_on}"
            );
            assert_ne!(now_on, "reviews-v1-a");
            *want = now_on;
        } else {
            assert_eq!(&now_on, want, "{} moved without cause", s.id);
        }
    }
    check(&mut sessions, "after the deadline");
    eprintln!("deadline applied; checks took {:?}", start.elapsed());

    // A deleted slice: its endpoint is gone, its sessions move.
    api.lock().unwrap().event(
        "endpointslices",
        "DELETED",
        slice(
            NS,
            "reviews-v1",
            "reviews-v1-b",
            port("reviews-v1-b"),
            false,
        ),
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            stickyctl::admin::host_state(
                &admin_url,
                "reviews-v1",
                "127.0.0.1",
                port("reviews-v1-b"),
            )
            .is_ok_and(|s| s == HostState::Absent)
        }),
        "the deleted slice's endpoint stayed in Envoy\n{}",
        log_text()
    );
    for (s, want) in sessions.iter_mut() {
        let r = s.get(addr).unwrap();
        assert_eq!(r.status, 200);
        let now_on = r.backend().unwrap();
        assert_ne!(now_on, "reviews-v1-b");
        if *want == "reviews-v1-b" {
            *want = now_on;
        } else {
            assert_eq!(&now_on, want, "{} moved without cause", s.id);
        }
    }
    drop(envoy);
    drop(running);
}
