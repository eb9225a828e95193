//! Consistent snapshots: per node group ("envoy" proxies, "grpc" proxyless
//! clients) every resource of every type, built at once from one model, with
//! a version per type that is a hash of its content (the same model gives
//! the same versions, across restarts too).

use std::collections::BTreeMap;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest as _, Sha256};

use crate::serve::model::Model;
use crate::serve::resources;

/// Listener type URL.
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// RouteConfiguration type URL.
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Cluster type URL.
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// ClusterLoadAssignment type URL.
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Every type served, in the order a client applies them.
pub const TYPES: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

/// Short name of a type URL for logs and metrics.
pub fn type_label(type_url: &str) -> &'static str {
    match type_url {
        LISTENER => "lds",
        ROUTE => "rds",
        CLUSTER => "cds",
        ENDPOINT => "eds",
        _ => "other",
    }
}

/// Which kind of client a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// Envoy with sticky's filter: the rendered listener, by LDS.
    Envoy,
    /// Proxyless gRPC (`xds:///NAME`): an api_listener with Envoy's cookie.
    Grpc,
}

impl Group {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Group::Envoy => "envoy",
            Group::Grpc => "grpc",
        }
    }
}

/// A node's group: node metadata `sticky.group` ("envoy" | "grpc") when set,
/// else a node id starting `grpc` or `proxyless`, else a gRPC user agent;
/// everything else is an Envoy.
pub fn classify(node: &Node) -> Group {
    let meta = node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get("sticky.group"))
        .and_then(|v| match &v.kind {
            Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => {
                Some(s.as_str())
            }
            _ => None,
        });
    match meta {
        Some("grpc") => return Group::Grpc,
        Some("envoy") => return Group::Envoy,
        _ => {}
    }
    let id = node.id.to_ascii_lowercase();
    if id.starts_with("grpc") || id.starts_with("proxyless") {
        return Group::Grpc;
    }
    if node.user_agent_name.to_ascii_lowercase().contains("grpc") {
        return Group::Grpc;
    }
    Group::Envoy
}

/// One resource, encoded, with a hash of its content. Two resources are
/// equal when name and content hash are (the bytes of a message with map
/// fields differ from one encoding to the next).
#[derive(Debug, Clone)]
pub struct Resource {
    /// Resource name.
    pub name: String,
    /// The encoded message.
    pub any: Any,
    /// Hash of the content (not of the bytes: protobuf maps encode in any order).
    pub hash: [u8; 32],
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.hash == other.hash
            && self.any.type_url == other.any.type_url
    }
}

impl Resource {
    /// A resource whose encoding is deterministic (no map fields).
    pub fn encoded<M: prost::Message + prost::Name>(name: &str, msg: M) -> Self {
        let any = envoy_types::util::pack_any(msg);
        let hash = Sha256::digest(&any.value).into();
        Self {
            name: name.to_owned(),
            any,
            hash,
        }
    }

    /// A resource whose encoding may not be (map fields): hashed from `canonical`.
    pub fn with_canonical<M: prost::Message + prost::Name>(
        name: &str,
        msg: M,
        canonical: &[u8],
    ) -> Self {
        Self {
            name: name.to_owned(),
            any: envoy_types::util::pack_any(msg),
            hash: Sha256::digest(canonical).into(),
        }
    }
}

/// What a client subscribes to for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Every resource (Envoy's LDS/CDS with no names, or `*`).
    All,
    /// Exactly these names.
    Names(Vec<String>),
}

impl Interest {
    /// From a request's `resource_names`: empty LDS/CDS means wildcard.
    pub fn from_request(type_url: &str, names: &[String]) -> Self {
        let wildcard_type = type_url == LISTENER || type_url == CLUSTER;
        if names.iter().any(|n| n == "*") || (names.is_empty() && wildcard_type) {
            Interest::All
        } else {
            let mut n = names.to_vec();
            n.sort();
            n.dedup();
            Interest::Names(n)
        }
    }
}

/// Every resource of one type, with the type's version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeSet {
    /// Content-hash version of the whole set.
    pub version: String,
    /// Resources by name.
    pub resources: BTreeMap<String, Resource>,
}

impl TypeSet {
    /// A set and its version.
    pub fn new(resources: Vec<Resource>) -> Self {
        let resources: BTreeMap<String, Resource> =
            resources.into_iter().map(|r| (r.name.clone(), r)).collect();
        let version = digest(resources.values());
        Self { version, resources }
    }

    /// The resources `interest` asks for that exist, and a hash of exactly
    /// those (a client is pushed to only when it changes).
    pub fn select(&self, interest: &Interest) -> (Vec<&Resource>, String) {
        let picked: Vec<&Resource> = match interest {
            Interest::All => self.resources.values().collect(),
            Interest::Names(names) => names.iter().filter_map(|n| self.resources.get(n)).collect(),
        };
        let hash = digest(picked.iter().copied());
        (picked, hash)
    }
}

fn digest<'a>(resources: impl Iterator<Item = &'a Resource>) -> String {
    let mut h = Sha256::new();
    for r in resources {
        h.update(r.name.as_bytes());
        h.update([0]);
        h.update(r.hash);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every type for one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSnapshot {
    /// By type URL.
    pub types: BTreeMap<&'static str, TypeSet>,
}

impl GroupSnapshot {
    /// The set of `type_url` (empty if the type is not served).
    pub fn get(&self, type_url: &str) -> Option<&TypeSet> {
        self.types.get(type_url)
    }
}

/// One consistent snapshot for both groups.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// For Envoy proxies.
    pub envoy: GroupSnapshot,
    /// For proxyless gRPC clients.
    pub grpc: GroupSnapshot,
    /// When the input change that produced it was seen (push latency starts here).
    pub changed_at: Instant,
    /// Increments with every snapshot published.
    pub generation: u64,
}

impl Snapshot {
    /// The snapshot of `group`.
    pub fn group(&self, group: Group) -> &GroupSnapshot {
        match group {
            Group::Envoy => &self.envoy,
            Group::Grpc => &self.grpc,
        }
    }

    /// Whether the two snapshots serve the same content.
    pub fn same_content(&self, other: &Snapshot) -> bool {
        self.envoy == other.envoy && self.grpc == other.grpc
    }
}

/// Builds the snapshot of `model` at `now` (unix seconds: expired drains are out).
pub fn build(
    model: &Model,
    now: u64,
    changed_at: Instant,
    generation: u64,
) -> Result<Snapshot, String> {
    let endpoints = resources::load_assignments(model, now);
    let (listener, routes_pb, clusters) = resources::envoy(model)?;
    let routes = Resource::encoded(resources::ENVOY_ROUTES, routes_pb.clone());
    let envoy = GroupSnapshot {
        types: BTreeMap::from([
            (LISTENER, TypeSet::new(vec![listener])),
            (ROUTE, TypeSet::new(vec![routes])),
            (CLUSTER, TypeSet::new(clusters)),
            (ENDPOINT, TypeSet::new(endpoints.clone())),
        ]),
    };
    let (glistener, groutes, gclusters) = resources::grpc(model, &routes_pb, now)?;
    let grpc = GroupSnapshot {
        types: BTreeMap::from([
            (LISTENER, TypeSet::new(vec![glistener])),
            (ROUTE, TypeSet::new(vec![groutes])),
            (CLUSTER, TypeSet::new(gclusters)),
            (ENDPOINT, TypeSet::new(endpoints)),
        ]),
    };
    Ok(Snapshot {
        envoy,
        grpc,
        changed_at,
        generation,
    })
}
