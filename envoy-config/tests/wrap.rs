//! Issue 12: wrap mode through real Envoy 1.40, for every build. The backend
//! is an MCP server (streamable HTTP) that mints `Mcp-Session-Id` on
//! `initialize`, requires it afterwards and answers 404 to ids it did not
//! mint. The client keeps no cookies: it echoes the header it was given.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sticky_core::config::wire;
use sticky_e2e::backend::Backend;
use sticky_e2e::build::Build;
use sticky_e2e::client::{Response, request};
use sticky_e2e::envoy::Envoy;
use sticky_e2e::plugin::to_json;
use sticky_e2e::rig::{Rig, Spec, default_wire};
use stickyctl::eds::Health;

const H: &str = "mcp-session-id";
const INIT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"echo","version":"1"}}}"#;
const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

fn plugin(clusters: &[&str]) -> Value {
    to_json(&wire::PluginConfig {
        wrap: Some(wire::Wrap {
            header: Some("Mcp-Session-Id".into()),
            ..wire::Wrap::default()
        }),
        ..default_wire(clusters)
    })
}

fn start(build: Build, clusters: Vec<(String, u32, usize)>) -> Rig {
    let names: Vec<String> = clusters.iter().map(|c| c.0.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    build.start(Spec {
        plugin: Some(plugin(&names)),
        clusters,
        ..Spec::default()
    })
}

/// An MCP client that keeps no cookies and echoes the session header.
#[derive(Debug, Default)]
struct Echo {
    /// What the client holds: the value of the last `Mcp-Session-Id` it got.
    id: Option<String>,
    /// The backend that answered `initialize`.
    backend: String,
}

impl Echo {
    fn post(&mut self, addr: SocketAddr, body: &[u8]) -> Response {
        let mut headers: Vec<(&[u8], &[u8])> = vec![
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
        ];
        if let Some(id) = &self.id {
            headers.push((H.as_bytes(), id.as_bytes()));
        }
        let r = request(addr, "POST", "/mcp", &headers, body).unwrap();
        assert!(
            r.headers_named("set-cookie").is_empty(),
            "wrap mode sets no cookie"
        );
        if let Some(id) = r.header(H) {
            self.id = Some(id);
        }
        r
    }

    fn initialize(addr: SocketAddr) -> Echo {
        let mut c = Echo::default();
        let r = c.post(addr, INIT);
        assert_eq!(r.status, 200, "{r:?}");
        c.backend = r.backend().unwrap();
        assert!(c.id.is_some(), "initialize returns a session id");
        c
    }
}

/// The session id the backend says it received (it echoes it in the body).
fn received(r: &Response) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["result"]["session"].as_str().unwrap().to_owned()
}

fn counter(build: Build, envoy: &Envoy, name: &str) -> u64 {
    let prefix = match build {
        Build::Wasm => "wasmcustom.",
        _ => "dynamicmodulescustom.",
    };
    envoy.stat(&format!("{prefix}{name}")).unwrap_or(0)
}

fn set_weights(envoy: &Envoy, weights: &[(&str, u32)]) {
    let query: Vec<String> = weights
        .iter()
        .map(|(c, w)| format!("sticky.split.{c}={w}"))
        .collect();
    let (status, _) = envoy
        .admin_post(&format!("/runtime_modify?{}", query.join("&")))
        .unwrap();
    assert_eq!(status, 200);
}

fn backend<'a>(rig: &'a Rig, name: &str) -> &'a Backend {
    rig.backend(name)
}

/// Every id a backend served was minted by that backend, byte for byte.
fn assert_every_backend_got_only_its_own_ids(rig: &Rig) {
    for b in rig.backends.values().flatten() {
        let seen = b.mcp();
        for id in &seen.received {
            assert!(seen.minted.contains(id), "{} served a foreign id", b.name);
        }
    }
}

