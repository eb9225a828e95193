//! `stickyctl serve --kubernetes --policy-name --route-name`: the LBPolicy
//! (sticky.dev/v1alpha1) and the HTTPRoute (gateway.networking.k8s.io/v1)
//! come from the API too, read through kube's real client stack from the
//! loopback fake API server (tests/fake_kube), and go through the same
//! parsers as the files. A real Envoy running sticky's wasm, bootstrapped
//! with the ADS address only, serves real backends: a canary shift in the
//! watched HTTPRoute (90/10 → 0/100) sends every new session to v2 while
//! pinned v1 sessions stay; a bad HTTPRoute (weight -1) is refused by
//! object and field and traffic goes on; a cookie TTL change in the policy
//! reaches the plugin config.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod fake_kube;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use fake_kube::objects::{pod, service, slice};
use fake_kube::{RunningApi, Shared};
use serde_json::{Value, json};
use serve::{ControlPlane, assert_all_stay, envoy_over_ads, wait_until};
use sticky_e2e::backend::Backend;
use sticky_e2e::client::Session;
use sticky_e2e::envoy::Envoy;

const NS: &str = "default";

/// The LBPolicy as the API server returns it (bookkeeping included).
fn policy(ttl: i64) -> Value {
    json!({
        "apiVersion": "sticky.dev/v1alpha1",
        "kind": "LBPolicy",
        "metadata": {"name": "reviews", "namespace": NS, "uid": "uid-policy", "generation": 1,
                     "creationTimestamp": "2026-12-04T07:00:00Z",
                     "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                        "apiVersion": "sticky.dev/v1alpha1"}]},
        "spec": {
            "targetRef": {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "reviews"},
            "default": {
                "sessionAffinity": {"type": "GENERATED_STATEFUL_COOKIE", "cookieName": "sticky", "cookieTtlSec": ttl},
                "connectionDraining": {"drainingTimeoutSec": 60},
            },
            "sticky": {"idleTimeout": "30m", "sessionHeader": "x-sticky-session"},
        },
    })
}

/// The HTTPRoute (GAMMA, on the Service reviews) with a status a mesh wrote.
fn route(v1: i64, v2: i64) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "reviews", "namespace": NS, "uid": "uid-route", "generation": 3},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
            "rules": [{"backendRefs": [
                {"group": "", "kind": "Service", "name": "reviews-v1", "port": 9080, "weight": v1},
                {"group": "", "kind": "Service", "name": "reviews-v2", "port": 9080, "weight": v2},
            ]}],
        },
        "status": {"parents": [{"parentRef": {"group": "", "kind": "Service", "name": "reviews"},
                                "controllerName": "istio.io/gateway-controller",
                                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                                "message": "", "lastTransitionTime": "2026-12-04T07:00:00Z"}]}]},
    })
}

