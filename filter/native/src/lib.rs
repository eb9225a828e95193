//! sticky as an Envoy dynamic module (`dist/libsticky.so`): the same core as
//! the wasm build, loaded natively by `envoy.filters.http.dynamic_modules`
//! (Envoy 1.40.0, ABI `v0.2.0`).
//!
//! - [`abi`]: hand-written `extern "C"` declarations of the Envoy callbacks
//!   used, and safe wrappers; the only place that calls into Envoy.
//! - [`host`]: the core's `Host` trait over those wrappers.
//! - [`hooks`]: the `envoy_dynamic_module_on_*` event hooks Envoy calls.
//! - [`guard`]: the `catch_unwind` every hook body runs in.
//!
//! Native code has no sandbox: a panic unwinding into Envoy aborts it. The
//! workspace lints forbid `unwrap`, `expect`, indexing and `panic!`; every
//! hook body runs in [`guard::guard`] (built with `panic = "unwind"`, the
//! `native` profile), which fails open for the request; every Envoy buffer
//! is copied before headers change; every failed call reads as "absent".
//!
//! Not supported in this build: per-route configuration.

pub mod abi;
pub mod guard;
pub mod hooks;
pub mod host;

#[cfg(test)]
mod fake_envoy;
#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
