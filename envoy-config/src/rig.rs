//! A whole test set-up: backends per cluster, EDS files, a bootstrap rendered
//! by stickyctl, and Envoy running it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sticky_core::config::wire::PluginConfig;
use stickyctl::eds::{self, Endpoint};
use stickyctl::render::envoy::{Affinity, Plan, bootstrap};

use crate::backend::Backend;
use crate::envoy::{Envoy, StartError};
use crate::plan;

/// base64 of 32 bytes 0x11: the rig's sealing key, id `k1`.
pub const KEY_1: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
/// base64 of 32 bytes 0x22: a second key, id `k2`.
pub const KEY_2: &str = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=";
/// The session header the rig configures.
pub const SESSION_HEADER: &str = "x-sticky-session";

/// What to set up.
#[derive(Debug, Clone)]
pub struct Spec {
    /// (cluster name, weight, number of backends).
    pub clusters: Vec<(String, u32, usize)>,
    /// Affinity mode; `None` means sticky wasm from dist/.
    pub affinity: Option<Affinity>,
    /// Plugin config; `None` = the rig default for these clusters.
    pub plugin: Option<Value>,
    /// Retry policy on routes.
    pub retry: bool,
    /// stateful_session strict mode.
    pub strict: bool,
    /// Serve the listener over LDS from a watched file, so tests can change
    /// the plugin configuration of a running Envoy ([`Rig::update_plugin`]).
    pub lds: bool,
    /// Native builds: the module file to load instead of `dist/libsticky.so`
    /// (e.g. a `fault-injection` build); Envoy loads it by its name
    /// (`lib<name>.so`) from its directory.
    pub native_module: Option<PathBuf>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            clusters: vec![("v1".into(), 90, 2), ("v2".into(), 10, 2)],
            affinity: None,
            plugin: None,
            retry: true,
            strict: false,
            lds: false,
            native_module: None,
        }
    }
}

/// The rig's default plugin config for `clusters`, as the wire model.
pub fn default_wire(clusters: &[&str]) -> PluginConfig {
    crate::plugin::loopback("sticky", SESSION_HEADER, clusters, "k1", KEY_1)
}

/// The rig's default plugin config for `clusters`, as JSON (tests edit it,
/// including into shapes the wire model cannot hold).
pub fn default_plugin(clusters: &[&str]) -> Value {
    crate::plugin::to_json(&default_wire(clusters))
}

