//! Issue 4: drain, deadlines and endpoint churn through a real Envoy 1.40,
//! for both builds where both apply (`name::wasm`, `name::native`).
//! Backends count requests per session (`x-session-id`): a session that lost
//! its backend shows as a counter that restarted at 1.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sticky_core::config::wire;
use sticky_e2e::build::Build;
use sticky_e2e::client::{Response, Session};
use sticky_e2e::plugin::to_json;
use sticky_e2e::rig::{Rig, Spec, default_wire};
use stickyctl::eds::Health;
use stickyctl::render::envoy::Affinity;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn start(spec: Spec) -> Rig {
    Rig::start(spec).unwrap_or_else(|e| panic!("{e}"))
}

fn one_cluster(n: usize) -> Spec {
    Spec {
        clusters: vec![("v1".into(), 100, n)],
        ..Spec::default()
    }
}

/// Opens `n` sessions; returns them with the backend each landed on.
fn open_sessions(rig: &Rig, prefix: &str, n: usize) -> Vec<(Session, String)> {
    (0..n)
        .map(|i| {
            let mut s = Session::new(format!("{prefix}-{i}"));
            let r = s.get(rig.addr()).unwrap();
            assert_eq!(r.status, 200);
            (s, r.backend().unwrap())
        })
        .collect()
}

fn get(rig: &Rig, s: &mut Session) -> Response {
    let r = s.get(rig.addr()).unwrap();
    assert_eq!(r.status, 200, "session {}: {:?}", s.id, r.headers);
    r
}

fn assert_no_wasm_failure(rig: &Rig) {
    assert!(rig.wasm_failures().is_empty(), "{:?}", rig.wasm_failures());
}

fn draining_host_keeps_every_pinned_session_and_takes_no_new_one(build: Build) {
    let mut rig = build.start(one_cluster(3));
    let mut sessions = open_sessions(&rig, "d", 30);
    let victim = sessions[0].1.clone();
    let on_victim = sessions.iter().filter(|(_, b)| *b == victim).count();
    assert!(on_victim >= 5);
    rig.update_backend(&victim, |e| e.health = Health::Draining);
    for round in 0..3 {
        for (s, b) in &mut sessions {
            let r = get(&rig, s);
            assert_eq!(
                r.backend().as_ref(),
                Some(&*b),
                "round {round}: {} moved",
                s.id
            );
            assert_eq!(r.count(), Some(round + 2));
        }
    }
    for (_, b) in open_sessions(&rig, "new", 40) {
        assert_ne!(b, victim, "a new session landed on the draining host");
    }
    build.assert_clean(&mut rig);
}

fn sessions_leave_a_host_within_two_requests_once_its_deadline_passes(build: Build) {
    let mut rig = build.start(one_cluster(3));
    let mut sessions = open_sessions(&rig, "dl", 24);
    let victim = sessions[0].1.clone();
    let deadline = now() + 3;
    rig.update_backend(&victim, |e| {
        e.health = Health::Draining;
        e.drain_deadline = Some(deadline);
    });
    // Before the deadline every session stays, including the victim's.
    for (s, b) in &mut sessions {
        assert_eq!(get(&rig, s).backend().as_ref(), Some(&*b));
    }
    while now() < deadline + 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut moved = 0;
    for (s, b) in &mut sessions {
        let first = get(&rig, s);
        let second = get(&rig, s);
        if *b != victim {
            assert_eq!(
                first.backend().as_ref(),
                Some(&*b),
                "{} moved without cause",
                s.id
            );
            assert_eq!(second.backend().as_ref(), Some(&*b));
            continue;
        }
        moved += 1;
        let landed = second.backend().unwrap();
        assert_ne!(
            landed, victim,
            "{} still on the drained host after 2 requests",
            s.id
        );
        let reissued =
            first.headers_named("set-cookie").len() + second.headers_named("set-cookie").len();
        assert!(reissued >= 1, "{} got no fresh cookie", s.id);
        // And it stays on its new host, which keeps its state from now on.
        let base = second.count().unwrap();
        for i in 1..=5 {
            let r = get(&rig, s);
            assert_eq!(r.backend().as_deref(), Some(landed.as_str()));
            assert_eq!(r.count(), Some(base + i));
        }
    }
    assert!(
        moved >= 3,
        "too few sessions on the victim to prove anything: {moved}"
    );
    assert!(build.counter(&rig, "sticky.sessions_drained") >= moved as u64);
    build.assert_clean(&mut rig);
}

