//! The upstreams of a set-up: instances per cluster named `<cluster>-<n>`,
//! their EDS files in a temp dir, and Envoys started in front of them from a
//! rendered bootstrap. The e2e [`Rig`](crate::rig::Rig), the examples' stage
//! and the bench's world all run on one; they differ only in their
//! [`Upstream`] type and in which Envoys they start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use stickyctl::eds::Endpoint;
use stickyctl::render::envoy::{Affinity, ClusterPlan, Plan};

use crate::backend::Backend;
use crate::envoy::{Envoy, StartError};
use crate::plan;

/// An upstream instance a fleet runs: listens on loopback, can be killed.
pub trait Upstream {
    /// Its name, `<cluster>-<n>`.
    fn name(&self) -> &str;
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// Kills it as a crash would: its in-memory state is gone.
    fn kill(&mut self);
}

impl Upstream for Backend {
    fn name(&self) -> &str {
        &self.name
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn kill(&mut self) {
        Backend::kill(self);
    }
}

/// Starts upstream `name` of cluster `cluster`.
type Launcher<U> = Box<dyn Fn(&str, &str) -> Result<U, String> + Send + Sync>;

/// How long an Envoy may take to load every cluster's endpoints.
const EDS_LOAD: Duration = Duration::from_secs(10);

/// Upstreams by cluster behind their EDS files; dropped, it drops them
/// (every upstream type here stops on drop) and removes its directory.
pub struct Fleet<U = Backend> {
    /// Upstreams by cluster, in start order (killed ones included).
    pub backends: BTreeMap<String, Vec<U>>,
    /// Endpoints as last written, by cluster.
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
    clusters: Vec<ClusterPlan>,
    eds_dir: PathBuf,
    version: u64,
    launcher: Launcher<U>,
    dir: tempfile::TempDir,
}

impl<U: Upstream> Fleet<U> {
    /// Starts `n` upstreams per `(cluster, weight, n)` with `launcher` and
    /// writes each cluster's EDS file (every endpoint healthy).
    pub fn start(
        clusters: &[(String, u32, usize)],
        launcher: impl Fn(&str, &str) -> Result<U, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let eds_dir = dir.path().join("eds");
        std::fs::create_dir_all(&eds_dir).map_err(|e| e.to_string())?;
        let mut fleet = Fleet {
            backends: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            clusters: Vec::new(),
            eds_dir,
            version: 1,
            launcher: Box::new(launcher),
            dir,
        };
        for (cluster, weight, n) in clusters {
            let ups: Vec<U> = (0..*n)
                .map(|i| (fleet.launcher)(cluster, &format!("{cluster}-{i}")))
                .collect::<Result<_, _>>()?;
            let eps: Vec<Endpoint> = ups.iter().map(|u| endpoint(u.addr())).collect();
            let eds = plan::eds_cluster(&fleet.eds_dir, cluster, *weight, &eps)?;
            fleet.clusters.push(eds);
            fleet.backends.insert(cluster.clone(), ups);
            fleet.endpoints.insert(cluster.clone(), eps);
        }
        Ok(fleet)
    }

    /// The fleet's directory (EDS files, every Envoy's run directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster names, in split order.
    pub fn cluster_names(&self) -> Vec<&str> {
        self.clusters.iter().map(|c| c.name.as_str()).collect()
    }

    /// A loopback plan over this fleet's clusters.
    pub fn plan(&self, affinity: Affinity, plugin: Value) -> Plan {
        plan::loopback(
            affinity,
            plugin,
            self.clusters.clone(),
            self.eds_dir.clone(),
        )
    }

    /// Every upstream, cluster by cluster.
    pub fn upstreams(&self) -> impl Iterator<Item = &U> {
        self.backends.values().flatten()
    }

    /// The upstreams' names (killed ones included), sorted.
    pub fn upstream_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.upstreams().map(|u| u.name().to_owned()).collect();
        names.sort();
        names
    }

    /// An upstream by name.
    pub fn get(&self, name: &str) -> Option<&U> {
        self.upstreams().find(|u| u.name() == name)
    }

