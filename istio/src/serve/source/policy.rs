//! The policy source: the same LBPolicy / HTTPRoute / keys files that
//! `stickyctl render envoy` reads, loaded through the same parsers, so a file
//! that `render` refuses is refused here with the same `file:line: field`.
//! From the Kubernetes API (`serve --policy-name/--route-name`) the two
//! objects go through those parsers too, as YAML documents named
//! `LBPolicy ns/name` / `HTTPRoute ns/name`, so errors read `object: field`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::input::{self, policy, route};
use crate::keys::{Key, KeyFile};
use crate::resolve::{self, Resolved};
use crate::yaml::{self, Document};

/// The policy inputs' paths.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The LBPolicy.
    pub policy: PathBuf,
    /// The HTTPRoute it targets.
    pub route: PathBuf,
    /// Token keys (first seals, all open); rotation = editing this file.
    pub keys: PathBuf,
}

impl Paths {
    /// Whether a change to `path` concerns the policy inputs.
    pub fn contains(&self, path: &Path) -> bool {
        [&self.policy, &self.route, &self.keys]
            .iter()
            .any(|p| same_file(p, path))
    }

    /// Whether `path` is a Kubernetes ConfigMap/Secret volume's atomic swap
    /// (`..data`, `..2026_12_04…`) beside an input: the kubelet replaces
    /// the files through a symlink, so no event names the input itself.
    pub fn is_configmap_swap(&self, path: &Path) -> bool {
        let swap = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".."));
        swap && [&self.policy, &self.route, &self.keys]
            .iter()
            .any(|p| p.parent().is_some_and(|d| Some(d) == path.parent()))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || (a.file_name() == b.file_name()
            && std::path::absolute(a).ok() == std::path::absolute(b).ok())
}

/// The policy applied to its route, and the keys.
#[derive(Debug, Clone)]
pub struct PolicyInputs {
    /// Policy + route, resolved.
    pub resolved: Resolved,
    /// Token keys.
    pub keys: Vec<Key>,
}

/// Loads and resolves the three files.
pub fn load(paths: &Paths) -> Result<PolicyInputs> {
    let p = input::one_of_kind(&paths.policy, &[policy::KIND])?;
    let r = input::one_of_kind(&paths.route, &["HTTPRoute"])?;
    load_documents(p, r, &paths.keys)
}

fn load_documents(p: Document, r: Document, keys: &Path) -> Result<PolicyInputs> {
    let resolved = resolve::resolve(policy::parse(p)?, route::parse(r)?)?;
    let keys = KeyFile::load(keys)?.keys;
    Ok(PolicyInputs { resolved, keys })
}

/// The LBPolicy and HTTPRoute watched in the API (`serve --policy-name/--route-name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Their namespace.
    pub namespace: String,
    /// The LBPolicy's name.
    pub policy: String,
    /// The HTTPRoute's name.
    pub route: String,
}

/// The two objects as the API server last listed them (`None`: absent),
/// reduced to apiVersion, kind, name, namespace and spec: status and
/// bookkeeping changes are no policy change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiObjects {
    /// The LBPolicy.
    pub policy: Option<Value>,
    /// The HTTPRoute.
    pub route: Option<Value>,
}

/// Where the policy and route come from; the keys are always a file (a
/// Secret mounted as one).
#[derive(Debug, Clone)]
pub enum Inputs {
    /// Watched files.
    Files(Paths),
    /// Watched API objects, and the keys file.
    Api {
        /// What is watched.
        names: Names,
        /// The keys file.
        keys: PathBuf,
        /// The objects last seen.
        objects: ApiObjects,
    },
}

impl Inputs {
    /// Loads and resolves the policy, route and keys.
    pub fn load(&self) -> Result<PolicyInputs> {
        match self {
            Self::Files(paths) => load(paths),
            Self::Api {
                names,
                keys,
                objects,
            } => load_api(names, objects, keys),
        }
    }

    /// The files read (their directories are watched).
    pub fn files(&self) -> Vec<&Path> {
        match self {
            Self::Files(p) => vec![&p.policy, &p.route, &p.keys],
            Self::Api { keys, .. } => vec![keys],
        }
    }

    /// Whether a change to `path` concerns these inputs (the file itself or
    /// a ConfigMap/Secret volume's atomic swap beside it).
    pub fn watches_file(&self, path: &Path) -> bool {
        match self {
            Self::Files(p) => p.contains(path) || p.is_configmap_swap(path),
            Self::Api { keys, .. } => {
                let swap = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".."));
                same_file(keys, path) || (swap && keys.parent() == path.parent())
            }
        }
    }
}

/// What names an object in messages: `Kind ns/name`.
pub fn object_source(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// Loads the API objects through the files' parsers. Errors read
/// `Kind ns/name: field `f`: reason` (a line of the re-serialized object
/// would point at nothing the user wrote).
pub fn load_api(names: &Names, objects: &ApiObjects, keys: &Path) -> Result<PolicyInputs> {
    let ns = &names.namespace;
    let doc = |kind: &str, name: &str, object: Option<&Value>| {
        let source = object_source(kind, ns, name);
        let object = object.ok_or_else(|| {
            let flag = if kind == "HTTPRoute" {
                "route"
            } else {
                "policy"
            };
            Error::file(
                &source,
                format!("not found in the API (create it, or fix --{flag}-name)"),
            )
        })?;
        api_document(&source, object)
    };
    let p = doc(policy::KIND, &names.policy, objects.policy.as_ref())?;
    let r = doc("HTTPRoute", &names.route, objects.route.as_ref())?;
    load_documents(p, r, keys).map_err(|e| match e {
        Error::Input { mut place, message }
            if place.file.starts_with(&format!("{} ", policy::KIND))
                || place.file.starts_with("HTTPRoute ") =>
        {
            place.line = None;
            Error::Input { place, message }
        }
        e => e,
    })
}

/// One API object as a located YAML document named `source`, as if read
/// from a file: the same parser, the same checks, the same messages.
pub fn api_document(source: &str, object: &Value) -> Result<Document> {
    let text = yaml::to_yaml(object)?;
    let mut docs = yaml::parse_str(source, &text)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(Error::file(source, format!("{n} documents, expected one"))),
    }
}

/// An API object reduced to what the parsers read: apiVersion, kind,
/// metadata.name/namespace, spec.
pub fn reduce(object: &Value) -> Value {
    let mut v = json!({
        "apiVersion": object.get("apiVersion"),
        "kind": object.get("kind"),
        "metadata": {
            "name": object.pointer("/metadata/name"),
            "namespace": object.pointer("/metadata/namespace"),
        },
    });
    if let Some(spec) = object.get("spec") {
        v["spec"] = spec.clone();
    }
    v
}
