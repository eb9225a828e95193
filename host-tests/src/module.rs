//! Finding, compiling and checking `dist/sticky.wasm`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wasmtime::{Config, Engine, Module};

use crate::error::HostError;

/// The workspace root (this crate lives in `<root>/host-tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where the filter under test is: `$STICKY_WASM`, else `<root>/dist/sticky.wasm`.
pub fn wasm_path() -> PathBuf {
    match std::env::var_os("STICKY_WASM") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join("dist").join("sticky.wasm"),
    }
}

/// The engine every module of the harness runs on: fuel metering on, so
/// each call's cost in wasm instructions is known (and a runaway loop stops).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        // The config is plain and supported on every host Wasmtime runs on.
        Engine::new(&config).unwrap_or_else(|_| Engine::default())
    })
}

/// `dist/sticky.wasm` (or `$STICKY_WASM`), compiled once per test process.
pub fn sticky_module() -> Result<&'static Module, HostError> {
    static MODULE: OnceLock<Result<Module, HostError>> = OnceLock::new();
    MODULE
        .get_or_init(|| load(&wasm_path()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Reads and compiles the module at `path`; a missing file says how to build it.
pub fn load(path: &Path) -> Result<Module, HostError> {
    let bytes = std::fs::read(path)
        .map_err(|e| HostError::Load(format!("{}: {e}; run `make wasm` first", path.display())))?;
    Module::new(engine(), &bytes)
        .map_err(|e| HostError::Load(format!("{}: does not compile: {e:#}", path.display())))
}

/// Compiles a module from text or binary (for hand-written test modules).
pub fn compile(wat_or_wasm: impl AsRef<[u8]>) -> Result<Module, HostError> {
    Module::new(engine(), wat_or_wasm).map_err(|e| HostError::Load(format!("{e:#}")))
}

/// The size budget of `dist/sticky.wasm` in bytes: the Makefile's
/// `WASM_BUDGET` line, so the Makefile stays the one source of truth.
pub fn wasm_budget() -> Result<u64, HostError> {
    let makefile = workspace_root().join("Makefile");
    let text = std::fs::read_to_string(&makefile)
        .map_err(|e| HostError::Load(format!("{}: {e}", makefile.display())))?;
    parse_budget(&text).ok_or_else(|| {
        HostError::Load(format!(
            "{}: no `WASM_BUDGET := <bytes>` line",
            makefile.display()
        ))
    })
}

/// The value of the `WASM_BUDGET := N` assignment in Makefile text.
pub fn parse_budget(makefile: &str) -> Option<u64> {
    makefile.lines().find_map(|line| {
        let (name, value) = line.split_once(":=")?;
        if name.trim() != "WASM_BUDGET" {
            return None;
        }
        value.split('#').next()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_read_from_the_makefile_assignment() {
        let text = "X := 1\n# Size budget\nWASM_BUDGET   := 245760\nWASM_BUDGET_OTHER := 3\n";
        assert_eq!(parse_budget(text), Some(245_760));
        assert_eq!(parse_budget("WASM_BUDGET := lots\n"), None);
        assert_eq!(parse_budget("WASM := dist/sticky.wasm\n"), None);
    }
}
