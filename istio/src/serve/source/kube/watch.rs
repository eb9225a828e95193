//! The Kubernetes watchers: EndpointSlices (those carrying
//! `kubernetes.io/service-name`), Pods and Services of one namespace, each a
//! kube-runtime `watcher` (list, then watch from its resourceVersion; relist
//! on 410 Gone; backoff on errors). Once all three have listed, every change
//! (or new [`Params`]) sends a fresh [`Update`] into a channel, only when it
//! differs from the last one sent.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::Api;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;

use super::cache::Cache;
use super::convert::{self, Converted, Objects, Params, SERVICE_NAME_LABEL};
use crate::serve::telemetry;

/// What the source sends: the endpoints of the route's Services and what was refused.
pub type Update = Converted;

/// A running Kubernetes source; dropping it stops the watchers.
pub struct KubeWatch {
    task: tokio::task::JoinHandle<()>,
    params: watch::Sender<Params>,
}

impl KubeWatch {
    /// New backends or drain cap (the policy or route changed): converts again.
    pub fn set_params(&self, params: Params) {
        self.params.send_replace(params);
    }
}

impl Drop for KubeWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `namespace` (inside a tokio runtime); updates arrive on
/// the receiver, the first once all three kinds have listed.
pub fn start(
    client: Client,
    namespace: &str,
    params: Params,
) -> (KubeWatch, mpsc::UnboundedReceiver<Update>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (params_tx, params_rx) = watch::channel(params);
    let task = tokio::spawn(run(client, namespace.to_owned(), params_rx, tx));
    (
        KubeWatch {
            task,
            params: params_tx,
        },
        rx,
    )
}

enum Which {
    Slice,
    Pod,
    Service,
}

fn stream_of<K>(
    client: &Client,
    ns: &str,
    cfg: watcher::Config,
    which: fn() -> Which,
) -> impl tokio_stream::Stream<Item = (Which, Result<Event<DynamicObject>, watcher::Error>)> + Send
where
    K: kube::Resource<DynamicType = ()>,
{
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<K>(&()));
    watcher::watcher(api, cfg)
        .default_backoff()
        .map(move |r| (which(), r))
}

async fn run(
    client: Client,
    ns: String,
    mut params: watch::Receiver<Params>,
    tx: mpsc::UnboundedSender<Update>,
) {
    let slices_cfg = watcher::Config::default().labels(SERVICE_NAME_LABEL);
    let events = stream_of::<EndpointSlice>(&client, &ns, slices_cfg, || Which::Slice)
        .merge(stream_of::<Pod>(
            &client,
            &ns,
            watcher::Config::default(),
            || Which::Pod,
        ))
        .merge(stream_of::<Service>(
            &client,
            &ns,
            watcher::Config::default(),
            || Which::Service,
        ));
    let mut events = std::pin::pin!(events);
    let mut slices = Cache::<EndpointSlice>::new("EndpointSlice");
    let mut pods = Cache::<Pod>::new("Pod");
    let mut services = Cache::<Service>::new("Service");
    let mut last: Option<Update> = None;
    loop {
        tokio::select! {
            next = events.next() => {
                let Some((which, event)) = next else { return };
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        // The watcher retries with backoff; the last update stays.
                        telemetry::log("error", &format!("kubernetes watch in {ns}: {e}"));
                        continue;
                    }
                };
                let changed = match which {
                    Which::Slice => slices.apply(event),
                    Which::Pod => pods.apply(event),
                    Which::Service => services.apply(event),
                };
                if !changed {
                    continue;
                }
            }
            r = params.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
        if !(slices.ready() && pods.ready() && services.ready()) {
            continue;
        }
        let (s, p, v) = (slices.good(), pods.good(), services.good());
        let objects = Objects {
            namespace: &ns,
            slices: &s,
            pods: &p,
            services: &v,
        };
        let mut update = convert::convert(objects, &params.borrow());
        let mut refused: Vec<String> = slices
            .errors()
            .chain(pods.errors())
            .chain(services.errors())
            .cloned()
            .collect();
        refused.append(&mut update.errors);
        update.errors = refused;
        if last.as_ref() != Some(&update) {
            last = Some(update.clone());
            if tx.send(update).is_err() {
                return;
            }
        }
    }
}
