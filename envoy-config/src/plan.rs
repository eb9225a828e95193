//! The loopback set-up every harness user renders: one EDS file per cluster
//! and a stickyctl [`Plan`] with the harness's defaults (127.0.0.1,
//! ephemeral ports, retries on, the split's weights under `sticky.split` in
//! the runtime layer), written as an Envoy bootstrap.

use std::path::{Path, PathBuf};

use serde_json::Value;
use stickyctl::eds::{self, Endpoint};
use stickyctl::render::envoy::{Affinity, ClusterPlan, Plan};

/// The runtime key prefix of the split's weights in every harness plan.
pub const RUNTIME_KEY_PREFIX: &str = "sticky.split";

/// Writes `cluster`'s first EDS file (version 1) under `eds_dir` and returns
/// its place in the plan.
pub fn eds_cluster(
    eds_dir: &Path,
    cluster: &str,
    weight: u32,
    endpoints: &[Endpoint],
) -> Result<ClusterPlan, String> {
    let eds_path = eds_dir.join(format!("{}.json", file_safe(cluster)));
    eds::write(&eds_path, cluster, endpoints, "sticky", 1)
        .map_err(|e| format!("eds write: {e}"))?;
    Ok(ClusterPlan {
        name: cluster.to_owned(),
        weight,
        eds_path,
    })
}

/// A plan on 127.0.0.1 with ephemeral listener and admin ports, retries on,
/// non-strict, weights in the runtime layer, 250 ms connect timeout.
pub fn loopback(
    affinity: Affinity,
    plugin_config: Value,
    clusters: Vec<ClusterPlan>,
    eds_dir: PathBuf,
) -> Plan {
    Plan {
        listen_address: "127.0.0.1".into(),
        listen_port: 0,
        admin_port: 0,
        affinity,
        plugin_config,
        clusters,
        eds_dir,
        retry: true,
        strict: false,
        runtime_key_prefix: Some(RUNTIME_KEY_PREFIX.into()),
        connect_timeout_ms: 250,
    }
}

/// Writes `bootstrap` (pretty JSON) to `path`.
pub fn write_bootstrap(path: &Path, bootstrap: &Value) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(bootstrap).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A cluster name as a file name: anything but `[A-Za-z0-9-]` becomes `_`
/// (Istio names hold `|` and `.`).
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