fn removed_unhealthy_or_killed_hosts_lose_sessions_to_a_live_host_without_a_5xx(build: Build) {
    let mut rig = build.start(one_cluster(4));
    let mut sessions = open_sessions(&rig, "churn", 40);
    let names: Vec<String> = (0..4).map(|i| format!("v1-{i}")).collect();
    let (removed, unhealthy, killed) = (names[0].clone(), names[1].clone(), names[2].clone());
    rig.remove_backend(&removed);
    rig.update_backend(&unhealthy, |e| e.health = Health::Unhealthy);
    rig.backend(&killed).kill();
    let dead = [&removed, &unhealthy, &killed];
    let before = build.counter(&rig, "sticky.sessions_repinned");
    let mut repinned = 0;
    for (s, b) in &mut sessions {
        let r = get(&rig, s);
        let landed = r.backend().unwrap();
        if dead.contains(&&*b) {
            assert!(!dead.contains(&&landed), "{} landed on dead {landed}", s.id);
            assert_eq!(
                r.headers_named("set-cookie").len(),
                1,
                "{}: fresh cookie",
                s.id
            );
            repinned += 1;
        } else {
            assert_eq!(&landed, b, "{} moved without cause", s.id);
        }
        for _ in 0..3 {
            assert_eq!(
                get(&rig, s).backend().as_deref(),
                Some(landed.as_str()),
                "{} stays",
                s.id
            );
        }
    }
    assert!(repinned >= 10);
    let after = build.counter(&rig, "sticky.sessions_repinned");
    assert_eq!(after - before, repinned);
    build.assert_clean(&mut rig);
}

#[test]
fn strict_mode_answers_503_when_the_pinned_host_is_gone() {
    let mut rig = start(Spec {
        strict: true,
        retry: false,
        ..one_cluster(2)
    });
    let mut s = Session::new("strict");
    let first = get(&rig, &mut s);
    let b = first.backend().unwrap();
    rig.remove_backend(&b);
    let r = s.get(rig.addr()).unwrap();
    assert_eq!(
        r.status, 503,
        "strict mode must not silently move the session"
    );
    assert_no_wasm_failure(&rig);
}

