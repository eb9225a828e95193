//! The instrumenter on small modules whose costs are known, and on the
//! shipped dist/sticky.wasm through the fake proxy-wasm host.

use sticky_fuel_profile::instrument::instrument;
use sticky_fuel_profile::paths::{Path, measure};
use sticky_host_tests::module::{compile, engine};
use sticky_host_tests::profile::{Profile, add_to_linker};
use wasmtime::{Linker, Store};

/// `root` calls `leaf` directly and through the table; `leaf` adds one.
const WAT: &str = r#"
(module
  (type $unary (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $leaf)
  (func $leaf (type $unary) (i32.add (local.get 0) (i32.const 1)))
  (func $root (export "root") (result i32)
    (call_indirect (type $unary) (call $leaf (i32.const 40)) (i32.const 0))))
"#;

#[test]
fn every_call_is_counted_with_its_cost_and_results_are_unchanged() {
    let wasm = wat::parse_str(WAT).unwrap();
    let instrumented = instrument(&wasm).unwrap();
    assert_eq!(instrumented.names, ["leaf", "root"]);
    let module = compile(&instrumented.wasm).unwrap();
    let mut linker = Linker::new(engine());
    add_to_linker(&mut linker, |p: &mut Profile| p).unwrap();
    let mut store = Store::new(engine(), Profile::default());
    store.set_fuel(10_000).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let root = instance
        .get_typed_func::<(), i32>(&mut store, "root")
        .unwrap();
    assert_eq!(root.call(&mut store, ()).unwrap(), 42);
    let profile = store.into_data();
    assert!(profile.balanced());
    let (leaf, root) = (profile.costs()[&0], profile.costs()[&1]);
    assert_eq!(
        (leaf.calls, root.calls),
        (2, 1),
        "the table call is counted too"
    );
    assert_eq!(root.inclusive, root.own + leaf.inclusive);
    assert!(leaf.own > 0 && root.own > 0);
}

#[test]
fn the_pinned_path_of_dist_sticky_wasm_is_profiled_by_export_name() {
    let path = sticky_host_tests::module::wasm_path();
    let wasm =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `make wasm`", path.display()));
    let instrumented = instrument(&wasm).unwrap();
    let module = compile(&instrumented.wasm).unwrap();
    let m = measure(&module, &instrumented.names, Path::Pinned, 5).unwrap();
    assert_eq!(m.streams, 5);
    let request = m.functions["proxy_on_request_headers"];
    assert_eq!(request.calls, 5);
    assert!(
        request.inclusive > 10_000 * 5 && request.inclusive < m.fuel,
        "{request:?} of {}",
        m.fuel
    );
    let response = m.functions["proxy_on_response_headers"];
    assert_eq!(response.calls, 5);
    assert!(request.inclusive + response.inclusive < m.fuel);
}
