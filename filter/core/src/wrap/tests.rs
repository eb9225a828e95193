#![allow(clippy::as_conversions, clippy::arithmetic_side_effects)]
use crate::config::wire;
use crate::drain::{DEADLINE_KEY, DRAINING_KEY};
use crate::testing::config_json;
use crate::testing::sim::{Client, Exchange, Health, NativeRunner, Runner, Sim};
use crate::token::{self, Claims};

const H: &str = "mcp-session-id";

fn sim(wrap: &str) -> Sim<NativeRunner> {
    let mut runner = NativeRunner::default();
    let extra = format!(r#""wrap": {wrap},"#);
    assert!(runner.configure(config_json(&extra).as_bytes()));
    Sim::new(runner)
}

fn mcp() -> Sim<NativeRunner> {
    sim(r#"{"header": "Mcp-Session-Id"}"#)
}

/// A client that keeps no cookies and echoes the session header it was given.
#[derive(Default)]
struct Echo {
    id: Option<String>,
}

impl Echo {
    fn send(&mut self, s: &mut Sim<NativeRunner>) -> Exchange {
        let mut c = Client {
            no_cookies: true,
            ..Client::default()
        };
        if let Some(id) = &self.id {
            c.extra.push((H.into(), id.clone().into_bytes()));
        }
        let e = s.send(&mut c);
        if let Some(id) = e.response_header(H) {
            self.id = Some(id);
        }
        e
    }
}

/// The backend mints `id` on the next response only.
fn mint(s: &mut Sim<NativeRunner>, c: &mut Echo, id: &str) -> Exchange {
    s.app_response = vec![(H.into(), id.as_bytes().to_vec())];
    let e = c.send(s);
    s.app_response.clear();
    e
}

fn mint_bytes(s: &mut Sim<NativeRunner>, c: &mut Echo, id: &[u8]) -> Exchange {
    s.app_response = vec![(H.into(), id.to_vec())];
    let e = c.send(s);
    s.app_response.clear();
    e
}

fn meta_bool(b: bool) -> Vec<u8> {
    vec![u8::from(b)]
}

#[test]
fn minted_id_is_sealed_and_restored_byte_for_byte() {
    let mut s = mcp();
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "3f9c-raw-id");
    let token = c.id.clone().unwrap();
    assert_ne!(token, "3f9c-raw-id");
    assert!(!token.contains("3f9c") && !token.contains("10.0."));
    assert!(
        first.set_cookies().is_empty(),
        "wrap mode issues no cookie by default"
    );
    assert_eq!(s.host.counter("sticky.wrap.ids_wrapped"), 1);
    assert_eq!(s.host.counter("sticky.sessions_created"), 1);
    for _ in 0..40 {
        let e = c.send(&mut s);
        assert_eq!(e.request_header(H).as_deref(), Some("3f9c-raw-id"));
        assert_eq!((&e.cluster, &e.host), (&first.cluster, &first.host));
        assert!(e.response_header(H).is_none(), "nothing to re-issue");
    }
    assert_eq!(c.id.as_deref(), Some(token.as_str()));
    assert_eq!(s.host.counter("sticky.wrap.ids_unwrapped"), 40);
    assert_eq!(s.host.counter("sticky.requests_pinned"), 40);
    assert!(s.host.logs.is_empty());
}

#[test]
fn sessions_keep_cluster_and_host_under_the_split() {
    let mut s = mcp();
    s.set_weight("v1", 50);
    s.set_weight("v2", 50);
    let mut clients: Vec<(Echo, String, Exchange)> = (0..60)
        .map(|i| {
            let mut c = Echo::default();
            let id = format!("session-{i}");
            let e = mint(&mut s, &mut c, &id);
            (c, id, e)
        })
        .collect();
    assert!(clients.iter().any(|c| c.2.cluster.as_deref() == Some("v2")));
    for (c, id, first) in &mut clients {
        let e = c.send(&mut s);
        assert_eq!(e.request_header(H).as_deref(), Some(id.as_str()));
        assert_eq!((&e.cluster, &e.host), (&first.cluster, &first.host));
    }
}

#[test]
fn a_raw_id_passes_untouched_as_no_session_and_is_logged_once() {
    let mut s = mcp();
    let mut c = Echo {
        id: Some("never-wrapped".into()),
    };
    let e = c.send(&mut s);
    assert_eq!(e.request_header(H).as_deref(), Some("never-wrapped"));
    assert_eq!(s.host.counter("sticky.wrap.ids_unopened"), 1);
    assert_eq!(s.host.counter("sticky.tokens_rejected.malformed"), 1);
    assert_eq!(s.host.counter("sticky.requests_pinned"), 0);
    assert_eq!(s.host.logs.len(), 1);
    assert!(
        s.host.logs[0].contains("mcp-session-id") && s.host.logs[0].contains("malformed"),
        "{:?}",
        s.host.logs
    );
    // A flood costs one line per 10 s, and the next one says how many it held back.
    for _ in 0..5 {
        c.send(&mut s);
    }
    assert_eq!(s.host.logs.len(), 1);
    s.now += 10;
    c.send(&mut s);
    assert_eq!(s.host.logs.len(), 2);
    assert!(s.host.logs[1].contains("(5 more"), "{}", s.host.logs[1]);
}

#[test]
fn tampered_expired_and_cookie_tokens_are_not_unwrapped() {
    let mut s = sim(r#"{"header": "mcp-session-id", "issue_cookie": true}"#);
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "abc");
    let token = c.id.clone().unwrap();
    // Tampered: one character changed.
    let mut bytes = token.clone().into_bytes();
    bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let e = Echo {
        id: Some(tampered.clone()),
    }
    .send(&mut s);
    assert_eq!(e.request_header(H), Some(tampered));
    assert_eq!(s.host.counter("sticky.tokens_rejected.tampered"), 1);
    // A cookie token wraps no id: not restored, not a session of this header.
    let cookie_token = first.set_cookies()[0]
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let plain = Claims {
        cluster: "v1".into(),
        host: "10.0.1.1:8080".into(),
        last_seen: s.now,
        ..Claims::default()
    };
    let keys = crate::testing::config().keys;
    let no_id = token::seal(&plain, &keys, &[9; 24]).unwrap();
    let e = Echo {
        id: Some(no_id.clone()),
    }
    .send(&mut s);
    assert_eq!(e.request_header(H), Some(no_id));
    assert_eq!(s.host.counter("sticky.wrap.ids_unopened"), 2);
    // The cookie issued with issue_cookie carries the same session.
    assert!(!cookie_token.is_empty());
    // Expired: the same id, past its TTL (600 s in the test config).
    s.now += 601;
    let e = Echo { id: Some(token) }.send(&mut s);
    assert!(e.request_header(H).unwrap().len() > 40, "left as sent");
    assert_eq!(s.host.counter("sticky.tokens_rejected.expired"), 1);
}

#[test]
fn issue_cookie_also_sets_the_cookie_which_pins_alone() {
    let mut s = sim(r#"{"header": "mcp-session-id", "issue_cookie": true}"#);
    let mut browser = Client::default();
    s.app_response = vec![(H.into(), b"abc".to_vec())];
    let first = s.send(&mut browser);
    s.app_response.clear();
    assert_eq!(first.set_cookies().len(), 1);
    assert!(first.response_header(H).is_some());
    for _ in 0..10 {
        let e = s.send(&mut browser);
        assert_eq!(e.host, first.host);
    }
}

#[test]
fn a_response_that_changes_the_id_starts_a_new_session_there() {
    let mut s = mcp();
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "one");
    let old = c.id.clone().unwrap();
    let e = mint(&mut s, &mut c, "two");
    assert_eq!(e.request_header(H).as_deref(), Some("one"));
    assert_ne!(c.id.as_deref(), Some(old.as_str()));
    assert_eq!(s.host.counter("sticky.sessions_created"), 2);
    let e = c.send(&mut s);
    assert_eq!(e.request_header(H).as_deref(), Some("two"));
    assert_eq!(e.host, first.host);
}

#[test]
fn an_echoed_id_is_rewrapped_without_starting_a_session() {
    let mut s = mcp();
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "same");
    let token = c.id.clone().unwrap();
    s.app_response = vec![(H.into(), b"same".to_vec())];
    for _ in 0..5 {
        let e = c.send(&mut s);
        assert_eq!(e.request_header(H).as_deref(), Some("same"));
        let out = e.response_header(H).unwrap();
        assert_ne!(out, "same", "the raw id never reaches the client");
        assert_eq!(
            out, token,
            "an unchanged session's echo gets its own token back"
        );
        assert_eq!(e.host, first.host);
    }
    assert_eq!(s.host.counter("sticky.sessions_created"), 1);
    assert_eq!(s.host.counter("sticky.wrap.ids_wrapped"), 6);
}

