//! `stickyctl serve`'s command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How the native module pins the host (as `render envoy --wiring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Wiring {
    /// The module pins the host itself.
    Direct,
    /// The module feeds a header-based stateful_session.
    DropIn,
}

/// The protocol the Envoys speak to the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (Envoy's default).
    Http1,
    /// HTTP/2 (cleartext): gRPC backends.
    Http2,
}

/// Serve sticky's config over xDS (ADS) to Envoys and proxyless gRPC clients.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The policy (kind LBPolicy); watched.
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "policy_name",
        conflicts_with = "policy_name"
    )]
    pub policy: Option<PathBuf>,
    /// The HTTPRoute it targets; watched (weights change live).
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "route_name",
        conflicts_with = "route_name"
    )]
    pub route: Option<PathBuf>,
    /// The LBPolicy from the API instead of a file (sticky.dev/v1alpha1
    /// lbpolicies, in --namespace); watched.
    #[arg(
        long,
        value_name = "NAME",
        requires = "kubernetes",
        requires = "route_name"
    )]
    pub policy_name: Option<String>,
    /// The HTTPRoute from the API instead of a file
    /// (gateway.networking.k8s.io/v1 httproutes, in --namespace); watched.
    #[arg(
        long,
        value_name = "NAME",
        requires = "kubernetes",
        requires = "policy_name"
    )]
    pub route_name: Option<String>,
    /// Token keys (`stickyctl keys new`); watched: rotation is pushed as a new listener.
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
    /// Directory of endpoint files, one per Service; watched.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "kubernetes",
        conflicts_with = "kubernetes"
    )]
    pub endpoints: Option<PathBuf>,
    /// Endpoints from Kubernetes instead of files: EndpointSlices, Pods and
    /// Services of --namespace, watched (in a Pod: its ServiceAccount;
    /// elsewhere KUBECONFIG or ~/.kube/config).
    #[arg(long, requires = "namespace")]
    pub kubernetes: bool,
    /// The namespace the route's Services live in (with --kubernetes).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The xDS (ADS gRPC) address; port 0 picks one.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:18000")]
    pub listen: SocketAddr,
    /// The admin HTTP address (/healthz, /readyz, /metrics, /status, POST /endpoints).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:18001")]
    pub admin: SocketAddr,
    /// Path of sticky.wasm as the Envoys see it.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/sticky/sticky.wasm",
        conflicts_with = "native"
    )]
    pub wasm: PathBuf,
    /// Serve the native dynamic module `lib<NAME>.so` instead of the wasm.
    #[arg(long, value_name = "NAME")]
    pub native: Option<String>,
    /// How the native module pins the host (with --native).
    #[arg(long, value_enum, default_value = "direct", requires = "native")]
    pub wiring: Wiring,
    /// The Envoys' listener address (port 0: each Envoy picks one).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:10000")]
    pub envoy_listen: SocketAddr,
    /// The proxyless Listener's name: clients dial `xds:///NAME` (default: the HTTPRoute's name).
    #[arg(long, value_name = "NAME")]
    pub grpc_listener: Option<String>,
    /// No retry policy on Envoy routes.
    #[arg(long)]
    pub no_retry: bool,
    /// The protocol the Envoys speak to the backends: http2 for gRPC backends
    /// (proxyless clients speak HTTP/2 themselves).
    #[arg(long, value_enum, default_value = "http1")]
    pub upstream_protocol: UpstreamProtocol,
}
