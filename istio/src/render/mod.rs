//! Renderers: a resolved [`Plan`](envoy::Plan) to Envoy or Istio config.

pub mod envoy;
