//! Renderers: a resolved policy to Envoy or Istio config.

pub mod control_plane;
pub mod envoy;
pub mod istio;
pub mod standalone;
