//! `make bench`: sticky's overhead measured in real Envoy 1.40 (one worker)
//! against no affinity, Envoy's native `stateful_session` cookie, an empty
//! wasm filter and sticky's native build, on the same fast backends, with wrk
//! (HTTP/1.1) and h2load (h2c), for requests that carry a session and
//! requests that start one. Configurations are interleaved over rounds and
//! medians reported, because the machine is shared and noisy.
//!
//! `--smoke` runs every code path for about a second each and only asserts
//! that numbers came out (`make bench-smoke`, part of `make test`).

#[cfg(test)]
mod facts;
mod load;
mod report;
mod setup;
mod upstream;
mod xds;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::Parser;
use sticky_e2e::envoy::Envoy;

use crate::load::{Loader, Run};
use crate::report::{Fuel, Results, Scenario};
use crate::setup::{Artifacts, Variant, World};

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Benchmark sticky in real Envoy against its baselines")]
struct Args {
    /// Quick variant: one round of one second per load, asserts only that
    /// every configuration produced numbers; writes to a temp dir unless --out.
    #[arg(long)]
    smoke: bool,
    /// Rounds; configurations are interleaved within each round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per measured load.
    #[arg(long, default_value_t = 6)]
    duration: u64,
    /// wrk connections (requests in flight).
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// h2load connections.
    #[arg(long, default_value_t = 4)]
    h2_clients: u32,
    /// h2load concurrent streams per connection.
    #[arg(long, default_value_t = 8)]
    h2_streams: u32,
    /// Output directory for bench.md and bench.csv (default: results/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only these configurations (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Do not pin Envoy and the load generators to separate CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Skip the host-tests instruction counts.
    #[arg(long)]
    no_fuel: bool,
    /// Skip the light-load latency scenario (one connection).
    #[arg(long)]
    no_c1: bool,
    /// A second build of sticky.wasm to measure against the first in the
    /// same run (configuration `sticky-wasm-b`), e.g. before/after a change.
    #[arg(long)]
    compare_wasm: Option<PathBuf>,
    /// Only the scenarios whose label starts with one of these
    /// (e.g. `http1 c32 session`); default: all.
    #[arg(long)]
    scenario: Vec<String>,
    /// Profile instead of measuring: for each configuration (see --only),
    /// record Envoy with `perf record -g` under the session load (wrk) and
    /// write `perf-<configuration>.data` into this directory.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// Only the control-plane part (gRPC proxyless vs Envoy, control-plane
    /// cost): replaces that section of bench.md, leaves the rest as it is.
    #[arg(long, conflicts_with = "no_xds")]
    xds_only: bool,
    /// Skip the control-plane part.
    #[arg(long)]
    no_xds: bool,
    /// gRPC comparison: seconds per measured load.
    #[arg(long, default_value_t = 5.0)]
    grpc_seconds: f64,
    /// gRPC comparison: rounds (the three paths interleaved in each).
    #[arg(long, default_value_t = 3)]
    grpc_rounds: usize,
    /// gRPC comparison: load-generator processes (one channel each).
    #[arg(long, default_value_t = 2)]
    grpc_procs: u32,
    /// gRPC comparison: concurrent sessions per process.
    #[arg(long, default_value_t = 8)]
    grpc_sessions: u32,
    /// Control-plane cost: endpoint counts.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000, 10000])]
    cp_endpoints: Vec<usize>,
    /// Control-plane cost: open ADS streams (cumulative).
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 500])]
    cp_streams: Vec<usize>,
    /// Control-plane cost: endpoint changes timed per stream count.
    #[arg(long, default_value_t = 5)]
    cp_changes: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sticky-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let root = sticky_e2e::root();
    let mut art = artifacts(&root);
    art.compare_wasm = args.compare_wasm.clone();
    if args.xds_only {
        return run_xds_only(args, &root, &art);
    }
    let (rounds, secs) = if args.smoke {
        (1, 1)
    } else {
        (args.rounds.max(1), args.duration.max(1))
    };
    let duration = Duration::from_secs(secs);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Envoy's worker on CPU 1; this process (the upstreams) and the load
    // generators on CPU 0. Only with at least two CPUs.
    let pin = !args.no_pin && cpus >= 2;
    let (envoy_cpu, load_cpu) = if pin {
        (Some(1), Some(0))
    } else {
        (None, None)
    };
    if let Some(cpu) = load_cpu {
        pin_self(cpu);
    }

    let mut results = Results {
        scenarios: scenarios(args),
        ..Results::default()
    };
    let mut variants = Vec::new();
    for v in Variant::ALL {
        if !args.only.is_empty() && !args.only.iter().any(|n| n == v.name()) {
            continue;
        }
        if v == Variant::StickyWasmB && args.compare_wasm.is_none() {
            continue;
        }
        match art.missing(v) {
            Some(why) => results.unavailable.push((v, why)),
            None => variants.push(v),
        }
    }

    let world = World::start(&art.envoy, envoy_cpu)?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    if let Some(dir) = &args.perf {
        return profile(args, &world, &art, &variants, dir, load_cpu, scratch.path());
    }
    let loadavg_before = loadavg();
    for round in 0..rounds {
        // Every configuration's Envoy runs for the whole round (an idle one
        // costs nothing), so each scenario cycles through the configurations
        // seconds apart: pairs then share the machine's state, which a
        // configuration-after-configuration order, minutes apart, does not.
        let mut running = Vec::new();
        for &v in &variants.clone() {
            match world.start_envoy(v, &art) {
                Ok(envoy) => {
                    results.startup.entry(v).or_default().push(envoy.startup);
                    let cookie = setup::session_cookie(v, envoy.listener)?;
                    running.push((v, envoy, cookie));
                }
                Err(e)
                    if matches!(
                        v,
                        Variant::StickyNative | Variant::StickyNativeDropIn | Variant::EmptyNative
                    ) =>
                {
                    // The module is built concurrently by another change; a
                    // module Envoy refuses is reported, not fatal.
                    eprintln!("{e}");
                    results.unavailable.push((
                        v,
                        format!("not available: Envoy refused it: {}", first_line(&e)),
                    ));
                    variants.retain(|&x| x != v);
                }
                Err(e) => return Err(e),
            }
        }
        // Rotate the order each round so no configuration always runs first.
        if !running.is_empty() {
            let k = round % running.len();
            running.rotate_left(k);
        }
        let run_for = |(_, envoy, cookie): &(Variant, Envoy, String), loader, path, duration| {
            let cookie = match path {
                report::Path::Session => Some(cookie.as_str()),
                report::Path::New => None,
            };
            load::run(&Run {
                loader,
                target: envoy.listener,
                cookie,
                duration,
                cpu: load_cpu,
                scratch: scratch.path(),
                envoy_pid: envoy.pid(),
            })
        };
        if !args.smoke {
            // V8 compiles wasm with a baseline tier first and optimizes hot
            // functions later: warm both paths before measuring.
            let warm = Loader::Wrk {
                connections: args.connections,
            };
            for r in &running {
                for path in [report::Path::Session, report::Path::New] {
                    run_for(r, warm, path, Duration::from_secs(1))?;
                }
            }
        }
        for (i, s) in results.scenarios.clone().iter().enumerate() {
            eprintln!("round {}/{rounds}: {}", round + 1, s.label());
            for r in &running {
                let v = r.0;
                let sample = run_for(r, s.loader, s.path, duration)
                    .map_err(|e| format!("{} / {}: {e}", v.name(), s.label()))?;
                eprintln!(
                    "  {:<14} {:>9.0} req/s  cpu {:>5.1} µs/req  p50 {:>6.0} µs  p99 {:>6.0} µs  errors {}",
                    v.name(),
                    sample.rps,
                    sample.cpu_us,
                    sample.p50_us,
                    sample.p99_us,
                    sample.errors
                );
                results.samples.entry((v, i)).or_default().push(sample);
            }
        }
        for (v, envoy, _) in &running {
            if matches!(v, Variant::StickyWasm | Variant::StickyWasmB) {
                let failures = envoy.wasm_failures();
                if !failures.is_empty() {
                    return Err(format!(
                        "sticky.wasm failed under load:\n{}",
                        failures.join("\n")
                    ));
                }
            }
        }
        // Dropping the handles stops every Envoy of the round by its PID.
        drop(running);
    }

    results.notes = notes(args, rounds, secs, pin, cpus, &loadavg_before);
    results.sizes = sizes(&art);
    if !args.smoke && !args.no_fuel {
        results.fuel = host_tests_fuel(&root);
    }
    let out = match (&args.out, args.smoke) {
        (Some(dir), _) => dir.clone(),
        (None, true) => scratch.path().to_path_buf(),
        (None, false) => root.join("results"),
    };
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let mut md = results.markdown();
    let mut missing = results.missing_numbers();
    if !args.no_xds {
        let x = xds::run(&root, &art.envoy, &art.sticky_wasm, &xds_plan(args))?;
        md = xds::splice(&md, &x.markdown(&commit()));
        std::fs::write(out.join("bench-xds.csv"), x.csv()).map_err(|e| e.to_string())?;
        missing.extend(x.problems());
    }
    std::fs::write(out.join("bench.md"), &md).map_err(|e| e.to_string())?;
    std::fs::write(out.join("bench.csv"), results.csv()).map_err(|e| e.to_string())?;
    println!("{md}");
    println!("written: {}", out.join("bench.md").display());

    if !missing.is_empty() {
        return Err(format!("no numbers for:\n{}", missing.join("\n")));
    }
    if args.smoke {
        println!(
            "bench-smoke: {} configurations x {} scenarios produced numbers",
            results.variants().len(),
            results.scenarios.len()
        );
    }
    Ok(())
}

