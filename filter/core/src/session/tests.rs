#![allow(clippy::as_conversions, clippy::arithmetic_side_effects)]
use super::*;
use crate::drain::HostDrain;
use crate::keys::NONCE_LEN;
use crate::testing::{config, config_json};

const NOW: u64 = 1_700_000_000;

/// `lookup` with a fresh token cache (the cache has its own test below).
fn lookup(cfg: &Config, candidates: &[&[u8]], now: u64) -> Lookup {
    super::lookup(cfg, candidates, now, &mut TokenCache::default())
}

#[test]
fn cached_tokens_are_still_checked_for_lifetime_and_allow_list() {
    let cfg = config();
    let mut cache = TokenCache::default();
    let t = sealed(&cfg, &claims("10.0.0.1:80"), 1);
    assert!(matches!(
        super::lookup(&cfg, &[t.as_bytes()], NOW, &mut cache),
        Lookup::Valid(_)
    ));
    assert!(
        cache.get(t.as_bytes()).is_some(),
        "an opened token is cached"
    );
    assert_eq!(
        super::lookup(&cfg, &[t.as_bytes()], NOW + 500, &mut cache),
        Lookup::Rejected(Reject::Expired)
    );
    let narrower = Config::from_wire(&crate::config::wire::PluginConfig {
        clusters: Some(vec!["v2".into()]),
        ..crate::testing::wire()
    })
    .unwrap();
    assert_eq!(
        super::lookup(&narrower, &[t.as_bytes()], NOW, &mut cache),
        Lookup::Rejected(Reject::UnknownCluster)
    );
    assert!(cache.get(b"garbage").is_none());
    let _ = super::lookup(&cfg, &[b"garbage"], NOW, &mut cache);
    assert!(
        cache.get(b"garbage").is_none(),
        "only tokens that opened are cached"
    );
}

fn claims(host: &str) -> Claims {
    Claims {
        cluster: "v1".into(),
        host: host.into(),
        issued_at: NOW - 100,
        expires_at: NOW + 500,
        last_seen: NOW - 100,
        key_hash: 0,
        app_id: Vec::new(),
        sealed_by_old_key: false,
    }
}

fn sealed(cfg: &Config, c: &Claims, n: u8) -> String {
    token::seal(c, &cfg.keys, &[n; NONCE_LEN]).unwrap()
}

fn served<'a>(cluster: &'a str, host: &'a str) -> Served<'a> {
    Served {
        cluster: cluster.as_bytes(),
        host: host.as_bytes(),
    }
}

#[test]
fn no_candidates_is_absent() {
    assert_eq!(lookup(&config(), &[], NOW), Lookup::Absent);
}

#[test]
fn valid_token_is_found_among_garbage() {
    let cfg = config();
    let t = sealed(&cfg, &claims("10.0.0.1:80"), 1);
    let got = lookup(&cfg, &[b"garbage", t.as_bytes()], NOW);
    assert_eq!(got, Lookup::Valid(claims("10.0.0.1:80")));
}

