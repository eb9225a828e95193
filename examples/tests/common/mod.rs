//! Shared by the examples' tests: the binaries cargo built for this test run
//! and the artifacts (Envoy, sticky.wasm) `make setup wasm` provides.

#![allow(dead_code)]

use std::path::PathBuf;

use sticky_examples::instance::Binaries;
use sticky_examples::stage::Artifacts;

/// The demo service binaries built for this test run.
pub fn binaries() -> Binaries {
    Binaries {
        cart: PathBuf::from(env!("CARGO_BIN_EXE_sticky-cart")),
        counter: PathBuf::from(env!("CARGO_BIN_EXE_sticky-counter")),
    }
}

/// Envoy, sticky.wasm and the service binaries; panics with the command to
/// run when Envoy or the wasm is missing.
pub fn artifacts() -> Artifacts {
    Artifacts::locate(binaries()).unwrap_or_else(|e| panic!("{e}"))
}

/// A bin target of this package by name.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "sticky-shopper" => PathBuf::from(env!("CARGO_BIN_EXE_sticky-shopper")),
        "sticky-counter-client" => PathBuf::from(env!("CARGO_BIN_EXE_sticky-counter-client")),
        "sticky-story" => PathBuf::from(env!("CARGO_BIN_EXE_sticky-story")),
        other => panic!("unknown binary {other}"),
    }
}
