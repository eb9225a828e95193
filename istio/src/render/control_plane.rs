//! The Kubernetes manifests that run `stickyctl serve --kubernetes` in a
//! cluster: ServiceAccount, Role + RoleBinding (least privilege, in the
//! watched namespace), ConfigMap (policy, route), Secret (token keys),
//! Deployment and Service (ADS `grpc-xds`, admin `http-admin`).
//!
//! The policy, route and keys reach the Pod as mounted volumes, so the
//! control plane needs no API permission on ConfigMaps or Secrets: the
//! kubelet reads them with its own credentials. A change to the ConfigMap or
//! Secret lands in the mounted directory (an atomic `..data` symlink swap),
//! where `serve` watches its input files.
//!
//! With `policy_name` and `route_name`, the LBPolicy and HTTPRoute are
//! watched in the API instead (`serve --policy-name/--route-name`): the Role
//! gains list/watch on those two resources, and no ConfigMap is rendered.

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::serve::source::kube::policy::{POLICY_GROUP, POLICY_PLURAL, ROUTE_PLURAL};

/// Where the mounted inputs appear in the container.
pub const CONFIG_DIR: &str = "/etc/sticky/config";
/// Where the mounted keys appear in the container.
pub const KEYS_DIR: &str = "/etc/sticky/keys";

/// How the control plane is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Name of every object (and the `app.kubernetes.io/instance` label).
    pub name: String,
    /// Namespace the control plane runs in.
    pub namespace: String,
    /// Namespace whose EndpointSlices, Pods and Services it watches (default: `namespace`).
    pub watch_namespace: Option<String>,
    /// Container image holding `stickyctl` (its entrypoint).
    pub image: String,
    /// ADS (gRPC) port.
    pub xds_port: u16,
    /// Admin HTTP port: /healthz, /readyz, /metrics, /status.
    pub admin_port: u16,
    /// Replicas.
    pub replicas: u32,
    /// More `stickyctl serve` arguments (e.g. `--native sticky`).
    pub extra_args: Vec<String>,
    /// The LBPolicy watched in the API (with `route_name`); `None`: the ConfigMap's file.
    pub policy_name: Option<String>,
    /// The HTTPRoute watched in the API (with `policy_name`); `None`: the ConfigMap's file.
    pub route_name: Option<String>,
}

impl Options {
    /// The LBPolicy and HTTPRoute names, when both are watched in the API.
    fn api_names(&self) -> Option<(&str, &str)> {
        Some((self.policy_name.as_deref()?, self.route_name.as_deref()?))
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            name: "sticky-control-plane".into(),
            namespace: "sticky-system".into(),
            watch_namespace: None,
            image: "ghcr.io/sticky/stickyctl:latest".into(),
            xds_port: 18000,
            admin_port: 18001,
            replicas: 1,
            extra_args: Vec::new(),
            policy_name: None,
            route_name: None,
        }
    }
}

/// The control plane's inputs, as the files' text.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The LBPolicy (YAML).
    pub policy: &'a str,
    /// The HTTPRoute it targets (YAML).
    pub route: &'a str,
    /// The token keys (`stickyctl keys new`).
    pub keys: &'a str,
}

/// A DNS-1123 label (Service and Deployment names must be one).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check(o: &Options) -> Result<()> {
    let watch = o.watch_namespace.as_deref().unwrap_or(&o.namespace);
    for (flag, v) in [
        ("--name", o.name.as_str()),
        ("--namespace", o.namespace.as_str()),
        ("--watch-namespace", watch),
    ] {
        if !is_dns_label(v) {
            return Err(Error::Usage(format!(
                "{flag} {v:?}: not a DNS-1123 label (lowercase letters, digits, '-', at most 63)"
            )));
        }
    }
    if o.policy_name.is_some() != o.route_name.is_some() {
        return Err(Error::Usage(
            "--policy-name and --route-name go together (both objects come from the API, or neither)".into(),
        ));
    }
    if let Some((p, r)) = o.api_names() {
        for (flag, v) in [("--policy-name", p), ("--route-name", r)] {
            if v.is_empty() || v.len() > 253 || v.contains('/') {
                return Err(Error::Usage(format!("{flag} {v:?}: not an object name")));
            }
        }
    }
    if o.image.trim().is_empty() {
        return Err(Error::Usage("--image: must not be empty".into()));
    }
    if o.xds_port == 0 || o.admin_port == 0 || o.xds_port == o.admin_port {
        return Err(Error::Usage(format!(
            "--xds-port {} and --admin-port {}: two distinct non-zero ports",
            o.xds_port, o.admin_port
        )));
    }
    Ok(())
}

fn labels(o: &Options) -> Value {
    json!({
        "app.kubernetes.io/name": "sticky-control-plane",
        "app.kubernetes.io/instance": o.name,
        "app.kubernetes.io/component": "control-plane",
        "app.kubernetes.io/part-of": "sticky",
        "app.kubernetes.io/managed-by": "stickyctl",
    })
}