/// The control-plane part's plan: `--smoke` runs each path about a second.
fn xds_plan(args: &Args) -> xds::Plan {
    if args.smoke {
        return xds::Plan {
            grpc: xds::grpc::GrpcLoad {
                rounds: 1,
                seconds: 1.0,
                warmup: 0.3,
                procs: 1,
                sessions: 4,
            },
            cost: xds::fanout::CostPlan {
                endpoints: vec![100],
                streams: vec![10],
                changes: 2,
            },
        };
    }
    xds::Plan {
        grpc: xds::grpc::GrpcLoad {
            rounds: args.grpc_rounds.max(1),
            seconds: args.grpc_seconds.max(0.5),
            warmup: 1.0,
            procs: args.grpc_procs.max(1),
            sessions: args.grpc_sessions.max(1),
        },
        cost: xds::fanout::CostPlan {
            endpoints: args.cp_endpoints.clone(),
            streams: args.cp_streams.clone(),
            changes: args.cp_changes.max(1),
        },
    }
}

/// `--xds-only`: the control-plane part alone, spliced into the existing
/// bench.md (its other sections are left as the last full run wrote them).
fn run_xds_only(args: &Args, root: &Path, art: &Artifacts) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = match (&args.out, args.smoke) {
        (Some(dir), _) => dir.clone(),
        (None, true) => scratch.path().to_path_buf(),
        (None, false) => root.join("results"),
    };
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let x = xds::run(root, &art.envoy, &art.sticky_wasm, &xds_plan(args))?;
    let section = x.markdown(&commit());
    let old = std::fs::read_to_string(out.join("bench.md")).unwrap_or_default();
    let md = if old.is_empty() {
        section.clone()
    } else {
        xds::splice(&old, &section)
    };
    std::fs::write(out.join("bench.md"), &md).map_err(|e| e.to_string())?;
    std::fs::write(out.join("bench-xds.csv"), x.csv()).map_err(|e| e.to_string())?;
    println!("{section}");
    println!("written: {}", out.join("bench.md").display());
    let problems = x.problems();
    if !problems.is_empty() {
        return Err(format!("control-plane part:\n{}", problems.join("\n")));
    }
    if args.smoke {
        println!(
            "bench-smoke: gRPC proxyless / Envoy+sticky / Envoy and the control-plane cost produced numbers"
        );
    }
    Ok(())
}

