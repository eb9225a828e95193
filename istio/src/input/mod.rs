//! What users bring: the affinity policy, the HTTPRoute, GEP-1619
//! `sessionPersistence` in its three shapes, and (for `check`) Deployments and
//! Services. Parsed from located YAML, so every error names file, line, field.

pub mod duration;
pub mod names;
pub mod persistence;
pub mod policy;
pub mod route;
pub mod sharding;
pub mod workload;

use std::path::Path;

use crate::error::{Error, Result};
use crate::yaml::{self, Document};

/// Loads one file and returns its single document of `kind`.
pub fn one_of_kind(path: &Path, kinds: &[&str]) -> Result<Document> {
    let docs = yaml::load(path)?;
    let name = path.display().to_string();
    let mut found: Vec<Document> = docs
        .into_iter()
        .filter(|d| kinds.contains(&d.kind()))
        .collect();
    match found.len() {
        0 => Err(Error::file(
            &name,
            format!("no document of kind {} in this file", kinds.join(" or ")),
        )),
        1 => Ok(found.remove(0)),
        n => Err(found[1].error(
            "kind",
            format!(
                "{n} documents of kind {} in this file; give one per file",
                kinds.join(" or ")
            ),
        )),
    }
}
