//! A small simulated Envoy around a filter [`Runner`]: weighted cluster split,
//! the `cluster_header` route, `stateful_session` host override with
//! `override_host_status` [HEALTHY, DRAINING], round-robin load balancing and
//! the response echo of the host header. Clients keep a cookie jar. Tests use
//! it to assert which backend served each request.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::FakeHost;
use crate::host::Pinning;

/// A filter under test: the core natively, or the compiled wasm in host-tests.
pub trait Runner {
    /// Loads a configuration; `false` when the filter refuses it.
    fn configure(&mut self, json: &[u8]) -> bool;
    /// Runs the request-headers phase on `host`.
    fn on_request(&mut self, host: &mut FakeHost, now: u64);
    /// Runs the response-headers phase on `host`.
    fn on_response(&mut self, host: &mut FakeHost, now: u64);
    /// Log lines the filter wrote so far.
    fn logs(&self) -> Vec<String>;
}

/// An endpoint's health as Envoy's EDS would say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Takes new sessions.
    Healthy,
    /// Keeps pinned sessions, takes no new ones.
    Draining,
    /// Neither (failed health checks, or killed).
    Unhealthy,
}

/// One endpoint.
#[derive(Debug, Clone)]
pub struct SimHost {
    /// "ip:port".
    pub addr: String,
    /// Health status.
    pub health: Health,
}

/// One cluster.
#[derive(Debug, Clone)]
pub struct SimCluster {
    /// Cluster name.
    pub name: String,
    /// Weight in the default route's split.
    pub weight: u32,
    /// Endpoints.
    pub hosts: Vec<SimHost>,
}

/// A client with a cookie jar, or a header-mode client.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// Cookies the client sends back.
    pub cookies: BTreeMap<String, String>,
    /// Session header (name, value) the client sends back, in header mode.
    pub session_header: Option<(String, String)>,
    /// Whether the client keeps cookies at all.
    pub no_cookies: bool,
    /// Extra raw request headers sent on every request.
    pub extra: Vec<(String, Vec<u8>)>,
    /// Request path (default "/").
    pub path: Option<String>,
}

/// What one request/response exchange looked like.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// The response status.
    pub status: u16,
    /// The cluster that served, if any.
    pub cluster: Option<String>,
    /// The host that served, if any.
    pub host: Option<String>,
    /// Request headers as Envoy saw them after the filter.
    pub request: Vec<(String, Vec<u8>)>,
    /// Response headers as the client saw them.
    pub response: Vec<(String, Vec<u8>)>,
}

