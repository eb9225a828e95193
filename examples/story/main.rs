//! `sticky-story`: the side-by-side story. Runs the same churn scenario
//! (scale-up, canary shift, drain with deadline, stop, kill) with no
//! affinity, Envoy's ring hash, Envoy's native stateful cookie and sticky,
//! plus sticky with a gRPC client in header mode; prints the table and writes
//! `results/story.md` and `results/story.svg`.
//!
//! `sticky-story [--fast] [--out DIR]`

use sticky_examples::instance::Binaries;
use sticky_examples::report;
use sticky_examples::stage::Artifacts;
use sticky_examples::story::{self, Run, Scenario};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sticky-story: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = if args.iter().any(|a| a == "--fast") {
        Scenario::fast()
    } else {
        Scenario::full()
    };
    let out = sticky_examples::flag(&args, "--out")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| sticky_e2e::root().join("results"));
    let artifacts = Artifacts::locate(Binaries::beside_current_exe()?)?;
    println!(
        "== sticky story: the same churn, four ways of keeping sessions\n   {} sessions, {:.1} s per phase: {}",
        scenario.sessions,
        scenario.phase.as_secs_f64(),
        story::PHASES.join(" → ")
    );
    let mut outcomes = Vec::new();
    for r in Run::all() {
        println!("\n-- {}", r.label());
        let outcome = story::run(r, &scenario, &artifacts, &mut |line| println!("   {line}"))?;
        println!(
            "   → kept {} / lost with instance gone {} / lost with instance alive {} / errors {} of {} requests",
            outcome.kept,
            outcome.lost_unavoidable,
            outcome.lost_avoidable,
            outcome.errors,
            outcome.requests
        );
        println!("   envoy: {:?}", outcome.envoy_stats);
        if let Some(e) = &outcome.first_error {
            println!(
                "   errors by phase {:?}; first: {e}",
                outcome.errors_by_phase
            );
        }
        if !outcome.wasm_failures.is_empty() {
            return Err(format!(
                "wasm failures in Envoy's log: {:?}",
                outcome.wasm_failures
            ));
        }
        outcomes.push(outcome);
    }
    println!("\n== sessions kept / lost / errors per mode\n");
    print!("{}", report::text_table(&outcomes));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let md = out.join("story.md");
    let svg = out.join("story.svg");
    std::fs::write(&md, report::markdown(&outcomes, &scenario))
        .map_err(|e| format!("{}: {e}", md.display()))?;
    std::fs::write(&svg, report::svg(&outcomes, &scenario))
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    println!("\n   wrote {} and {}", md.display(), svg.display());
    Ok(())
}
