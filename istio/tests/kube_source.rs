//! The Kubernetes endpoint source through kube's real client stack (hyper,
//! list + watch, resourceVersion bookkeeping) against a loopback fake API
//! server that answers list and watch requests with API object JSON from
//! `testdata/kube/`, as the API server would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stickyctl::serve::source::files::{Endpoint, State as EpState};
use stickyctl::serve::source::kube::{self as ks, Backend, Params, Update};
use tokio::sync::mpsc;

mod fake_kube;
use fake_kube::{Shared, fake_api_server};

/// `2026-12-04T10:15:30Z`, the terminating Pod's deletionTimestamp (grace 60 s).
const KILL_AT: u64 = 1_796_379_330;

fn fixture(name: &str) -> Value {
    let path = format!("{}/testdata/kube/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ep(ip: &str, port: u16, state: EpState, deadline: Option<u64>) -> Endpoint {
    Endpoint {
        address: ip.parse::<IpAddr>().unwrap(),
        port,
        state,
        deadline,
    }
}

/// The next update satisfying `done` (earlier ones are intermediate states).
async fn until(rx: &mut mpsc::UnboundedReceiver<Update>, done: impl Fn(&Update) -> bool) -> Update {
    loop {
        let u = rx.recv().await.expect("the source stopped");
        if done(&u) {
            return u;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_source_drains_a_terminating_pod_and_drops_a_deleted_slice() {
    let api: Shared = Arc::default();
    {
        let mut a = api.lock().unwrap();
        for s in ["service-reviews-v1", "service-reviews-v2"] {
            a.event("services", "ADDED", fixture(s));
        }
        for p in [
            "pod-reviews-v1-2xkqp",
            "pod-reviews-v1-8mfzt",
            "pod-reviews-v2-qw4rt",
            "pod-reviews-v2-zz9km",
        ] {
            a.event("pods", "ADDED", fixture(p));
        }
        for s in ["endpointslice-reviews-v1", "endpointslice-reviews-v2"] {
            a.event("endpointslices", "ADDED", fixture(s));
        }
    }
    let (url, server) = fake_api_server(api.clone()).await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let backend = |service: &str, port| Backend {
        service: service.into(),
        namespace: "shop".into(),
        port,
    };
    let params = Params {
        backends: vec![backend("reviews-v1", 9080), backend("reviews-v2", 80)],
        draining_timeout: Some(30),
    };
    let (source, mut rx) = ks::start(client, "shop", params);

    let scenario = async {
        // Initial list → the map.
        let first = rx.recv().await.expect("no first update");
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        assert_eq!(
            first.endpoints["reviews-v1"],
            vec![
                ep("10.244.1.17", 9080, EpState::Serving, None),
                ep("10.244.2.23", 9080, EpState::Serving, None),
            ]
        );
        assert_eq!(
            first.endpoints["reviews-v2"],
            vec![ep("10.244.1.31", 8080, EpState::Serving, None)]
        );

        // `kubectl delete pod` (grace 60 s, drainingTimeoutSec 30): the Pod
        // gets its deletionTimestamp, the slice serving+terminating.
        {
            let mut a = api.lock().unwrap();
            a.event(
                "pods",
                "MODIFIED",
                fixture("pod-reviews-v1-8mfzt-terminating"),
            );
            a.event(
                "endpointslices",
                "MODIFIED",
                fixture("endpointslice-reviews-v1-terminating"),
            );
        }
        let draining = until(&mut rx, |u| {
            u.endpoints["reviews-v1"]
                .iter()
                .any(|e| e.deadline.is_some())
        })
        .await;
        assert_eq!(
            draining.endpoints["reviews-v1"],
            vec![
                ep("10.244.1.17", 9080, EpState::Serving, None),
                ep(
                    "10.244.2.23",
                    9080,
                    EpState::Terminating,
                    Some(KILL_AT - 30)
                ),
            ]
        );

        // A slice that does not decode is refused by object:field; the rest stays.
        api.lock().unwrap().event(
            "endpointslices",
            "ADDED",
            fixture("endpointslice-port-as-string"),
        );
        let refused = until(&mut rx, |u| !u.errors.is_empty()).await;
        assert_eq!(refused.errors.len(), 1, "{:?}", refused.errors);
        assert!(
            refused.errors[0]
                .starts_with("EndpointSlice shop/reviews-v2-badport: ports[0].port: invalid type"),
            "{:?}",
            refused.errors
        );
        assert_eq!(refused.endpoints, draining.endpoints);

        // The slices go away: reviews-v2 has no endpoints left.
        {
            let mut a = api.lock().unwrap();
            for s in ["endpointslice-port-as-string", "endpointslice-reviews-v2"] {
                a.event("endpointslices", "DELETED", fixture(s));
            }
        }
        let gone = until(&mut rx, |u| {
            u.endpoints["reviews-v2"].is_empty() && u.errors.is_empty()
        })
        .await;
        assert_eq!(
            gone.endpoints["reviews-v1"],
            draining.endpoints["reviews-v1"]
        );
        assert!(gone.errors.is_empty(), "{:?}", gone.errors);
    };
    tokio::time::timeout(Duration::from_secs(30), scenario)
        .await
        .expect("the Kubernetes source did not converge within 30 s");

    // Only labelled slices are listed, and every watch resumed from a list.
    let requests = api.lock().unwrap().requests.clone();
    let slices: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("endpointslices?"))
        .collect();
    assert!(
        !slices.is_empty()
            && slices
                .iter()
                .all(|r| r.contains("labelSelector=kubernetes.io%2Fservice-name")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("watch=true") && r.contains("resourceVersion=")),
        "{requests:?}"
    );
    drop(source);
    server.abort();
}

/// In a cluster the API server is HTTPS: the TLS stack (rustls + ring, no
/// process-wide provider installed by us) must build.
#[tokio::test]
async fn an_https_client_builds() {
    let config = kube::Config::new("https://10.96.0.1:443".parse().unwrap());
    assert!(kube::Client::try_from(config).is_ok());
}
