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
    let absolute = |p: &std::path::Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let keys = absolute(&a.keys)?;
    let client = match &a.namespace {
        Some(_) if a.kubernetes => Some(source::kube::client().await?),
        _ => None,
    };
    let mut watched = Vec::new();
    let (source, kube_updates) = match (&a.endpoints, &a.namespace, &client) {
        (Some(dir), _, _) => {
            let dir = absolute(dir)?;
            watched.push(dir.clone());
            (control::EndpointSource::Files(dir), None)
        }
        (None, Some(ns), Some(client)) => {
            // Real parameters arrive from the policy as the controller starts.
            let params = source::kube::Params::default();
            let (kube_watch, updates) = source::kube::start(client.clone(), ns, params);
            (
                control::EndpointSource::Kubernetes(kube_watch),
                Some(updates),
            )
        }
        _ => {
            return Err(Error::Usage(
                "serve needs --endpoints DIR or --kubernetes --namespace NS".into(),
            ));
        }
    };
    let (_policy_watch, inputs, api_policy) = match (&a.policy, &a.route) {
        (Some(policy), Some(route)) => {
            let paths = source::policy::Paths {
                policy: absolute(policy)?,
                route: absolute(route)?,
                keys,
            };
            (None, source::policy::Inputs::Files(paths), None)
        }
        _ => {
            let (Some(client), Some(namespace), Some(policy), Some(route)) =
                (&client, &a.namespace, &a.policy_name, &a.route_name)
            else {
                return Err(Error::Usage(
                    "serve needs --policy and --route files, or --kubernetes --namespace NS --policy-name NAME --route-name NAME".into(),
                ));
            };
            let names = source::policy::Names {
                namespace: namespace.clone(),
                policy: policy.clone(),
                route: route.clone(),
            };
            let (w, rx) = source::kube::policy::start(client.clone(), names.clone());
            let (inputs, rx) = first_api_policy(names, keys, rx, &metrics).await?;
            (Some(w), inputs, Some(rx))
        }
    };
    for p in inputs.files() {
        if let Some(d) = p.parent() {
            watched.push(d.to_owned());
        }
    }
    // Watch before the first load: no change can fall between the two.
    let (_watch, fs_events) = source::watch::start(&watched)?;
    let (control, snapshots) =
        control::Control::start(options(&a), inputs, source, metrics.clone())?;
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
    let controller = tokio::spawn(control.run(fs_events, inbox, kube_updates, api_policy));
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

/// Waits until the API holds a valid LBPolicy and HTTPRoute (each refusal
/// logged and counted): the controller starts from a good policy, as it does
/// from files, and readiness follows.
async fn first_api_policy(
    names: source::policy::Names,
    keys: std::path::PathBuf,
    mut rx: mpsc::UnboundedReceiver<source::policy::ApiObjects>,
    metrics: &telemetry::Metrics,
) -> Result<(
    source::policy::Inputs,
    mpsc::UnboundedReceiver<source::policy::ApiObjects>,
)> {
    telemetry::log(
        "info",
        &format!(
            "waiting for LBPolicy {ns}/{} and HTTPRoute {ns}/{} from the API",
            names.policy,
            names.route,
            ns = names.namespace
        ),
    );
    loop {
        let Some(objects) = rx.recv().await else {
            return Err(Error::Usage("the Kubernetes policy watch stopped".into()));
        };
        let inputs = source::policy::Inputs::Api {
            names: names.clone(),
            keys: keys.clone(),
            objects,
        };
        match inputs.load() {
            Ok(_) => return Ok((inputs, rx)),
            Err(e) => {
                telemetry::log(
                    "error",
                    &format!("policy refused, waiting for a valid one: {e}"),
                );
                metrics.add("sticky_input_errors_total", "source=\"policy\"", 1.0);
            }
        }
    }
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
