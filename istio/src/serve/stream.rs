//! One ADS stream's state, state-of-the-world: the node (sent only on the
//! first request), per type what the client asked for, the last nonce sent,
//! and what it holds. Pure logic, no I/O: the server feeds it requests and
//! snapshots and sends what it returns.
//!
//! Rules: a request whose `response_nonce` is not the last one sent for its
//! type is stale and ignored (gRPC re-ACKs old nonces); a request with
//! `error_detail` is a NACK: logged and counted, nothing is resent (the
//! client keeps its last good config) until the content changes; otherwise
//! the client gets exactly the resources it names (all, for an LDS/CDS
//! wildcard), at once: nothing waits for a request to name every resource.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use crate::serve::snapshot::{self, Group, Interest, Snapshot, TYPES};

/// What a stream saw, for logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A response went out.
    Pushed {
        /// Type URL.
        type_url: String,
        /// The type's version.
        version: String,
        /// How many resources.
        resources: usize,
    },
    /// The client applied a response.
    Acked {
        /// Type URL.
        type_url: String,
        /// The version it applied.
        version: String,
        /// Input change → this ACK, for pushes caused by a change.
        latency: Option<Duration>,
    },
    /// The client refused a response and keeps its last good config.
    Nacked {
        /// Type URL.
        type_url: String,
        /// The version it still runs.
        version: String,
        /// The client's `error_detail.message`.
        message: String,
    },
    /// A request answering an older response; ignored.
    Stale {
        /// Type URL.
        type_url: String,
    },
    /// A type this server does not serve; ignored.
    Unknown {
        /// Type URL.
        type_url: String,
    },
}

#[derive(Debug, Default)]
struct TypeState {
    interest: Option<Interest>,
    nonce: Option<String>,
    /// Hash of the resources last sent (for this interest).
    sent: Option<String>,
    /// When the input change behind the last push was seen (not for
    /// responses to a client's own request).
    pushed_change: Option<Instant>,
}

/// One stream.
#[derive(Debug, Default)]
pub struct StreamState {
    node: Option<Node>,
    group: Option<Group>,
    types: BTreeMap<String, TypeState>,
    nonces: u64,
}

impl StreamState {
    /// A fresh stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node from the stream's first request.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// The node's group (Envoy until a node says otherwise).
    pub fn group(&self) -> Group {
        self.group.unwrap_or(Group::Envoy)
    }

    /// Handles one request against the current snapshot.
    pub fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snap: &Snapshot,
        now: Instant,
    ) -> (Option<DiscoveryResponse>, Vec<Event>) {
        if self.group.is_none() {
            // Only the first request carries the node; remember it.
            if let Some(node) = &req.node {
                self.group = Some(snapshot::classify(node));
                self.node = Some(node.clone());
            }
        }
        let type_url = req.type_url.clone();
        if !TYPES.contains(&type_url.as_str()) {
            return (None, vec![Event::Unknown { type_url }]);
        }
        let mut events = Vec::new();
        let state = self.types.entry(type_url.clone()).or_default();
        if !req.response_nonce.is_empty() {
            if state.nonce.as_deref() != Some(req.response_nonce.as_str()) {
                return (None, vec![Event::Stale { type_url }]);
            }
            match &req.error_detail {
                Some(status) => events.push(Event::Nacked {
                    type_url: type_url.clone(),
                    version: req.version_info.clone(),
                    message: status.message.clone(),
                }),
                None => events.push(Event::Acked {
                    type_url: type_url.clone(),
                    version: req.version_info.clone(),
                    latency: state
                        .pushed_change
                        .take()
                        .map(|t| now.saturating_duration_since(t)),
                }),
            }
            state.pushed_change = None;
        }
        let interest = Interest::from_request(&type_url, &req.resource_names);
        let first = req.response_nonce.is_empty();
        let changed = state.interest.as_ref() != Some(&interest);
        state.interest = Some(interest);
        // A client's first request (also after a reconnect) is always
        // answered; later ones only when what it asks for changed.
        if !first && !changed {
            return (None, events);
        }
        let response = self.respond(&type_url, snap, None, first);
        if let Some((r, e)) = response {
            events.push(e);
            return (Some(r), events);
        }
        (None, events)
    }

    /// The responses a new snapshot causes: every subscribed type whose
    /// requested resources changed, in the order clusters, endpoints,
    /// listeners, routes (make before break).
    pub fn on_snapshot(&mut self, snap: &Snapshot) -> (Vec<DiscoveryResponse>, Vec<Event>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        for t in TYPES {
            if self.types.get(t).is_some_and(|s| s.interest.is_some())
                && let Some((r, e)) = self.respond(t, snap, Some(snap.changed_at), false)
            {
                out.push(r);
                events.push(e);
            }
        }
        (out, events)
    }

    fn respond(
        &mut self,
        type_url: &str,
        snap: &Snapshot,
        change: Option<Instant>,
        always: bool,
    ) -> Option<(DiscoveryResponse, Event)> {
        let set = snap.group(self.group()).get(type_url)?;
        let state = self.types.get_mut(type_url)?;
        let interest = state.interest.as_ref()?;
        let (picked, hash) = set.select(interest);
        if !always && state.sent.as_deref() == Some(hash.as_str()) {
            return None;
        }
        self.nonces = self.nonces.saturating_add(1);
        let nonce = self.nonces.to_string();
        state.nonce = Some(nonce.clone());
        state.sent = Some(hash);
        state.pushed_change = change;
        let response = DiscoveryResponse {
            version_info: set.version.clone(),
            resources: picked.iter().map(|r| r.any.clone()).collect(),
            type_url: type_url.to_owned(),
            nonce,
            ..Default::default()
        };
        let event = Event::Pushed {
            type_url: type_url.to_owned(),
            version: set.version.clone(),
            resources: picked.len(),
        };
        Some((response, event))
    }
}