fn commit() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(sticky_e2e::root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `--perf`: `perf record` of Envoy under the session load, per configuration.
fn profile(
    args: &Args,
    world: &World,
    art: &Artifacts,
    variants: &[Variant],
    dir: &Path,
    load_cpu: Option<u32>,
    scratch: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let secs = args.duration.max(2);
    for &v in variants {
        let envoy = world.start_envoy(v, art)?;
        let cookie = setup::session_cookie(v, envoy.listener)?;
        let run = |duration| {
            load::run(&Run {
                loader: Loader::Wrk {
                    connections: args.connections,
                },
                target: envoy.listener,
                cookie: Some(&cookie),
                duration,
                cpu: load_cpu,
                scratch,
                envoy_pid: envoy.pid(),
            })
        };
        run(Duration::from_secs(1))?;
        let data = dir.join(format!("perf-{}.data", v.name()));
        let mut perf = Command::new("perf")
            .args(["record", "-F", "1999", "-g", "-o"])
            .arg(&data)
            .args(["-p", &envoy.pid().to_string(), "--", "sleep"])
            .arg(secs.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf: {e}"))?;
        let sample = run(Duration::from_secs(secs));
        let _ = perf.wait();
        let sample = sample?;
        println!(
            "{}: {:.0} req/s, {:.1} µs CPU/req; {}",
            v.name(),
            sample.rps,
            sample.cpu_us,
            data.display()
        );
        // Where the CPU went: Envoy's C++ (host calls included), the kernel,
        // the wasm JIT code, a native module.
        for (dso, share) in perf_dso_shares(&data) {
            println!(
                "  {dso:<24} {share:>5.1}% = {:>5.1} µs/req",
                share / 100.0 * sample.cpu_us
            );
        }
    }
    Ok(())
}

/// `perf report --sort dso` shares (percent) of a recording, largest first.
fn perf_dso_shares(data: &Path) -> Vec<(String, f64)> {
    let Ok(out) = Command::new("perf")
        .args([
            "report",
            "--no-children",
            "--sort",
            "dso",
            "--stdio",
            "-g",
            "none",
            "-i",
        ])
        .arg(data)
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (pct, dso) = l.trim().split_once('%')?;
            let dso = dso.trim();
            // JIT code is reported per thread id: one name for all of it.
            let dso = if dso.starts_with("[JIT]") {
                "[JIT] wasm code"
            } else {
                dso
            };
            Some((dso.to_owned(), pct.trim().parse().ok()?))
        })
        .filter(|(_, pct): &(String, f64)| *pct >= 0.5)
        .collect()
}

