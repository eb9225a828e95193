#![allow(clippy::as_conversions, clippy::arithmetic_side_effects)]
use crate::testing::config_json;
use crate::testing::sim::{Client, Health, NativeRunner, Runner, Sim};

fn sim(extra: &str) -> Sim<NativeRunner> {
    let mut runner = NativeRunner::default();
    assert!(runner.configure(config_json(extra).as_bytes()));
    let mut sim = Sim::new(runner);
    sim.session_header = Some("x-sticky-session".into());
    sim
}

#[test]
fn first_response_sets_cookie_and_follow_ups_stay() {
    let mut s = sim("");
    let mut c = Client::default();
    let first = s.send(&mut c);
    assert_eq!(first.set_cookies().len(), 1);
    for _ in 0..50 {
        let e = s.send(&mut c);
        assert_eq!(e.host, first.host);
        assert!(
            e.set_cookies().is_empty(),
            "no re-issue when nothing changed"
        );
    }
    assert_eq!(s.host.counter("sticky.sessions_created"), 1);
    assert_eq!(s.host.counter("sticky.requests_pinned"), 50);
}

#[test]
fn sessions_keep_cluster_and_host_under_split() {
    let mut s = sim("");
    let mut clients: Vec<(Client, String, String)> = (0..100)
        .map(|_| {
            let mut c = Client::default();
            let e = s.send(&mut c);
            (c, e.cluster.unwrap(), e.host.unwrap())
        })
        .collect();
    assert!(
        clients.iter().any(|c| c.1 == "v2"),
        "the split sends some sessions to v2"
    );
    for _ in 0..5 {
        for (c, cluster, host) in &mut clients {
            let e = s.send(c);
            assert_eq!(
                (e.cluster.as_ref().unwrap(), e.host.as_ref().unwrap()),
                (&*cluster, &*host)
            );
        }
    }
}

#[test]
fn internal_headers_from_clients_are_removed_and_never_leak() {
    let mut s = sim("");
    let mut c = Client::default();
    c.extra.push(("x-sticky-cluster".into(), b"v2".to_vec()));
    c.extra
        .push(("x-sticky-host".into(), b"MTAuMC4yLjM6ODA4MA==".to_vec()));
    let e = s.send(&mut c);
    assert_eq!(
        e.cluster.as_deref(),
        Some("v1"),
        "the split, not the client, chose"
    );
    assert!(e.response_header("x-sticky-host").is_none());
}

#[test]
fn dead_host_is_repinned() {
    let mut s = sim("");
    let mut c = Client::default();
    let first = s.send(&mut c);
    s.set_health(first.host.as_deref().unwrap(), Health::Unhealthy);
    let e = s.send(&mut c);
    assert_ne!(e.host, first.host);
    assert_eq!(e.cluster, first.cluster);
    assert_eq!(e.set_cookies().len(), 1);
    let again = s.send(&mut c);
    assert_eq!(again.host, e.host);
    assert_eq!(s.host.counter("sticky.sessions_repinned"), 1);
}

