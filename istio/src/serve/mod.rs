//! `stickyctl serve`: the live xDS control plane. Sources (policy, route and
//! keys files; a directory of endpoint files; admin changes) feed one
//! [`model`]; a [`snapshot`] per node group (Envoy proxies, proxyless gRPC)
//! is built from it and served over ADS ([`xds`], per-stream logic in
//! [`stream`]); [`telemetry`] and [`http`] show what happens.
//!
//! ```text
//! source::{files, policy, edit} ─► control ─► model ─► snapshot ─► xds ─► Envoys
//!                                    ▲                              └───► gRPC clients
//!                         drain deadlines (timer)
//! ```

pub mod args;
pub mod bootstrap;
pub mod client;
pub mod control;
pub mod envoy_pb;
pub mod http;
pub mod model;
pub mod resources;
pub mod snapshot;
pub mod source;
pub mod stream;
pub mod telemetry;
pub mod xds;

use std::io::Write as _;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use tokio::sync::mpsc;

pub use args::ServeArgs;

use crate::error::{Error, Result};
use crate::render::envoy::{Affinity, NativeWiring};

fn options(a: &ServeArgs) -> model::Options {
    model::Options {
        envoy_listen_address: a.envoy_listen.ip().to_string(),
        envoy_listen_port: a.envoy_listen.port(),
        affinity: match &a.native {
            Some(module) => Affinity::StickyNative {
                module: module.clone(),
                wiring: match a.wiring {
                    args::Wiring::Direct => NativeWiring::Direct,
                    args::Wiring::DropIn => NativeWiring::DropIn,
                },
            },
            None => Affinity::StickyWasm {
                wasm_path: a.wasm.clone(),
            },
        },
        grpc_listener: a.grpc_listener.clone(),
        retry: !a.no_retry,
        upstream_http2: a.upstream_protocol == args::UpstreamProtocol::Http2,
    }
}

/// Runs the control plane until SIGINT or SIGTERM.
pub fn run(a: ServeArgs) -> Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(serve(a))
}

async fn serve(a: ServeArgs) -> Result<u8> {
    let metrics = Arc::new(telemetry::Metrics::default());
    let paths = source::policy::Paths {
        policy: std::path::absolute(&a.policy).map_err(|e| Error::io(&a.policy, e))?,
        route: std::path::absolute(&a.route).map_err(|e| Error::io(&a.route, e))?,
        keys: std::path::absolute(&a.keys).map_err(|e| Error::io(&a.keys, e))?,
    };
    let mut watched = Vec::new();
    let (source, kube_updates) = match (&a.endpoints, &a.namespace) {
        (Some(dir), _) => {
            let dir = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
            watched.push(dir.clone());
            (control::EndpointSource::Files(dir), None)
        }
        (None, Some(ns)) => {
            let client = source::kube::client().await?;
            // Real parameters arrive from the policy as the controller starts.
            let params = source::kube::Params::default();
            let (kube_watch, updates) = source::kube::start(client, ns, params);
            (
                control::EndpointSource::Kubernetes(kube_watch),
                Some(updates),
            )
        }
        (None, None) => {
            return Err(Error::Usage(
                "serve needs --endpoints DIR or --kubernetes --namespace NS".into(),
            ));
        }
    };
    for p in [&paths.policy, &paths.route, &paths.keys] {
        if let Some(d) = p.parent() {
            watched.push(d.to_owned());
        }
    }
    // Watch before the first load: no change can fall between the two.
    let (_watch, fs_events) = source::watch::start(&watched)?;
    let (control, snapshots) =
        control::Control::start(options(&a), paths, source, metrics.clone())?;
    let xds_listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| Error::io(a.listen.to_string(), e))?;
    let admin_listener = tokio::net::TcpListener::bind(a.admin)
        .await
        .map_err(|e| Error::io(a.admin.to_string(), e))?;
    let xds_addr = xds_listener
        .local_addr()
        .map_err(|e| Error::io(a.listen.to_string(), e))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| Error::io(a.admin.to_string(), e))?;
    {
        // The first stdout line: where we listen (port 0 resolved), for scripts and tests.
        let line =
            serde_json::json!({"xds": xds_addr.to_string(), "admin": admin_addr.to_string()});
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    telemetry::log(
        "info",
        &format!("xDS (ADS) on {xds_addr}, admin on {admin_addr}"),
    );
    let (commands, inbox) = mpsc::channel(64);
    let shared = http::Shared {
        metrics: metrics.clone(),
        commands,
        snapshots: snapshots.clone(),
    };
    let ads = xds::Ads::new(snapshots, metrics);
    let controller = tokio::spawn(control.run(fs_events, inbox, kube_updates));
    let grpc = tonic::transport::Server::builder()
        .add_service(AggregatedDiscoveryServiceServer::new(ads))
        .serve_with_incoming_shutdown(
            // TCP_NODELAY: a push is a few small frames per stream; Nagle
            // would hold them back by tens of ms (tonic sets it only on
            // listeners it binds itself).
            tonic::transport::server::TcpIncoming::from(xds_listener).with_nodelay(Some(true)),
            shutdown(),
        );
    let admin =
        axum::serve(admin_listener, http::router(shared)).with_graceful_shutdown(shutdown());
    let (g, h) = tokio::join!(grpc, admin);
    controller.abort();
    g.map_err(|e| Error::Usage(format!("xDS server: {e}")))?;
    h.map_err(|e| Error::io(admin_addr.to_string(), e))?;
    telemetry::log("info", "stopped");
    Ok(0)
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests;
