//! The controller: owns the inputs' last good state, rebuilds the model and
//! the snapshot when a file changes, an admin change arrives or a drain
//! deadline passes, and publishes a snapshot only when its content changed.
//! A refused input is logged and counted; the last good snapshot keeps serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::serve::model::{Model, Options};
use crate::serve::snapshot::{self, Snapshot, TYPES, type_label};
use crate::serve::source::edit::{self, Change};
use crate::serve::source::files::{self, Directory, Endpoint, Outcome, State};
use crate::serve::source::kube::{self as kube_source, KubeWatch};
use crate::serve::source::policy::{ApiObjects, Inputs, PolicyInputs};
use crate::serve::telemetry::{Metrics, log};

/// A request from the admin API.
#[derive(Debug)]
pub enum Command {
    /// Change one endpoint; answers with a message or an error.
    Change(Change, oneshot::Sender<std::result::Result<Value, String>>),
    /// What is served now, and what is refused.
    Status(oneshot::Sender<Value>),
}

/// Where endpoints come from.
pub enum EndpointSource {
    /// A watched directory of endpoint files.
    Files(PathBuf),
    /// Kubernetes (`serve --kubernetes`): the running watchers.
    Kubernetes(KubeWatch),
}

/// The Kubernetes source's state in the controller.
struct KubeState {
    /// The watchers; dropping them stops the source.
    watch: KubeWatch,
    /// The last update (none before the first full list).
    latest: Option<kube_source::Update>,
}

/// The controller.
pub struct Control {
    opts: Options,
    inputs: Inputs,
    endpoints_dir: PathBuf,
    dir: Directory,
    kube: Option<KubeState>,
    policy: PolicyInputs,
    policy_error: Option<String>,
    model: Model,
    current: Arc<Snapshot>,
    publish: watch::Sender<Arc<Snapshot>>,
    metrics: Arc<Metrics>,
    warned: Vec<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long an endpoint terminating without a deadline drains: the
/// policy's `connectionDraining.drainingTimeoutSec`.
fn drain_cap(policy: &PolicyInputs) -> Option<u64> {
    policy.resolved.policy.draining_timeout
}

impl Control {
    /// Loads every input; a bad policy at start is fatal, a bad endpoint
    /// file is refused (logged, counted) like later.
    pub fn start(
        opts: Options,
        inputs: Inputs,
        source: EndpointSource,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, watch::Receiver<Arc<Snapshot>>)> {
        let policy = inputs.load()?;
        let (endpoints_dir, dir, kube) = match source {
            EndpointSource::Files(endpoints_dir) => {
                let (dir, refused) = Directory::load(&endpoints_dir, unix_now())?;
                for r in &refused {
                    log("error", &format!("endpoint file refused: {r}"));
                    metrics.add("sticky_input_errors_total", "source=\"endpoints\"", 1.0);
                }
                (endpoints_dir, dir, None)
            }
            EndpointSource::Kubernetes(watch) => {
                watch.set_params(kube_source::Params::from_resolved(&policy.resolved));
                let state = KubeState {
                    watch,
                    latest: None,
                };
                (PathBuf::new(), Directory::default(), Some(state))
            }
        };
        let services = match &kube {
            Some(_) => BTreeMap::new(),
            None => dir.services(drain_cap(&policy)),
        };
        let model = Model::build(&policy, &opts, services)?;
        // From Kubernetes, readiness (generation > 0) waits for the first
        // full list of the watched objects.
        let generation = if kube.is_some() { 0 } else { 1 };
        let snap = snapshot::build(&model, unix_now(), Instant::now(), generation)
            .map_err(|e| Error::Usage(format!("cannot serve this policy: {e}")))?;
        let current = Arc::new(snap);
        let (publish, rx) = watch::channel(current.clone());
        let mut this = Self {
            opts,
            inputs,
            endpoints_dir,
            dir,
            kube,
            policy,
            policy_error: None,
            model,
            current,
            publish,
            metrics,
            warned: Vec::new(),
        };
        this.after_publish();
        Ok((this, rx))
    }