fn mcp_sessions_hold_across_two_replicas_and_a_canary_split(build: Build) {
    let mut rig = start(build, vec![("v1".into(), 50, 2), ("v2".into(), 50, 2)]);
    let mut replica = rig.start_replica().unwrap_or_else(|e| panic!("{e}"));
    let envoys = [rig.addr(), replica.envoy.listener];
    let mut clients: Vec<(Echo, String)> = (0..24)
        .map(|i| {
            let mut c = Echo::initialize(envoys[i % 2]);
            let token = c.id.clone().unwrap();
            // The first call tells the test which id the backend minted.
            let r = c.post(envoys[(i + 1) % 2], CALL);
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.backend().as_ref(), Some(&c.backend));
            let raw = received(&r);
            assert_ne!(token, raw, "the client never holds the raw id");
            assert!(!token.contains("127.0.0.1"));
            assert!(
                backend(&rig, &c.backend)
                    .mcp()
                    .minted
                    .contains(&raw.clone().into_bytes())
            );
            (c, raw)
        })
        .collect();
    let clusters: Vec<String> = clients
        .iter()
        .filter_map(|(c, _)| rig.cluster_of(&c.backend))
        .collect();
    assert!(clusters.iter().any(|c| c == "v1") && clusters.iter().any(|c| c == "v2"));
    for round in 0..6 {
        if round == 3 {
            // The canary shift: new sessions go to v2 only; old ones stay.
            set_weights(&rig.envoy, &[("v1", 0), ("v2", 100)]);
            set_weights(&replica.envoy, &[("v1", 0), ("v2", 100)]);
        }
        for (i, (c, raw)) in clients.iter_mut().enumerate() {
            let r = c.post(envoys[(i + round) % 2], CALL);
            assert_eq!(r.status, 200, "round {round}: {r:?}");
            assert_eq!(r.backend().as_ref(), Some(&c.backend), "round {round}");
            assert_eq!(
                &received(&r),
                raw,
                "the backend got exactly the id it minted"
            );
        }
    }
    for _ in 0..6 {
        let c = Echo::initialize(rig.addr());
        assert_eq!(rig.cluster_of(&c.backend).as_deref(), Some("v2"));
    }
    for b in rig.backends.values().flatten() {
        assert!(b.mcp().unknown.is_empty(), "{} answered 404", b.name);
    }
    assert_every_backend_got_only_its_own_ids(&rig);
    let both = |name: &str| counter(build, &rig.envoy, name) + counter(build, &replica.envoy, name);
    assert_eq!(both("sticky.wrap.ids_wrapped"), 30);
    assert_eq!(both("sticky.wrap.ids_unwrapped"), 24 * 7);
    assert_eq!(both("sticky.wrap.ids_unopened"), 0);
    build.assert_clean(&mut rig);
    assert!(replica.envoy.exited().is_none());
}