fn selector(o: &Options) -> Value {
    json!({
        "app.kubernetes.io/name": "sticky-control-plane",
        "app.kubernetes.io/instance": o.name,
    })
}

fn meta(o: &Options, namespace: &str) -> Value {
    json!({"name": o.name, "namespace": namespace, "labels": labels(o)})
}

/// Renders the manifests, in apply order.
pub fn render(o: &Options, inputs: Inputs<'_>) -> Result<Vec<Value>> {
    check(o)?;
    let watch_ns = o.watch_namespace.as_deref().unwrap_or(&o.namespace);
    let service_account = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(o, &o.namespace),
    });
    // Least privilege: kube-runtime's watcher only lists and watches (it
    // never GETs one object), and only these three kinds, in one namespace.
    // No ConfigMap/Secret rights: the inputs are mounted by the kubelet.
    let mut rules = vec![
        json!({"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}),
        json!({"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["list", "watch"]}),
    ];
    if o.api_names().is_some() {
        // The watch names one object each (a field selector), but RBAC
        // cannot restrict list/watch by name: the namespace's collection.
        rules.push(json!({"apiGroups": [crate::input::route::GROUP], "resources": [ROUTE_PLURAL], "verbs": ["list", "watch"]}));
        rules.push(json!({"apiGroups": [POLICY_GROUP], "resources": [POLICY_PLURAL], "verbs": ["list", "watch"]}));
    }
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(o, watch_ns),
        "rules": rules,
    });
    let role_binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(o, watch_ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": o.name},
        "subjects": [{"kind": "ServiceAccount", "name": o.name, "namespace": o.namespace}],
    });
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(o, &o.namespace),
        "data": {"policy.yaml": inputs.policy, "route.yaml": inputs.route},
    });
    // Keys seal session tokens: a Secret (RBAC- and encryption-at-rest-
    // separable from ConfigMaps), mounted read-only for the group only.
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{}-keys", o.name), "namespace": o.namespace, "labels": labels(o)},
        "type": "Opaque",
        "stringData": {"keys.json": inputs.keys},
    });
    let deployment = deployment(o, watch_ns);
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(o, &o.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(o),
            "ports": [
                // xDS is gRPC over cleartext HTTP/2.
                {"name": "grpc-xds", "port": o.xds_port, "targetPort": "grpc-xds", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
                {"name": "http-admin", "port": o.admin_port, "targetPort": "http-admin", "protocol": "TCP", "appProtocol": "http"},
            ],
        },
    });
    let mut objects = vec![service_account, role, role_binding];
    if o.api_names().is_none() {
        objects.push(config_map);
    }
    objects.extend([secret, deployment, service]);
    Ok(objects)
}

fn deployment(o: &Options, watch_ns: &str) -> Value {
    let (policy_flag, policy, route_flag, route) = match o.api_names() {
        Some((p, r)) => ("--policy-name", p.to_owned(), "--route-name", r.to_owned()),
        None => (
            "--policy",
            format!("{CONFIG_DIR}/policy.yaml"),
            "--route",
            format!("{CONFIG_DIR}/route.yaml"),
        ),
    };
    let mut args: Vec<String> = [
        "serve",
        "--kubernetes",
        "--namespace",
        watch_ns,
        policy_flag,
        &policy,
        route_flag,
        &route,
        "--keys",
        &format!("{KEYS_DIR}/keys.json"),
        "--listen",
        &format!("0.0.0.0:{}", o.xds_port),
        "--admin",
        &format!("0.0.0.0:{}", o.admin_port),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    args.extend(o.extra_args.iter().cloned());
    let probe = |path: &str, period: u32| {
        json!({
            "httpGet": {"path": path, "port": "http-admin"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        })
    };
    let mut mounts = vec![json!({"name": "keys", "mountPath": KEYS_DIR, "readOnly": true})];
    let mut volumes = vec![
        json!({"name": "keys", "secret": {"secretName": format!("{}-keys", o.name), "defaultMode": 0o440}}),
    ];
    if o.api_names().is_none() {
        mounts.insert(
            0,
            json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true}),
        );
        volumes.insert(0, json!({"name": "config", "configMap": {"name": o.name}}));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(o, &o.namespace),
        "spec": {
            "replicas": o.replicas,
            "selector": {"matchLabels": selector(o)},
            // A new replica takes traffic (readiness = first snapshot built)
            // before the old one goes; proxies keep their config meanwhile.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(o)},
                "spec": {
                    "serviceAccountName": o.name,
                    "automountServiceAccountToken": true,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "stickyctl",
                        "image": o.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": args,
                        "ports": [
                            {"name": "grpc-xds", "containerPort": o.xds_port, "protocol": "TCP"},
                            {"name": "http-admin", "containerPort": o.admin_port, "protocol": "TCP"},
                        ],
                        "readinessProbe": probe("/readyz", 5),
                        "livenessProbe": probe("/healthz", 10),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "512Mi"},
                        },
                        "securityContext": {
                            "runAsNonRoot": true,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
}
