//! stickyctl: renders the Envoy and Istio configuration that wires the sticky
//! filter, and manages endpoint drain state and token keys.

pub mod eds;
pub mod render;
