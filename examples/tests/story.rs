//! The story, fast: `sticky-story --fast` runs the whole churn scenario with
//! every affinity mode through real Envoy and real instance processes, and
//! its results must show what the README claims.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::process::Command;

use sticky_examples::story::{NPHASES, Outcome};

fn phase(name: &str) -> usize {
    sticky_examples::story::PHASES
        .iter()
        .position(|p| *p == name)
        .unwrap()
}

#[test]
fn sticky_keeps_every_session_a_live_instance_holds_while_other_modes_lose_them() {
    let out = tempfile::tempdir().unwrap();
    let a = common::artifacts();
    let run = Command::new(common::bin("sticky-story"))
        .args(["--fast", "--out"])
        .arg(out.path())
        .env("STICKY_CART_BIN", &a.binaries.cart)
        .env("STICKY_COUNTER_BIN", &a.binaries.counter)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}");
    assert!(
        run.status.success(),
        "sticky-story failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.path().join("story.json")).unwrap();
    let outcomes: Vec<Outcome> = serde_json::from_str(&text).unwrap();
    let row = |label: &str| {
        outcomes
            .iter()
            .find(|o| o.label.starts_with(label))
            .unwrap_or_else(|| panic!("no row {label}"))
    };
    assert_eq!(outcomes.len(), 5);
    for o in &outcomes {
        assert_eq!(o.sessions, 40, "{}", o.label);
        assert_eq!(o.kept + o.lost_unavoidable + o.lost_avoidable, o.sessions);
        for p in 0..NPHASES {
            assert!(o.requests_by_phase[p] >= 40, "{} phase {p}: {o:?}", o.label);
        }
        // Failures only ever come from killed instances.
        let before_kill: u64 = o.errors_by_phase[..phase("kill -9 v1-1, v2-0")]
            .iter()
            .sum();
        assert_eq!(before_kill, 0, "{}: {o:?}", o.label);
    }
    for label in ["sticky (HTTP", "sticky (gRPC"] {
        let o = row(label);
        assert_eq!(o.lost_avoidable, 0, "{o:?}");
        assert_eq!(o.errors, 0, "{o:?}");
        assert!(o.kept > 0 && o.lost_unavoidable > 0, "{o:?}");
        assert!(o.wasm_failures.is_empty(), "{o:?}");
        let counter = |name: &str| {
            o.counters
                .iter()
                .find(|(k, _)| k.ends_with(name))
                .map_or(0, |(_, v)| *v)
        };
        assert!(
            counter("sticky.sessions_drained") > 0,
            "deadline moved sessions: {o:?}"
        );
        assert!(
            counter("sticky.sessions_repinned") > 0,
            "kill re-pinned sessions: {o:?}"
        );
    }
    let none = row("no affinity");
    assert!(none.lost_avoidable >= 36, "{none:?}");
    let ring = row("Envoy ring hash");
    let remapped = ring.avoidable_by_phase[phase("scale-up v1 3→4")]
        + ring.avoidable_by_phase[phase("v1-0 draining")];
    assert!(
        remapped > 0,
        "ring hash remaps on scale-up and drain: {ring:?}"
    );
    assert!(
        ring.avoidable_by_phase[phase("canary 0/100")] > 20,
        "{ring:?}"
    );
    let cookie = row("Envoy stateful_session cookie");
    assert_eq!(
        cookie.avoidable_by_phase[..phase("canary 90/10")],
        [0; 5],
        "Envoy's cookie keeps sessions until the split: {cookie:?}"
    );
    assert!(
        cookie.avoidable_by_phase[phase("canary 0/100")] > 20,
        "{cookie:?}"
    );
    let md = std::fs::read_to_string(out.path().join("story.md")).unwrap();
    let svg = std::fs::read_to_string(out.path().join("story.svg")).unwrap();
    for o in &outcomes {
        assert!(md.contains(&o.label), "story.md lacks {}", o.label);
        assert!(svg.contains(&o.label), "story.svg lacks {}", o.label);
    }
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}
