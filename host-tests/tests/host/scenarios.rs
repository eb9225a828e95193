//! The core's scenario table, run natively and through the compiled filter:
//! both runs must agree step by step.

use sticky_core::testing::FakeHost;
use sticky_core::testing::scenarios::{self, Transcript};
use sticky_core::testing::sim::{NativeRunner, Runner};
use sticky_host_tests::WasmRunner;

fn wasm_runner() -> WasmRunner {
    WasmRunner::new().unwrap_or_else(|e| panic!("{e}"))
}

/// One test per scenario (`cargo test -p sticky-host-tests scenarios::<name>`):
/// the compiled filter must pass it and agree with the core step by step.
/// (`dist/sticky.wasm` is built from filter/core + filter/wasm: if they
/// changed since, run `make wasm` before reading a failure as a divergence.)
macro_rules! wasm_scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                scenarios::check_agreement(
                    stringify!($name),
                    &mut NativeRunner::default(),
                    &mut wasm_runner(),
                );
            }
        )*
    };
}

sticky_core::for_each_scenario!(wasm_scenario_tests);

#[test]
fn the_table_exercises_the_filter() {
    let steps: usize = scenarios::all()
        .iter()
        .map(|s| scenarios::run(s, &mut NativeRunner::default()).steps.len())
        .sum();
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

/// The wasm runner with one byte of its rng skipped before each response:
/// a build whose randomness drifted from the core's.
struct DriftedRng(WasmRunner);

impl Runner for DriftedRng {
    fn configure(&mut self, json: &[u8]) -> bool {
        self.0.configure(json)
    }
    fn on_request(&mut self, host: &mut FakeHost, now: u64) {
        self.0.on_request(host, now);
    }
    fn on_response(&mut self, host: &mut FakeHost, now: u64) {
        host.rng = host.rng.wrapping_add(1);
        self.0.on_response(host, now);
    }
    fn logs(&self) -> Vec<String> {
        self.0.logs()
    }
}

#[test]
fn a_build_whose_tokens_drift_is_caught() {
    let table = scenarios::all();
    let first = &table[0];
    let native = scenarios::run(first, &mut NativeRunner::default());
    let same = scenarios::run(first, &mut wasm_runner());
    scenarios::compare(&native, &same).unwrap();
    let drifted = scenarios::run(first, &mut DriftedRng(wasm_runner()));
    let err = scenarios::compare(&native, &drifted).unwrap_err();
    assert!(err.contains("set-cookie: sticky="), "{err}");
}
