//! The control plane's one internal model: what the policy derives (the
//! listener, routes and clusters `render envoy` renders, the proxyless
//! cookie) and the endpoints of every Service. Snapshots are built from it,
//! and nothing else.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::render::envoy::Affinity;
use crate::render::standalone::{self, Naming, ShardEndpoints};
use crate::serve::source::files::Endpoint;
use crate::serve::source::policy::PolicyInputs;

/// How the served config is shaped (from the command line).
#[derive(Debug, Clone)]
pub struct Options {
    /// The Envoy listener's address.
    pub envoy_listen_address: String,
    /// The Envoy listener's port (0 = each Envoy picks one).
    pub envoy_listen_port: u16,
    /// sticky as wasm or native module.
    pub affinity: Affinity,
    /// The proxyless Listener's name (`xds:///NAME`); default: the HTTPRoute's name.
    pub grpc_listener: Option<String>,
    /// Retry policy on Envoy routes.
    pub retry: bool,
    /// HTTP/2 from Envoy to the backends (gRPC backends).
    pub upstream_http2: bool,
}

/// The proxyless clients' session cookie (gRPC writes and reads it itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCookie {
    /// Cookie name.
    pub name: String,
    /// Cookie path.
    pub path: String,
    /// TTL in seconds (0 = none).
    pub ttl_seconds: u64,
}

/// A cluster and the Service (or shard pod) its endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSource {
    /// Cluster name.
    pub cluster: String,
    /// Endpoint-file `service` feeding it.
    pub service: String,
}

/// Everything a snapshot is built from.
#[derive(Debug, Clone)]
pub struct Model {
    /// `render envoy`'s listener, as JSON (converted to xDS in the snapshot).
    pub envoy_listener: Value,
    /// `render envoy`'s clusters, as JSON.
    pub envoy_clusters: Vec<Value>,
    /// The proxyless Listener name.
    pub grpc_listener: String,
    /// The proxyless cookie.
    pub grpc_cookie: GrpcCookie,
    /// Clusters, in the route's order, with their endpoint source.
    pub clusters: Vec<ClusterSource>,
    /// `filter_metadata` namespace of the drain metadata.
    pub drain_namespace: String,
    /// Endpoints by Service.
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
}

impl Model {
    /// Builds the model: the policy through `render envoy`'s own renderer.
    pub fn build(
        inputs: &PolicyInputs,
        opts: &Options,
        endpoints: BTreeMap<String, Vec<Endpoint>>,
    ) -> Result<Self> {
        let resolved = &inputs.resolved;
        let render_opts = standalone::Options {
            listen_address: opts.envoy_listen_address.clone(),
            listen_port: opts.envoy_listen_port,
            admin_port: 0,
            affinity: opts.affinity.clone(),
            eds_dir: PathBuf::from("/ads"),
            naming: Naming::Backend,
            endpoints: BTreeMap::new(),
            shard_endpoints: ShardEndpoints::Eds,
            retry: opts.retry,
            // Weights come from the route file, live; no runtime overrides.
            runtime_key_prefix: None,
        };
        let rendered = standalone::render(resolved, &inputs.keys, &render_opts)?;
        let statics = &rendered.bootstrap["static_resources"];
        let envoy_listener = statics["listeners"]
            .as_array()
            .and_then(|l| l.first())
            .cloned()
            .ok_or_else(|| Error::Usage("render envoy produced no listener".into()))?;
        let mut envoy_clusters = statics["clusters"].as_array().cloned().unwrap_or_default();
        if opts.upstream_http2 {
            envoy_clusters
                .iter_mut()
                .for_each(crate::render::envoy::upstream_http2);
        }
        let mut clusters = Vec::new();
        for b in resolved.backends() {
            let cluster = standalone::cluster_name(resolved, b, Naming::Backend)?;
            if !clusters
                .iter()
                .any(|c: &ClusterSource| c.cluster == cluster)
            {
                clusters.push(ClusterSource {
                    cluster,
                    service: b.name.clone(),
                });
            }
        }
        if let Some(sh) = &resolved.policy.sharding {
            let names = standalone::shard_clusters(resolved, Naming::Backend);
            for (i, cluster) in (0..sh.shards).zip(names) {
                clusters.push(ClusterSource {
                    cluster,
                    service: sh.pod(i),
                });
            }
        }
        let s = &resolved.session;
        Ok(Self {
            envoy_listener,
            envoy_clusters,
            grpc_listener: opts
                .grpc_listener
                .clone()
                .unwrap_or_else(|| resolved.route.name.clone()),
            grpc_cookie: GrpcCookie {
                name: s.cookie_name.clone(),
                path: s.path.clone(),
                ttl_seconds: s.ttl_seconds,
            },
            clusters,
            drain_namespace: resolved.drain_namespace.clone(),
            endpoints,
        })
    }

    /// The endpoints of `cluster` still in EDS at `now`: a terminating
    /// endpoint leaves when its deadline has passed.
    pub fn live_endpoints(&self, cluster: &ClusterSource, now: u64) -> Vec<Endpoint> {
        self.endpoints
            .get(&cluster.service)
            .map(|eps| {
                eps.iter()
                    .filter(|e| e.deadline.is_none_or(|d| d > now))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The earliest deadline still ahead of `now`: when EDS changes next.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        self.clusters
            .iter()
            .filter_map(|c| self.endpoints.get(&c.service))
            .flatten()
            .filter_map(|e| e.deadline)
            .filter(|d| *d > now)
            .min()
    }

    /// Services the route names that no endpoint file describes.
    pub fn services_without_endpoints(&self) -> Vec<String> {
        self.clusters
            .iter()
            .filter(|c| !self.endpoints.contains_key(&c.service))
            .map(|c| c.service.clone())
            .collect()
    }

    /// Endpoint files naming no Service of the route (told, never dropped silently).
    pub fn unused_services(&self) -> Vec<String> {
        self.endpoints
            .keys()
            .filter(|s| !self.clusters.iter().any(|c| &c.service == *s))
            .cloned()
            .collect()
    }
}
