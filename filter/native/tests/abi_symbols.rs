//! Envoy binds a module's imports lazily: a callback the pinned Envoy does
//! not export would only fail at its first call, mid-request. These tests
//! compare symbol tables with `nm -D` instead: every Envoy callback that
//! `dist/libsticky.so` imports (and every one `src/abi.rs` declares) must be
//! exported by the pinned Envoy binary, and the module must export every
//! hook Envoy 1.40 requires (it refuses the filter config otherwise).
//!
//! Needs `make setup native` (Envoy in `.venv/`, the module in `dist/`);
//! `STICKY_ENVOY` / `STICKY_NATIVE` override the paths.
// A test crate: failing loudly is the point.
#![allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const CALLBACK_PREFIX: &str = "envoy_dynamic_module_callback_";

/// The hooks Envoy 1.40 resolves as mandatory for an HTTP filter module.
const REQUIRED_HOOKS: &[&str] = &[
    "envoy_dynamic_module_on_program_init",
    "envoy_dynamic_module_on_http_filter_config_new",
    "envoy_dynamic_module_on_http_filter_config_destroy",
    "envoy_dynamic_module_on_http_filter_new",
    "envoy_dynamic_module_on_http_filter_destroy",
    "envoy_dynamic_module_on_http_filter_request_headers",
    "envoy_dynamic_module_on_http_filter_request_body",
    "envoy_dynamic_module_on_http_filter_request_trailers",
    "envoy_dynamic_module_on_http_filter_response_headers",
    "envoy_dynamic_module_on_http_filter_response_body",
    "envoy_dynamic_module_on_http_filter_response_trailers",
    "envoy_dynamic_module_on_http_filter_stream_complete",
    "envoy_dynamic_module_on_http_filter_scheduled",
    "envoy_dynamic_module_on_http_filter_http_callout_done",
    "envoy_dynamic_module_on_http_filter_http_stream_headers",
    "envoy_dynamic_module_on_http_filter_http_stream_data",
    "envoy_dynamic_module_on_http_filter_http_stream_trailers",
    "envoy_dynamic_module_on_http_filter_http_stream_complete",
    "envoy_dynamic_module_on_http_filter_http_stream_reset",
    "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
    "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn artifact(var: &str, default: &str, make: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(default));
    assert!(
        path.exists(),
        "{} not found (set {var} or run `make {make}`)",
        path.display()
    );
    path
}

/// Dynamic symbols of a binary: `nm -D` with extra flags, names only.
fn dynamic_symbols(path: &PathBuf, flag: &str) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(["-D", flag, "--format=posix"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nm (binutils): {e}"));
    assert!(
        out.status.success(),
        "nm -D {flag} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        // Versioned names print as `name@VERSION`.
        .map(|s| s.split('@').next().unwrap_or(s).to_owned())
        .collect()
}

fn envoy_callbacks() -> BTreeSet<String> {
    let envoy = artifact("STICKY_ENVOY", ".venv/envoy", "setup");
    let exported: BTreeSet<String> = dynamic_symbols(&envoy, "--defined-only")
        .into_iter()
        .filter(|s| s.starts_with(CALLBACK_PREFIX))
        .collect();
    assert!(
        exported.len() > 100,
        "Envoy exports only {} callbacks: not a 1.40 build with dynamic modules?",
        exported.len()
    );
    exported
}

fn module() -> PathBuf {
    artifact("STICKY_NATIVE", "dist/libsticky.so", "native")
}

#[test]
fn envoy_exports_every_callback_the_module_imports() {
    let exported = envoy_callbacks();
    let imported: BTreeSet<String> = dynamic_symbols(&module(), "--undefined-only")
        .into_iter()
        .filter(|s| s.starts_with("envoy_"))
        .collect();
    assert!(
        imported.contains("envoy_dynamic_module_callback_http_set_upstream_override_host"),
        "the module does not import the callbacks it pins hosts with: {imported:?}"
    );
    let missing: Vec<_> = imported.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the module imports callbacks Envoy does not export: {missing:?}"
    );
}

#[test]
fn envoy_exports_every_callback_the_abi_module_declares() {
    let exported = envoy_callbacks();
    let source = std::fs::read_to_string(root().join("filter/native/src/abi.rs")).unwrap();
    let declared: BTreeSet<String> = source
        .split("fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| name.starts_with(CALLBACK_PREFIX))
        .map(str::to_owned)
        .collect();
    assert!(declared.len() >= 10, "{declared:?}");
    let missing: Vec<_> = declared.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "src/abi.rs declares callbacks Envoy does not export: {missing:?}"
    );
}

#[test]
fn the_module_exports_every_hook_envoy_requires() {
    let exported = dynamic_symbols(&module(), "--defined-only");
    let missing: Vec<_> = REQUIRED_HOOKS
        .iter()
        .filter(|h| !exported.contains(**h))
        .collect();
    assert!(
        missing.is_empty(),
        "Envoy would refuse the module: {missing:?}"
    );
    // And nothing else of ours leaks into the dynamic symbol table as a hook
    // Envoy might call with a signature we did not write.
    let hooks: Vec<_> = exported
        .iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_on_"))
        .filter(|s| !REQUIRED_HOOKS.contains(&s.as_str()))
        .filter(|s| !s.contains("per_route_config"))
        .collect();
    assert!(hooks.is_empty(), "unexpected hooks: {hooks:?}");
}

#[test]
fn envoy_knows_every_hook_the_module_exports() {
    // Hook names are looked up with dlsym, so they appear in Envoy's strings.
    let envoy = artifact("STICKY_ENVOY", ".venv/envoy", "setup");
    let bytes = std::fs::read(envoy).unwrap();
    let exported = dynamic_symbols(&module(), "--defined-only");
    for hook in exported
        .iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_on_"))
    {
        assert!(
            bytes.windows(hook.len()).any(|w| w == hook.as_bytes()),
            "Envoy never looks up {hook}"
        );
    }
}