#[test]
fn header_mode_pins_a_client_without_cookies() {
    let mut s = sim(r#""session_header": "x-sticky-session","#);
    let mut c = Client {
        no_cookies: true,
        ..Client::default()
    };
    c.session_header = Some(("x-sticky-session".into(), String::new()));
    let first = s.send(&mut c);
    let token = first.response_header("x-sticky-session").unwrap();
    assert!(!token.is_empty());
    for _ in 0..10 {
        assert_eq!(s.send(&mut c).host, first.host);
    }
}

#[test]
fn drain_deadline_moves_sessions_within_two_requests() {
    let mut s = sim("");
    let mut c = Client::default();
    let first = s.send(&mut c);
    let host = first.host.clone().unwrap();
    s.set_health(&host, Health::Draining);
    s.host.set_metadata(
        &host,
        "sticky",
        "drain_deadline",
        ((s.now + 30) as f64).to_le_bytes().to_vec(),
    );
    for _ in 0..5 {
        s.now += 1;
        assert_eq!(
            s.send(&mut c).host.as_deref(),
            Some(host.as_str()),
            "kept until the deadline"
        );
    }
    s.now += 30;
    let a = s.send(&mut c);
    let b = s.send(&mut c);
    assert!(a.host.as_deref() != Some(&host) || b.host.as_deref() != Some(&host));
    let moved_to = b.host.clone().unwrap();
    assert_ne!(moved_to, host);
    for _ in 0..5 {
        assert_eq!(s.send(&mut c).host.as_deref(), Some(moved_to.as_str()));
    }
    assert_eq!(s.host.counter("sticky.sessions_drained"), 1);
}

#[test]
fn metadata_is_read_at_most_once_per_interval() {
    let mut s = sim("");
    let mut c = Client::default();
    s.send(&mut c);
    let reads = s.host.metadata_reads;
    for _ in 0..100 {
        s.send(&mut c);
    }
    assert_eq!(s.host.metadata_reads, reads, "same second: no re-read");
    s.now += 1;
    s.send(&mut c);
    assert_eq!(s.host.metadata_reads, reads + 2);
}

#[test]
fn envoy_native_cookie_migrates_to_a_sealed_token_on_the_same_host() {
    use base64::Engine as _;
    let mut s = sim(r#""migration": {"envoy_cookie": "envoy-session", "cluster": "v2"},"#);
    let mut c = Client::default();
    let legacy = base64::engine::general_purpose::STANDARD.encode("10.0.2.3:8080");
    c.cookies
        .insert("envoy-session".into(), format!("\"{legacy}\""));
    let first = s.send(&mut c);
    assert_eq!(
        (first.cluster.as_deref(), first.host.as_deref()),
        (Some("v2"), Some("10.0.2.3:8080"))
    );
    let set = first.set_cookies();
    assert!(set.iter().any(|v| v.starts_with("sticky=")), "{set:?}");
    assert!(
        set.iter()
            .any(|v| v.starts_with("envoy-session=; Max-Age=0")),
        "{set:?}"
    );
    assert_eq!(s.host.counter("sticky.sessions_migrated"), 1);
    c.cookies.remove("envoy-session");
    for _ in 0..10 {
        let e = s.send(&mut c);
        assert_eq!(e.host.as_deref(), Some("10.0.2.3:8080"));
        assert!(e.set_cookies().is_empty());
    }
}

#[test]
fn legacy_values_are_ignored_unless_migration_is_configured() {
    let mut s = sim("");
    let mut c = Client::default();
    c.cookies
        .insert("envoy-session".into(), "MTAuMC4yLjM6ODA4MA==".into());
    let e = s.send(&mut c);
    assert_eq!(
        e.cluster.as_deref(),
        Some("v1"),
        "the split chose, not the legacy cookie"
    );
}

#[test]
fn a55_cluster_is_ignored_unless_trusted() {
    let mut s = sim(r#""migration": {"header": "x-session"},"#);
    let mut c = Client::default();
    c.extra
        .push(("x-session".into(), b"10.0.2.2:8080;cluster:v2".to_vec()));
    let e = s.send(&mut c);
    assert_eq!(
        e.cluster.as_deref(),
        Some("v1"),
        "a plain-text value does not bypass the split"
    );
}

#[test]
fn a55_header_value_with_trusted_cluster_is_honoured_and_unknown_clusters_are_not() {
    let mut s = sim(r#""migration": {"header": "x-session", "trust_cluster": true},"#);
    let mut c = Client::default();
    c.extra
        .push(("x-session".into(), b"10.0.2.2:8080;cluster:v2".to_vec()));
    let e = s.send(&mut c);
    assert_eq!(
        (e.cluster.as_deref(), e.host.as_deref()),
        (Some("v2"), Some("10.0.2.2:8080"))
    );
    let mut c = Client::default();
    c.extra
        .push(("x-session".into(), b"10.0.2.2:8080;cluster:admin".to_vec()));
    let e = s.send(&mut c);
    assert_ne!(e.cluster.as_deref(), Some("admin"));
    assert_eq!(s.host.counter("sticky.tokens_rejected.unknown_cluster"), 1);
}

fn shard_sim(extra: &str) -> Sim<NativeRunner> {
    use crate::testing::KEY_A;
    use crate::testing::sim::{SimCluster, SimHost};
    let json = format!(
        r#"{{{extra} "keys": [{{"id": "a", "secret": "{KEY_A}"}}], "clusters": ["v1"], "cookie": {{"secure": false}}}}"#
    );
    let mut runner = NativeRunner::default();
    assert!(runner.configure(json.as_bytes()), "{:?}", runner.logs());
    let mut sim = Sim::new(runner);
    sim.clusters.truncate(1);
    for i in 0..5 {
        sim.clusters.push(SimCluster {
            name: format!("shard-{i}"),
            weight: 0,
            hosts: vec![SimHost {
                addr: format!("10.9.{i}.1:80"),
                health: Health::Healthy,
            }],
        });
    }
    sim
}

fn keyed(key: &str) -> Client {
    let mut c = Client::default();
    c.extra.push(("x-account".into(), key.as_bytes().to_vec()));
    c
}

#[test]
fn keys_land_on_their_jump_hash_shard() {
    let mut s = shard_sim(
        r#""sharding": {"key": {"header": "x-account"}, "clusters": ["shard-0", "shard-1", "shard-2", "shard-3"]},"#,
    );
    for i in 0..200 {
        let key = format!("acct-{i}");
        let want = format!("shard-{}", crate::shard::shard_of(key.as_bytes(), 4));
        let mut c = keyed(&key);
        for _ in 0..3 {
            assert_eq!(
                s.send(&mut c).cluster.as_deref(),
                Some(want.as_str()),
                "{key}"
            );
        }
    }
}

#[test]
fn requests_without_a_key_fall_back_or_get_400() {
    let mut s = shard_sim(
        r#""sharding": {"key": {"header": "x-account"}, "clusters": ["shard-0", "shard-1"]},"#,
    );
    let e = s.send(&mut Client::default());
    assert_eq!(e.cluster.as_deref(), Some("v1"));
    let mut s = shard_sim(
        r#""sharding": {"key": {"header": "x-account"}, "clusters": ["shard-0", "shard-1"], "missing_key": "reject"},"#,
    );
    let e = s.send(&mut Client::default());
    assert_eq!((e.status, e.cluster.as_deref()), (400, None));
    assert!(e.set_cookies().is_empty());
}

#[test]
fn a_missing_key_goes_on_without_affinity_when_the_host_cannot_answer_400() {
    let cfg = crate::config::Config::from_json(
        config_json(r#""sharding": {"key": {"header": "x-account"}, "clusters": ["shard-0"], "missing_key": "reject"},"#)
            .as_bytes(),
    )
    .unwrap();
    let mut host = crate::testing::FakeHost {
        request: vec![("x-sticky-cluster".into(), b"shard-0".to_vec())],
        cannot_reply: true,
        ..Default::default()
    };
    let stream = crate::filter::on_request(&cfg, &mut Default::default(), &mut host, 1_000);
    assert_eq!(stream, crate::session::Stream::Fresh);
    assert_eq!(host.local_reply, None);
    assert!(
        host.request_values("x-sticky-cluster").is_empty(),
        "a client-sent cluster header never steers"
    );
    host.cannot_reply = false;
    host.request = vec![("x-sticky-cluster".into(), b"shard-0".to_vec())];
    let stream = crate::filter::on_request(&cfg, &mut Default::default(), &mut host, 1_000);
    assert_eq!(stream, crate::session::Stream::Refused);
    assert_eq!(host.local_reply.map(|(status, _)| status), Some(400));
}

#[test]
fn resharding_keeps_sessions_on_their_old_shard_until_the_deadline() {
    let four = r#""sharding": {"key": {"header": "x-account"}, "clusters": ["shard-0", "shard-1", "shard-2", "shard-3"]},"#;
    let mut s = shard_sim(four);
    // A key that jump hash moves from 4 to 5 shards.
    let key = (0..)
        .map(|i| format!("acct-{i}"))
        .find(|k| {
            crate::shard::shard_of(k.as_bytes(), 4) != crate::shard::shard_of(k.as_bytes(), 5)
        })
        .unwrap();
    let mut c = keyed(&key);
    let old = s.send(&mut c).cluster.unwrap();
    let deadline = s.now + 60;
    let five = format!(
        r#""sharding": {{"key": {{"header": "x-account"}}, "clusters": ["shard-0", "shard-1", "shard-2", "shard-3", "shard-4"], "reshard_deadline": {deadline}}},"#
    );
    let json = format!(
        r#"{{{five} "keys": [{{"id": "a", "secret": "{}"}}], "clusters": ["v1"], "cookie": {{"secure": false}}}}"#,
        crate::testing::KEY_A
    );
    assert!(s.runner.configure(json.as_bytes()));
    assert_eq!(
        s.send(&mut c).cluster.as_deref(),
        Some(old.as_str()),
        "in-flight session stays"
    );
    assert_eq!(
        s.send(&mut keyed(&key)).cluster.as_deref(),
        Some("shard-4"),
        "a new session goes to the new shard"
    );
    s.now = deadline;
    assert_eq!(
        s.send(&mut c).cluster.as_deref(),
        Some("shard-4"),
        "after the deadline it moves"
    );
    // Another key on the same client is routed by its own key, not the token.
    c.extra = vec![("x-account".into(), b"someone-else".to_vec())];
    let want = format!("shard-{}", crate::shard::shard_of(b"someone-else", 5));
    assert_eq!(s.send(&mut c).cluster.as_deref(), Some(want.as_str()));
}

#[test]
fn a_legacy_value_naming_a_host_past_its_deadline_is_not_pinned() {
    let mut s = sim(r#""migration": {"header": "x-session"},"#);
    let mut c = Client::default();
    let first = s.send(&mut c);
    let host = first.host.clone().unwrap();
    s.set_health(&host, Health::Draining);
    s.host.set_metadata(
        &host,
        "sticky",
        "drain_deadline",
        ((s.now - 1) as f64).to_le_bytes().to_vec(),
    );
    s.now += 2;
    // The filter learns the deadline from a response the host serves.
    let learnt = s.send(&mut c);
    assert_eq!(learnt.host.as_deref(), Some(host.as_str()));
    for _ in 0..3 {
        let mut legacy = Client::default();
        legacy
            .extra
            .push(("x-session".into(), host.clone().into_bytes()));
        let e = s.send(&mut legacy);
        assert_eq!(e.request_header("x-sticky-host"), None, "not pinned");
        assert_ne!(e.host.as_deref(), Some(host.as_str()));
    }
}

#[test]
fn strict_mode_keeps_the_token_on_other_local_replies() {
    let mut s = sim(r#""strict": true,"#);
    s.strict = true;
    let mut c = Client::default();
    let first = s.send(&mut c);
    let host = first.host.clone().unwrap();
    // An overflow or another local reply is not a gone host: no new token.
    s.set_health(&host, Health::Unhealthy);
    s.host.next_stream();
    let mut runner_host = std::mem::take(&mut s.host);
    runner_host.request = vec![(
        "cookie".into(),
        format!("sticky={}", c.cookies["sticky"]).into_bytes(),
    )];
    let stream = {
        let cfg = crate::testing::config_json(r#""strict": true,"#);
        let cfg = crate::config::Config::from_json(cfg.as_bytes()).unwrap();
        let mut worker = crate::worker::Worker::default();
        let stream = crate::filter::on_request(&cfg, &mut worker, &mut runner_host, s.now);
        runner_host.response = vec![(":status".into(), b"503".to_vec())];
        runner_host.code_details =
            Some(b"upstream_reset_before_response_started{overflow}".to_vec());
        crate::filter::on_response(&cfg, &mut worker, &stream, &mut runner_host, s.now);
        assert!(runner_host.response_values("set-cookie").is_empty());
        runner_host.response = vec![(":status".into(), b"503".to_vec())];
        runner_host.code_details = Some(b"no_healthy_upstream".to_vec());
        crate::filter::on_response(&cfg, &mut worker, &stream, &mut runner_host, s.now);
        stream
    };
    assert!(matches!(stream, crate::session::Stream::Pinned(_)));
    assert_eq!(runner_host.response_values("set-cookie").len(), 1);
}

#[test]
fn a_wrapped_id_is_restored_when_its_key_sends_it_to_another_shard() {
    let mut s = shard_sim(
        r#""sharding": {"key": {"header": "x-account"}, "clusters": ["shard-0", "shard-1"]}, "wrap": {"header": "mcp-session-id"},"#,
    );
    let shard = |k: &str| crate::shard::shard_of(k.as_bytes(), 2);
    let (a, b) = (
        "acct-0",
        (1..)
            .map(|i| format!("acct-{i}"))
            .find(|k| shard(k) != shard("acct-0"))
            .unwrap(),
    );
    let client = |key: &str, token: Option<&str>| {
        let mut c = keyed(key);
        c.no_cookies = true;
        c.extra
            .extend(token.map(|t| ("mcp-session-id".to_owned(), t.as_bytes().to_vec())));
        c
    };
    s.app_response = vec![("mcp-session-id".into(), b"app-id-1".to_vec())];
    let first = s.send(&mut client(a, None));
    s.app_response.clear();
    let token = first
        .response_header("mcp-session-id")
        .expect("the id is wrapped");
    for (key, same_shard) in [(a, true), (b.as_str(), false)] {
        let e = s.send(&mut client(key, Some(&token)));
        assert_eq!(e.cluster == first.cluster, same_shard, "{key}");
        assert_eq!(
            e.request_header("mcp-session-id").as_deref(),
            Some("app-id-1"),
            "the application gets its own id back ({key})"
        );
    }
}