/// The loads each configuration runs, in order.
fn scenarios(args: &Args) -> Vec<Scenario> {
    use report::Path::{New, Session};
    let wrk = Loader::Wrk {
        connections: args.connections,
    };
    let h2 = Loader::H2load {
        clients: args.h2_clients,
        streams: args.h2_streams,
    };
    let mut s = vec![
        Scenario {
            loader: wrk,
            path: Session,
        },
        Scenario {
            loader: wrk,
            path: New,
        },
        Scenario {
            loader: h2,
            path: Session,
        },
        Scenario {
            loader: h2,
            path: New,
        },
    ];
    if !args.smoke && !args.no_c1 {
        // Latency without queueing: one request in flight.
        s.push(Scenario {
            loader: Loader::Wrk { connections: 1 },
            path: Session,
        });
    }
    if !args.scenario.is_empty() {
        s.retain(|sc| {
            args.scenario
                .iter()
                .any(|p| sc.label().starts_with(p.as_str()))
        });
    }
    s
}

fn artifacts(root: &Path) -> Artifacts {
    let path = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(default))
    };
    let existing = |p: PathBuf| p.exists().then_some(p);
    // STICKY_NATIVE=none: `make native` failed, whatever an older file says.
    let native = match std::env::var("STICKY_NATIVE").as_deref() {
        Ok("none") | Ok("") => None,
        _ => existing(path("STICKY_NATIVE", "dist/libsticky.so")),
    };
    Artifacts {
        envoy: path("STICKY_ENVOY", ".venv/envoy"),
        sticky_wasm: path("STICKY_WASM", "dist/sticky.wasm"),
        empty_wasm: std::env::var_os("STICKY_EMPTY_WASM")
            .map(PathBuf::from)
            .and_then(existing),
        native,
        empty_native: std::env::var_os("STICKY_EMPTY_NATIVE")
            .map(PathBuf::from)
            .and_then(existing),
        compare_wasm: None,
    }
}