#[test]
fn a_draining_host_keeps_its_ids_until_the_deadline_then_they_move() {
    let mut s = mcp();
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "d1");
    let host = first.host.clone().unwrap();
    s.host
        .set_metadata(&host, "sticky", DRAINING_KEY, meta_bool(true));
    // A new id minted by the draining host still pins to it: its state is there.
    let renewed = mint(&mut s, &mut c, "d1");
    assert_eq!(renewed.host.as_deref(), Some(host.as_str()));
    let pinned = c.send(&mut s);
    assert_eq!(pinned.host.as_deref(), Some(host.as_str()));
    s.now += 5;
    let e = c.send(&mut s);
    assert_eq!(
        e.host.as_deref(),
        Some(host.as_str()),
        "kept while draining"
    );
    let deadline = (s.now + 30) as f64;
    s.host.set_metadata(
        &host,
        "sticky",
        DEADLINE_KEY,
        deadline.to_le_bytes().to_vec(),
    );
    s.now += 31;
    // Past the deadline: the first request may still land there (drain
    // cache), the next ones leave it, carrying the same id.
    let mut moved = None;
    for _ in 0..3 {
        let e = c.send(&mut s);
        assert_eq!(e.request_header(H).as_deref(), Some("d1"));
        if e.host.as_deref() != Some(host.as_str()) {
            moved = Some(e);
            break;
        }
    }
    let moved = moved.expect("moved off the drained host within 3 requests");
    assert!(
        moved.response_header(H).is_some(),
        "the moved session gets a re-wrapped id"
    );
    let after = c.send(&mut s);
    assert_eq!(after.request_header(H).as_deref(), Some("d1"));
    assert_eq!(after.host, moved.host);
    assert!(s.host.counter("sticky.sessions_drained") >= 1);
}