    /// Runs until both channels close. `kube` carries the Kubernetes
    /// source's updates (`None` with endpoint files), `api_policy` the
    /// LBPolicy and HTTPRoute from the API (`None` with policy files).
    pub async fn run(
        mut self,
        mut fs: mpsc::UnboundedReceiver<PathBuf>,
        mut commands: mpsc::Receiver<Command>,
        mut kube: Option<mpsc::UnboundedReceiver<kube_source::Update>>,
        mut api_policy: Option<mpsc::UnboundedReceiver<ApiObjects>>,
    ) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                u = next_update(&mut kube) => {
                    let Some(u) = u else { break };
                    self.on_kube_update(u, Instant::now());
                }
                o = next_update(&mut api_policy) => {
                    let Some(o) = o else { break };
                    self.on_api_policy(o, Instant::now());
                }
                p = fs.recv() => {
                    let Some(p) = p else { break };
                    let seen = Instant::now();
                    let mut changed = vec![p];
                    while let Ok(p) = fs.try_recv() {
                        changed.push(p);
                    }
                    self.on_paths(&changed, seen);
                }
                c = commands.recv() => {
                    let Some(c) = c else { break };
                    self.on_command(c);
                }
                () = tokio::time::sleep(wake) => {
                    self.rebuild(None, Instant::now(), "drain deadline");
                }
            }
        }
    }

    /// A Kubernetes update: the endpoints of the route's Services, and the
    /// objects refused (each logged once, counted).
    fn on_kube_update(&mut self, update: kube_source::Update, seen: Instant) {
        let Some(state) = &mut self.kube else { return };
        let known = state
            .latest
            .as_ref()
            .map(|u| u.errors.clone())
            .unwrap_or_default();
        for e in update.errors.iter().filter(|e| !known.contains(e)) {
            log(
                "error",
                &format!("Kubernetes object refused, the rest keeps serving: {e}"),
            );
            self.metrics
                .add("sticky_input_errors_total", "source=\"kubernetes\"", 1.0);
        }
        self.metrics.set(
            "sticky_input_errors_current",
            "source=\"kubernetes\"",
            update.errors.len() as f64,
        );
        state.latest = Some(update);
        self.rebuild(None, seen, "kubernetes change");
    }

    /// The LBPolicy or HTTPRoute changed in the API: applied like a file
    /// change (refused: logged, counted, the last good snapshot keeps serving).
    fn on_api_policy(&mut self, objects: ApiObjects, seen: Instant) {
        let Inputs::Api { objects: held, .. } = &mut self.inputs else {
            return;
        };
        if *held == objects {
            return;
        }
        *held = objects;
        match self.inputs.load() {
            Ok(p) => self.rebuild(Some(p), seen, "policy change (kubernetes)"),
            Err(e) => self.refuse_policy(e.to_string()),
        }
    }

    /// The endpoints per Service, from whichever source is active.
    fn services(&self, policy: &PolicyInputs) -> BTreeMap<String, Vec<Endpoint>> {
        match &self.kube {
            Some(state) => state
                .latest
                .as_ref()
                .map(|u| u.endpoints.clone())
                .unwrap_or_default(),
            None => self.dir.services(drain_cap(policy)),
        }
    }

    /// Time until the next drain deadline passes (an hour if none).
    fn next_wake(&self) -> Duration {
        let Some(d) = self.model.next_deadline(unix_now()) else {
            return Duration::from_secs(3600);
        };
        let at = UNIX_EPOCH + Duration::from_secs(d);
        // A few ms past the second, so `now` is already `d` when we rebuild.
        at.duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_add(Duration::from_millis(5))
    }

    fn in_endpoints_dir(&self, p: &Path) -> bool {
        p.parent() == Some(self.endpoints_dir.as_path())
            || p.parent().and_then(|d| std::path::absolute(d).ok())
                == std::path::absolute(&self.endpoints_dir).ok()
    }

    fn on_paths(&mut self, changed: &[PathBuf], seen: Instant) {
        let mut endpoints_changed = false;
        let mut policy_changed = false;
        for p in changed {
            if self.inputs.watches_file(p) {
                policy_changed = true;
            } else if self.in_endpoints_dir(p) && files::is_endpoint_file(p) {
                match self.dir.reload(p, unix_now()) {
                    Outcome::Changed => endpoints_changed = true,
                    Outcome::Unchanged => {}
                    Outcome::Refused(m) => {
                        log(
                            "error",
                            &format!(
                                "endpoint file refused, its last good state keeps serving: {m}"
                            ),
                        );
                        self.metrics
                            .add("sticky_input_errors_total", "source=\"endpoints\"", 1.0);
                    }
                }
            }
        }
        self.metrics.set(
            "sticky_input_errors_current",
            "source=\"endpoints\"",
            self.dir.errors().len() as f64,
        );
        if policy_changed {
            match self.inputs.load() {
                Ok(p) => self.rebuild(Some(p), seen, "policy change"),
                Err(e) => self.refuse_policy(e.to_string()),
            }
        } else if endpoints_changed {
            self.rebuild(None, seen, "endpoint change");
        }
    }

    fn refuse_policy(&mut self, message: String) {
        log(
            "error",
            &format!("policy change refused, the last good snapshot keeps serving: {message}"),
        );
        self.metrics
            .add("sticky_input_errors_total", "source=\"policy\"", 1.0);
        self.metrics
            .set("sticky_input_errors_current", "source=\"policy\"", 1.0);
        self.policy_error = Some(message);
    }

    /// Rebuilds from the inputs (with a candidate policy, committed only if
    /// it builds) and publishes if the content changed.
    fn rebuild(&mut self, candidate: Option<PolicyInputs>, seen: Instant, why: &str) {
        let is_policy = candidate.is_some();
        let policy = candidate.as_ref().unwrap_or(&self.policy);
        let built = Model::build(policy, &self.opts, self.services(policy))
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let generation = self.current.generation.saturating_add(1);
                snapshot::build(&m, unix_now(), seen, generation).map(|s| (m, s))
            });
        let (model, snap) = match built {
            Ok(x) => x,
            Err(e) if is_policy => return self.refuse_policy(e),
            Err(e) => {
                log(
                    "error",
                    &format!(
                        "{why}: cannot build a snapshot, the last good one keeps serving: {e}"
                    ),
                );
                self.metrics
                    .add("sticky_input_errors_total", "source=\"model\"", 1.0);
                return;
            }
        };
        if let Some(p) = candidate {
            self.policy = p;
            if let Some(state) = &self.kube {
                // The route's backends (or the drain cap) may have changed.
                state
                    .watch
                    .set_params(kube_source::Params::from_resolved(&self.policy.resolved));
            }
            if self.policy_error.take().is_some() {
                self.metrics
                    .set("sticky_input_errors_current", "source=\"policy\"", 0.0);
            }
        }
        self.model = model;
        if snap.same_content(&self.current) {
            return;
        }
        let versions: Vec<String> = TYPES
            .iter()
            .filter_map(|t| {
                snap.envoy
                    .get(t)
                    .map(|s| format!("{}={}", type_label(t), s.version))
            })
            .collect();
        log(
            "info",
            &format!(
                "{why}: snapshot {} ({})",
                snap.generation,
                versions.join(" ")
            ),
        );
        self.current = Arc::new(snap);
        self.publish.send_replace(self.current.clone());
        self.after_publish();
    }

    fn after_publish(&mut self) {
        self.metrics.add("sticky_snapshots_total", "", 1.0);
        self.metrics.set(
            "sticky_snapshot_version_info",
            "",
            self.current.generation as f64,
        );
        let now = unix_now();
        let (mut serving, mut draining) = (0usize, 0usize);
        for c in &self.model.clusters {
            for e in self.model.live_endpoints(c, now) {
                match e.state {
                    State::Serving => serving = serving.saturating_add(1),
                    State::Terminating => draining = draining.saturating_add(1),
                }
            }
        }
        self.metrics
            .set("sticky_endpoints", "state=\"serving\"", serving as f64);
        self.metrics
            .set("sticky_endpoints", "state=\"draining\"", draining as f64);
        // Nothing dropped silently: say what the route and the files disagree on.
        let mut warnings: Vec<String> = self
            .model
            .services_without_endpoints()
            .into_iter()
            .map(|s| format!("the route names Service {s:?}, which no endpoint file describes: its cluster has no endpoints"))
            .collect();
        warnings.extend(
            self.model.unused_services().into_iter().map(|s| {
                format!("endpoint file for {s:?} names no Service of the route: not served")
            }),
        );
        for w in &warnings {
            if !self.warned.contains(w) {
                log("warn", w);
            }
        }
        self.warned = warnings;
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Change(change, reply) => {
                let _ = reply.send(self.change(&change));
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn change(&mut self, change: &Change) -> std::result::Result<Value, String> {
        if self.kube.is_some() {
            return Err(
                "endpoints come from Kubernetes (serve --kubernetes): change the Pods, not the control plane"
                    .into(),
            );
        }
        let seen = Instant::now();
        let (path, file) = match self.dir.file_of(&change.service) {
            Some((p, f)) => (p.to_owned(), Some(f.clone())),
            None => (
                self.endpoints_dir
                    .join(crate::render::standalone::eds_file_name(&change.service)),
                None,
            ),
        };
        let now = unix_now();
        let updated = edit::apply(file.as_ref(), change, now)?;
        edit::write(&path, &updated).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Outcome::Refused(m) = self.dir.reload(&path, now) {
            return Err(m);
        }
        self.rebuild(None, seen, "admin change");
        // The deadline served: the file's, or the one a drain without a
        // timeout gets from the policy's drainingTimeoutSec.
        let deadline = self
            .model
            .endpoints
            .get(&change.service)
            .and_then(|eps| {
                eps.iter()
                    .find(|e| e.address == change.address && e.port == change.port)
            })
            .and_then(|e| e.deadline);
        Ok(json!({
            "file": path.display().to_string(),
            "generation": self.current.generation,
            "eds_version": self.current.envoy.get(snapshot::ENDPOINT).map(|s| s.version.clone()),
            "drain_deadline": deadline,
        }))
    }

    fn status(&self) -> Value {
        let group = |g: &snapshot::GroupSnapshot| -> Value {
            TYPES
                .iter()
                .filter_map(|t| {
                    g.get(t).map(|s| {
                        (
                            type_label(t).to_owned(),
                            json!({"version": s.version, "resources": s.resources.keys().collect::<Vec<_>>()}),
                        )
                    })
                })
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        json!({
            "generation": self.current.generation,
            "envoy": group(&self.current.envoy),
            "grpc": group(&self.current.grpc),
            "endpoints": self.model.endpoints,
            "errors": {
                "policy": self.policy_error,
                "endpoints": match &self.kube {
                    Some(state) => json!(state.latest.as_ref().map(|u| u.errors.clone()).unwrap_or_default()),
                    None => json!(self.dir.errors()),
                },
            },
        })
    }
}

/// The next update of an optional source, or never (that source is files).
async fn next_update<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
