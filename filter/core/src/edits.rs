//! The request phase's header edits: decided from the stream state alone
//! ([`RequestEdits::of`], pure), then carried out against a [`Host`]
//! ([`RequestEdits::apply`]), which supplies facts (whether a header was
//! there, whether the stream is already routed to a cluster) but decides
//! nothing. The hot-path savings measured with callgrind are decisions here:
//! no removal where a set replaces client copies (`stateful_session`), no
//! cluster header and no route re-match when Envoy already routes the stream
//! to the session's cluster, an append instead of a set when the cluster
//! header is known to be absent.

use crate::config::Config;
use crate::host::{Host, Pinning, Removal};
use crate::metrics::Metric;
use crate::session::Stream;

/// What happens to one internal request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit<'a> {
    /// Left as the client sent it.
    Keep,
    /// Every client-sent copy removed.
    Remove,
    /// Set to this cluster name, or pinned to this host ("ip:port").
    Set(&'a str),
}

/// The internal headers a request leaves the filter with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestEdits<'a> {
    /// The cluster header.
    pub cluster: Edit<'a>,
    /// The host (header or upstream override).
    pub host: Edit<'a>,
    /// The route must be matched again on the edited headers.
    pub reroute: bool,
    /// The request follows a valid token's host (counted).
    pub pinned: bool,
    /// Wrap mode: the application's session header gets back this id, the
    /// one its token wrapped (counted).
    pub wrap_id: Option<&'a [u8]>,
}

impl<'a> RequestEdits<'a> {
    /// The edits the request phase's decision `stream` calls for.
    #[inline(always)]
    pub fn of(stream: &'a Stream) -> Self {
        let edits = |cluster, host, reroute| Self {
            cluster,
            host,
            reroute,
            pinned: false,
            wrap_id: None,
        };
        match stream {
            Stream::Pinned(c) => Self {
                pinned: true,
                ..edits(Edit::Set(&c.cluster), Edit::Set(&c.host), true)
            },
            Stream::Moving(c) | Stream::Sharded(c) => {
                edits(Edit::Set(&c.cluster), Edit::Remove, true)
            }
            // A legacy value's unknown cluster is left to the split.
            Stream::Legacy { claims, .. } if claims.cluster.is_empty() => {
                edits(Edit::Remove, Edit::Set(&claims.host), true)
            }
            Stream::Legacy { claims, .. } => {
                edits(Edit::Set(&claims.cluster), Edit::Set(&claims.host), true)
            }
            Stream::Refused => edits(Edit::Keep, Edit::Keep, false),
            Stream::Fresh | Stream::Untouched => edits(Edit::Remove, Edit::Remove, false),
        }
    }

    /// The same edits, putting the application's `id` back into its
    /// session header when the request's token wrapped one (wrap mode).
    #[inline(always)]
    pub fn restoring(self, id: Option<&'a [u8]>) -> Self {
        Self {
            wrap_id: id,
            ..self
        }
    }

    /// Carries the edits out: removals first (a removal makes the route
    /// stale, which rules out keeping the cached route), then writes, then
    /// one route re-match if anything routing-relevant changed.
    #[inline]
    pub fn apply<H: Host>(&self, cfg: &Config, host: &mut H) {
        // The backend only ever sees its own ids; the header steers no
        // route, so writing it asks for no re-match.
        if let (Some(id), Some(wrap)) = (self.wrap_id, &cfg.wrap) {
            host.set_request_header(&wrap.header, id);
            host.count(Metric::WrapUnwrapped);
        }
        let pinning = host.pinning();
        let mut route = RouteState::default();
        match pinning {
            // A set replaces every client copy: remove only what is not set.
            Pinning::SessionFilter => {
                if matches!(self.host, Edit::Remove) {
                    route.removed(host.remove_request_header(&cfg.host_header), false);
                }
                if matches!(self.cluster, Edit::Remove) {
                    route.removed(host.remove_request_header(&cfg.cluster_header), true);
                }
            }
            // A client must never choose a cluster by sending the header.
            // The host header steers nothing here (the route strips it), so
            // it is not removed: a header-map scan saved per request (about
            // 1,000 Envoy instructions, measured with callgrind).
            Pinning::Override { .. } => {
                route.removed(host.remove_request_header(&cfg.cluster_header), true);
            }
        }
        if let Edit::Set(cluster) = self.cluster {
            route.set_cluster(cfg, host, cluster);
        }
        if let Edit::Set(pinned) = self.host {
            match pinning {
                Pinning::SessionFilter => {
                    let value = crate::b64::encode_standard(pinned.as_bytes());
                    host.set_request_header(&cfg.host_header, value.as_bytes());
                }
                // Not strict (the default): a host that is gone or unhealthy
                // falls back to the load balancer, and the response re-pins.
                Pinning::Override { strict } => host.override_host(pinned, strict),
            }
        }
        if self.reroute && !route.already_routed {
            route.dirty = true;
        }
        if route.dirty {
            host.clear_route_cache();
        }
        if self.pinned {
            host.count(Metric::RequestsPinned);
        }
    }
}

/// What the edits so far did to the route Envoy matched.
#[derive(Debug, Default)]
struct RouteState {
    /// A routing header changed since Envoy matched the route.
    dirty: bool,
    /// The stream is already routed to the session's cluster with no other
    /// routing change before: the cluster header is not written and the
    /// route not matched again (the pinned route and the split then differ
    /// only in how they chose that cluster; the host is pinned apart).
    already_routed: bool,
    /// The request is known to carry no cluster header.
    cluster_absent: bool,
}

impl RouteState {
    /// Records a removal's outcome.
    fn removed(&mut self, removal: Removal, cluster: bool) {
        match removal {
            Removal::Absent => self.cluster_absent |= cluster,
            Removal::Removed | Removal::Unknown => self.dirty = true,
        }
    }

    /// Writes the cluster header, unless Envoy routes the stream there
    /// already (if it had not matched a route yet, it just did, on the
    /// client's headers; the route strips the header before the upstream).
    #[inline]
    fn set_cluster<H: Host>(&mut self, cfg: &Config, host: &mut H, cluster: &str) {
        let value = cluster.as_bytes();
        if !self.dirty && host.routed_to_cluster(value) {
            self.already_routed = true;
        } else if self.cluster_absent && !value.is_empty() {
            self.cluster_absent = false;
            host.add_request_header(&cfg.cluster_header, value);
        } else {
            host.set_request_header(&cfg.cluster_header, value);
        }
    }
}

#[cfg(test)]
mod tests;
