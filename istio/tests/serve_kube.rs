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

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kube::{Shared, fake_api_server};
use serde_json::{Value, json};
use serve::{Proc, unix_now, wait_until};
use sticky_e2e::backend::Backend;
use sticky_e2e::client::Session;
use sticky_e2e::envoy::Envoy;
use stickyctl::admin::HostState;

const NS: &str = "default";

fn rfc3339(unix: u64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-svc-{name}"),
                     "labels": {"app": "reviews"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": {"app": name},
                 "ports": [{"name": "http", "port": 9080, "protocol": "TCP", "targetPort": "http"}]},
        "status": {"loadBalancer": {}},
    })
}

fn pod(name: &str, deleted_at: Option<u64>) -> Value {
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-pod-{name}"),
                     "labels": {"app": name.rsplit_once('-').unwrap().0}},
        "spec": {"terminationGracePeriodSeconds": 60,
                 "containers": [{"name": "app", "image": "reviews:1",
                                 "ports": [{"name": "http", "containerPort": 9080}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    });
    if let Some(at) = deleted_at {
        p["metadata"]["deletionTimestamp"] = json!(rfc3339(at));
        p["metadata"]["deletionGracePeriodSeconds"] = json!(60);
    }
    p
}

/// One slice per backend: all backends listen on 127.0.0.1, each on its own
/// port, and an EndpointSlice carries one port for all its endpoints.
fn slice(service: &str, pod: &str, port: u16, terminating: bool) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "metadata": {"name": format!("{pod}-slice"), "namespace": NS,
                     "uid": format!("uid-slice-{pod}"),
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service,
                                          "uid": format!("uid-svc-{service}"), "controller": true,
                                          "blockOwnerDeletion": true}]},
        "endpoints": [{
            "addresses": ["127.0.0.1"],
            "conditions": {"ready": !terminating, "serving": true, "terminating": terminating},
            "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "name": pod, "namespace": NS, "uid": format!("uid-pod-{pod}")},
        }],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    })
}

/// The fake API server on its own runtime thread; its URL.
fn start_api(
    api: Shared,
) -> (
    String,
    std::thread::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (url, task) = fake_api_server(api).await;
            url_tx.send(url).unwrap();
            let _ = stop_rx.await;
            task.abort();
        });
    });
    (url_rx.recv().unwrap(), thread, stop_tx)
}

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
            a.event("services", "ADDED", service(s));
        }
        for b in &backends {
            a.event("pods", "ADDED", pod(&b.name, None));
            let svc = b.name.rsplit_once('-').unwrap().0;
            a.event(
                "endpointslices",
                "ADDED",
                slice(svc, &b.name, b.addr.port(), false),
            );
        }
    }
    let (url, api_thread, stop_api) = start_api(api.clone());
    let kubeconfig = inputs.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             users:\n- name: test\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n    namespace: {NS}\n\
             current-context: fake\n"
        ),
    )
    .unwrap();

    let wasm = sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm");
    let log = inputs.path("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stickyctl"))
        .arg("serve")
        .arg("-p")
        .arg(inputs.path("policy.yaml"))
        .arg("-r")
        .arg(inputs.path("route.yaml"))
        .arg("--keys")
        .arg(inputs.path("keys.json"))
        .args(["--kubernetes", "--namespace", NS])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--wasm")
        .arg(&wasm)
        .args(["--envoy-listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _serve = Proc(child);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let addrs: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("first line {line:?}: {e}\n{}", log_text()));
    let (xds, admin) = (
        addrs["xds"].as_str().unwrap().to_owned(),
        addrs["admin"].as_str().unwrap().to_owned(),
    );
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

    let dir = inputs.path("envoy");
    std::fs::create_dir_all(&dir).unwrap();
    let boot = dir.join("envoy.json");
    std::fs::write(
        &boot,
        stickyctl::serve::bootstrap::envoy("envoy-k8s", &xds, 0).to_string(),
    )
    .unwrap();
    let bin = sticky_e2e::artifact("STICKY_ENVOY", ".venv/envoy");
    let envoy =
        Envoy::start(&bin, &boot, &dir, &[]).unwrap_or_else(|e| panic!("{e}\n{}", log_text()));
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
    let check = |sessions: &mut Vec<(Session, String)>, why: &str| {
        for (s, want) in sessions.iter_mut() {
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
    check(&mut sessions, "steady");

    // `kubectl delete pod reviews-v1-a` (grace 60 s, the policy's
    // drainingTimeoutSec 60): the Pod is killed 4 s from now.
    let kill_at = unix_now() + 4;
    {
        let mut a = api.lock().unwrap();
        a.event("pods", "MODIFIED", pod("reviews-v1-a", Some(kill_at)));
        a.event(
            "endpointslices",
            "MODIFIED",
            slice("reviews-v1", "reviews-v1-a", port("reviews-v1-a"), true),
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
        let mut bad = slice("reviews-v2", "reviews-v2-bad", 1, false);
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
        slice("reviews-v1", "reviews-v1-b", port("reviews-v1-b"), false),
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
    let _ = stop_api.send(());
    api_thread.join().unwrap();
}