/// A running set-up.
pub struct Rig {
    /// Envoy.
    pub envoy: Envoy,
    /// Backends by cluster.
    pub backends: BTreeMap<String, Vec<Backend>>,
    /// Endpoints as last written, by cluster.
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
    /// The rendered plan.
    pub plan: Plan,
    /// The bootstrap file.
    pub config_path: PathBuf,
    version: u64,
    pub(crate) lds_path: Option<PathBuf>,
    pub(crate) native_module: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn write_lds(path: &std::path::Path, listener: &Value, version: u64) -> std::io::Result<()> {
    let mut listener = listener.clone();
    listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
    let doc = json!({"version_info": version.to_string(), "resources": [listener]});
    eds::write_atomic(
        path,
        &serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?,
    )
}

impl Rig {
    /// Starts backends, writes EDS and the bootstrap, starts Envoy.
    pub fn start(spec: Spec) -> Result<Rig, StartError> {
        let err = |m: String| StartError {
            message: m,
            log: String::new(),
        };
        let dir = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
        let eds_dir = dir.path().join("eds");
        std::fs::create_dir_all(&eds_dir).map_err(|e| err(e.to_string()))?;
        let mut backends = BTreeMap::new();
        let mut endpoints = BTreeMap::new();
        let mut clusters = Vec::new();
        for (name, weight, n) in &spec.clusters {
            let bs: Vec<Backend> = (0..*n)
                .map(|i| Backend::start(&format!("{name}-{i}")))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            let eps: Vec<Endpoint> = bs
                .iter()
                .map(|b| Endpoint::healthy("127.0.0.1", b.addr.port()))
                .collect();
            clusters.push(plan::eds_cluster(&eds_dir, name, *weight, &eps).map_err(err)?);
            backends.insert(name.clone(), bs);
            endpoints.insert(name.clone(), eps);
        }
        let names: Vec<&str> = spec.clusters.iter().map(|c| c.0.as_str()).collect();
        let mut affinity = spec
            .affinity
            .clone()
            .unwrap_or_else(|| Affinity::StickyWasm {
                wasm_path: crate::artifact("STICKY_WASM", "dist/sticky.wasm"),
            });
        if let (Affinity::StickyNative { module, .. }, Some(so)) =
            (&mut affinity, &spec.native_module)
        {
            *module = module_name(so)
                .ok_or_else(|| err(format!("{} is not named lib<name>.so", so.display())))?;
        }
        let plugin = spec
            .plugin
            .clone()
            .unwrap_or_else(|| default_plugin(&names));
        let plan = Plan {
            retry: spec.retry,
            strict: spec.strict,
            ..plan::loopback(affinity, plugin, clusters, eds_dir)
        };
        let config_path = dir.path().join("envoy.json");
        let mut boot = bootstrap(&plan);
        let lds_path = dir.path().join("lds").join("listeners.json");
        if spec.lds {
            let lds_dir = dir.path().join("lds");
            std::fs::create_dir_all(&lds_dir).map_err(|e| err(e.to_string()))?;
            // A fixed port: an LDS update of a port-0 listener would rebind elsewhere.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| err(e.to_string()))?
                .port();
            let mut listener = boot["static_resources"]["listeners"][0].take();
            listener["address"]["socket_address"]["port_value"] = json!(port);
            boot["static_resources"]
                .as_object_mut()
                .map(|o| o.remove("listeners"));
            boot["dynamic_resources"] = json!({"lds_config": {
                "resource_api_version": "V3",
                "path_config_source": {"path": lds_path, "watched_directory": {"path": lds_dir}},
            }});
            write_lds(&lds_path, &listener, 1).map_err(|e| err(e.to_string()))?;
        }
        plan::write_bootstrap(&config_path, &boot).map_err(err)?;
        let envoy = start_envoy(
            &plan.affinity,
            spec.native_module.as_deref(),
            &config_path,
            dir.path(),
        )?;
        let rig = Rig {
            lds_path: spec.lds.then_some(lds_path),
            native_module: spec.native_module,
            envoy,
            backends,
            endpoints,
            plan,
            config_path,
            version: 1,
            _dir: dir,
        };
        rig.wait_hosts_healthy();
        Ok(rig)
    }

    /// The listener address.
    pub fn addr(&self) -> SocketAddr {
        self.envoy.listener
    }