impl Exchange {
    /// `Set-Cookie` values of the response.
    pub fn set_cookies(&self) -> Vec<String> {
        self.response
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// A response header, lossily as text.
    pub fn response_header(&self, name: &str) -> Option<String> {
        self.response
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// A request header after the filter, lossily as text.
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.request
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// The simulated proxy.
pub struct Sim<R: Runner> {
    /// The filter.
    pub runner: R,
    /// Host state shared across streams (counters, metadata).
    pub host: FakeHost,
    /// Clusters in route order.
    pub clusters: Vec<SimCluster>,
    /// Current time, unix seconds.
    pub now: u64,
    /// Internal header names (as configured).
    pub host_header: String,
    /// Internal cluster header name.
    pub cluster_header: String,
    /// Session header name the filter answers with, if any.
    pub session_header: Option<String>,
    /// Headers the backend adds to every response (an application minting
    /// its own session id, for wrap mode).
    pub app_response: Vec<(String, Vec<u8>)>,
    /// `stateful_session` strict: a pinned host that is gone is a 503
    /// (`no_healthy_upstream`) instead of a fresh pick.
    pub strict: bool,
    split_counter: u64,
    rr: BTreeMap<String, u64>,
}

impl<R: Runner> Sim<R> {
    /// A sim with clusters `v1` (weight 90: hosts 10.0.1.1-3:8080) and `v2`
    /// (weight 10: 10.0.2.1-3:8080), at time 1_700_000_000.
    pub fn new(runner: R) -> Self {
        let cluster = |name: &str, weight, net| SimCluster {
            name: name.to_owned(),
            weight,
            hosts: (1..=3)
                .map(|i| SimHost {
                    addr: format!("10.0.{net}.{i}:8080"),
                    health: Health::Healthy,
                })
                .collect(),
        };
        Self {
            runner,
            host: FakeHost::default(),
            clusters: vec![cluster("v1", 90, 1), cluster("v2", 10, 2)],
            now: 1_700_000_000,
            host_header: "x-sticky-host".into(),
            cluster_header: "x-sticky-cluster".into(),
            session_header: None,
            app_response: Vec::new(),
            strict: false,
            split_counter: 0,
            rr: BTreeMap::new(),
        }
    }

    /// Sets the health of the endpoint `addr` in every cluster.
    pub fn set_health(&mut self, addr: &str, health: Health) {
        for c in &mut self.clusters {
            for h in &mut c.hosts {
                if h.addr == addr {
                    h.health = health;
                }
            }
        }
    }

    /// Removes the endpoint `addr` from every cluster.
    pub fn remove_host(&mut self, addr: &str) {
        for c in &mut self.clusters {
            c.hosts.retain(|h| h.addr != addr);
        }
    }

    /// Sets the weight of a cluster in the default route.
    pub fn set_weight(&mut self, cluster: &str, weight: u32) {
        for c in &mut self.clusters {
            if c.name == cluster {
                c.weight = weight;
            }
        }
    }

    /// Sends one request from `client`, as Envoy would route it.
    pub fn send(&mut self, client: &mut Client) -> Exchange {
        self.host.next_stream();
        self.host.request = vec![
            (":method".into(), b"GET".to_vec()),
            (
                ":path".into(),
                client
                    .path
                    .clone()
                    .unwrap_or_else(|| "/".into())
                    .into_bytes(),
            ),
        ];
        if !client.cookies.is_empty() && !client.no_cookies {
            let jar: Vec<String> = client
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            self.host
                .request
                .push(("cookie".into(), jar.join("; ").into_bytes()));
        }
        if let Some((name, value)) = &client.session_header {
            self.host
                .request
                .push((name.clone(), value.clone().into_bytes()));
        }
        self.host.request.extend(client.extra.iter().cloned());
        self.runner.on_request(&mut self.host, self.now);
        let direct = matches!(self.host.pinning, Some(Pinning::Override { .. }));
        if direct {
            // No stateful_session: Envoy pins the override and the rendered
            // route strips any host header. The sim shows the override as
            // the header stateful_session would read, so one script asserts
            // both wirings.
            let name = self.host_header.clone();
            self.host.request.retain(|(n, _)| *n != name);
            if let Some((pinned, _)) = &self.host.override_host {
                let value = STANDARD.encode(pinned).into_bytes();
                self.host.request.push((name, value));
            }
        }
        let request = self.host.request.clone();

        let served = if self.host.local_reply.is_some() {
            None
        } else {
            self.route()
        };
        let mut response = vec![(":status".to_owned(), b"200".to_vec())];
        if let Some((cluster, host)) = &served {
            self.host.upstream_cluster = Some(cluster.clone().into_bytes());
            self.host.upstream_host = Some(host.clone().into_bytes());
            let asked = self
                .host
                .request_values(&self.host_header)
                .first()
                .map(|v| v.to_vec());
            let encoded = STANDARD.encode(host);
            if !direct && asked.as_deref() != Some(encoded.as_bytes()) {
                // stateful_session echoes the host it picked when it changed.
                response.push((self.host_header.clone(), encoded.into_bytes()));
            }
        } else {
            if self.host.local_reply.is_none() {
                self.host.code_details = Some(b"no_healthy_upstream".to_vec());
            }
            let status = self.host.local_reply.as_ref().map_or(503, |(s, _)| *s);
            response = vec![(":status".to_owned(), status.to_string().into_bytes())];
        }
        if served.is_some() {
            response.extend(self.app_response.iter().cloned());
        }
        self.host.response = response;
        self.runner.on_response(&mut self.host, self.now);
        let status = self
            .host
            .response
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        let exchange = Exchange {
            status,
            cluster: served.as_ref().map(|s| s.0.clone()),
            host: served.map(|s| s.1),
            request,
            response: self.host.response.clone(),
        };
        self.absorb(client, &exchange);
        exchange
    }

    fn absorb(&self, client: &mut Client, exchange: &Exchange) {
        if !client.no_cookies {
            for sc in exchange.set_cookies() {
                let pair = sc.split(';').next().unwrap_or_default();
                if let Some((k, v)) = pair.split_once('=') {
                    client
                        .cookies
                        .insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        if let (Some(name), Some((sent_name, _))) = (&self.session_header, &client.session_header)
            && name == sent_name
            && let Some(v) = exchange.response_header(name)
        {
            client.session_header = Some((name.clone(), v));
        }
    }

    fn route(&mut self) -> Option<(String, String)> {
        let cluster_name = match self.host.request_values(&self.cluster_header).first() {
            // Route 1: cluster_header. An unknown cluster is a 503.
            Some(name) => {
                let name = String::from_utf8(name.to_vec()).ok()?;
                self.clusters.iter().find(|c| c.name == name)?.name.clone()
            }
            None => self.split()?,
        };
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)?
            .clone();
        let wanted = self
            .host
            .request_values(&self.host_header)
            .first()
            .and_then(|v| STANDARD.decode(v).ok())
            .and_then(|v| String::from_utf8(v).ok());
        if let Some(wanted) = wanted
            && let Some(h) = cluster.hosts.iter().find(|h| h.addr == wanted)
            && h.health != Health::Unhealthy
        {
            return Some((cluster.name, h.addr.clone()));
        }
        if self.strict && !self.host.request_values(&self.host_header).is_empty() {
            // A strict override whose host is gone: no fallback.
            return None;
        }
        let eligible: Vec<&SimHost> = cluster
            .hosts
            .iter()
            .filter(|h| h.health == Health::Healthy)
            .collect();
        let n = self.rr.entry(cluster.name.clone()).or_insert(0);
        let pick = eligible.get((*n as usize) % eligible.len().max(1))?;
        *n += 1;
        Some((cluster.name.clone(), pick.addr.clone()))
    }

    fn split(&mut self) -> Option<String> {
        let total: u64 = self.clusters.iter().map(|c| u64::from(c.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut slot = self.split_counter % total;
        self.split_counter += 1;
        for c in &self.clusters {
            if slot < u64::from(c.weight) {
                return Some(c.name.clone());
            }
            slot -= u64::from(c.weight);
        }
        None
    }
}

/// The core itself as a [`Runner`]: what the wasm build must agree with.
#[derive(Default)]
pub struct NativeRunner {
    /// How pinned hosts reach the simulated Envoy (`None`: the session filter).
    pinning: Option<Pinning>,
    cfg: Option<crate::config::Config>,
    worker: crate::worker::Worker,
    stream: crate::session::Stream,
    logs: Vec<String>,
}

impl NativeRunner {
    /// A runner whose host pins the way `pinning` says.
    pub fn with_pinning(pinning: Pinning) -> Self {
        Self {
            pinning: Some(pinning),
            ..Self::default()
        }
    }
}

impl Runner for NativeRunner {
    fn configure(&mut self, json: &[u8]) -> bool {
        match crate::config::Config::from_json(json) {
            Ok(cfg) => {
                // Envoy builds a new root context per configuration: fresh cache.
                self.cfg = Some(cfg);
                self.worker = crate::worker::Worker::default();
                true
            }
            Err(e) => {
                self.logs.push(e.to_string());
                false
            }
        }
    }
    fn on_request(&mut self, host: &mut FakeHost, now: u64) {
        host.pinning = self.pinning;
        self.stream = match &self.cfg {
            Some(cfg) => crate::filter::on_request(cfg, &mut self.worker, host, now),
            None => crate::session::Stream::Untouched,
        };
    }
    fn on_response(&mut self, host: &mut FakeHost, now: u64) {
        if let Some(cfg) = &self.cfg {
            crate::filter::on_response(cfg, &mut self.worker, &self.stream, host, now);
        }
    }
    fn logs(&self) -> Vec<String> {
        self.logs.clone()
    }
}
