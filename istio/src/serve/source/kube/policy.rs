//! The LBPolicy and HTTPRoute from the API (`serve --policy-name/--route-name`):
//! two kube-runtime watchers, each on one named object, as `DynamicObject`s
//! of hand-built `ApiResource`s. No typed bindings: the objects go through
//! the same parsers as the files ([`crate::serve::source::policy::load_api`]),
//! which accept every `sessionPersistence` shape the project supports.
//! Once both have listed, every change sends both objects (reduced to
//! apiVersion, kind, name, namespace, spec) into a channel, only when that
//! differs from the last pair sent.

use kube::Client;
use kube::api::Api;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;

use crate::input::{policy, route};
use crate::serve::source::policy::{ApiObjects, Names, reduce};
use crate::serve::telemetry;

/// The policy's API group (the project's own; `networking.gke.io/v1` is
/// accepted in files, but sticky's CRD is served as this one).
pub const POLICY_GROUP: &str = "sticky.dev";
/// The policy's API version.
pub const POLICY_VERSION: &str = "v1alpha1";
/// The policy's resource (plural).
pub const POLICY_PLURAL: &str = "lbpolicies";
/// The HTTPRoute's API version.
pub const ROUTE_VERSION: &str = "v1";
/// The HTTPRoute's resource (plural).
pub const ROUTE_PLURAL: &str = "httproutes";

/// The LBPolicy's resource, built by hand (no discovery call, no typed binding).
pub fn policy_resource() -> ApiResource {
    resource(POLICY_GROUP, POLICY_VERSION, policy::KIND, POLICY_PLURAL)
}

/// gateway.networking.k8s.io/v1 HTTPRoute.
pub fn route_resource() -> ApiResource {
    resource(route::GROUP, ROUTE_VERSION, "HTTPRoute", ROUTE_PLURAL)
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: format!("{group}/{version}"),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// A running policy watch; dropping it stops the watchers.
pub struct PolicyWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PolicyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching the two named objects (inside a tokio runtime); the
/// first [`ApiObjects`] arrives once both have listed.
pub fn start(client: Client, names: Names) -> (PolicyWatch, mpsc::UnboundedReceiver<ApiObjects>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(client, names, tx));
    (PolicyWatch { task }, rx)
}

/// One named object as the watcher last described it.
struct One {
    resource: ApiResource,
    name: String,
    current: Option<Value>,
    /// The relist in progress (`Init` .. `InitDone`).
    pending: Option<Option<Value>>,
    ready: bool,
}

impl One {
    fn new(resource: ApiResource, name: &str) -> Self {
        Self {
            resource,
            name: name.to_owned(),
            current: None,
            pending: None,
            ready: false,
        }
    }

    fn reduced(&self, o: &DynamicObject) -> Option<Value> {
        if o.metadata.name.as_deref() != Some(self.name.as_str()) {
            return None;
        }
        let mut v = serde_json::to_value(o).ok()?;
        // Watch events carry apiVersion/kind; fill them in if a server omits them.
        if v.get("apiVersion").is_none() {
            v["apiVersion"] = self.resource.api_version.clone().into();
            v["kind"] = self.resource.kind.clone().into();
        }
        Some(reduce(&v))
    }

    /// Applies one watcher event.
    fn apply(&mut self, event: Event<DynamicObject>) {
        match event {
            Event::Init => self.pending = Some(None),
            Event::InitApply(o) => {
                if let Some(v) = self.reduced(&o) {
                    self.pending = Some(Some(v));
                }
            }
            Event::InitDone => {
                self.current = self.pending.take().flatten();
                self.ready = true;
            }
            Event::Apply(o) => {
                if let Some(v) = self.reduced(&o) {
                    self.current = Some(v);
                }
            }
            Event::Delete(o) => {
                if o.metadata.name.as_deref() == Some(self.name.as_str()) {
                    self.current = None;
                }
            }
        }
    }
}

fn stream_of(
    client: &Client,
    ns: &str,
    one: &One,
    is_policy: bool,
) -> impl tokio_stream::Stream<Item = (bool, Result<Event<DynamicObject>, watcher::Error>)> + Send + use<>
{
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &one.resource);
    // The API server filters by name; `One` checks it again.
    let cfg = watcher::Config::default().fields(&format!("metadata.name={}", one.name));
    watcher::watcher(api, cfg)
        .default_backoff()
        .map(move |r| (is_policy, r))
}

async fn run(client: Client, names: Names, tx: mpsc::UnboundedSender<ApiObjects>) {
    let mut policy = One::new(policy_resource(), &names.policy);
    let mut route = One::new(route_resource(), &names.route);
    let events = stream_of(&client, &names.namespace, &policy, true).merge(stream_of(
        &client,
        &names.namespace,
        &route,
        false,
    ));
    let mut events = std::pin::pin!(events);
    let mut last: Option<ApiObjects> = None;
    while let Some((is_policy, event)) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // The watcher retries with backoff; the last policy stays.
                let kind = if is_policy { policy::KIND } else { "HTTPRoute" };
                telemetry::log(
                    "error",
                    &format!("kubernetes watch of {kind} in {}: {e}", names.namespace),
                );
                continue;
            }
        };
        if is_policy {
            policy.apply(event);
        } else {
            route.apply(event);
        }
        if !(policy.ready && route.ready) {
            continue;
        }
        let objects = ApiObjects {
            policy: policy.current.clone(),
            route: route.current.clone(),
        };
        if last.as_ref() != Some(&objects) {
            last = Some(objects.clone());
            if tx.send(objects).is_err() {
                return;
            }
        }
    }
}