#[test]
fn serve_follows_the_httproute_and_lbpolicy_watched_in_kubernetes() {
    let inputs = serve::Inputs::new();
    let backends: Vec<Backend> = ["reviews-v1-a", "reviews-v1-b", "reviews-v2-a"]
        .into_iter()
        .map(|n| Backend::start(n).unwrap())
        .collect();
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
        a.event("lbpolicies", "ADDED", policy(3600));
        a.event("httproutes", "ADDED", route(90, 10));
    }
    let running = RunningApi::start(api.clone());
    let kubeconfig = inputs.path("kubeconfig");
    running.write_kubeconfig(&kubeconfig, NS);

    // No --policy / --route files: only the keys (a Secret mounted as a file).
    let wasm = sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm");
    let args: Vec<std::ffi::OsString> = vec![
        "--kubernetes".into(),
        "--namespace".into(),
        NS.into(),
        "--policy-name".into(),
        "reviews".into(),
        "--route-name".into(),
        "reviews".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--wasm".into(),
        wasm.into(),
        "--envoy-listen".into(),
        "127.0.0.1:0".into(),
    ];
    let cp = ControlPlane::spawn(&inputs, &args, &[("KUBECONFIG", &kubeconfig)]);
    let log_text = || cp.log_text();
    assert!(
        wait_until(Duration::from_secs(10), || {
            stickyctl::admin::get(&cp.admin, "/readyz").is_ok()
        }),
        "never ready after the first Kubernetes list:\n{}",
        log_text()
    );

    let envoy = envoy_over_ads(&inputs, &cp, "envoy-k8s-policy", &[]);
    let addr = envoy.listener;

    // 90/10 from the API's HTTPRoute: sessions on v1 (and maybe v2).
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
    assert!(
        sessions.iter().any(|s| s.1.starts_with("reviews-v1-")),
        "no session on v1 at 90/10"
    );
    let check =
        |sessions: &mut Vec<(Session, String)>, why: &str| assert_all_stay(addr, sessions, why);
    check(&mut sessions, "steady");

    // A bad HTTPRoute update (weight -1): refused by object and field, the
    // last good snapshot keeps serving.
    api.lock()
        .unwrap()
        .event("httproutes", "MODIFIED", route(-1, 10));
    assert!(
        wait_until(Duration::from_secs(5), || cp
            .metric("sticky_input_errors_current{source=\"policy\"}")
            == 1.0),
        "the bad HTTPRoute was not refused\n{}",
        log_text()
    );
    assert_eq!(
        cp.metric("sticky_input_errors_total{source=\"policy\"}"),
        1.0
    );
    assert!(
        log_text()
            .contains("HTTPRoute default/reviews: field `spec.rules[0].backendRefs[0].weight`"),
        "{}",
        log_text()
    );
    check(&mut sessions, "bad HTTPRoute refused");

    // Canary 90/10 → 0/100 in the API: every new session on v2, pinned v1 sessions stay.
    let rds = |e: &Envoy| {
        e.stat("http.sticky_ingress.rds.sticky_routes.update_success")
            .unwrap_or(0)
    };
    let before = rds(&envoy);
    api.lock()
        .unwrap()
        .event("httproutes", "MODIFIED", route(0, 100));
    assert!(
        envoy.wait_for(Duration::from_secs(5), |e| rds(e) > before),
        "no RDS push\n{}",
        log_text()
    );
    assert_eq!(
        cp.metric("sticky_input_errors_current{source=\"policy\"}"),
        0.0
    );
    for i in 0..20 {
        let mut s = Session::new(format!("canary{i}"));
        let r = s.get(addr).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.backend().as_deref(),
            Some("reviews-v2-a"),
            "0/100 split sent a new session to v1"
        );
    }
    check(&mut sessions, "weights 0/100");

    // A status-only write (a mesh controller) is no policy change.
    let generation = stickyctl::admin::get(&cp.admin, "/status")
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap()["generation"].clone())
        .unwrap();
    {
        let mut r = route(0, 100);
        r["status"]["parents"][0]["conditions"][0]["lastTransitionTime"] =
            json!("2026-12-04T08:00:00Z");
        api.lock().unwrap().event("httproutes", "MODIFIED", r);
    }

    // The policy's cookie TTL (3600 → 600) reaches the plugin config.
    let plugin_ttl = |e: &Envoy, ttl: u64| {
        let (status, body) = e
            .admin_get("/config_dump?resource=dynamic_listeners")
            .unwrap();
        status == 200
            && String::from_utf8_lossy(&body)
                .replace("\\\"", "\"")
                .contains(&format!("\"ttl_seconds\":{ttl}"))
    };
    assert!(plugin_ttl(&envoy, 3600), "the plugin config lacks ttl 3600");
    api.lock()
        .unwrap()
        .event("lbpolicies", "MODIFIED", policy(600));
    assert!(
        envoy.wait_for(Duration::from_secs(5), |e| plugin_ttl(e, 600)),
        "the cookie TTL change never reached the plugin config\n{}",
        log_text()
    );
    let after = stickyctl::admin::get(&cp.admin, "/status")
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap()["generation"].clone())
        .unwrap();
    assert_eq!(
        after.as_u64().unwrap(),
        generation.as_u64().unwrap() + 1,
        "one snapshot for the TTL change, none for the status write"
    );
    check(&mut sessions, "cookie TTL change");
    assert_eq!(
        cp.metric("sticky_xds_nacks_total{group=\"envoy\",type=\"lds\"}"),
        0.0
    );
    assert!(!envoy.log().contains("panicked at"), "{}", envoy.log());
    drop(envoy);
    drop(cp);
    drop(running);
}
