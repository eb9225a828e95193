//! `stickyctl check`: will this policy work as intended? Each warning says
//! why not, and where. The timeline that must hold while a pod terminates:
//! health checks notice it (interval × threshold) < preStop delay (the pod
//! still serves its pinned sessions) < terminationGracePeriodSeconds (then
//! SIGKILL); and the policy's drainingTimeoutSec must fit in the grace period.

use std::fmt;

use crate::error::Place;
use crate::input::workload::{PreStop, Service, Workload};
use crate::render::istio::{self, Attach, Backends};
use crate::resolve::Resolved;

/// A default for "a typical session": 30 minutes.
pub const TYPICAL_SESSION: u64 = 1800;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Stable short name (`drain-exceeds-grace`).
    pub code: &'static str,
    /// Where.
    pub place: Place,
    /// Why it will not work as intended, and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warning[{}]: {}: {}",
            self.code, self.place, self.message
        )
    }
}

/// What `check` looks at.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Policy applied to its route.
    pub resolved: &'a Resolved,
    /// Deployments / StatefulSets.
    pub workloads: &'a [Workload],
    /// Services.
    pub services: &'a [Service],
    /// How long a typical session lasts, seconds.
    pub typical_session: u64,
    /// Which proxies run sticky (as `render istio` would attach it).
    pub attach: &'a Attach,
}

fn selects(selector: &std::collections::BTreeMap<String, String>, w: &Workload) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| w.labels.get(k) == Some(v))
}

