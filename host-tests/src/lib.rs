//! Placeholder: the wasmtime-based proxy-wasm host lands here.
