//! host-tests: `dist/sticky.wasm` in a fake proxy-wasm host. One binary, so
//! the module is compiled once for every test.

#![forbid(unsafe_code)]
// Test code: helpers outside #[test] fns fail the test by panicking too.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod abi;
mod artifact;
mod scenarios;
