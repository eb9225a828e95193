//! Where the control plane's inputs come from: the policy, route and keys
//! files `render envoy` reads, and a watched directory of endpoint files.

pub mod edit;
pub mod files;
pub mod kube;
pub mod policy;
pub mod watch;
