//! `make demo`: Envoy 1.40 + sticky in front of four stateful demo backends
//! on loopback (cluster v1 weight 90, canary v2 weight 10). Shows sessions
//! staying on their backend, the canary split, a drain, then wrap mode with
//! an MCP server behind two Envoy replicas, then `stickyctl serve` feeding
//! two Envoys and a proxyless gRPC client through a drain, and stops cleanly.

mod control_plane;
mod mcp;

use std::time::Duration;

use sticky_e2e::client::Session;
use sticky_e2e::rig::{Rig, Spec};
use stickyctl::eds::Health;

fn main() {
    if let Err(e) = run() {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    println!(
        "== sticky demo: Envoy 1.40 + dist/sticky.wasm, backends v1-0 v1-1 (weight 90) and v2-0 v2-1 (weight 10)"
    );
    let mut rig = Rig::start(Spec::default()).map_err(|e| e.to_string())?;
    println!(
        "   Envoy pid {} ready in {} ms, listening on http://{} (bootstrap: {})",
        rig.envoy.pid(),
        rig.envoy.startup.as_millis(),
        rig.addr(),
        rig.config_path.display()
    );

    println!(
        "\n-- three browser sessions, five requests each: every request of a session reaches the same backend"
    );
    let mut sessions: Vec<Session> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| Session::new(*n))
        .collect();
    for s in &mut sessions {
        let mut line = format!("   {:<6}", s.id);
        for i in 0..5 {
            let r = s.get(rig.addr()).map_err(|e| e.to_string())?;
            let backend = r.backend().unwrap_or_else(|| format!("HTTP {}", r.status));
            let cookie = if r.headers_named("set-cookie").is_empty() {
                ""
            } else {
                " (Set-Cookie)"
            };
            line.push_str(&format!(
                "{}{backend} #{}{cookie}",
                if i == 0 { " " } else { " → " },
                r.count().unwrap_or(0)
            ));
        }
        println!("{line}");
    }
    let token = sessions[0].jar.get("sticky").cloned().unwrap_or_default();
    println!(
        "   alice's cookie: sticky={}… ({} chars, sealed: no pod address visible)",
        &token[..token.len().min(32)],
        token.len()
    );

    println!("\n-- 200 new sessions under the 90/10 canary split");
    let mut per_backend = std::collections::BTreeMap::new();
    for i in 0..200 {
        let r = Session::new(format!("crowd-{i}"))
            .get(rig.addr())
            .map_err(|e| e.to_string())?;
        *per_backend
            .entry(r.backend().unwrap_or_default())
            .or_insert(0) += 1;
    }
    println!("   {per_backend:?}");

    let alice_backend = sessions[0]
        .get(rig.addr())
        .map_err(|e| e.to_string())?
        .backend()
        .unwrap_or_default();
    println!(
        "\n-- {alice_backend} starts draining (EDS health DRAINING): alice stays, new sessions avoid it"
    );
    rig.update_backend(&alice_backend, |e| e.health = Health::Draining);
    let r = sessions[0].get(rig.addr()).map_err(|e| e.to_string())?;
    println!(
        "   alice → {} #{}",
        r.backend().unwrap_or_default(),
        r.count().unwrap_or(0)
    );
    let landed: Vec<String> = (0..10)
        .filter_map(|i| {
            Session::new(format!("late-{i}"))
                .get(rig.addr())
                .ok()?
                .backend()
        })
        .collect();
    println!("   10 new sessions → {landed:?}");

    println!(
        "\n-- {alice_backend} is killed: alice moves to a live backend with a fresh cookie, no error"
    );
    rig.backend(&alice_backend).kill();
    std::thread::sleep(Duration::from_millis(100));
    let r = sessions[0].get(rig.addr()).map_err(|e| e.to_string())?;
    println!(
        "   alice → HTTP {} from {} (Set-Cookie: {})",
        r.status,
        r.backend().unwrap_or_default(),
        if r.headers_named("set-cookie").is_empty() {
            "no"
        } else {
            "yes"
        }
    );

    let stats = rig.envoy.stats_matching("wasmcustom.sticky");
    println!("\n-- filter counters (Envoy /stats):");
    for (k, v) in stats.iter().filter(|(_, v)| *v > 0) {
        println!("   {k}: {v}");
    }
    let failures = rig.wasm_failures();
    if !failures.is_empty() {
        return Err(format!("wasm failures in the Envoy log: {failures:?}"));
    }
    println!(
        "\n== stopping Envoy (pid {}) and the backends",
        rig.envoy.pid()
    );
    rig.envoy.stop();
    mcp::run()?;
    control_plane::run()?;
    println!("\n== stopped every Envoy and backend");
    Ok(())
}
