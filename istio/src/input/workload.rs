//! Deployments (and StatefulSets) and Services, read for `stickyctl check`
//! and for the Service label. Only the fields that decide whether draining
//! can work are read; everything else is left alone.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::yaml::Document;

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: u64 = 30;
/// Kubernetes' default probe `periodSeconds`.
pub const DEFAULT_PERIOD: u64 = 10;
/// Kubernetes' default probe `failureThreshold`.
pub const DEFAULT_FAILURE_THRESHOLD: u64 = 3;

/// The preStop hook of a container, as far as its duration can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreStop {
    /// No preStop hook.
    None,
    /// A hook that waits this many seconds (`sleep N`, or `sleep: {seconds: N}`).
    Sleep(u64),
    /// A hook whose duration cannot be read (an HTTP call, a script).
    Unknown,
}

/// A readiness probe's detection time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// `periodSeconds`.
    pub period: u64,
    /// `failureThreshold`.
    pub failure_threshold: u64,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Name.
    pub name: String,
    /// Field path (for lines).
    pub path: String,
    /// Its preStop hook.
    pub pre_stop: PreStop,
    /// Its readiness probe.
    pub readiness: Option<Probe>,
}

/// A Deployment or StatefulSet.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The document.
    pub doc: Document,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Pod template labels.
    pub labels: BTreeMap<String, String>,
    /// `terminationGracePeriodSeconds` (None = the default 30).
    pub grace: Option<u64>,
    /// Containers.
    pub containers: Vec<Container>,
    /// `spec.replicas` (None = absent: Kubernetes' default 1).
    pub replicas: Option<u64>,
    /// A StatefulSet's `spec.serviceName` (its governing headless Service).
    pub service_name: Option<String>,
}

impl Workload {
    /// The grace period in force.
    pub fn grace_seconds(&self) -> u64 {
        self.grace.unwrap_or(DEFAULT_GRACE)
    }
}

/// A Service.
#[derive(Debug, Clone)]
pub struct Service {
    /// The document.
    pub doc: Document,
    /// Name.
    pub name: String,
    /// Namespace (default `default`).
    pub namespace: String,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// `spec.ports[].port`.
    pub ports: Vec<u16>,
    /// `spec.clusterIP: None`: a headless Service.
    pub headless: bool,
}

fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a Deployment or StatefulSet document; `None` for other kinds.
pub fn workload(doc: &Document) -> Option<Workload> {
    let kind = doc.kind();
    if kind != "Deployment" && kind != "StatefulSet" {
        return None;
    }
    let pod = doc.value.pointer("/spec/template/spec");
    let containers = pod
        .and_then(|p| p.get("containers"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .enumerate()
                .map(|(i, c)| Container {
                    name: c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    path: format!("spec.template.spec.containers[{i}]"),
                    pre_stop: pre_stop(c.pointer("/lifecycle/preStop")),
                    readiness: c.get("readinessProbe").map(|p| Probe {
                        period: p
                            .get("periodSeconds")
                            .and_then(Value::as_u64)
                            .unwrap_or(DEFAULT_PERIOD),
                        failure_threshold: p
                            .get("failureThreshold")
                            .and_then(Value::as_u64)
                            .unwrap_or(DEFAULT_FAILURE_THRESHOLD),
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Workload {
        kind: kind.to_owned(),
        name: doc.name().to_owned(),
        labels: strings(doc.value.pointer("/spec/template/metadata/labels")),
        grace: pod
            .and_then(|p| p.get("terminationGracePeriodSeconds"))
            .and_then(Value::as_u64),
        containers,
        replicas: doc.value.pointer("/spec/replicas").and_then(Value::as_u64),
        service_name: doc
            .value
            .pointer("/spec/serviceName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        doc: doc.clone(),
    })
}

fn pre_stop(hook: Option<&Value>) -> PreStop {
    let Some(hook) = hook else {
        return PreStop::None;
    };
    if let Some(s) = hook.pointer("/sleep/seconds").and_then(Value::as_u64) {
        return PreStop::Sleep(s);
    }
    let command: Vec<&str> = hook
        .pointer("/exec/command")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // `sleep N`, `/bin/sleep N`, or a shell running `sleep N`.
    let words: Vec<&str> = command.iter().flat_map(|c| c.split_whitespace()).collect();
    words
        .windows(2)
        .find_map(|w| match w {
            [cmd, n] if cmd.ends_with("sleep") => n.trim_end_matches(';').parse().ok(),
            _ => None,
        })
        .map_or(PreStop::Unknown, PreStop::Sleep)
}

/// Reads a Service document; `None` for other kinds.
pub fn service(doc: &Document) -> Option<Service> {
    if doc.kind() != "Service" {
        return None;
    }
    Some(Service {
        name: doc.name().to_owned(),
        namespace: doc
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned(),
        selector: strings(doc.value.pointer("/spec/selector")),
        ports: doc
            .value
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get("port")?.as_u64())
                    .filter_map(|p| u16::try_from(p).ok())
                    .collect()
            })
            .unwrap_or_default(),
        headless: doc.value.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None"),
        doc: doc.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_str;

    #[test]
    fn pre_stop_sleep_is_read_from_every_usual_spelling() {
        let v = |s: &str| pre_stop(Some(&serde_json::from_str(s).unwrap()));
        assert_eq!(
            v(r#"{"exec":{"command":["sleep","20"]}}"#),
            PreStop::Sleep(20)
        );
        assert_eq!(
            v(r#"{"exec":{"command":["/bin/sh","-c","sleep 15; kill 1"]}}"#),
            PreStop::Sleep(15)
        );
        assert_eq!(v(r#"{"sleep":{"seconds":5}}"#), PreStop::Sleep(5));
        assert_eq!(
            v(r#"{"httpGet":{"path":"/drain","port":8080}}"#),
            PreStop::Unknown
        );
        assert_eq!(pre_stop(None), PreStop::None);
    }

    #[test]
    fn deployment_defaults_apply() {
        let d = parse_str(
            "d.yaml",
            "kind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    metadata: {labels: {version: v1}}\n    spec:\n      containers:\n      - name: app\n        readinessProbe: {httpGet: {path: /, port: 80}}\n",
        )
        .unwrap();
        let w = workload(&d[0]).unwrap();
        assert_eq!(w.grace_seconds(), 30);
        assert_eq!(w.labels.get("version").map(String::as_str), Some("v1"));
        assert_eq!(
            w.containers[0].readiness,
            Some(Probe {
                period: 10,
                failure_threshold: 3
            })
        );
    }
}
