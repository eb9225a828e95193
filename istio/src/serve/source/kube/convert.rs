//! EndpointSlices, Pods and Services → endpoints per Service, as the files
//! source describes them. Pure: no clock, no client; every refusal names the
//! object and the field, and the rest of the input still converts.
//!
//! States (discovery.k8s.io/v1 `EndpointConditions`; nil `ready` and
//! `serving` mean true, nil `terminating` false, nil `serving` defers to
//! `ready`):
//! - `serving && terminating` → [`State::Terminating`] (EDS DRAINING);
//! - `ready && !terminating` → [`State::Serving`];
//! - otherwise (not ready, or terminating and no longer serving) the endpoint
//!   is not served: it is absent, as Kubernetes means it to be.
//!
//! Drain deadline: `metadata.deletionTimestamp` is, per the API reference,
//! the time the Pod WILL be deleted — the API server sets it to the delete
//! request's time plus the grace period (`metadata.deletionGracePeriodSeconds`,
//! from `spec.terminationGracePeriodSeconds` unless the delete overrode it).
//! So the deadline is `deletionTimestamp` itself, capped at
//! `deletionTimestamp - grace + drainingTimeoutSec`. (Adding the grace period
//! to `deletionTimestamp` would point past the kill.)

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointSlice};

use crate::serve::source::files::{Endpoint, State};

/// The label the EndpointSlice controller puts on every slice of a Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// A Service the route sends traffic to (an HTTPRoute backendRef).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Service name (the key of the endpoint map).
    pub service: String,
    /// The backendRef's namespace.
    pub namespace: String,
    /// The Service port the backendRef names (`spec.ports[].port`).
    pub port: u16,
}

/// What the conversion needs from the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// The route's backends.
    pub backends: Vec<Backend>,
    /// The policy's `connectionDraining.drainingTimeoutSec`.
    pub draining_timeout: Option<u64>,
}

impl Params {
    /// The backends and drain cap of a resolved policy.
    pub fn from_resolved(r: &crate::resolve::Resolved) -> Self {
        Self {
            backends: r
                .backends()
                .into_iter()
                .map(|b| Backend {
                    service: b.name.clone(),
                    namespace: b.namespace.clone(),
                    port: b.port,
                })
                .collect(),
            draining_timeout: r.policy.draining_timeout,
        }
    }
}

/// The objects of one namespace, as last listed and watched.
#[derive(Debug, Clone, Copy)]
pub struct Objects<'a> {
    /// The watched namespace.
    pub namespace: &'a str,
    /// EndpointSlices (any Service).
    pub slices: &'a [EndpointSlice],
    /// Pods.
    pub pods: &'a [Pod],
    /// Services.
    pub services: &'a [Service],
}

/// The conversion's result: what could be read, and what was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Endpoints per backend Service (empty when it has none).
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
    /// Refusals, each `Kind namespace/name: field: reason`.
    pub errors: Vec<String>,
}

/// Converts `objects` to the endpoints of `params.backends`.
pub fn convert(objects: Objects<'_>, params: &Params) -> Converted {
    let mut out = Converted::default();
    let pods: BTreeMap<&str, &Pod> = objects
        .pods
        .iter()
        .filter_map(|p| p.metadata.name.as_deref().map(|n| (n, p)))
        .collect();
    for b in &params.backends {
        if b.namespace != objects.namespace {
            out.errors.push(format!(
                "HTTPRoute backendRef {}/{}: namespace: only {} is watched",
                b.namespace, b.service, objects.namespace
            ));
            continue;
        }
        if out.endpoints.contains_key(&b.service) {
            continue;
        }
        let Some(port_name) = service_port(objects, b, &mut out.errors) else {
            continue;
        };
        let mut eps: Vec<Endpoint> = Vec::new();
        let mut slices: Vec<&EndpointSlice> = objects
            .slices
            .iter()
            .filter(|s| label(s, SERVICE_NAME_LABEL) == Some(b.service.as_str()))
            .collect();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for s in slices {
            let at = Place::of("EndpointSlice", objects.namespace, &s.metadata.name);
            slice_endpoints(s, &port_name, &pods, params, &at, &mut eps, &mut out.errors);
        }
        eps.sort();
        out.endpoints.insert(b.service.clone(), eps);
    }
    out
}

/// `Kind namespace/name`, for messages.
struct Place(String);

impl Place {
    fn of(kind: &str, ns: &str, name: &Option<String>) -> Self {
        Self(format!("{kind} {ns}/{}", name.as_deref().unwrap_or("?")))
    }

    fn err(&self, field: &str, message: impl std::fmt::Display) -> String {
        format!("{}: {field}: {message}", self.0)
    }
}

fn label<'a>(s: &'a EndpointSlice, key: &str) -> Option<&'a str> {
    s.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The name of the Service port `b.port` (`""` for an unnamed single port),
