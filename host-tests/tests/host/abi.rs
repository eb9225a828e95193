//! ABI conformance: hand-written modules that misuse the host, one way each.
//! Every misuse must fail with a message that names the call and the fault.

use sticky_core::testing::FakeHost;
use sticky_core::testing::sim::Runner;
use sticky_host_tests::{HostError, WasmRunner, module};

/// A minimal proxy-wasm module; `{imports}`, `{request}` and `{response}`
/// are spliced in (the phase bodies must leave an Action on the stack).
const TEMPLATE: &str = r#"
(module
  {imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    {alloc})
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {request})
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) {response})
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
  (data (i32.const 1024) "cookie")
  (data (i32.const 1040) "request\00headers\00cookie\00")
  (data (i32.const 1072) "node\00id\00")
  (data (i32.const 1100) "x-evil")
  (data (i32.const 1120) "a\0d\0ab")
  (data (i32.const 1200) "panicked at src/lib.rs:1:1: boom")
)
"#;

const BUMP_ALLOC: &str = "global.get $heap local.set $p \
     global.get $heap local.get $n i32.add global.set $heap local.get $p";

const GET_MAP_VALUE: &str = r#"(import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))"#;

fn wat(imports: &str, request: &str, response: &str) -> String {
    TEMPLATE
        .replace("{imports}", imports)
        .replace("{alloc}", BUMP_ALLOC)
        .replace("{request}", request)
        .replace("{response}", response)
}

fn host() -> FakeHost {
    FakeHost {
        request: vec![("cookie".into(), b"sticky=abc".to_vec())],
        response: vec![(":status".into(), b"200".to_vec())],
        ..FakeHost::default()
    }
}

/// Loads `text`, configures it, and runs one stream; the first failure.
fn exercise(text: &str) -> Result<WasmRunner, HostError> {
    let module = module::compile(text)?;
    let mut runner = WasmRunner::with_module(&module)?;
    runner.try_configure(b"{}")?;
    let mut h = host();
    runner.try_on_request(&mut h, 1)?;
    runner.try_on_response(&mut h, 1)?;
    Ok(runner)
}

fn failure(text: &str) -> HostError {
    match exercise(text) {
        Ok(_) => panic!("the misbehaving module passed"),
        Err(e) => e,
    }
}

fn assert_mentions(e: &HostError, parts: &[&str]) {
    let text = e.to_string();
    for p in parts {
        assert!(text.contains(p), "{p:?} missing from: {text}");
    }
}

#[test]
fn well_behaved_module_runs_clean() {
    let get = "(drop (call $get (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 2000) (i32.const 2004))) i32.const 0";
    let runner = exercise(&wat(GET_MAP_VALUE, get, "i32.const 0")).unwrap();
    assert_eq!(
        runner.last_cost().calls.get("proxy_get_header_map_value"),
        Some(&1)
    );
    assert!(runner.last_cost().fuel() > 0);
}

#[test]
fn import_outside_the_abi_is_refused_at_load() {
    let imports = r#"(import "env" "proxy_get_secret" (func (param i32) (result i32)))
                     (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))"#;
    let e = failure(&wat(imports, "i32.const 0", "i32.const 0"));
    assert!(matches!(e, HostError::Load(_)), "{e}");
    assert_mentions(
        &e,
        &["env.proxy_get_secret", "wasi_snapshot_preview1.fd_read"],
    );
}

