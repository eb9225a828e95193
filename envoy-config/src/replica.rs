//! More Envoy replicas in front of a rig's upstreams: the same bootstrap (same
//! keys, routes and EDS files), each its own process on its own ports, as
//! several gateway or sidecar replicas are in production. They share nothing
//! at runtime.

use crate::envoy::{Envoy, StartError};
use crate::fleet::Upstream;
use crate::rig::Rig;

/// A second (third, …) Envoy started from a rig's bootstrap.
pub struct Replica {
    /// The Envoy process (stopped on drop).
    pub envoy: Envoy,
}

impl<U: Upstream> Rig<U> {
    /// Starts another Envoy from this rig's bootstrap and waits until it sees
    /// every endpoint. Not for `Spec::lds` rigs (their listener port is fixed).
    pub fn start_replica(&self) -> Result<Replica, StartError> {
        if self.serves_lds() {
            return Err("a replica of an LDS rig would share its port"
                .to_owned()
                .into());
        }
        let envoy = self.launch_another()?;
        Ok(Replica { envoy })
    }
}
