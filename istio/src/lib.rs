//! stickyctl: renders the Envoy and Istio configuration that wires the sticky
//! filter, checks that a policy can work as intended, and manages endpoint
//! drain state and token keys.

pub mod admin;
pub mod check;
pub mod cli;
pub mod eds;
pub mod endpoints;
pub mod error;
pub mod image;
pub mod input;
pub mod keys;
pub mod plugin;
pub mod render;
pub mod reshard;
pub mod resolve;
pub mod serve;
pub mod yaml;

pub use error::{Error, Result};