/// Pins this process (and the upstream threads it starts later) to `cpu`.
fn pin_self(cpu: u32) {
    let _ = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn notes(
    args: &Args,
    rounds: usize,
    secs: u64,
    pin: bool,
    cpus: usize,
    before: &str,
) -> Vec<String> {
    let commit = commit();
    let mut n = vec![
        format!("commit `{commit}`; Envoy 1.40.0, one worker (`--concurrency 1`)"),
        format!(
            "{rounds} round(s) × {secs} s per load; every configuration's Envoy up for the whole round, each scenario cycling through them back to back (order rotated per round){}",
            if args.smoke { "; smoke run" } else { "; 1 s warm-up of each path per Envoy start" }
        ),
        format!(
            "loads: wrk 1 thread × {} connections (HTTP/1.1 keep-alive); h2load 1 thread × {} connections × {} streams (h2c){}",
            args.connections,
            args.h2_clients,
            args.h2_streams,
            if args.smoke || args.no_c1 { "" } else { "; wrk × 1 connection for latency without queueing" }
        ),
        "upstream: one cluster `v1` of 2 hosts behind the weighted-cluster route (a real split would cost Envoy's native cookie its sessions), each a minimal threaded HTTP/1.1 server in the bench (fixed 3-byte body)".into(),
        format!(
            "{cpus} CPUs; {}; load average {before} before, {} after (other builds share this machine: compare ratios, not absolute numbers)",
            if pin { "Envoy pinned to CPU 1, load generators and upstreams to CPU 0" } else { "no CPU pinning" },
            loadavg()
        ),
    ];
    n.push("`session`: every request carries a valid session cookie (issued by that configuration; a same-size stand-in where none is issued). `new-session`: no cookie, every response starts a session".into());
    n
}

fn sizes(art: &Artifacts) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut add = |name: &str, p: Option<&Path>| {
        if let Some(m) = p.and_then(|p| std::fs::metadata(p).ok()) {
            out.push((name.to_owned(), m.len()));
        }
    };
    let sticky = format!(
        "sticky.wasm (wasm-opt -Oz), sha256 `{}`",
        sha256(&art.sticky_wasm)
    );
    add(&sticky, Some(&art.sticky_wasm));
    add(
        "empty proxy-wasm filter (same profile and wasm-opt flags)",
        art.empty_wasm.as_deref(),
    );
    add(
        "libsticky.so (native module, `native` profile)",
        art.native.as_deref(),
    );
    out
}

fn sha256(path: &Path) -> String {
    Command::new("sha256sum")
        .arg(path)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// Instruction (fuel) counts printed by host-tests, when it prints any.
fn host_tests_fuel(root: &Path) -> Fuel {
    match host_tests_lines(root) {
        Ok(lines) => Fuel::Counts(lines),
        Err(why) => Fuel::NotAvailable(why),
    }
}

fn host_tests_lines(root: &Path) -> Result<Vec<String>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("host-tests: cargo test -p sticky-host-tests -- --nocapture");
    let out = Command::new(cargo)
        .args([
            "test",
            "--locked",
            "-p",
            "sticky-host-tests",
            "--",
            "--nocapture",
            "cost_per_request",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!(
            "`cargo test -p sticky-host-tests` failed ({})",
            out.status
        ));
    }
    // host-tests reports its numbers as `host-tests fuel: ...` lines.
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("host-tests fuel:"))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        Err("host-tests prints no instruction (fuel) counts yet".into())
    } else {
        Ok(lines)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
