//! A loopback fake of the Kubernetes API server for kube's real client
//! stack: list (with resourceVersion) and watch (newline-delimited events,
//! replayed from the requested resourceVersion) of EndpointSlices, Pods,
//! Services, HTTPRoutes (gateway.networking.k8s.io/v1) and sticky's
//! LBPolicies (sticky.dev/v1alpha1), as the API server answers them. A
//! `fieldSelector=metadata.name=NAME` is ignored (the client must check names).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;

/// One resource collection: current objects, the event log (by
/// resourceVersion, replayed to a watch that starts behind it) and the open watches.
#[derive(Default)]
pub struct Collection {
    pub items: BTreeMap<String, Value>,
    pub log: Vec<(u64, String)>,
    pub watches: Vec<mpsc::UnboundedSender<String>>,
}

#[derive(Default)]
pub struct FakeApi {
    pub resource_version: u64,
    pub collections: BTreeMap<String, Collection>,
    pub requests: Vec<String>,
    /// The namespaces that exist (empty: only `shop`).
    pub namespaces: Vec<String>,
}

/// The fake API server's state, shared with the test.
pub type Shared = Arc<Mutex<FakeApi>>;

impl FakeApi {
    /// Records a change as the API server would: new resourceVersion, then
    /// an ADDED / MODIFIED / DELETED event to every open watch.
    pub fn event(&mut self, resource: &str, kind: &str, mut object: Value) {
        self.resource_version += 1;
        let rv = self.resource_version;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let c = self.collections.entry(resource.to_owned()).or_default();
        if kind == "DELETED" {
            c.items.remove(&name);
        } else {
            c.items.insert(name, object.clone());
        }
        let line = format!("{}\n", json!({"type": kind, "object": object}));
        c.log.push((rv, line.clone()));
        c.watches.retain(|w| w.send(line.clone()).is_ok());
    }
}

fn list_kind(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "endpointslices" => ("discovery.k8s.io/v1", "EndpointSliceList"),
        "pods" => ("v1", "PodList"),
        "httproutes" => ("gateway.networking.k8s.io/v1", "HTTPRouteList"),
        "lbpolicies" => ("sticky.dev/v1alpha1", "LBPolicyList"),
        _ => ("v1", "ServiceList"),
    }
}

async fn serve_collection(
    State(api): State<Shared>,
    Path((ns, resource)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let mut api = api.lock().unwrap();
    api.requests.push(format!("{resource}?{query}"));
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
    };
    let known = if api.namespaces.is_empty() {
        ns == "shop"
    } else {
        api.namespaces.contains(&ns)
    };
    if !known
        || ![
            "endpointslices",
            "pods",
            "services",
            "httproutes",
            "lbpolicies",
        ]
        .contains(&resource.as_str())
    {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}).to_string(),
            ))
            .unwrap();
    }
    let rv = api.resource_version;
    let c = api.collections.entry(resource.clone()).or_default();
    if param("watch").as_deref() == Some("true") {
        let from: u64 = param("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (tx, rx) = mpsc::unbounded_channel();
        for (_, line) in c.log.iter().filter(|(v, _)| *v > from) {
            let _ = tx.send(line.clone());
        }
        c.watches.push(tx);
        let body = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
            .map(Ok::<_, std::convert::Infallible>);
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(body))
            .unwrap();
    }
    let (api_version, kind) = list_kind(&resource);
    let list = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": rv.to_string()},
        "items": c.items.values().collect::<Vec<_>>(),
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(list.to_string()))
        .unwrap()
}

/// Serves `api` on an ephemeral loopback port; its URL and task.
pub async fn fake_api_server(api: Shared) -> (String, tokio::task::JoinHandle<()>) {
    let router = axum::Router::new()
        .route("/api/v1/namespaces/{ns}/{resource}", get(serve_collection))
        .route(
            "/apis/discovery.k8s.io/v1/namespaces/{ns}/{resource}",
            get(serve_collection),
        )
        .route(
            "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/{resource}",
            get(serve_collection),
        )
        .route(
            "/apis/sticky.dev/v1alpha1/namespaces/{ns}/{resource}",
            get(serve_collection),
        )
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), task)
}

/// The fake API server running on its own runtime thread; stopped on drop.
pub struct RunningApi {
    /// Its base URL.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningApi {
    /// Serves `api` on an ephemeral loopback port.
    pub fn start(api: Shared) -> Self {
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
        Self {
            url: url_rx.recv().unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A kubeconfig at `path` whose current context is this server and `namespace`.
    pub fn write_kubeconfig(&self, path: &std::path::Path, namespace: &str) {
        let url = &self.url;
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
                 users:\n- name: test\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n    namespace: {namespace}\n\
                 current-context: fake\n"
            ),
        )
        .unwrap();
    }
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// API objects as the API server returns them, for backends that all listen
/// on 127.0.0.1, each on its own port (one EndpointSlice per Pod, since a
/// slice carries one port for all its endpoints).
pub mod objects {
    use serde_json::{Value, json};

    /// Unix seconds as RFC 3339 (`2026-12-04T10:15:30Z`).
    pub fn rfc3339(unix: u64) -> String {
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

    /// A ClusterIP Service with the port `http` 9080.
    pub fn service(ns: &str, name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-svc-{name}"),
                         "labels": {"app": "reviews"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": {"app": name},
                     "ports": [{"name": "http", "port": 9080, "protocol": "TCP", "targetPort": "http"}]},
            "status": {"loadBalancer": {}},
        })
    }

    /// A running Pod (grace 60 s); `deleted_at`: `kubectl delete` set its
    /// deletionTimestamp (the time the kubelet kills it).
    pub fn pod(ns: &str, name: &str, deleted_at: Option<u64>) -> Value {
        let mut p = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-pod-{name}"),
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

    /// The EndpointSlice of `pod` (127.0.0.1:`port`) for `service`.
    pub fn slice(ns: &str, service: &str, pod: &str, port: u16, terminating: bool) -> Value {
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "addressType": "IPv4",
            "metadata": {"name": format!("{pod}-slice"), "namespace": ns,
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
                "targetRef": {"kind": "Pod", "name": pod, "namespace": ns, "uid": format!("uid-pod-{pod}")},
            }],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        })
    }
}