/// Runs every check.
pub fn check(inputs: &Inputs<'_>) -> Vec<Warning> {
    let r = inputs.resolved;
    let mut out = Vec::new();
    let pdoc = &r.policy.doc;
    let rdoc = &r.route.doc;

    // Parents of the route that sticky's Istio objects cannot reach: the
    // VirtualService leaves them unbound.
    for b in istio::bindings(r, inputs.attach) {
        if let Some(message) = b.warning() {
            out.push(Warning {
                code: "parent-out-of-scope",
                place: rdoc.place(&b.field),
                message,
            });
        }
    }

    // Which workloads serve the backends: through the backend Services'
    // selectors; else, for subsets, through the subset label, and for
    // distinct Services, the workload of the same name.
    let mut serving: Vec<&Workload> = Vec::new();
    let shape = istio::backends(r).ok();
    for b in r.backends() {
        let svc = inputs
            .services
            .iter()
            .find(|s| s.name == b.name && s.namespace == b.namespace);
        if !inputs.services.is_empty() {
            match svc {
                None => out.push(Warning {
                    code: "unknown-backend",
                    place: rdoc.place(&format!("{}.name", b.path)),
                    message: format!(
                        "backend Service {}/{} is not among the Services given: a typo, or a Service that does not exist yet (requests to it fail with 500)",
                        b.namespace, b.name
                    ),
                }),
                Some(s) if !s.ports.contains(&b.port) => out.push(Warning {
                    code: "unknown-backend",
                    place: rdoc.place(&format!("{}.port", b.path)),
                    message: format!(
                        "Service {} has no port {} (ports: {:?})",
                        s.name, b.port, s.ports
                    ),
                }),
                Some(_) => {}
            }
        }
        let mut matched: Vec<&Workload> = match svc {
            Some(s) => inputs
                .workloads
                .iter()
                .filter(|w| selects(&s.selector, w))
                .collect(),
            None => Vec::new(),
        };
        if matched.is_empty() && shape == Some(Backends::Services) {
            matched = inputs
                .workloads
                .iter()
                .filter(|w| w.name == b.name)
                .collect();
        }
        if matched.is_empty()
            && let Some(Backends::Subsets { label, .. }) = &shape
            && let Ok(subset) = istio::subset(r, b)
        {
            let sel = [(label.clone(), subset.clone())].into_iter().collect();
            matched = inputs
                .workloads
                .iter()
                .filter(|w| selects(&sel, w))
                .collect();
            if matched.is_empty() && !inputs.workloads.is_empty() {
                out.push(Warning {
                    code: "unknown-backend",
                    place: rdoc.place(&format!("{}.name", b.path)),
                    message: format!(
                        "no Deployment given carries the label {label}: {subset} that subset {subset} selects: the subset would have no endpoints"
                    ),
                });
            }
        }
        for w in matched {
            if !serving.iter().any(|x| std::ptr::eq(*x, w)) {
                serving.push(w);
            }
        }
    }
    if serving.is_empty() {
        serving = inputs.workloads.iter().collect();
    }

    for w in &serving {
        let grace = w.grace_seconds();
        let grace_place = w
            .doc
            .place("spec.template.spec.terminationGracePeriodSeconds");
        if let Some(d) = r.policy.draining_timeout
            && d > grace
        {
            out.push(Warning {
                code: "drain-exceeds-grace",
                place: pdoc.place("spec.default.connectionDraining.drainingTimeoutSec"),
                message: format!(
                    "drainingTimeoutSec {d} is longer than terminationGracePeriodSeconds {grace} of {} {} ({}): Kubernetes kills the pod after {grace} s, so its sessions are lost before the drain ends; raise the grace period to at least {d}",
                    w.kind, w.name, grace_place
                ),
            });
        }
        for c in &w.containers {
            let cplace = w.doc.place(&c.path);
            match c.pre_stop {
                PreStop::None => out.push(Warning {
                    code: "no-prestop",
                    place: cplace.clone(),
                    message: format!(
                        "container {:?} of {} {} has no preStop delay: it gets SIGTERM while proxies still send it pinned requests (endpoint updates take seconds); add `lifecycle.preStop.sleep.seconds` longer than the health-check time",
                        c.name, w.kind, w.name
                    ),
                }),
                PreStop::Unknown => {}
                PreStop::Sleep(s) => {
                    if let Some(p) = c.readiness {
                        let detect = p.period.saturating_mul(p.failure_threshold);
                        if detect >= s {
                            out.push(Warning {
                                code: "probe-slower-than-prestop",
                                place: w.doc.place(&format!("{}.readinessProbe", c.path)),
                                message: format!(
                                    "readiness probe of {:?} takes {detect} s to fail (periodSeconds {} × failureThreshold {}), not shorter than the preStop delay of {s} s: the app may stop before it is marked not ready",
                                    c.name, p.period, p.failure_threshold
                                ),
                            });
                        }
                    }
                    if s >= grace {
                        out.push(Warning {
                            code: "prestop-exceeds-grace",
                            place: w.doc.place(&format!("{}.lifecycle.preStop", c.path)),
                            message: format!(
                                "preStop delay of {:?} is {s} s, not shorter than terminationGracePeriodSeconds {grace}: the app is killed without a graceful shutdown",
                                c.name
                            ),
                        });
                    }
                }
            }
        }
    }

    out.extend(sharding(inputs));

    let ttl = r.session.ttl_seconds;
    if ttl > 0 && ttl < inputs.typical_session {
        out.push(Warning {
            code: "cookie-ttl-short",
            place: pdoc.place(ttl_field(r)),
            message: format!(
                "cookie TTL {ttl} s is shorter than a typical session ({} s, --typical-session): a session idle that long starts over on another pod and loses its state",
                inputs.typical_session
            ),
        });
    }
    for (ri, rule) in r.route.rules.iter().enumerate() {
        let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
        let at = format!("spec.rules[{ri}].backendRefs");
        if total == 0 {
            out.push(Warning {
                code: "weights-zero",
                place: rdoc.place(&at),
                message: "every weight is 0: new sessions have nowhere to go (only pinned sessions are served)".into(),
            });
        } else if rule.backends.len() > 1 && ![100, 1000, 10_000].contains(&total) {
            let shares: Vec<String> = rule
                .backends
                .iter()
                .map(|b| format!("{} {:.1}%", b.name, share(b.weight, total)))
                .collect();
            out.push(Warning {
                code: "weights-total",
                place: rdoc.place(&at),
                message: format!(
                    "weights sum to {total}, not 100: Gateway API weights are proportional, so the split is {}; if they were meant as percentages, fix them",
                    shares.join(", ")
                ),
            });
        }
    }
    out
}

