//! The admin HTTP interface: `/healthz` (the process runs), `/readyz` (a
//! snapshot is being served), `/metrics` (Prometheus text), `/status` (what
//! is served and what is refused, JSON) and `POST /endpoints` (an endpoint
//! change, from `stickyctl endpoints ... --server`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::serve::control::Command;
use crate::serve::snapshot::Snapshot;
use crate::serve::source::edit::Change;
use crate::serve::telemetry::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct Shared {
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The controller's inbox.
    pub commands: mpsc::Sender<Command>,
    /// The served snapshot.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

/// The router.
pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/endpoints", post(change))
        .with_state(shared)
}

async fn ready(State(s): State<Shared>) -> (StatusCode, String) {
    let generation = s.snapshots.borrow().generation;
    if generation > 0 {
        (StatusCode::OK, format!("ready: snapshot {generation}\n"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n".into())
    }
}

async fn metrics(State(s): State<Shared>) -> String {
    s.metrics.render()
}

async fn status(State(s): State<Shared>) -> (StatusCode, Json<Value>) {
    let (tx, rx) = oneshot::channel();
    if s.commands.send(Command::Status(tx)).await.is_err() {
        return unavailable();
    }
    match rx.await {
        Ok(v) => (StatusCode::OK, Json(v)),
        Err(_) => unavailable(),
    }
}

fn unavailable() -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the controller stopped"})),
    )
}

async fn change(State(s): State<Shared>, Json(c): Json<Change>) -> (StatusCode, Json<Value>) {
    let (tx, rx) = oneshot::channel();
    if s.commands.send(Command::Change(c, tx)).await.is_err() {
        return unavailable();
    }
    match rx.await {
        Ok(Ok(v)) => (StatusCode::OK, Json(v)),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))),
        Err(_) => unavailable(),
    }
}