#[test]
fn a_removed_host_re_pins_with_the_same_id() {
    let mut s = mcp();
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "r1");
    s.set_health(first.host.as_deref().unwrap(), Health::Unhealthy);
    let e = c.send(&mut s);
    assert_ne!(e.host, first.host);
    assert_eq!(e.cluster, first.cluster);
    assert_eq!(e.request_header(H).as_deref(), Some("r1"));
    assert!(e.response_header(H).is_some());
    let next = c.send(&mut s);
    assert_eq!(next.host, e.host);
    assert_eq!(next.request_header(H).as_deref(), Some("r1"));
    assert_eq!(s.host.counter("sticky.sessions_repinned"), 1);
}

#[test]
fn ids_up_to_the_limit_are_wrapped_longer_ones_are_left_and_logged() {
    let mut s = sim(r#"{"header": "mcp-session-id", "max_id_bytes": 1024}"#);
    let mut c = Echo::default();
    let longest = "i".repeat(1024);
    mint(&mut s, &mut c, &longest);
    let token = c.id.clone().unwrap();
    assert!(token.len() <= token::MAX_TOKEN_CHARS, "{}", token.len());
    let e = c.send(&mut s);
    assert_eq!(e.request_header(H), Some(longest));
    let mut d = Echo::default();
    let over = "o".repeat(1025);
    let e = mint(&mut s, &mut d, &over);
    assert_eq!(e.response_header(H), Some(over));
    assert_eq!(s.host.counter("sticky.wrap.ids_not_wrapped"), 1);
    assert!(s.host.logs.iter().any(|l| l.contains("max_id_bytes")));
    s.now += 10;
    let e = mint_bytes(&mut s, &mut Echo::default(), b"\xff\xfe");
    assert_eq!(
        e.response_header(H).map(|v| v.len()),
        Some(6),
        "lossy, as sent"
    );
    assert_eq!(s.host.counter("sticky.wrap.ids_not_wrapped"), 2);
    assert!(s.host.logs.iter().any(|l| l.contains("not UTF-8")));
}

#[test]
fn without_an_id_nothing_is_issued_in_wrap_mode() {
    let mut s = mcp();
    let mut c = Echo::default();
    let e = c.send(&mut s);
    assert!(e.set_cookies().is_empty());
    assert!(e.response_header(H).is_none());
    assert_eq!(s.host.counter("sticky.sessions_created"), 0);
}

#[test]
fn an_id_from_a_cluster_off_the_allow_list_leaves_raw_and_is_counted() {
    use crate::testing::sim::{SimCluster, SimHost};
    let mut s = mcp();
    s.clusters.push(SimCluster {
        name: "other".into(),
        weight: 100,
        hosts: vec![SimHost {
            addr: "10.0.9.1:80".into(),
            health: Health::Healthy,
        }],
    });
    s.set_weight("v1", 0);
    s.set_weight("v2", 0);
    let mut c = Echo::default();
    let e = mint(&mut s, &mut c, "elsewhere");
    assert_eq!(e.cluster.as_deref(), Some("other"));
    assert_eq!(e.response_header(H).as_deref(), Some("elsewhere"));
    assert_eq!(s.host.counter("sticky.wrap.ids_not_wrapped"), 1);
    assert_eq!(s.host.counter("sticky.wrap.ids_wrapped"), 0);
}

#[test]
fn the_applications_id_wins_over_a_cookie_naming_another_backend() {
    let mut s = sim(r#"{"header": "mcp-session-id", "issue_cookie": true}"#);
    s.set_weight("v1", 50);
    s.set_weight("v2", 50);
    let mut browser = Client::default();
    s.app_response = vec![(H.into(), b"a".to_vec())];
    let a = s.send(&mut browser);
    let mut echo = Echo::default();
    let mut b = mint(&mut s, &mut echo, "b");
    while b.host == a.host {
        echo = Echo::default();
        b = mint(&mut s, &mut echo, "b");
    }
    s.app_response.clear();
    browser
        .extra
        .push((H.into(), echo.id.clone().unwrap().into_bytes()));
    let e = s.send(&mut browser);
    assert_eq!(e.host, b.host, "the id's backend, not the cookie's");
    assert_eq!(e.request_header(H).as_deref(), Some("b"));
}

#[test]
fn an_echo_gets_a_fresh_token_when_a_refresh_is_due() {
    let mut runner = NativeRunner::default();
    let extra = r#""wrap": {"header": "mcp-session-id"},
                  "session": {"idle_timeout_seconds": 60, "refresh_interval_seconds": 10},"#;
    assert!(runner.configure(config_json(extra).as_bytes()));
    let mut s = Sim::new(runner);
    let mut c = Echo::default();
    mint(&mut s, &mut c, "idle");
    let token = c.id.clone().unwrap();
    s.app_response = vec![(H.into(), b"idle".to_vec())];
    let e = c.send(&mut s);
    assert_eq!(e.response_header(H), Some(token.clone()), "nothing due yet");
    s.now += 11;
    let e = c.send(&mut s);
    let refreshed = e.response_header(H).unwrap();
    assert_ne!(refreshed, token, "the refresh seals a new token");
    s.app_response.clear();
    let e = c.send(&mut s);
    assert_eq!(e.request_header(H).as_deref(), Some("idle"));
}

#[test]
fn an_echoed_id_past_its_hosts_deadline_is_re_wrapped_without_the_host() {
    let mut s = mcp();
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "e1");
    let host = first.host.clone().unwrap();
    s.host
        .set_metadata(&host, "sticky", DRAINING_KEY, meta_bool(true));
    s.host.set_metadata(
        &host,
        "sticky",
        DEADLINE_KEY,
        ((s.now + 10) as f64).to_le_bytes().to_vec(),
    );
    s.now += 11;
    // The application echoes its id on this response, the one on which the
    // filter learns that the deadline has passed.
    s.app_response = vec![(H.into(), b"e1".to_vec())];
    let e = c.send(&mut s);
    s.app_response.clear();
    assert_eq!(
        e.host.as_deref(),
        Some(host.as_str()),
        "still cached as live"
    );
    let token = e.response_header(H).expect("re-wrapped");
    let keys = crate::testing::config().keys;
    let claims = token::open(token.as_bytes(), &keys).unwrap();
    assert_eq!(claims.host, "", "past the deadline: the cluster only");
    assert_eq!(claims.app_id, b"e1");
    assert_eq!(s.host.counter("sticky.sessions_drained"), 1);
    let next = c.send(&mut s);
    assert_ne!(next.host.as_deref(), Some(host.as_str()));
    assert_eq!(next.request_header(H).as_deref(), Some("e1"));
}

#[test]
fn a_wrapped_id_sealed_under_an_old_key_is_re_sealed_under_the_new_one() {
    use crate::testing::{KEY_A, KEY_B};
    let mut s = mcp();
    let mut c = Echo::default();
    let first = mint(&mut s, &mut c, "k-rot");
    let rotated = crate::testing::json(&wire::PluginConfig {
        wrap: Some(wire::Wrap {
            header: Some("Mcp-Session-Id".into()),
            ..wire::Wrap::default()
        }),
        keys: Some(vec![wire::Key::new("b", KEY_B), wire::Key::new("a", KEY_A)]),
        ..crate::testing::wire()
    });
    assert!(s.runner.configure(rotated.as_bytes()));
    // The application does not echo its id: the re-sealed token still goes out.
    let e = c.send(&mut s);
    assert_eq!(e.host, first.host);
    assert_eq!(e.request_header(H).as_deref(), Some("k-rot"));
    let token = e.response_header(H).expect("re-sealed id");
    assert_eq!(s.host.counter("sticky.tokens_resealed"), 1);
    let only_b = crate::config::Config::from_wire(&wire::PluginConfig {
        keys: Some(vec![wire::Key::new("b", KEY_B)]),
        ..crate::testing::wire()
    })
    .unwrap();
    let claims = token::open(token.as_bytes(), &only_b.keys).unwrap();
    assert_eq!(claims.app_id, b"k-rot");
    assert_eq!(Some(claims.host), first.host);
}