#[test]
fn expiry_idle_and_absolute_timeouts_reject() {
    let cfg = config();
    let c = claims("10.0.0.1:80");
    let t = sealed(&cfg, &c, 1);
    assert_eq!(
        lookup(&cfg, &[t.as_bytes()], NOW + 499),
        Lookup::Valid(c.clone())
    );
    assert_eq!(
        lookup(&cfg, &[t.as_bytes()], NOW + 500),
        Lookup::Rejected(Reject::Expired)
    );

    let idle =
        Config::from_json(config_json(r#""session": {"idle_timeout_seconds": 60},"#).as_bytes())
            .unwrap();
    let t = sealed(&idle, &c, 1);
    assert_eq!(
        lookup(&idle, &[t.as_bytes()], NOW - 41),
        Lookup::Valid(c.clone())
    );
    assert_eq!(
        lookup(&idle, &[t.as_bytes()], NOW - 40),
        Lookup::Rejected(Reject::Expired)
    );

    let abs = Config::from_json(
        config_json(r#""session": {"absolute_timeout_seconds": 120},"#).as_bytes(),
    )
    .unwrap();
    let t = sealed(&abs, &c, 1);
    assert_eq!(
        lookup(&abs, &[t.as_bytes()], NOW + 19),
        Lookup::Valid(c.clone())
    );
    assert_eq!(
        lookup(&abs, &[t.as_bytes()], NOW + 20),
        Lookup::Rejected(Reject::Expired)
    );
}

#[test]
fn cluster_off_the_allow_list_is_rejected() {
    let cfg = config();
    let mut c = claims("10.0.0.1:80");
    c.cluster = "v3".into();
    let t = sealed(&cfg, &c, 1);
    assert_eq!(
        lookup(&cfg, &[t.as_bytes()], NOW),
        Lookup::Rejected(Reject::UnknownCluster)
    );
}

#[test]
fn non_address_host_is_rejected() {
    let cfg = config();
    let t = sealed(&cfg, &claims("evil.example.com:80"), 1);
    assert_eq!(
        lookup(&cfg, &[t.as_bytes()], NOW),
        Lookup::Rejected(Reject::Malformed)
    );
    let t = sealed(&cfg, &claims("[::1]:8080"), 1);
    assert!(matches!(
        lookup(&cfg, &[t.as_bytes()], NOW),
        Lookup::Valid(_)
    ));
}

#[test]
fn of_two_valid_tokens_the_most_recently_seen_wins() {
    let cfg = config();
    let older = Claims {
        last_seen: NOW - 200,
        ..claims("10.0.0.1:80")
    };
    let newer = claims("10.0.0.2:80");
    let a = sealed(&cfg, &older, 1);
    let b = sealed(&cfg, &newer, 2);
    for order in [[&a, &b], [&b, &a]] {
        assert_eq!(
            lookup(&cfg, &[order[0].as_bytes(), order[1].as_bytes()], NOW),
            Lookup::Valid(newer.clone())
        );
    }
    // Equally recent: the first one.
    let c = sealed(&cfg, &claims("10.0.0.3:80"), 3);
    assert_eq!(
        lookup(&cfg, &[b.as_bytes(), c.as_bytes()], NOW),
        Lookup::Valid(newer)
    );
}

#[test]
fn agreeing_tokens_pick_the_freshest() {
    let cfg = config();
    let old = claims("10.0.0.1:80");
    let mut new = old.clone();
    new.last_seen = NOW - 10;
    let a = sealed(&cfg, &old, 1);
    let b = sealed(&cfg, &new, 2);
    assert_eq!(
        lookup(&cfg, &[a.as_bytes(), b.as_bytes()], NOW),
        Lookup::Valid(new)
    );
}

#[test]
fn plan_moves_off_an_expired_drain_and_pins_otherwise() {
    let mut drain = DrainCache::new();
    let c = claims("10.0.0.1:80");
    assert_eq!(
        plan(Lookup::Valid(c.clone()), &drain, NOW),
        Stream::Pinned(c.clone())
    );
    drain.record(
        b"10.0.0.1:80",
        HostDrain {
            draining: true,
            deadline: Some(NOW),
        },
        NOW,
    );
    assert_eq!(
        plan(Lookup::Valid(c.clone()), &drain, NOW),
        Stream::Moving(c.clone())
    );
    assert_eq!(
        plan(Lookup::Valid(claims("")), &drain, NOW),
        Stream::Moving(claims(""))
    );
    assert_eq!(
        plan(Lookup::Rejected(Reject::Tampered), &drain, NOW),
        Stream::Fresh
    );
}

#[test]
fn fresh_session_is_issued_for_the_served_backend() {
    let cfg = config();
    let (c, e) = respond(
        &cfg,
        &Stream::Fresh,
        served("v2", "10.0.2.1:8080"),
        None,
        NOW,
    )
    .unwrap();
    assert_eq!(e, Event::Created);
    assert_eq!(
        (c.cluster.as_str(), c.host.as_str()),
        ("v2", "10.0.2.1:8080")
    );
    assert_eq!(
        (c.issued_at, c.last_seen, c.expires_at),
        (NOW, NOW, NOW + 600)
    );
}

#[test]
fn never_issues_for_unlisted_clusters_or_non_addresses() {
    let cfg = config();
    assert!(
        respond(
            &cfg,
            &Stream::Fresh,
            served("v9", "10.0.2.1:8080"),
            None,
            NOW
        )
        .is_none()
    );
    assert!(respond(&cfg, &Stream::Fresh, served("v1", "pipe:/x"), None, NOW).is_none());
    assert!(
        respond(
            &cfg,
            &Stream::Untouched,
            served("v1", "10.0.2.1:8080"),
            None,
            NOW
        )
        .is_none()
    );
}

#[test]
fn unchanged_session_gets_no_cookie() {
    let cfg = config();
    let c = claims("10.0.0.1:80");
    assert!(
        respond(
            &cfg,
            &Stream::Pinned(c),
            served("v1", "10.0.0.1:80"),
            None,
            NOW
        )
        .is_none()
    );
}

#[test]
fn changed_host_is_repinned_keeping_session_start() {
    let cfg = config();
    let c = claims("10.0.0.1:80");
    let (n, e) = respond(
        &cfg,
        &Stream::Pinned(c.clone()),
        served("v1", "10.0.0.2:80"),
        None,
        NOW,
    )
    .unwrap();
    assert_eq!(e, Event::Repinned);
    assert_eq!(n.host, "10.0.0.2:80");
    assert_eq!(n.issued_at, c.issued_at);
}

#[test]
fn draining_host_keeps_pins_but_takes_no_new_ones() {
    let cfg = config();
    let d = Some(HostDrain {
        draining: true,
        deadline: None,
    });
    let c = claims("10.0.0.1:80");
    assert!(
        respond(
            &cfg,
            &Stream::Pinned(c),
            served("v1", "10.0.0.1:80"),
            d,
            NOW
        )
        .is_none()
    );
    let (n, _) = respond(&cfg, &Stream::Fresh, served("v1", "10.0.0.1:80"), d, NOW).unwrap();
    assert_eq!(
        n.host, "",
        "a new session on a draining host keeps only its cluster"
    );
}

#[test]
fn passed_deadline_moves_the_session() {
    let cfg = config();
    let d = Some(HostDrain {
        draining: true,
        deadline: Some(NOW),
    });
    let c = claims("10.0.0.1:80");
    let (n, e) = respond(
        &cfg,
        &Stream::Pinned(c.clone()),
        served("v1", "10.0.0.1:80"),
        d,
        NOW,
    )
    .unwrap();
    assert_eq!(
        (e, n.host.as_str(), n.cluster.as_str()),
        (Event::Drained, "", "v1")
    );
    let (n, e) = respond(
        &cfg,
        &Stream::Moving(c),
        served("v1", "10.0.0.2:80"),
        None,
        NOW,
    )
    .unwrap();
    assert_eq!((e, n.host.as_str()), (Event::Drained, "10.0.0.2:80"));
}

#[test]
fn refresh_is_rate_limited() {
    let cfg =
        Config::from_json(config_json(r#""session": {"idle_timeout_seconds": 60},"#).as_bytes())
            .unwrap();
    let mut c = claims("10.0.0.1:80");
    c.last_seen = NOW;
    let s = Stream::Pinned(c.clone());
    assert!(respond(&cfg, &s, served("v1", "10.0.0.1:80"), None, NOW + 14).is_none());
    let (n, e) = respond(&cfg, &s, served("v1", "10.0.0.1:80"), None, NOW + 15).unwrap();
    assert_eq!((e, n.last_seen), (Event::Refreshed, NOW + 15));
}

#[test]
fn sliding_ttl_refreshes_once_per_half_ttl() {
    let cfg = config();
    let mut c = claims("10.0.0.1:80");
    c.last_seen = NOW;
    c.expires_at = NOW + 600;
    let s = Stream::Pinned(c);
    assert!(respond(&cfg, &s, served("v1", "10.0.0.1:80"), None, NOW + 299).is_none());
    let (n, e) = respond(&cfg, &s, served("v1", "10.0.0.1:80"), None, NOW + 300).unwrap();
    assert_eq!((e, n.expires_at), (Event::Refreshed, NOW + 900));
}

#[test]
fn absolute_timeout_caps_expiry_and_stops_refreshes() {
    let cfg = Config::from_json(
        config_json(r#""session": {"absolute_timeout_seconds": 700},"#).as_bytes(),
    )
    .unwrap();
    let (c, _) = respond(&cfg, &Stream::Fresh, served("v1", "10.0.0.1:80"), None, NOW).unwrap();
    assert_eq!(c.expires_at, NOW + 600);
    let (c2, _) = respond(
        &cfg,
        &Stream::Pinned(c),
        served("v1", "10.0.0.1:80"),
        None,
        NOW + 400,
    )
    .unwrap();
    assert_eq!(c2.expires_at, NOW + 700);
    assert!(
        respond(
            &cfg,
            &Stream::Pinned(c2),
            served("v1", "10.0.0.1:80"),
            None,
            NOW + 690
        )
        .is_none()
    );
}

#[test]
fn the_own_host_shortcut_decides_as_respond_does() {
    let cfg = config();
    let refresh_due = {
        let mut c = claims("10.0.0.1:80");
        c.last_seen = NOW - 10_000;
        c.expires_at = NOW + 10;
        c
    };
    let resealed = Claims {
        sealed_by_old_key: true,
        ..claims("10.0.0.1:80")
    };
    let mut events = Vec::new();
    for old in [claims("10.0.0.1:80"), refresh_due, resealed] {
        for drain in [
            None,
            Some(HostDrain::new(true, None)),
            Some(HostDrain::new(true, Some(NOW + 60))),
            Some(HostDrain::new(true, Some(NOW - 1))),
        ] {
            let full = respond(
                &cfg,
                &Stream::Pinned(old.clone()),
                served(&old.cluster, &old.host),
                drain,
                NOW,
            );
            assert_eq!(
                respond_own_host(&cfg, &old, drain, NOW),
                full,
                "{old:?} {drain:?}"
            );
            events.push(full.map(|(_, e)| e));
        }
    }
    for event in [
        None,
        Some(Event::Refreshed),
        Some(Event::Resealed),
        Some(Event::Drained),
    ] {
        assert!(
            events.contains(&event),
            "{event:?} never decided: {events:?}"
        );
    }
}
