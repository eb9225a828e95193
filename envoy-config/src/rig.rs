//! A whole set-up: a [`Fleet`] of upstreams per cluster (in-process
//! backends by default), a bootstrap rendered by stickyctl, and Envoy running
//! it; changes go through EDS, LDS and the runtime admin layer, as a control
//! plane's do.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sticky_core::config::wire::PluginConfig;
use stickyctl::eds::{self, Endpoint, Health};
use stickyctl::render::envoy::{Affinity, Plan, bootstrap};

use crate::backend::Backend;
use crate::envoy::{Envoy, StartError};
use crate::fleet::{Fleet, Upstream, native_module};

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
    /// The listener port on 127.0.0.1 (0: an ephemeral one).
    pub listen_port: u16,
    /// The Envoy binary; `None` means `STICKY_ENVOY` or `.venv/envoy`.
    pub envoy: Option<PathBuf>,
    /// Changes to every rendered bootstrap (e.g. HTTP/2 upstreams).
    pub edits: Vec<fn(&mut Value)>,
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
            listen_port: 0,
            envoy: None,
            edits: Vec::new(),
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

/// A running set-up; reads of its upstreams and endpoints go to its
/// [`Fleet`]. Dropped, it stops Envoy, then every upstream.
pub struct Rig<U = Backend> {
    /// Envoy.
    pub envoy: Envoy,
    /// The rendered plan.
    pub plan: Plan,
    /// The bootstrap file of the running Envoy.
    pub config_path: PathBuf,
    fleet: Fleet<U>,
    lds: Option<Lds>,
    native_module: Option<PathBuf>,
    envoy_bin: Option<PathBuf>,
    edits: Vec<fn(&mut Value)>,
}

/// The watched LDS file of a `Spec::lds` rig.
struct Lds {
    path: PathBuf,
    version: u64,
}

impl<U> Deref for Rig<U> {
    type Target = Fleet<U>;
    fn deref(&self) -> &Fleet<U> {
        &self.fleet
    }
}

impl Rig {
    /// Starts in-process backends, writes EDS and the bootstrap, starts Envoy.
    pub fn start(spec: Spec) -> Result<Rig, StartError> {
        Rig::start_with(spec, |_, name| {
            Backend::start(name).map_err(|e| format!("backend {name}: {e}"))
        })
    }
}

impl<U: Upstream> Rig<U> {
    /// [`Rig::start`] with the upstreams `launcher` starts (cluster, name).
    pub fn start_with(
        spec: Spec,
        launcher: impl Fn(&str, &str) -> Result<U, String> + Send + Sync + 'static,
    ) -> Result<Rig<U>, StartError> {
        let fleet = Fleet::start(&spec.clusters, launcher)?;
        let affinity = spec.affinity.unwrap_or_else(|| Affinity::StickyWasm {
            wasm_path: crate::artifact("STICKY_WASM", "dist/sticky.wasm"),
        });
        let plugin = spec
            .plugin
            .unwrap_or_else(|| default_plugin(&fleet.cluster_names()));
        let mut plan = Plan {
            retry: spec.retry,
            strict: spec.strict,
            listen_port: spec.listen_port,
            ..fleet.plan(affinity, plugin)
        };
        let (envoy, lds) = launch(
            &fleet,
            &mut plan,
            &spec.edits,
            spec.envoy.as_deref(),
            spec.native_module.as_deref(),
            spec.lds,
        )?;
        Ok(Rig {
            config_path: envoy.config.clone(),
            envoy,
            plan,
            fleet,
            lds,
            native_module: spec.native_module,
            envoy_bin: spec.envoy,
            edits: spec.edits,
        })
    }