fn unknown_tampered_and_raw_ids_reach_the_backend_untouched(build: Build) {
    let mut rig = start(build, vec![("v1".into(), 100, 2)]);
    let mut good = Echo::initialize(rig.addr());
    let token = good.id.clone().unwrap();
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for value in ["3c5e2f4a-raw-never-wrapped", tampered.as_str()] {
        let mut c = Echo {
            id: Some(value.to_owned()),
            ..Echo::default()
        };
        let r = c.post(rig.addr(), CALL);
        assert_eq!(r.status, 404, "the backend decides about an unknown id");
        let unknown: Vec<Vec<u8>> = rig
            .backends
            .values()
            .flatten()
            .flat_map(|b| b.mcp().unknown)
            .collect();
        assert!(
            unknown.contains(&value.as_bytes().to_vec()),
            "passed untouched"
        );
    }
    let r = Echo::default().post(rig.addr(), CALL);
    assert_eq!(r.status, 400, "no id: the backend's own answer");
    assert_eq!(counter(build, &rig.envoy, "sticky.wrap.ids_unopened"), 2);
    assert_eq!(
        counter(build, &rig.envoy, "sticky.tokens_rejected.malformed"),
        1
    );
    assert_eq!(
        counter(build, &rig.envoy, "sticky.tokens_rejected.tampered"),
        1
    );
    let logged = |e: &Envoy| e.log().contains("mcp-session-id value could not be opened");
    rig.envoy.wait_for(Duration::from_secs(3), logged);
    assert!(logged(&rig.envoy), "a clear log line: {}", rig.envoy.log());
    // The real session is unaffected.
    let r = good.post(rig.addr(), CALL);
    assert_eq!((r.status, r.backend()), (200, Some(good.backend.clone())));
    build.assert_clean(&mut rig);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn draining_and_removed_hosts_follow_the_drain_and_repin_rules(build: Build) {
    let mut rig = start(build, vec![("v1".into(), 100, 3)]);
    let mut clients: Vec<Echo> = (0..12).map(|_| Echo::initialize(rig.addr())).collect();
    let victim = clients[0].backend.clone();
    rig.update_backend(&victim, |e| e.health = Health::Draining);
    for c in &mut clients {
        let r = c.post(rig.addr(), CALL);
        assert_eq!((r.status, r.backend()), (200, Some(c.backend.clone())));
    }
    for _ in 0..10 {
        assert_ne!(
            Echo::initialize(rig.addr()).backend,
            victim,
            "no new session there"
        );
    }
    let deadline = now() + 2;
    rig.update_backend(&victim, |e| e.drain_deadline = Some(deadline));
    while now() <= deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in clients.iter_mut().filter(|c| c.backend == victim) {
        let mut moved = None;
        for _ in 0..2 {
            let r = c.post(rig.addr(), CALL);
            if r.backend().as_ref() != Some(&victim) {
                moved = Some(r);
                break;
            }
        }
        let r = moved.expect("left the drained host within two requests");
        // Its state was on the drained host: the new one does not know the
        // id and says so; the client starts over and stays there.
        assert_eq!(r.status, 404);
        c.id = None;
        let r = c.post(rig.addr(), INIT);
        let home = r.backend().unwrap();
        assert_ne!(home, victim);
        for _ in 0..3 {
            let r = c.post(rig.addr(), CALL);
            assert_eq!((r.status, r.backend()), (200, Some(home.clone())));
        }
    }
    // A removed (and killed) host: its sessions get a fresh pick in the same
    // cluster, never a 5xx; the server there decides about the id.
    let c = clients
        .iter_mut()
        .find(|c| c.backend != victim)
        .expect("a session off the victim");
    let gone = c.backend.clone();
    rig.remove_backend(&gone);
    rig.backend(&gone).kill();
    let held = c.id.clone();
    let r = c.post(rig.addr(), CALL);
    assert_eq!(r.status, 404, "{r:?}");
    assert_ne!(r.backend(), Some(gone.clone()));
    assert_ne!(c.id, held, "the moved session got a re-wrapped id");
    c.id = None;
    let home = c.post(rig.addr(), INIT).backend().unwrap();
    let r = c.post(rig.addr(), CALL);
    assert_eq!((r.status, r.backend()), (200, Some(home)));
    assert_every_backend_got_only_its_own_ids(&rig);
    build.assert_clean(&mut rig);
}

fn ids_up_to_the_limit_are_wrapped_and_longer_ones_go_out_raw(build: Build) {
    let p = to_json(&wire::PluginConfig {
        wrap: Some(wire::Wrap {
            header: Some("Mcp-Session-Id".into()),
            max_id_bytes: Some(1024),
            ..wire::Wrap::default()
        }),
        ..default_wire(&["v1"])
    });
    let mut rig = build.start(Spec {
        plugin: Some(p),
        clusters: vec![("v1".into(), 100, 3)],
        ..Spec::default()
    });
    let init = |length: usize| {
        let len = length.to_string();
        let headers: Vec<(&[u8], &[u8])> = vec![(b"x-test-id-length", len.as_bytes())];
        let r = request(rig.addr(), "POST", "/mcp", &headers, INIT).unwrap();
        assert_eq!(r.status, 200);
        (r.backend().unwrap(), r.header(H).unwrap())
    };
    let (home, token) = init(1024);
    assert!(token.len() > 1024 && token.len() <= 2048, "{}", token.len());
    let mut c = Echo {
        id: Some(token),
        backend: home.clone(),
    };
    for _ in 0..5 {
        let r = c.post(rig.addr(), CALL);
        assert_eq!((r.status, r.backend()), (200, Some(home.clone())));
        assert_eq!(received(&r).len(), 1024);
    }
    assert_every_backend_got_only_its_own_ids(&rig);
    let (over_home, raw) = init(1025);
    assert_eq!(raw.len(), 1025, "over the limit: the id goes out as minted");
    assert!(
        rig.backend(&over_home)
            .mcp()
            .minted
            .contains(&raw.into_bytes())
    );
    assert_eq!(counter(build, &rig.envoy, "sticky.wrap.ids_not_wrapped"), 1);
    build.assert_clean(&mut rig);
}

sticky_e2e::for_each_build!(
    ids_up_to_the_limit_are_wrapped_and_longer_ones_go_out_raw,
    mcp_sessions_hold_across_two_replicas_and_a_canary_split,
    unknown_tampered_and_raw_ids_reach_the_backend_untouched,
    draining_and_removed_hosts_follow_the_drain_and_repin_rules,
);
