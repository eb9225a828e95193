//! The core's scenario table, run natively and through the compiled filter:
//! both runs must agree step by step.

use sticky_core::testing::scenarios::{self, Transcript};
use sticky_core::testing::sim::NativeRunner;
use sticky_host_tests::WasmRunner;

fn wasm_runner() -> WasmRunner {
    WasmRunner::new().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn wasm_agrees_with_the_core_on_every_scenario() {
    let mut failures = Vec::new();
    let mut steps = 0;
    for scenario in scenarios::all() {
        let native = scenarios::run_checked(&scenario, &mut NativeRunner::default());
        let wasm = scenarios::run_checked(&scenario, &mut wasm_runner());
        let result = match (native, wasm) {
            (Ok(n), Ok(w)) => {
                steps += n.steps.len();
                scenarios::compare(&n, &w)
            }
            (Err(n), Ok(_)) => Err(format!("native run: {n}")),
            (Ok(_), Err(w)) => Err(format!("wasm run: {w}")),
            (Err(n), Err(w)) => Err(format!("native run: {n}\nwasm run: {w}")),
        };
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        steps > 400,
        "the table exercises the filter ({steps} steps)"
    );
}

#[test]
fn bad_config_log_line_names_the_field_in_the_wasm_build() {
    let table = scenarios::all();
    let bad = table
        .iter()
        .find(|s| s.name.starts_with("bad_config"))
        .expect("the table has a bad-config scenario");
    let mut runner = wasm_runner();
    let t: Transcript = scenarios::run(bad, &mut runner);
    assert_eq!(t.configures.first(), Some(&false));
    let errors: Vec<_> = runner
        .log_lines()
        .iter()
        .filter(|l| l.level == "error")
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l.message.contains("`cookie.same_site`")),
        "an error-level line names the field: {errors:?}"
    );
}
