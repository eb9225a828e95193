use wasmtime::{Linker, Module, Store};

use super::{Profile, add_to_linker};
use crate::module::engine;

/// A module instrumented the way `bench/fuel-profile` does it, by hand:
/// `root` (1) calls `leaf` (0) twice and does work of its own.
const WAT: &str = r#"
(module
  (import "sticky_profile" "enter" (func $enter (param i32)))
  (import "sticky_profile" "exit" (func $exit (param i32)))
  (func $leaf
    (call $enter (i32.const 0))
    (drop (i32.add (i32.const 1) (i32.const 2)))
    (call $exit (i32.const 0)))
  (func (export "root")
    (call $enter (i32.const 1))
    (call $leaf)
    (drop (i32.mul (i32.const 3) (i32.const 4)))
    (drop (i32.mul (i32.const 5) (i32.const 6)))
    (call $leaf)
    (call $exit (i32.const 1))))
"#;

fn run(wat: &str) -> Profile {
    let module = Module::new(engine(), wat).unwrap_or_else(|e| panic!("{e:#}"));
    let mut linker = Linker::new(engine());
    add_to_linker(&mut linker, |p: &mut Profile| p).unwrap_or_else(|e| panic!("{e:#}"));
    let mut store = Store::new(engine(), Profile::default());
    store.set_fuel(1_000).unwrap_or_else(|e| panic!("{e:#}"));
    let instance = linker
        .instantiate(&mut store, &module)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let root = instance
        .get_typed_func::<(), ()>(&mut store, "root")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let _ = root.call(&mut store, ());
    store.into_data()
}

#[test]
fn inclusive_cost_is_own_plus_callees_and_calls_are_counted() {
    let profile = run(WAT);
    assert!(profile.balanced());
    let leaf = profile.costs()[&0];
    let root = profile.costs()[&1];
    assert_eq!((leaf.calls, root.calls), (2, 1));
    assert_eq!(leaf.inclusive, leaf.own, "a leaf has no callees");
    assert!(leaf.own > 0 && leaf.own.is_multiple_of(2), "{leaf:?}");
    assert!(root.own > 0, "{root:?}");
    let edge = profile.edges()[&(1, 0)];
    assert_eq!((edge.calls, edge.inclusive), (2, leaf.inclusive));
    assert_eq!(profile.edges().len(), 1, "root has no caller");
    assert_eq!(
        root.inclusive,
        root.own.saturating_add(leaf.inclusive),
        "{root:?} {leaf:?}"
    );
}

#[test]
fn clear_forgets_the_costs_and_a_trap_leaves_it_unbalanced() {
    let mut profile = run(WAT);
    profile.clear();
    assert!(profile.costs().is_empty());
    let trapping = WAT.replace(
        "(drop (i32.mul (i32.const 5) (i32.const 6)))",
        "(unreachable)",
    );
    let profile = run(&trapping);
    assert!(!profile.balanced(), "root never returned");
    assert_eq!(profile.costs()[&0].calls, 1);
}