fn idle_and_absolute_timeouts_give_a_fresh_pick(build: Build) {
    let plugin = to_json(&wire::PluginConfig {
        session: Some(wire::Session {
            idle_timeout_seconds: Some(2),
            refresh_interval_seconds: Some(1),
            ..wire::Session::default()
        }),
        ..default_wire(&["v1"])
    });
    let rig = build.start(Spec {
        plugin: Some(plugin),
        ..one_cluster(2)
    });
    let mut s = Session::new("idle");
    get(&rig, &mut s);
    std::thread::sleep(Duration::from_millis(3100));
    let r = get(&rig, &mut s);
    assert_eq!(
        r.headers_named("set-cookie").len(),
        1,
        "idle session gets a fresh token"
    );
    assert_eq!(
        Some(build.counter(&rig, "sticky.tokens_rejected.expired")),
        Some(1)
    );
    assert_eq!(
        Some(build.counter(&rig, "sticky.sessions_created")),
        Some(2)
    );

    let plugin = to_json(&wire::PluginConfig {
        session: Some(wire::Session {
            absolute_timeout_seconds: Some(2),
            ..wire::Session::default()
        }),
        ..default_wire(&["v1"])
    });
    let rig = build.start(Spec {
        plugin: Some(plugin),
        ..one_cluster(2)
    });
    let mut s = Session::new("abs");
    let first = get(&rig, &mut s).backend();
    let began = std::time::Instant::now();
    // Active all along: still a fresh pick once the session is 2 s old.
    let mut fresh_at = None;
    while fresh_at.is_none() && began.elapsed() < Duration::from_millis(3500) {
        let r = get(&rig, &mut s);
        if !r.headers_named("set-cookie").is_empty() {
            fresh_at = Some(began.elapsed());
        } else {
            assert_eq!(r.backend(), first, "pinned until the absolute timeout");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let fresh_at = fresh_at.expect("a fresh session once the absolute timeout passed");
    assert!(
        fresh_at >= Duration::from_millis(900),
        "too early: {fresh_at:?}"
    );
    // The new session (whole-second clock) lives at least another second.
    let again = std::time::Instant::now();
    while again.elapsed() < Duration::from_millis(900) {
        assert!(get(&rig, &mut s).headers_named("set-cookie").is_empty());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn an_active_session_outlives_its_idle_timeout_with_rate_limited_refreshes(build: Build) {
    let plugin = to_json(&wire::PluginConfig {
        session: Some(wire::Session {
            idle_timeout_seconds: Some(3),
            refresh_interval_seconds: Some(1),
            ..wire::Session::default()
        }),
        ..default_wire(&["v1"])
    });
    let rig = build.start(Spec {
        plugin: Some(plugin),
        ..one_cluster(3)
    });
    let mut s = Session::new("active");
    let backend = get(&rig, &mut s).backend();
    let began = std::time::Instant::now();
    let (mut requests, mut cookies) = (0, 0);
    while began.elapsed() < Duration::from_secs(7) {
        let r = get(&rig, &mut s);
        assert_eq!(r.backend(), backend, "an active session never idles out");
        cookies += r.headers_named("set-cookie").len();
        requests += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(requests > 60);
    assert!(
        (3..=9).contains(&cookies),
        "{cookies} Set-Cookie in {requests} responses"
    );
}

/// Runs the churn scenario (scale-up 3 → 4, canary 90/10 → 0/100) and
/// returns the share of existing sessions that changed backend.
fn churn(affinity: Option<Affinity>) -> (f64, f64, BTreeMap<String, usize>) {
    let mut rig = start(Spec {
        clusters: vec![("v1".into(), 90, 3), ("v2".into(), 10, 3)],
        affinity,
        ..Spec::default()
    });
    let mut sessions = open_sessions(&rig, "c", 200);
    let moved = |rig: &Rig, sessions: &mut Vec<(Session, String)>| {
        let mut moved = 0;
        for (s, b) in sessions.iter_mut() {
            let r = get(rig, s);
            if r.backend().as_ref() != Some(&*b) {
                moved += 1;
                *b = r.backend().unwrap();
            }
        }
        moved as f64 / sessions.len() as f64
    };
    rig.add_backend("v1");
    let after_scale = moved(&rig, &mut sessions);
    rig.set_weights(&[("v1", 0), ("v2", 100)]);
    let after_shift = moved(&rig, &mut sessions);
    let mut fresh = BTreeMap::new();
    for (_, b) in open_sessions(&rig, "after", 40) {
        *fresh.entry(rig.cluster_of(&b).unwrap()).or_insert(0) += 1;
    }
    (after_scale, after_shift, fresh)
}

#[test]
fn scale_up_and_canary_shift_move_no_session_while_ring_hash_loses_many() {
    let (scale, shift, fresh) = churn(None);
    assert_eq!((scale, shift), (0.0, 0.0), "sticky moved existing sessions");
    assert_eq!(
        fresh.get("v1"),
        None,
        "new sessions follow the new weights: {fresh:?}"
    );
    let (ring_scale, ring_shift, _) = churn(Some(Affinity::RingHash {
        cookie: "ring".into(),
    }));
    eprintln!(
        "sessions moved — sticky: scale-up {:.1}%, canary shift {:.1}%; ring hash: scale-up {:.1}%, canary shift {:.1}%",
        scale * 100.0,
        shift * 100.0,
        ring_scale * 100.0,
        ring_shift * 100.0
    );
    sticky_e2e::record(
        "churn.md",
        format!(
            "| affinity | sessions moved by scale-up 3→4 | sessions moved by canary 90/10→0/100 |\n|---|---|---|\n| sticky | {:.1}% | {:.1}% |\n| Envoy ring hash (cookie) | {:.1}% | {:.1}% |\n",
            scale * 100.0,
            shift * 100.0,
            ring_scale * 100.0,
            ring_shift * 100.0
        ),
    );
    assert!(
        ring_shift > 0.5,
        "ring hash should lose the v1 sessions on the shift: {ring_shift}"
    );
}

fn hostile_drain_metadata_never_breaks_a_request(build: Build) {
    let mut rig = build.start(one_cluster(2));
    let mut sessions = open_sessions(&rig, "meta", 10);
    let cluster = &rig.plan.clusters[0];
    let eps = &rig.endpoints["v1"];
    let values = [
        json!("soon"),
        json!(-5),
        json!(1e300),
        json!({"x": 1}),
        json!([1, 2]),
        json!(true),
        json!(0),
    ];
    for (version, v) in values.iter().enumerate() {
        let lb: Vec<_> = eps
            .iter()
            .map(|e| {
                json!({
                    "endpoint": {"address": {"socket_address": {"address": e.address, "port_value": e.port}}},
                    "metadata": {"filter_metadata": {"sticky": {"draining": v, "drain_deadline": v}}},
                })
            })
            .collect();
        let doc = json!({"version_info": format!("h{version}"), "resources": [{
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": "v1", "endpoints": [{"lb_endpoints": lb}]}]});
        stickyctl::eds::write_atomic(&cluster.eds_path, &serde_json::to_vec(&doc).unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        for (s, _) in &mut sessions {
            get(&rig, s);
        }
    }
    build.assert_clean(&mut rig);
}

sticky_e2e::for_each_build!(
    draining_host_keeps_every_pinned_session_and_takes_no_new_one,
    sessions_leave_a_host_within_two_requests_once_its_deadline_passes,
    removed_unhealthy_or_killed_hosts_lose_sessions_to_a_live_host_without_a_5xx,
    idle_and_absolute_timeouts_give_a_fresh_pick,
    an_active_session_outlives_its_idle_timeout_with_rate_limited_refreshes,
    hostile_drain_metadata_never_breaks_a_request,
);
