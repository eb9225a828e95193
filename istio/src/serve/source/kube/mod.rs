//! The Kubernetes endpoint source: EndpointSlices, Pods and Services of one
//! namespace, watched with kube-runtime, converted to the same endpoints per
//! Service that the files source produces.
//!
//! ```text
//! watchers (slices, pods, services) ─► cache (decode, refusals) ─► convert ─► Update ─► channel
//!                                                      Params (route backends, drain cap) ─┘
//! watchers (LBPolicy, HTTPRoute by name) ─► ApiObjects ─► channel (parsed by the controller)
//! ```

pub mod cache;
pub mod convert;
pub mod policy;
pub mod watch;

pub use convert::{Backend, Converted, Objects, Params, convert};
pub use watch::{KubeWatch, Update, start};

use crate::error::{Error, Result};

/// A client from the environment: in a Pod, its ServiceAccount; elsewhere
/// `KUBECONFIG` / `~/.kube/config`.
pub async fn client() -> Result<kube::Client> {
    kube::Client::try_default()
        .await
        .map_err(|e| Error::Usage(format!("cannot reach Kubernetes: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