    /// A backend by name (`v1-0`, ...).
    pub fn backend(&self, name: &str) -> &Backend {
        self.backends
            .values()
            .flatten()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// The name of the backend at "ip:port".
    pub fn backend_at(&self, host: &str) -> Option<String> {
        self.backends
            .values()
            .flatten()
            .find(|b| b.host() == host)
            .map(|b| b.name.clone())
    }

    /// The cluster a backend belongs to.
    pub fn cluster_of(&self, backend: &str) -> Option<String> {
        self.backends
            .iter()
            .find(|(_, bs)| bs.iter().any(|b| b.name == backend))
            .map(|(c, _)| c.clone())
    }

    /// Rewrites a cluster's EDS file and waits until Envoy applied it.
    pub fn update_endpoints(&mut self, cluster: &str, f: impl FnOnce(&mut Vec<Endpoint>)) {
        let eps = self
            .endpoints
            .get_mut(cluster)
            .unwrap_or_else(|| panic!("no cluster {cluster}"));
        f(eps);
        self.version += 1;
        let path = self
            .plan
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .map(|c| c.eds_path.clone())
            .unwrap_or_default();
        self.envoy
            .apply_eds(&path, cluster, eps, self.version)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts one more backend in `cluster` and adds it to EDS; returns its name.
    pub fn add_backend(&mut self, cluster: &str) -> String {
        let n = self.backends.get(cluster).map_or(0, Vec::len);
        let b =
            Backend::start(&format!("{cluster}-{n}")).unwrap_or_else(|e| panic!("backend: {e}"));
        let (name, port) = (b.name.clone(), b.addr.port());
        self.backends.entry(cluster.to_owned()).or_default().push(b);
        self.update_endpoints(cluster, |eps| {
            eps.push(Endpoint::healthy("127.0.0.1", port))
        });
        name
    }

    /// Changes one backend's endpoint (found by name) and applies it.
    pub fn update_backend(&mut self, backend: &str, f: impl FnOnce(&mut Endpoint)) {
        let cluster = self
            .cluster_of(backend)
            .unwrap_or_else(|| panic!("no backend {backend}"));
        let port = self.backend(backend).addr.port();
        self.update_endpoints(&cluster, |eps| {
            if let Some(e) = eps.iter_mut().find(|e| e.port == port) {
                f(e);
            }
        });
    }

    /// Removes one backend's endpoint from EDS (the process keeps running).
    pub fn remove_backend(&mut self, backend: &str) {
        let cluster = self
            .cluster_of(backend)
            .unwrap_or_else(|| panic!("no backend {backend}"));
        let port = self.backend(backend).addr.port();
        self.update_endpoints(&cluster, |eps| eps.retain(|e| e.port != port));
    }

    /// Shifts the split's weights live through Envoy's runtime admin layer.
    pub fn set_weights(&self, weights: &[(&str, u32)]) {
        let prefix = self.plan.runtime_key_prefix.as_deref().unwrap_or_default();
        self.envoy
            .admin
            .set_weights(prefix, weights)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Replaces Envoy with a new one in another affinity mode (and plugin
    /// config) in front of the same, still running backends: a rollout.
    pub fn replace_envoy(&mut self, affinity: Affinity, plugin: Value) -> Result<(), StartError> {
        self.envoy.stop();
        self.plan.affinity = affinity;
        self.plan.plugin_config = plugin;
        let text = serde_json::to_vec_pretty(&bootstrap(&self.plan)).map_err(|e| StartError {
            message: e.to_string(),
            log: String::new(),
        })?;
        let dir = self._dir.path().join(format!("envoy-{}", self.version));
        self.version += 1;
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&self.config_path, text))
            .map_err(|e| StartError {
                message: e.to_string(),
                log: String::new(),
            })?;
        self.envoy = start_envoy(
            &self.plan.affinity,
            self.native_module.as_deref(),
            &self.config_path,
            &dir,
        )?;
        self.wait_hosts_healthy();
        Ok(())
    }

    /// Replaces the plugin configuration of the running Envoy through LDS
    /// (needs `Spec::lds`). Returns whether Envoy accepted the new listener;
    /// a refused update leaves the previous configuration serving.
    pub fn update_plugin(&mut self, plugin: Value) -> bool {
        self.update_plugin_text(plugin, |text| text)
    }

    /// [`Rig::update_plugin`] with the filter's configuration text as
    /// rendered passed through `edit` first: for JSON that a `Value` cannot
    /// hold (a number with a leading zero, a duplicate key).
    pub fn update_plugin_text(
        &mut self,
        plugin: Value,
        edit: impl FnOnce(String) -> String,
    ) -> bool {
        let path = self
            .lds_path
            .clone()
            .unwrap_or_else(|| panic!("update_plugin needs Spec::lds"));
        self.plan.plugin_config = plugin;
        let mut listener = bootstrap(&self.plan)["static_resources"]["listeners"][0].take();
        listener["address"]["socket_address"]["port_value"] = json!(self.addr().port());
        let text = plugin_text(&mut listener)
            .unwrap_or_else(|| panic!("no sticky filter configuration in the listener"));
        *text = Value::String(edit(text.as_str().unwrap_or_default().to_owned()));
        self.push_listener(&path, &listener)
    }

    /// Pushes the rendered listener after `edit` changed it (e.g. removed
    /// the sticky filter, as if it were bypassed); `true` if Envoy applied it.
    pub fn update_listener(&mut self, edit: impl FnOnce(&mut Value)) -> bool {
        let path = self
            .lds_path
            .clone()
            .unwrap_or_else(|| panic!("update_listener needs Spec::lds"));
        let mut listener = bootstrap(&self.plan)["static_resources"]["listeners"][0].take();
        listener["address"]["socket_address"]["port_value"] = json!(self.addr().port());
        edit(&mut listener);
        self.push_listener(&path, &listener)
    }

    /// Writes `listener` to the LDS file and waits for Envoy's verdict.
    fn push_listener(&mut self, path: &std::path::Path, listener: &Value) -> bool {
        let (ok, bad) = (
            "listener_manager.lds.update_success",
            "listener_manager.lds.update_rejected",
        );
        let before = (
            self.envoy.stat(ok).unwrap_or(0),
            self.envoy.stat(bad).unwrap_or(0),
        );
        self.version += 1;
        write_lds(path, listener, self.version).unwrap_or_else(|e| panic!("lds write: {e}"));
        let mut accepted = None;
        self.envoy.wait_for(Duration::from_secs(10), |e| {
            if e.stat(ok).unwrap_or(0) > before.0 {
                accepted = Some(true);
            } else if e.stat(bad).unwrap_or(0) > before.1 {
                accepted = Some(false);
            }
            accepted.is_some()
        });
        let accepted =
            accepted.unwrap_or_else(|| panic!("Envoy neither applied nor rejected the LDS update"));
        if accepted {
            // The new listener's filter chain takes over once the old one drains.
            self.envoy.wait_for(Duration::from_secs(10), |e| {
                e.stat("listener_manager.total_listeners_draining")
                    .unwrap_or(0)
                    == 0
            });
        }
        accepted
    }

    /// Waits until every cluster reports its hosts (EDS loaded).
    fn wait_hosts_healthy(&self) {
        self.wait_healthy(&self.envoy);
    }

    /// Waits until `envoy` (this rig's, or a replica) sees every endpoint.
    pub(crate) fn wait_healthy(&self, envoy: &Envoy) {
        let members: Vec<(&str, usize)> = self
            .endpoints
            .iter()
            .map(|(c, eps)| (c.as_str(), eps.len()))
            .collect();
        envoy.wait_members(&members, Duration::from_secs(5));
    }

    /// The log lines that betray a crashed filter (should be none).
    pub fn wasm_failures(&self) -> Vec<String> {
        self.envoy.wasm_failures()
    }
}

/// The `filter_config` / `configuration` string of the sticky filter in a
/// rendered listener (native or wasm).
fn plugin_text(listener: &mut Value) -> Option<&mut Value> {
    let chain = listener.pointer_mut("/filter_chains/0/filters/0/typed_config/http_filters")?;
    let sticky = chain
        .as_array_mut()?
        .iter_mut()
        .find(|f| f["name"] == "sticky")?;
    let typed = &mut sticky["typed_config"];
    if typed.get("filter_config").is_some() {
        typed.pointer_mut("/filter_config/value")
    } else {
        typed.pointer_mut("/config/configuration/value")
    }
}

/// The dynamic module name Envoy derives `path` from: `lib<name>.so`.
fn module_name(path: &std::path::Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    Some(file.strip_prefix("lib")?.strip_suffix(".so")?.to_owned())
}

/// Starts the pinned Envoy on `config` with what `affinity` needs: the
/// native module's directory (`native_module`'s, or dist/'s) in
/// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
pub(crate) fn start_envoy(
    affinity: &Affinity,
    native_module: Option<&std::path::Path>,
    config: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Envoy, StartError> {
    let module = matches!(affinity, Affinity::StickyNative { .. }).then(|| {
        native_module
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::artifact("STICKY_NATIVE", "dist/libsticky.so"))
    });
    let bin = crate::artifact("STICKY_ENVOY", ".venv/envoy");
    Envoy::start_with_module(&bin, config, dir, module.as_deref())
}
