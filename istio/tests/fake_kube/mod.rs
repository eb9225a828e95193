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