#[test]
fn module_without_the_abi_version_export_is_refused() {
    let text = wat("", "i32.const 0", "i32.const 0")
        .replace(r#"(func (export "proxy_abi_version_0_2_1"))"#, "");
    assert_mentions(&failure(&text), &["proxy_abi_version_0_2_1"]);
}

#[test]
fn out_of_bounds_pointer_is_a_violation() {
    let get = "(drop (call $get (i32.const 0) (i32.const 131000) (i32.const 1000) (i32.const 2000) (i32.const 2004))) i32.const 0";
    let e = failure(&wat(GET_MAP_VALUE, get, "i32.const 0"));
    assert!(
        matches!(
            e,
            HostError::Abi {
                export: "proxy_on_request_headers",
                ..
            }
        ),
        "{e}"
    );
    assert_mentions(
        &e,
        &["proxy_get_header_map_value", "key", "outside linear memory"],
    );
}

#[test]
fn null_result_slot_is_a_violation() {
    let get = "(drop (call $get (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 0) (i32.const 2004))) i32.const 0";
    assert_mentions(
        &failure(&wat(GET_MAP_VALUE, get, "i32.const 0")),
        &["proxy_get_header_map_value", "null out-pointer"],
    );
}

#[test]
fn unknown_map_type_is_a_violation() {
    let get = "(drop (call $get (i32.const 9) (i32.const 1024) (i32.const 6) (i32.const 2000) (i32.const 2004))) i32.const 0";
    assert_mentions(
        &failure(&wat(GET_MAP_VALUE, get, "i32.const 0")),
        &["map type 9 is not a proxy-wasm MapType"],
    );
}

#[test]
fn reading_request_headers_in_the_response_phase_is_a_violation() {
    let get = "(drop (call $get (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 2000) (i32.const 2004))) i32.const 0";
    let e = failure(&wat(GET_MAP_VALUE, "i32.const 0", get));
    assert!(
        matches!(
            e,
            HostError::Abi {
                export: "proxy_on_response_headers",
                ..
            }
        ),
        "{e}"
    );
    assert_mentions(&e, &["HttpRequestHeaders", "BadArgument"]);
}

#[test]
fn writing_response_headers_in_the_request_phase_is_a_violation() {
    let imports = r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#;
    let add = "(drop (call $add (i32.const 2) (i32.const 1100) (i32.const 6) (i32.const 1120) (i32.const 1))) i32.const 0";
    assert_mentions(
        &failure(&wat(imports, add, "i32.const 0")),
        &[
            "proxy_add_header_map_value",
            "write of map 2 (HttpResponseHeaders)",
            "proxy_on_request_headers",
        ],
    );
}

#[test]
fn request_header_property_in_the_response_phase_is_a_violation() {
    let imports =
        r#"(import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))"#;
    let read = "(drop (call $prop (i32.const 1040) (i32.const 23) (i32.const 2000) (i32.const 2004))) i32.const 0";
    // Allowed while the request headers exist.
    exercise(&wat(imports, read, "i32.const 0")).unwrap();
    assert_mentions(
        &failure(&wat(imports, "i32.const 0", read)),
        &["request.headers", "response phase"],
    );
}

#[test]
fn unmodelled_property_is_a_violation_not_a_silent_miss() {
    let imports =
        r#"(import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))"#;
    let read = "(drop (call $prop (i32.const 1072) (i32.const 8) (i32.const 2000) (i32.const 2004))) i32.const 0";
    assert_mentions(
        &failure(&wat(imports, read, "i32.const 0")),
        &["property `node.id`"],
    );
}

#[test]
fn callouts_are_refused() {
    let imports = r#"(import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;
    let call = "(drop (call $call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))) i32.const 0";
    assert_mentions(
        &failure(&wat(imports, call, "i32.const 0")),
        &["proxy_http_call", "not supported", "no callouts"],
    );
}

#[test]
fn header_value_with_cr_lf_is_a_violation() {
    let imports = r#"(import "env" "proxy_replace_header_map_value" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#;
    let set = "(drop (call $set (i32.const 0) (i32.const 1100) (i32.const 6) (i32.const 1120) (i32.const 4))) i32.const 0";
    assert_mentions(
        &failure(&wat(imports, set, "i32.const 0")),
        &["\"x-evil\"", "CR or LF"],
    );
}

#[test]
fn undefined_metric_is_a_violation() {
    let imports =
        r#"(import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))"#;
    let inc = "(drop (call $inc (i32.const 42) (i64.const 1))) i32.const 0";
    assert_mentions(
        &failure(&wat(imports, inc, "i32.const 0")),
        &["metric id 42 was never defined"],
    );
}

#[test]
fn allocator_returning_null_is_a_violation() {
    let get = "(drop (call $get (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 2000) (i32.const 2004))) i32.const 0";
    let text = wat(GET_MAP_VALUE, get, "i32.const 0").replace(BUMP_ALLOC, "i32.const 0");
    assert_mentions(
        &failure(&text),
        &["proxy_on_memory_allocate(10) returned null"],
    );
}

#[test]
fn panic_is_reported_with_the_filters_message() {
    let imports = r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;
    let panic = "(drop (call $log (i32.const 5) (i32.const 1200) (i32.const 32))) unreachable";
    let e = failure(&wat(imports, panic, "i32.const 0"));
    assert!(
        matches!(
            e,
            HostError::Trap {
                export: "proxy_on_request_headers",
                ..
            }
        ),
        "{e}"
    );
    assert_mentions(&e, &["panicked at src/lib.rs:1:1: boom"]);
}

#[test]
fn pausing_a_stream_fails() {
    assert_mentions(
        &failure(&wat("", "i32.const 1", "i32.const 0")),
        &["Action::Pause"],
    );
}

#[test]
fn runaway_loop_is_stopped_by_fuel() {
    let spin = "(loop $l (br $l)) i32.const 0";
    let e = failure(&wat("", spin, "i32.const 0"));
    assert!(matches!(e, HostError::Trap { .. }), "{e}");
    assert_mentions(&e, &["fuel"]);
}

#[test]
fn a_failure_poisons_the_vm() {
    let spin = "(loop $l (br $l)) i32.const 0";
    let module = module::compile(wat("", spin, "i32.const 0")).unwrap();
    let mut runner = WasmRunner::with_module(&module).unwrap();
    let mut h = host();
    assert!(runner.try_on_request(&mut h, 1).is_err());
    let again = runner.try_on_request(&mut h, 2).unwrap_err();
    assert!(matches!(again, HostError::Poisoned(_)), "{again}");
    assert_eq!(
        h.request.len(),
        1,
        "the fake host is handed back after a failure"
    );
}

#[test]
#[should_panic(expected = "ABI violation by the filter in proxy_on_request_headers")]
fn runner_trait_fails_the_test_on_a_violation() {
    let get = "(drop (call $get (i32.const 0) (i32.const 131000) (i32.const 1000) (i32.const 2000) (i32.const 2004))) i32.const 0";
    let module = module::compile(wat(GET_MAP_VALUE, get, "i32.const 0")).unwrap();
    let mut runner = WasmRunner::with_module(&module).unwrap();
    runner.on_request(&mut host(), 1);
}

#[test]
fn missing_module_says_run_make_wasm() {
    let e = module::load(std::path::Path::new("/nonexistent/sticky.wasm")).unwrap_err();
    assert!(matches!(e, HostError::Load(_)), "{e}");
    assert_mentions(&e, &["/nonexistent/sticky.wasm", "run `make wasm`"]);
    match std::env::var_os("STICKY_WASM") {
        Some(p) if !p.is_empty() => assert_eq!(module::wasm_path(), std::path::PathBuf::from(p)),
        _ => assert!(module::wasm_path().ends_with("dist/sticky.wasm")),
    }
}

#[test]
fn the_filter_imports_only_what_this_host_provides() {
    let m = module::sticky_module().unwrap_or_else(|e| panic!("{e}"));
    let imports: Vec<String> = m
        .imports()
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .collect();
    assert!(
        imports
            .iter()
            .any(|i| i == "wasi_snapshot_preview1.random_get")
    );
    WasmRunner::with_module(m).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn memory_check_sees_a_module_that_leaks() {
    // An allocator that grows memory and never frees: every value the host
    // hands over (a 4 KiB cookie here) stays allocated.
    let growing = "global.get $heap local.set $p \
         global.get $heap local.get $n i32.add global.set $heap \
         (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) \
           (then (drop (memory.grow (i32.const 1))))) \
         local.get $p";
    let get = "(drop (call $get (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 2000) (i32.const 2004))) i32.const 0";
    let text = wat(GET_MAP_VALUE, get, "i32.const 0").replace(BUMP_ALLOC, growing);
    let mut runner = WasmRunner::with_module(&module::compile(text).unwrap()).unwrap();
    let before = runner.memory_bytes();
    for now in 0..100 {
        let mut h = FakeHost {
            request: vec![("cookie".into(), vec![b'x'; 4096])],
            ..FakeHost::default()
        };
        runner.try_on_request(&mut h, now).unwrap();
        runner.try_on_response(&mut h, now).unwrap();
    }
    assert!(runner.memory_bytes() > before, "400 KiB leaked must show");
}
