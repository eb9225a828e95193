//! A native proxy-wasm host for tests: it loads `dist/sticky.wasm` into
//! wasmtime and answers its host calls from a
//! [`FakeHost`](sticky_core::testing::FakeHost), the same stateful fake the
//! core's own tests use. [`WasmRunner`] drives the compiled filter through
//! the core's scenario table (`sticky_core::testing::scenarios`), so the
//! artifact Envoy loads is checked against the core run natively.
//!
//! It is also the ABI conformance check: host calls outside proxy-wasm 0.2.1,
//! bad pointers, wrong map types and calls in the wrong phase fail the test
//! with a message naming the call (see [`env`]).

#![forbid(unsafe_code)]

pub mod abi;
pub mod env;
pub mod error;
pub mod guest;
pub mod module;
pub mod profile;
pub mod properties;
pub mod runner;
pub mod state;
pub mod wasi;

pub use error::HostError;
pub use runner::{StreamCost, WasmRunner};
