//! `make soak`: a bounded soak through a real Envoy — mixed sessions while
//! endpoints churn (scale-up, drains with deadlines, removal, a killed
//! backend, a canary shift). Reports errors, sessions lost outside drain
//! deadlines, and Envoy's memory at start and end; writes results/soak.md.
//! Duration: SOAK_SECONDS (default 300).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sticky_e2e::client::Session;
use sticky_e2e::rig::{Rig, Spec};
use stickyctl::eds::Health;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn memory(rig: &Rig) -> u64 {
    rig.envoy.stat("server.memory_allocated").unwrap_or(0)
}

fn main() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let spec = Spec {
        clusters: vec![("v1".into(), 90, 3), ("v2".into(), 10, 3)],
        ..Spec::default()
    };
    let mut rig = match Rig::start(spec) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(1);
        }
    };
    let mem_start = memory(&rig);
    let mut sessions: Vec<(Session, Option<String>, u64)> = (0..150)
        .map(|i| (Session::new(format!("soak-{i}")), None, 0))
        .collect();
    // Backends whose sessions may legitimately move: drained past deadline, removed, killed.
    let mut released: BTreeSet<String> = BTreeSet::new();
    let (mut requests, mut errors, mut lost, mut moved_ok) = (0u64, 0u64, 0u64, 0u64);
    let began = Instant::now();
    let total = Duration::from_secs(seconds);
    let mut step = 0u64;
    let mut draining: Vec<(String, u64)> = Vec::new();
    println!(
        "soak: {seconds}s, {} sessions, Envoy pid {}",
        sessions.len(),
        rig.envoy.pid()
    );
    while began.elapsed() < total {
        let phase = began.elapsed().as_secs() * 10 / seconds.max(1);
        if phase > step {
            step = phase;
            match step {
                1 => {
                    let b = rig.add_backend("v1");
                    println!("  t={:>4}s scale-up: added {b}", began.elapsed().as_secs());
                }
                2 | 6 => {
                    let victim = format!("v1-{}", step / 2 - 1);
                    let deadline = now() + seconds / 20 + 1;
                    rig.update_backend(&victim, |e| {
                        e.health = Health::Draining;
                        e.drain_deadline = Some(deadline);
                    });
                    draining.push((victim.clone(), deadline));
                    println!(
                        "  t={:>4}s drain {victim} until +{}s",
                        began.elapsed().as_secs(),
                        deadline - now()
                    );
                }
                4 => {
                    rig.backend("v2-0").kill();
                    released.insert("v2-0".into());
                    println!("  t={:>4}s killed v2-0", began.elapsed().as_secs());
                }
                5 => {
                    rig.set_weights(&[("v1", 50), ("v2", 50)]);
                    println!(
                        "  t={:>4}s canary shift 90/10 -> 50/50",
                        began.elapsed().as_secs()
                    );
                }
                8 => {
                    let b = rig.add_backend("v2");
                    println!("  t={:>4}s scale-up: added {b}", began.elapsed().as_secs());
                }
                _ => {}
            }
        }
        for (name, deadline) in &draining {
            if now() >= *deadline && released.insert(name.clone()) {
                println!(
                    "  t={:>4}s deadline of {name} passed",
                    began.elapsed().as_secs()
                );
            }
        }
        for (s, backend, count) in &mut sessions {
            requests += 1;
            let r = match s.get(rig.addr()) {
                Ok(r) if r.status == 200 => r,
                _ => {
                    errors += 1;
                    continue;
                }
            };
            let got = r.backend();
            let c = r.count().unwrap_or(0);
            match backend {
                Some(old) if Some(&*old) != got.as_ref() => {
                    let deadline_passed = draining.iter().any(|(n, d)| n == old && now() >= *d);
                    if released.contains(old.as_str()) || deadline_passed {
                        moved_ok += 1;
                    } else {
                        lost += 1;
                        eprintln!("  lost: {} moved from {old} to {got:?}", s.id);
                    }
                }
                Some(_) if c != *count + 1 => lost += 1,
                _ => {}
            }
            *backend = got;
            *count = c;
        }
    }
    let mem_end = memory(&rig);
    let failures = rig.wasm_failures();
    let report = format!(
        "| soak | value |\n|---|---|\n| duration | {seconds} s |\n| requests | {requests} |\n| errors (non-200) | {errors} |\n| sessions lost outside drain deadlines | {lost} |\n| sessions moved off released hosts | {moved_ok} |\n| Envoy memory allocated at start | {:.1} MiB |\n| Envoy memory allocated at end | {:.1} MiB |\n| wasm failures in the log | {} |\n",
        mem_start as f64 / 1048576.0,
        mem_end as f64 / 1048576.0,
        failures.len()
    );
    println!("\n{report}");
    let out = sticky_e2e::root().join("results");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("soak.md"), &report);
    rig.envoy.stop();
    if errors > 0 || lost > 0 || !failures.is_empty() {
        std::process::exit(1);
    }
}