    /// An upstream by name (`v1-0`, ...); panics if there is none (tests).
    pub fn backend(&self, name: &str) -> &U {
        self.get(name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// The cluster an upstream belongs to.
    pub fn cluster_of(&self, name: &str) -> Option<String> {
        self.backends
            .iter()
            .find(|(_, ups)| ups.iter().any(|u| u.name() == name))
            .map(|(c, _)| c.clone())
    }

    /// Writes `bootstrap` into a new run directory and starts Envoy on it
    /// (`envoy`, or `STICKY_ENVOY`), with `module`'s directory as the
    /// dynamic module search path; waits until it loaded every endpoint.
    pub fn launch(
        &self,
        bootstrap: &Value,
        envoy: Option<&Path>,
        module: Option<&Path>,
    ) -> Result<Envoy, StartError> {
        let run = tempfile::Builder::new()
            .prefix("envoy-")
            .tempdir_in(self.dir())
            .map_err(|e| e.to_string())?
            // Lives as long as the fleet: the Envoy's log stays readable.
            .keep();
        let config = run.join("envoy.json");
        plan::write_bootstrap(&config, bootstrap)?;
        let bin = envoy
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::artifact("STICKY_ENVOY", ".venv/envoy"));
        let started = Envoy::start_with_module(&bin, &config, &run, module)?;
        let members: Vec<(&str, usize)> = self
            .endpoints
            .iter()
            .map(|(c, eps)| (c.as_str(), eps.len()))
            .collect();
        if started.wait_members(&members, EDS_LOAD) {
            return Ok(started);
        }
        Err(StartError {
            message: format!("Envoy did not load every endpoint within {EDS_LOAD:?}"),
            log: started.log(),
        })
    }

    /// Rewrites a cluster's EDS file after `change` and waits until `envoy`
    /// applied it.
    pub fn change_endpoints(
        &mut self,
        envoy: &Envoy,
        cluster: &str,
        change: impl FnOnce(&mut Vec<Endpoint>),
    ) -> Result<(), String> {
        let path = self
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .map(|c| c.eds_path.clone())
            .ok_or_else(|| format!("no cluster {cluster}"))?;
        let eps = self
            .endpoints
            .get_mut(cluster)
            .ok_or_else(|| format!("no cluster {cluster}"))?;
        change(eps);
        self.version = self.version.saturating_add(1);
        envoy.apply_eds(&path, cluster, eps, self.version)
    }

    /// Starts one more upstream in `cluster` and adds it to EDS (scale-up);
    /// returns its name.
    pub fn add(&mut self, envoy: &Envoy, cluster: &str) -> Result<String, String> {
        let n = self
            .backends
            .get(cluster)
            .ok_or_else(|| format!("no cluster {cluster}"))?
            .len();
        let up = (self.launcher)(cluster, &format!("{cluster}-{n}"))?;
        let (name, addr) = (up.name().to_owned(), up.addr());
        self.backends
            .entry(cluster.to_owned())
            .or_default()
            .push(up);
        self.change_endpoints(envoy, cluster, |eps| eps.push(endpoint(addr)))?;
        Ok(name)
    }

    /// Changes one upstream's endpoint (found by name) and applies it.
    pub fn change_upstream(
        &mut self,
        envoy: &Envoy,
        name: &str,
        change: impl FnOnce(&mut Endpoint),
    ) -> Result<(), String> {
        let (cluster, port) = self.locate(name)?;
        self.change_endpoints(envoy, &cluster, |eps| {
            if let Some(e) = eps.iter_mut().find(|e| e.port == port) {
                change(e);
            }
        })
    }

    /// Removes one upstream's endpoint from EDS (the upstream keeps running).
    pub fn remove(&mut self, envoy: &Envoy, name: &str) -> Result<(), String> {
        let (cluster, port) = self.locate(name)?;
        self.change_endpoints(envoy, &cluster, |eps| eps.retain(|e| e.port != port))
    }

    /// Kills an upstream; EDS still lists it, as right after a crash.
    pub fn kill(&mut self, name: &str) -> Result<(), String> {
        self.backends
            .values_mut()
            .flatten()
            .find(|u| u.name() == name)
            .ok_or_else(|| format!("no instance {name}"))?
            .kill();
        Ok(())
    }

    /// An upstream's cluster and port.
    fn locate(&self, name: &str) -> Result<(String, u16), String> {
        let cluster = self
            .cluster_of(name)
            .ok_or_else(|| format!("no instance {name}"))?;
        let port = self.get(name).map(|u| u.addr().port()).unwrap_or_default();
        Ok((cluster, port))
    }
}

/// A healthy loopback endpoint at `addr`'s port.
fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::healthy("127.0.0.1", addr.port())
}

/// The dynamic module file `affinity` loads, if it is a native one: `file`,
/// whose name (`lib<name>.so`) then becomes the affinity's module name, or
/// `dist/libsticky.so`.
pub fn native_module(
    affinity: &mut Affinity,
    file: Option<&Path>,
) -> Result<Option<PathBuf>, String> {
    let Affinity::StickyNative { module, .. } = affinity else {
        return Ok(None);
    };
    let Some(file) = file else {
        return Ok(Some(crate::artifact("STICKY_NATIVE", "dist/libsticky.so")));
    };
    *module = file
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_prefix("lib")?.strip_suffix(".so"))
        .ok_or_else(|| format!("{} is not named lib<name>.so", file.display()))?
        .to_owned();
    Ok(Some(file.to_owned()))
}
