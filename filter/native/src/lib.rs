//! Placeholder: the Envoy dynamic-module glue lands here.
