//! The policy source: the same LBPolicy / HTTPRoute / keys files that
//! `stickyctl render envoy` reads, loaded through the same parsers, so a file
//! that `render` refuses is refused here with the same `file:line: field`.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::input::{self, policy, route};
use crate::keys::{Key, KeyFile};
use crate::resolve::{self, Resolved};

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
    let p = policy::parse(input::one_of_kind(&paths.policy, &[policy::KIND])?)?;
    let r = route::parse(input::one_of_kind(&paths.route, &["HTTPRoute"])?)?;
    let resolved = resolve::resolve(p, r)?;
    let keys = KeyFile::load(&paths.keys)?.keys;
    Ok(PolicyInputs { resolved, keys })
}