    /// The listener address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.envoy.listener
    }

    /// Starts one more upstream in `cluster` and adds it to EDS; returns its name.
    pub fn add_upstream(&mut self, cluster: &str) -> Result<String, String> {
        self.fleet.add(&self.envoy, cluster)
    }

    /// Changes one upstream's endpoint (found by name) and applies it.
    pub fn change_upstream(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut Endpoint),
    ) -> Result<(), String> {
        self.fleet.change_upstream(&self.envoy, name, change)
    }

    /// Marks an upstream DRAINING in EDS, with an optional deadline (unix
    /// seconds) in `filter_metadata.sticky.drain_deadline`.
    pub fn drain(&mut self, name: &str, deadline: Option<u64>) -> Result<(), String> {
        self.change_upstream(name, |e| {
            e.health = Health::Draining;
            e.drain_deadline = deadline;
        })
    }

    /// Removes one upstream's endpoint from EDS (it keeps running).
    pub fn remove_upstream(&mut self, name: &str) -> Result<(), String> {
        self.fleet.remove(&self.envoy, name)
    }

    /// Kills an upstream; EDS still lists it, as right after a crash.
    pub fn kill(&mut self, name: &str) -> Result<(), String> {
        self.fleet.kill(name)
    }

    /// Shifts the split's weights live through Envoy's runtime admin layer.
    pub fn shift_weights(&self, weights: &[(&str, u32)]) -> Result<(), String> {
        let prefix = self.plan.runtime_key_prefix.as_deref().unwrap_or_default();
        self.envoy.admin.set_weights(prefix, weights)
    }

    /// [`Rig::add_upstream`]; panics on failure (tests).
    pub fn add_backend(&mut self, cluster: &str) -> String {
        self.add_upstream(cluster).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Rig::change_upstream`]; panics on failure (tests).
    pub fn update_backend(&mut self, backend: &str, f: impl FnOnce(&mut Endpoint)) {
        self.change_upstream(backend, f)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Rig::remove_upstream`]; panics on failure (tests).
    pub fn remove_backend(&mut self, backend: &str) {
        self.remove_upstream(backend)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Rig::shift_weights`]; panics on failure (tests).
    pub fn set_weights(&self, weights: &[(&str, u32)]) {
        self.shift_weights(weights)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Replaces Envoy with a new one in another affinity mode (and plugin
    /// config) in front of the same, still running upstreams: a rollout.
    pub fn replace_envoy(&mut self, affinity: Affinity, plugin: Value) -> Result<(), StartError> {
        self.envoy.stop();
        self.plan.affinity = affinity;
        self.plan.plugin_config = plugin;
        let (envoy, _) = launch(
            &self.fleet,
            &mut self.plan,
            &self.edits,
            self.envoy_bin.as_deref(),
            self.native_module.as_deref(),
            false,
        )?;
        self.config_path = envoy.config.clone();
        self.envoy = envoy;
        Ok(())
    }

    /// Starts another Envoy on this rig's plan in front of its upstreams
    /// (listener over LDS or not, it is served statically).
    pub(crate) fn launch_another(&self) -> Result<Envoy, StartError> {
        let (envoy, _) = launch(
            &self.fleet,
            &mut self.plan.clone(),
            &self.edits,
            self.envoy_bin.as_deref(),
            self.native_module.as_deref(),
            false,
        )?;
        Ok(envoy)
    }

    /// Whether this rig serves its listener over LDS.
    pub(crate) fn serves_lds(&self) -> bool {
        self.lds.is_some()
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
        self.plan.plugin_config = plugin;
        self.update_listener(|listener| {
            let text = plugin_text(listener)
                .unwrap_or_else(|| panic!("no sticky filter configuration in the listener"));
            *text = Value::String(edit(text.as_str().unwrap_or_default().to_owned()));
        })
    }

    /// Pushes the rendered listener after `edit` changed it (e.g. removed
    /// the sticky filter, as if it were bypassed); `true` if Envoy applied it.
    pub fn update_listener(&mut self, edit: impl FnOnce(&mut Value)) -> bool {
        let mut listener =
            render(&self.plan, &self.edits)["static_resources"]["listeners"][0].take();
        listener["address"]["socket_address"]["port_value"] = json!(self.addr().port());
        edit(&mut listener);
        self.push_listener(&listener)
    }

    /// Writes `listener` to the LDS file and waits for Envoy's verdict.
    fn push_listener(&mut self, listener: &Value) -> bool {
        let lds = self
            .lds
            .as_mut()
            .unwrap_or_else(|| panic!("LDS updates need Spec::lds"));
        let (ok, bad) = (
            "listener_manager.lds.update_success",
            "listener_manager.lds.update_rejected",
        );
        let before = (
            self.envoy.stat(ok).unwrap_or(0),
            self.envoy.stat(bad).unwrap_or(0),
        );
        lds.version += 1;
        write_lds(&lds.path, listener, lds.version).unwrap_or_else(|e| panic!("lds write: {e}"));
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

    /// sticky's non-zero counters from Envoy's /stats (`wasmcustom.sticky.*`).
    pub fn sticky_counters(&self) -> Vec<(String, u64)> {
        self.envoy
            .stats_matching("wasmcustom.sticky")
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// The log lines that betray a crashed filter (should be none).
    pub fn wasm_failures(&self) -> Vec<String> {
        self.envoy.wasm_failures()
    }
}

/// Starts Envoy on `plan` (with `edits`) in front of `fleet`: a native
/// affinity loads `module` (or dist/'s), named in `plan` after its file;
/// with `lds` the listener is served from a watched file.
fn launch<U: Upstream>(
    fleet: &Fleet<U>,
    plan: &mut Plan,
    edits: &[fn(&mut Value)],
    envoy: Option<&Path>,
    module: Option<&Path>,
    lds: bool,
) -> Result<(Envoy, Option<Lds>), StartError> {
    let module = native_module(&mut plan.affinity, module)?;
    let mut boot = render(plan, edits);
    let lds = if lds {
        Some(serve_listener_over_lds(&mut boot, fleet.dir())?)
    } else {
        None
    };
    let envoy = fleet.launch(&boot, envoy, module.as_deref())?;
    Ok((envoy, lds))
}

/// `plan`'s bootstrap with `edits` applied.
fn render(plan: &Plan, edits: &[fn(&mut Value)]) -> Value {
    let mut boot = bootstrap(plan);
    for edit in edits {
        edit(&mut boot);
    }
    boot
}

/// Moves the bootstrap's listener to a watched LDS file under `dir`, on a
/// fixed port: an LDS update of a port-0 listener would rebind elsewhere.
fn serve_listener_over_lds(boot: &mut Value, dir: &Path) -> Result<Lds, String> {
    let lds_dir = dir.join("lds");
    let path = lds_dir.join("listeners.json");
    std::fs::create_dir_all(&lds_dir).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut listener = boot["static_resources"]["listeners"][0].take();
    listener["address"]["socket_address"]["port_value"] = json!(port);
    boot["static_resources"]
        .as_object_mut()
        .map(|o| o.remove("listeners"));
    boot["dynamic_resources"] = json!({"lds_config": {
        "resource_api_version": "V3",
        "path_config_source": {"path": path, "watched_directory": {"path": lds_dir}},
    }});
    write_lds(&path, &listener, 1).map_err(|e| e.to_string())?;
    Ok(Lds { path, version: 1 })
}

fn write_lds(path: &Path, listener: &Value, version: u64) -> std::io::Result<()> {
    let mut listener = listener.clone();
    listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
    let doc = json!({"version_info": version.to_string(), "resources": [listener]});
    eds::write_atomic(
        path,
        &serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?,
    )
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