/// Sharding: the StatefulSet must have a pod for every shard, and the
/// Services must be what the rendered config assumes.
fn sharding(inputs: &Inputs<'_>) -> Vec<Warning> {
    let r = inputs.resolved;
    let Some(sh) = &r.policy.sharding else {
        return Vec::new();
    };
    let pdoc = &r.policy.doc;
    let mut out = Vec::new();
    let sts = inputs
        .workloads
        .iter()
        .find(|w| w.kind == "StatefulSet" && w.name == sh.stateful_set);
    match sts {
        None if !inputs.workloads.is_empty() => out.push(Warning {
            code: "shard-statefulset-missing",
            place: pdoc.place("spec.sharding.statefulSet"),
            message: format!(
                "no StatefulSet {} among the workloads given: its pods {}-0 .. {}-{} are the shards",
                sh.stateful_set,
                sh.stateful_set,
                sh.stateful_set,
                sh.shards.saturating_sub(1)
            ),
        }),
        None => {}
        Some(w) => {
            let replicas = w.replicas.unwrap_or(1);
            if replicas != u64::from(sh.shards) {
                let last = u64::from(sh.shards.saturating_sub(1));
                let why = if replicas < u64::from(sh.shards) {
                    let which = if replicas == last {
                        format!("shard {last} has")
                    } else {
                        format!("shards {replicas}..{last} have")
                    };
                    format!(
                        "{which} no pod: requests for their keys fail (503) until the StatefulSet is scaled"
                    )
                } else {
                    format!(
                        "pods {}-{} and up get no shard: scale the StatefulSet down after `stickyctl reshard`, or raise spec.sharding.shards",
                        sh.stateful_set, sh.shards
                    )
                };
                out.push(Warning {
                    code: "shard-replicas",
                    place: w.doc.place("spec.replicas"),
                    message: format!(
                        "StatefulSet {} has {replicas} replicas but the policy has {} shards: {why}",
                        w.name, sh.shards
                    ),
                });
            }
            if w.service_name.as_deref() != Some(sh.headless_service.as_str()) {
                out.push(Warning {
                    code: "shard-service-name",
                    place: w.doc.place("spec.serviceName"),
                    message: format!(
                        "StatefulSet {} names {:?} as its serviceName, the policy {:?}: the per-pod DNS names <pod>.{}.<namespace>.svc.cluster.local (--shard-endpoints dns) would not exist",
                        w.name,
                        w.service_name.as_deref().unwrap_or(""),
                        sh.headless_service,
                        sh.headless_service
                    ),
                });
            }
        }
    }
    for svc in inputs.services {
        if svc.name == sh.istio_service() && !svc.ports.contains(&sh.port) {
            out.push(Warning {
                code: "shard-port",
                place: svc.doc.place("spec.ports"),
                message: format!(
                    "Service {} has no port {} (ports: {:?}): Istio names the shard subset clusters by the Service port, so spec.sharding.port must be one",
                    svc.name, sh.port, svc.ports
                ),
            });
        }
        if svc.name == sh.headless_service && !svc.headless {
            out.push(Warning {
                code: "shard-service-headless",
                place: svc.doc.place("spec.clusterIP"),
                message: format!(
                    "Service {} is spec.sharding.headlessService but not headless (clusterIP: None): Kubernetes gives its pods no per-pod DNS names",
                    svc.name
                ),
            });
        }
        if sh.service.as_deref() == Some(svc.name.as_str()) && svc.headless {
            out.push(Warning {
                code: "shard-service-headless",
                place: svc.doc.place("spec.clusterIP"),
                message: format!(
                    "Service {} is spec.sharding.service but headless: istiod gives sidecars ORIGINAL_DST clusters for it, where a subset cannot pick a pod; use a ClusterIP Service over the same pods",
                    svc.name
                ),
            });
        }
    }
    out
}

fn share(weight: u32, total: u64) -> f64 {
    let w = f64::from(weight);
    let t = u32::try_from(total).map_or(f64::MAX, f64::from);
    w * 100.0 / t
}

fn ttl_field(r: &Resolved) -> &'static str {
    use crate::input::policy::Affinity;
    match r.policy.affinity {
        Affinity::StatefulCookie { .. } => "spec.default.sessionAffinity.cookieTtlSec",
        Affinity::Persistence(_) => "spec.sessionPersistence",
        Affinity::FromRoute => "spec",
    }
}
