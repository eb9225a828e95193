//! More Envoy replicas in front of a rig's backends: the same bootstrap (same
//! keys, routes and EDS files), each its own process on its own ports, as
//! several gateway or sidecar replicas are in production. They share nothing
//! at runtime.

use std::path::PathBuf;
use std::time::Duration;

use stickyctl::render::envoy::Affinity;

use crate::envoy::{Envoy, StartError};
use crate::rig::Rig;

/// A second (third, …) Envoy started from a rig's bootstrap.
pub struct Replica {
    /// The Envoy process (stopped on drop).
    pub envoy: Envoy,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// Starts another Envoy from this rig's bootstrap and waits until it sees
    /// every endpoint. Not for `Spec::lds` rigs (their listener port is fixed).
    pub fn start_replica(&self) -> Result<Replica, StartError> {
        let err = |message: String| StartError {
            message,
            log: String::new(),
        };
        if self.lds_path.is_some() {
            return Err(err("a replica of an LDS rig would share its port".into()));
        }
        let dir = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
        let mut env: Vec<(&str, PathBuf)> = Vec::new();
        if let Affinity::StickyNative { .. } = self.plan.affinity {
            let so = crate::artifact("STICKY_NATIVE", "dist/libsticky.so");
            env.push((
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                so.parent().map(PathBuf::from).unwrap_or_default(),
            ));
        }
        let env: Vec<(&str, &std::path::Path)> =
            env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        let bin = crate::artifact("STICKY_ENVOY", ".venv/envoy");
        let envoy = Envoy::start(&bin, &self.config_path, dir.path(), &env)?;
        for (cluster, eps) in &self.endpoints {
            let stat = format!("cluster.{cluster}.membership_total");
            let want = u64::try_from(eps.len()).unwrap_or(u64::MAX);
            envoy.wait_for(Duration::from_secs(5), |e| e.stat(&stat) == Some(want));
        }
        Ok(Replica { envoy, _dir: dir })
    }
}
