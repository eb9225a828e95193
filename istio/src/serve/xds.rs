//! The Aggregated Discovery Service (state-of-the-world) on tonic: one task
//! per stream runs a [`StreamState`] against the latest snapshot and wakes
//! on every new one. Delta xDS is refused (both Envoy and gRPC default to
//! state-of-the-world).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::serve::snapshot::{Snapshot, type_label};
use crate::serve::stream::{Event, StreamState};
use crate::serve::telemetry::{Metrics, labels, log};

/// The ADS service.
pub struct Ads {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    metrics: Arc<Metrics>,
    streams: AtomicU64,
}

impl Ads {
    /// A service answering from `snapshots`.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, metrics: Arc<Metrics>) -> Self {
        Self {
            snapshots,
            metrics,
            streams: AtomicU64::new(0),
        }
    }
}

type Out = mpsc::Sender<Result<DiscoveryResponse, Status>>;

struct StreamTask {
    id: u64,
    state: StreamState,
    metrics: Arc<Metrics>,
    out: Out,
    counted: Option<&'static str>,
}

impl StreamTask {
    fn who(&self) -> String {
        let node = self.state.node().map(|n| n.id.as_str()).unwrap_or("?");
        format!(
            "stream {} node {node:?} ({})",
            self.id,
            self.state.group().label()
        )
    }

    fn record(&self, events: &[Event]) {
        let group = self.state.group().label();
        for e in events {
            match e {
                Event::Pushed {
                    type_url,
                    version,
                    resources,
                } => {
                    let ty = type_label(type_url);
                    self.metrics
                        .add("sticky_xds_pushes_total", &labels(group, ty), 1.0);
                    log(
                        "debug",
                        &format!(
                            "{}: push {ty} version {version} ({resources} resources)",
                            self.who()
                        ),
                    );
                }
                Event::Acked {
                    type_url,
                    version,
                    latency,
                } => {
                    let ty = type_label(type_url);
                    self.metrics
                        .add("sticky_xds_acks_total", &labels(group, ty), 1.0);
                    if let Some(l) = latency {
                        self.metrics.observe_latency(&labels(group, ty), *l);
                        log(
                            "info",
                            &format!(
                                "{}: applied {ty} version {version} {:.1} ms after the change",
                                self.who(),
                                l.as_secs_f64() * 1000.0
                            ),
                        );
                    }
                }
                Event::Nacked {
                    type_url,
                    version,
                    message,
                } => {
                    let ty = type_label(type_url);
                    self.metrics
                        .add("sticky_xds_nacks_total", &labels(group, ty), 1.0);
                    log(
                        "error",
                        &format!(
                            "{}: NACK {ty}, keeps version {version:?}: {message}",
                            self.who()
                        ),
                    );
                }
                Event::Stale { type_url } => {
                    self.metrics.add(
                        "sticky_xds_stale_requests_total",
                        &labels(group, type_label(type_url)),
                        1.0,
                    );
                }
                Event::Unknown { type_url } => {
                    log(
                        "warn",
                        &format!("{}: type {type_url} is not served", self.who()),
                    );
                }
            }
        }
    }

    fn count_connected(&mut self) {
        if self.counted.is_none() && self.state.node().is_some() {
            let g = self.state.group().label();
            self.metrics.add(
                "sticky_xds_clients_connected",
                &format!("group=\"{g}\""),
                1.0,
            );
            self.counted = Some(g);
            log("info", &format!("{}: connected", self.who()));
        }
    }

    async fn send(&self, responses: Vec<DiscoveryResponse>) -> bool {
        for r in responses {
            if self.out.send(Ok(r)).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn run(
        mut self,
        mut inbound: Streaming<DiscoveryRequest>,
        mut snaps: watch::Receiver<Arc<Snapshot>>,
    ) {
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => {
                        let snap = snaps.borrow_and_update().clone();
                        let (resp, events) = self.state.on_request(&req, &snap, Instant::now());
                        self.count_connected();
                        self.record(&events);
                        if !self.send(resp.into_iter().collect()).await {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        log("info", &format!("{}: stream error: {}", self.who(), status.message()));
                        break;
                    }
                },
                changed = snaps.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snap = snaps.borrow_and_update().clone();
                    let (resps, events) = self.state.on_snapshot(&snap);
                    self.record(&events);
                    if !self.send(resps).await {
                        break;
                    }
                }
            }
        }
        if let Some(g) = self.counted {
            self.metrics.add(
                "sticky_xds_clients_connected",
                &format!("group=\"{g}\""),
                -1.0,
            );
        }
        log("info", &format!("{}: disconnected", self.who()));
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let task = StreamTask {
            id: self.streams.fetch_add(1, Ordering::Relaxed),
            state: StreamState::new(),
            metrics: self.metrics.clone(),
            out: tx,
            counted: None,
        };
        tokio::spawn(task.run(request.into_inner(), self.snapshots.clone()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "stickyctl serve speaks state-of-the-world ADS only",
        ))
    }
}