/// which is what the EndpointSlice ports are named after.
fn service_port(objects: Objects<'_>, b: &Backend, errors: &mut Vec<String>) -> Option<String> {
    let at = Place::of("Service", objects.namespace, &Some(b.service.clone()));
    let Some(svc) = objects
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(b.service.as_str()))
    else {
        errors.push(at.err(".", "not found (an HTTPRoute backendRef names it)"));
        return None;
    };
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    let found = ports
        .into_iter()
        .flatten()
        .find(|p| i64::from(p.port) == i64::from(b.port));
    match found {
        Some(p) => Some(p.name.clone().unwrap_or_default()),
        None => {
            errors.push(at.err(
                "spec.ports",
                format!("no port {} (the HTTPRoute backendRef's port)", b.port),
            ));
            None
        }
    }
}

fn slice_endpoints(
    s: &EndpointSlice,
    port_name: &str,
    pods: &BTreeMap<&str, &Pod>,
    params: &Params,
    at: &Place,
    eps: &mut Vec<Endpoint>,
    errors: &mut Vec<String>,
) {
    if s.address_type != "IPv4" && s.address_type != "IPv6" {
        errors.push(at.err(
            "addressType",
            format!("{:?} is not served (IPv4 or IPv6 only)", s.address_type),
        ));
        return;
    }
    let ports = s.ports.as_deref().unwrap_or_default();
    let Some((pi, p)) = ports
        .iter()
        .enumerate()
        .find(|(_, p)| p.name.as_deref().unwrap_or("") == port_name)
    else {
        // A slice with no ports at all is what the controller writes for a
        // Service whose selector matches no Pod: no endpoints, no error.
        if !ports.is_empty() || !s.endpoints.is_empty() {
            errors.push(at.err("ports", format!("no port named {port_name:?}")));
        }
        return;
    };
    let port = match p.port.map(u16::try_from) {
        Some(Ok(n)) if n != 0 => n,
        Some(_) => {
            errors.push(at.err(&format!("ports[{pi}].port"), "not a port number"));
            return;
        }
        None => {
            errors.push(at.err(&format!("ports[{pi}].port"), "missing"));
            return;
        }
    };
    if let Some(proto) = p.protocol.as_deref().filter(|p| *p != "TCP") {
        errors.push(at.err(
            &format!("ports[{pi}].protocol"),
            format!("{proto} (only TCP)"),
        ));
        return;
    }
    for (i, e) in s.endpoints.iter().enumerate() {
        match endpoint(e, port, pods, params) {
            Ok(Some(ep)) => {
                if !eps
                    .iter()
                    .any(|o| o.address == ep.address && o.port == ep.port)
                {
                    eps.push(ep);
                }
            }
            Ok(None) => {}
            Err((field, message)) => {
                errors.push(at.err(&format!("endpoints[{i}].{field}"), message))
            }
        }
    }
}

type FieldError = (String, String);

fn endpoint(
    e: &SliceEndpoint,
    port: u16,
    pods: &BTreeMap<&str, &Pod>,
    params: &Params,
) -> Result<Option<Endpoint>, FieldError> {
    let c = e.conditions.clone().unwrap_or_default();
    let ready = c.ready.unwrap_or(true);
    let serving = c.serving.unwrap_or(ready);
    let terminating = c.terminating.unwrap_or(false);
    let state = match (terminating, serving, ready) {
        (true, true, _) => State::Terminating,
        (false, _, true) => State::Serving,
        _ => return Ok(None),
    };
    // Only the first address has meaning (the controller writes exactly one).
    let raw = e
        .addresses
        .first()
        .ok_or_else(|| ("addresses".to_owned(), "empty".to_owned()))?;
    let address: IpAddr = raw.parse().map_err(|_| {
        (
            "addresses[0]".to_owned(),
            format!("{raw:?} is not an IP address"),
        )
    })?;
    let deadline = match state {
        State::Serving => None,
        State::Terminating => drain_deadline(e, pods, params.draining_timeout)?,
    };
    Ok(Some(Endpoint {
        address,
        port,
        state,
        deadline,
    }))
}

/// The terminating Pod's drain deadline; `None` when the endpoint names no
/// Pod, or the Pod is not (yet) in the cache: it then drains until
/// Kubernetes removes it, and the next Pod event recomputes it.
fn drain_deadline(
    e: &SliceEndpoint,
    pods: &BTreeMap<&str, &Pod>,
    cap: Option<u64>,
) -> Result<Option<u64>, FieldError> {
    let Some(r) = e
        .target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref() == Some("Pod"))
    else {
        return Ok(None);
    };
    let Some(pod) = r.name.as_deref().and_then(|n| pods.get(n)) else {
        return Ok(None);
    };
    // A Pod recreated under the same name (StatefulSet) is another Pod.
    if r.uid.is_some() && pod.metadata.uid.is_some() && r.uid != pod.metadata.uid {
        return Ok(None);
    }
    let Some(deleted_at) = pod.metadata.deletion_timestamp.as_ref() else {
        return Ok(None);
    };
    let kill = deleted_at.0.as_second();
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0);
    let capped = match cap.and_then(|c| i64::try_from(c).ok()) {
        Some(c) => kill.min(kill.saturating_sub(grace).saturating_add(c)),
        None => kill,
    };
    u64::try_from(capped).map(Some).map_err(|_| {
        (
            "targetRef".to_owned(),
            format!(
                "Pod {}: metadata.deletionTimestamp before 1970",
                r.name.as_deref().unwrap_or("?")
            ),
        )
    })
}
