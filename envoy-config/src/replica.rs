//! More Envoy replicas in front of a rig's backends: the same bootstrap (same
//! keys, routes and EDS files), each its own process on its own ports, as
//! several gateway or sidecar replicas are in production. They share nothing
//! at runtime.

use crate::envoy::{Envoy, StartError};
use crate::rig::{Rig, start_envoy};

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
        let envoy = start_envoy(
            &self.plan.affinity,
            self.native_module.as_deref(),
            &self.config_path,
            dir.path(),
        )?;
        self.wait_healthy(&envoy);
        Ok(Replica { envoy, _dir: dir })
    }
}
