//! `sticky-story`: the side-by-side story. Runs the same churn scenario
//! (scale-up, canary shift, drain with deadline, stop, kill) with no
//! affinity, Envoy's ring hash, Envoy's native stateful cookie and sticky,
//! plus sticky with a gRPC client in header mode; prints the table and writes
//! `story.md`, `story.svg` and `story.json` to `target/demo/` (ignored by
//! git: `make demo` leaves a checkout clean), or to the committed `results/`
//! when `STICKY_RECORD=1`, or to `--out DIR`.
//!
//! `sticky-story [--fast] [--out DIR]`
//!
//! `sticky-story --serve cart|counter [--port 10000] [--seconds 600]` instead
//! starts Envoy + sticky in front of three instances (v1-0, v1-1 at weight
//! 90; v2-0 at weight 10) and keeps them up for you to try by hand.

use std::time::Duration;

use sticky_examples::instance::{Binaries, Kind};
use sticky_examples::report;
use sticky_examples::stage::{Artifacts, Mode, Stage, StageSpec};
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
    if let Some(what) = sticky_examples::flag(&args, "--serve") {
        return serve(&what, &args);
    }
    let scenario = if args.iter().any(|a| a == "--fast") {
        Scenario::fast()
    } else {
        Scenario::full()
    };
    let out = sticky_examples::flag(&args, "--out")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(default_out);
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
        let stat = |name: &str| {
            outcome
                .envoy_stats
                .iter()
                .find(|(k, _)| k == name)
                .map_or(0, |(_, v)| *v)
        };
        println!(
            "   Envoy: {} retries ({} succeeded, {} refused by the retry circuit breaker), {} upstream connect failures",
            stat("upstream_rq_retry"),
            stat("upstream_rq_retry_success"),
            stat("upstream_rq_retry_overflow"),
            stat("upstream_cx_connect_fail")
        );
        if !outcome.counters.is_empty() {
            let list: Vec<String> = outcome
                .counters
                .iter()
                .map(|(k, v)| format!("{} {v}", k.trim_start_matches("wasmcustom.sticky.")))
                .collect();
            println!("   sticky counters: {}", list.join(", "));
        }
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
    let json = out.join("story.json");
    let text = serde_json::to_string_pretty(&outcomes).map_err(|e| e.to_string())?;
    std::fs::write(&json, text + "\n").map_err(|e| format!("{}: {e}", json.display()))?;
    let md = out.join("story.md");
    let svg = out.join("story.svg");
    std::fs::write(&md, report::markdown(&outcomes, &scenario))
        .map_err(|e| format!("{}: {e}", md.display()))?;
    std::fs::write(&svg, report::svg(&outcomes, &scenario))
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    println!(
        "\n   wrote {}, {} and {}",
        md.display(),
        svg.display(),
        json.display()
    );
    Ok(())
}

/// Where the story goes without `--out`: the committed `results/` only when
/// asked to refresh them (`STICKY_RECORD=1`), otherwise an ignored scratch
/// directory, so a first `make demo` leaves `git status` clean.
fn default_out() -> std::path::PathBuf {
    let root = sticky_e2e::root();
    if std::env::var_os("STICKY_RECORD").is_some_and(|v| v == "1") {
        root.join("results")
    } else {
        root.join("target").join("demo")
    }
}

/// `--serve`: one sticky stage for trying the demo by hand, stopped after
/// `--seconds` or on Ctrl-C (Envoy and the instances are killed by PID).
fn serve(what: &str, args: &[String]) -> Result<(), String> {
    let kind = match what {
        "cart" => Kind::Cart,
        "counter" => Kind::Counter,
        other => return Err(format!("--serve {other}: expected cart or counter")),
    };
    let port: u16 = sticky_examples::flag(args, "--port")
        .map(|p| p.parse().map_err(|e| format!("--port {p}: {e}")))
        .transpose()?
        .unwrap_or(0);
    let seconds: u64 = sticky_examples::flag(args, "--seconds")
        .map(|p| p.parse().map_err(|e| format!("--seconds {p}: {e}")))
        .transpose()?
        .unwrap_or(600);
    let artifacts = Artifacts::locate(Binaries::beside_current_exe()?)?;
    let spec = StageSpec {
        kind,
        mode: Mode::Sticky,
        clusters: vec![("v1".into(), 90, 2), ("v2".into(), 10, 1)],
        listen_port: port,
    };
    let stage = Stage::start(&spec, &artifacts)?;
    let addr = stage.addr();
    println!(
        "Envoy + sticky (pid {}) on {addr}, admin http://{}/",
        stage.envoy.pid(),
        stage.envoy.admin
    );
    for name in stage.instance_names() {
        if let Some(i) = stage.instance(&name) {
            println!("  instance {name} (pid {}) on {}", i.pid(), i.addr);
        }
    }
    match kind {
        Kind::Cart => println!(
            "open http://{addr}/ in a browser, or run:\n  sticky-shopper --envoy {addr} --items 5"
        ),
        Kind::Counter => println!("run:\n  sticky-counter-client --envoy {addr} --calls 5"),
    }
    println!("serving for {seconds} s (Ctrl-C stops earlier)");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("\nCtrl-C"),
            () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        }
    });
    println!("stopping Envoy and the instances");
    drop(stage);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_output_is_an_ignored_scratch_directory_unless_recording() {
        if std::env::var_os("STICKY_RECORD").is_some() {
            return; // A recording run asks for results/ on purpose.
        }
        let out = super::default_out();
        assert!(out.ends_with("target/demo"), "{}", out.display());
        let ignored = std::process::Command::new("git")
            .arg("-C")
            .arg(sticky_e2e::root())
            .args(["check-ignore", "-q"])
            .arg(out.join("story.md"))
            .status()
            .map(|s| s.success());
        assert_eq!(ignored.ok(), Some(true), "target/demo must be git-ignored");
    }
}
