//! The builds of the same core, so one end-to-end test body runs against
//! each: `dist/sticky.wasm` (proxy-wasm in V8) and `dist/libsticky.so` (an
//! Envoy dynamic module) in both of its wirings.

use stickyctl::render::envoy::{Affinity, NativeWiring};

use crate::rig::{Rig, Spec};

/// Which build of sticky Envoy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The proxy-wasm filter (with `stateful_session` pinning the host).
    Wasm,
    /// The dynamic module, direct wiring (pins the host itself with
    /// `set_upstream_override_host`; no `stateful_session`).
    Native,
    /// The dynamic module, drop-in wiring: the wasm's bootstrap with the
    /// module in the wasm filter's place (`stateful_session` pins the host).
    NativeDropIn,
}

impl Build {
    /// The affinity mode that loads this build.
    pub fn affinity(self) -> Affinity {
        match self {
            Build::Wasm => Affinity::StickyWasm {
                wasm_path: crate::artifact("STICKY_WASM", "dist/sticky.wasm"),
            },
            Build::Native => Affinity::StickyNative {
                module: "sticky".into(),
                wiring: NativeWiring::Direct,
            },
            Build::NativeDropIn => Affinity::StickyNative {
                module: "sticky".into(),
                wiring: NativeWiring::DropIn,
            },
        }
    }

    /// Starts a rig running this build; panics with Envoy's log on failure.
    pub fn start(self, spec: Spec) -> Rig {
        self.try_start(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a rig running this build.
    pub fn try_start(self, spec: Spec) -> Result<Rig, crate::envoy::StartError> {
        Rig::start(Spec {
            affinity: Some(self.affinity()),
            ..spec
        })
    }

    /// A counter of the filter by its name (`sticky.requests_pinned`), as
    /// this build exposes it in /stats; 0 when absent.
    pub fn counter(self, rig: &Rig, name: &str) -> u64 {
        let prefix = match self {
            Build::Wasm => "wasmcustom.",
            Build::Native | Build::NativeDropIn => "dynamicmodulescustom.",
        };
        rig.envoy.stat(&format!("{prefix}{name}")).unwrap_or(0)
    }

    /// Envoy is alive (a native crash kills it), the wasm VM never failed,
    /// and no internal header reached a backend.
    pub fn assert_clean(self, rig: &mut Rig) {
        assert!(
            rig.envoy.exited().is_none(),
            "Envoy died: {}",
            rig.envoy.log()
        );
        assert!(
            rig.wasm_failures().is_empty(),
            "wasm failures: {:?}",
            rig.wasm_failures()
        );
        for b in rig.backends.values().flatten() {
            assert_eq!(b.leaks(), 0, "internal header reached backend {}", b.name);
        }
    }
}

/// Runs each listed `fn name(build: Build)` as three tests: `name::wasm`,
/// `name::native` (direct wiring) and `name::native_dropin`.
#[macro_export]
macro_rules! for_each_build {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn wasm() {
                    super::$name($crate::build::Build::Wasm);
                }
                #[test]
                fn native() {
                    super::$name($crate::build::Build::Native);
                }
                #[test]
                fn native_dropin() {
                    super::$name($crate::build::Build::NativeDropIn);
                }
            }
        )*
    };
}
