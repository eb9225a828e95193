//! Issue 3: the sticky filter end to end through a real Envoy 1.40, for both
//! builds (`name::wasm`, `name::native`). Every assertion is about which
//! backend (named in `x-backend`) answered.

use std::collections::BTreeMap;

use base64::Engine as _;
use sticky_core::keys::{Key, KeyId, Keyring};
use sticky_core::token::{self, Claims};
use sticky_e2e::build::Build;
use sticky_e2e::client::{Session, send};
use sticky_e2e::rig::{KEY_1, SESSION_HEADER, Spec};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn keyring(id: &str, secret_b64: &str) -> Keyring {
    let secret: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap()
        .try_into()
        .unwrap();
    Keyring::new(vec![Key::new(KeyId::new(id).unwrap(), &secret)])
}

fn forge(claims: &Claims, id: &str, secret: &str) -> String {
    token::seal(claims, &keyring(id, secret), &[9; 24]).unwrap()
}

fn first_response_sets_cookie_and_50_follow_ups_hit_the_same_host(build: Build) {
    let mut rig = build.start(Spec::default());
    let mut s = Session::new("s1");
    let first = s.get(rig.addr()).unwrap();
    assert_eq!(first.status, 200);
    let set = first.headers_named("set-cookie");
    assert_eq!(set.len(), 1, "{:?}", first.headers);
    assert!(set[0].starts_with("sticky="), "{}", set[0]);
    assert!(
        set[0].contains("Max-Age=600")
            && set[0].contains("HttpOnly")
            && set[0].contains("SameSite=Lax")
    );
    let backend = first.backend().unwrap();
    for i in 0..50 {
        let r = s.get(rig.addr()).unwrap();
        assert_eq!(
            r.backend().as_deref(),
            Some(backend.as_str()),
            "request {i}"
        );
        assert_eq!(
            r.count(),
            Some(i + 2),
            "the backend kept the session's state"
        );
        assert!(
            r.headers_named("set-cookie").is_empty(),
            "no re-issue when nothing changed"
        );
    }
    assert_eq!(
        Some(build.counter(&rig, "sticky.sessions_created")),
        Some(1)
    );
    assert_eq!(
        Some(build.counter(&rig, "sticky.requests_pinned")),
        Some(50)
    );
    build.assert_clean(&mut rig);
}

fn each_of_120_sessions_keeps_cluster_and_host_under_a_90_10_split(build: Build) {
    let mut rig = build.start(Spec::default());
    let mut sessions: Vec<(Session, String)> = (0..120)
        .map(|i| {
            let mut s = Session::new(format!("split-{i}"));
            let r = s.get(rig.addr()).unwrap();
            (s, r.backend().unwrap())
        })
        .collect();
    let per_cluster = sessions.iter().fold(BTreeMap::new(), |mut m, (_, b)| {
        *m.entry(rig.cluster_of(b).unwrap()).or_insert(0) += 1;
        m
    });
    assert!(
        per_cluster.get("v2").copied().unwrap_or(0) >= 2,
        "the split sends some sessions to v2: {per_cluster:?}"
    );
    assert!(per_cluster["v1"] > per_cluster.get("v2").copied().unwrap_or(0));
    for round in 0..4 {
        for (s, backend) in &mut sessions {
            let r = s.get(rig.addr()).unwrap();
            assert_eq!(
                r.backend().as_ref(),
                Some(&*backend),
                "round {round} session {}",
                s.id
            );
        }
    }
    build.assert_clean(&mut rig);
}

/// A length 5 to 8 symbols shorter that base64 cannot decode.
fn truncated_len(len: usize) -> usize {
    (len - 8..len - 4).find(|n| n % 4 == 1).unwrap()
}

fn bad_cookies_get_a_fresh_pick_never_a_5xx(build: Build) {
    let mut rig = build.start(Spec::default());
    let mut good = Session::new("good");
    good.get(rig.addr()).unwrap();
    let valid = good.jar["sticky"].clone();
    let mut edited = valid.clone().into_bytes();
    let mid = edited.len() / 2;
    edited[mid] = if edited[mid] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    let claims = |cluster: &str, host: &str, expires_at| Claims {
        cluster: cluster.into(),
        host: host.into(),
        issued_at: now() - 10,
        expires_at,
        last_seen: now() - 10,
        key_hash: 0,
        app_id: Vec::new(),
        sealed_by_old_key: false,
    };
    let target = rig.backend("v2-1").host();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"sticky=hello-world".to_vec()),
        ("edited", format!("sticky={edited}").into_bytes()),
        (
            // Cut where no base64 can end (one symbol of a group), so it is
            // always malformed: at other cuts the random last bits are
            // canonical now and then, the cut token decodes and fails as
            // tampered instead.
            "truncated",
            format!("sticky={}", &valid[..truncated_len(valid.len())]).into_bytes(),
        ),
        (
            "wrong key",
            format!(
                "sticky={}",
                forge(
                    &claims("v2", &target, now() + 600),
                    "k1",
                    "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM="
                )
            )
            .into_bytes(),
        ),
        (
            "unknown key id",
            format!(
                "sticky={}",
                forge(&claims("v2", &target, now() + 600), "k9", KEY_1)
            )
            .into_bytes(),
        ),
        (
            "expired",
            format!(
                "sticky={}",
                forge(&claims("v2", &target, now() - 1), "k1", KEY_1)
            )
            .into_bytes(),
        ),
        (
            "unknown cluster",
            format!(
                "sticky={}",
                forge(&claims("v9", &target, now() + 600), "k1", KEY_1)
            )
            .into_bytes(),
        ),
        (
            "oversized",
            format!("sticky={}", "A".repeat(3000)).into_bytes(),
        ),
        ("non-utf8", b"sticky=\xff\xfe\xfd; other=\xc3\x28".to_vec()),
        (
            "host not in the cluster",
            format!(
                "sticky={}",
                forge(&claims("v2", "10.255.0.1:9", now() + 600), "k1", KEY_1)
            )
            .into_bytes(),
        ),
        ("quoted garbage", b"sticky=\"\"\"; sticky=\"x\"".to_vec()),
    ];
    for (name, cookie) in cases {
        let r = send(
            rig.addr(),
            "/",
            &[(b"cookie", &cookie), (b"x-session-id", name.as_bytes())],
        )
        .unwrap();
        assert_eq!(r.status, 200, "{name}: {:?}", r.headers);
        assert_eq!(
            r.headers_named("set-cookie").len(),
            1,
            "{name}: a fresh session is issued"
        );
        assert_eq!(r.count(), Some(1), "{name}");
    }
    // A correctly sealed token is honoured: the control for the cases above.
    let honoured = forge(&claims("v2", &target, now() + 600), "k1", KEY_1);
    for _ in 0..5 {
        let r = send(
            rig.addr(),
            "/",
            &[(b"cookie", format!("sticky={honoured}").as_bytes())],
        )
        .unwrap();
        assert_eq!(r.backend().as_deref(), Some("v2-1"));
    }
    // Each bad cookie was refused for its own reason, and counted once.
    let stat = |r: &str| build.counter(&rig, &format!("sticky.tokens_rejected.{r}"));
    assert_eq!(stat("tampered"), 2, "edited, wrong key");
    assert_eq!(stat("unknown_key"), 1);
    assert_eq!(stat("expired"), 1);
    assert_eq!(stat("unknown_cluster"), 1);
    assert_eq!(stat("oversized"), 1);
    assert_eq!(
        stat("malformed"),
        4,
        "garbage, truncated, non-utf8, quoted garbage"
    );
    build.assert_clean(&mut rig);
}

fn of_two_valid_tokens_the_most_recent_wins(build: Build) {
    let mut rig = build.start(Spec::default());
    let older_host = rig.backend("v1-0").host();
    assert_ne!(older_host, rig.backend("v1-1").host());
    let newer_host = rig.backend("v1-1").host();
    let claims = |host: &str, last_seen| Claims {
        cluster: "v1".into(),
        host: host.into(),
        issued_at: now() - 100,
        expires_at: now() + 600,
        last_seen,
        key_hash: 0,
        app_id: Vec::new(),
        sealed_by_old_key: false,
    };
    // An injected (or stale, other-Path) token beside the session's own
    // must not turn every request into a fresh pick.
    let older = forge(&claims(&older_host, now() - 60), "k1", KEY_1);
    let newer = forge(&claims(&newer_host, now() - 5), "k1", KEY_1);
    let cookies = [
        format!("sticky={older}; sticky={newer}"),
        format!("sticky={newer}; sticky={older}"),
        format!("pref=x,sticky={older}; sticky={newer}"),
    ];
    for _ in 0..5 {
        for cookie in &cookies {
            let r = send(rig.addr(), "/", &[(b"cookie", cookie.as_bytes())]).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.backend().as_deref(), Some("v1-1"), "{cookie}");
        }
    }
    assert_eq!(build.counter(&rig, "sticky.tokens_rejected.conflict"), 0);
    build.assert_clean(&mut rig);
}

fn several_cookie_headers_are_all_read(build: Build) {
    let rig = build.start(Spec::default());
    let mut s = Session::new("multi");
    let first = s.get(rig.addr()).unwrap();
    let tok = s.jar["sticky"].clone();
    for _ in 0..10 {
        let r = send(
            rig.addr(),
            "/",
            &[
                (b"cookie", b"a=1; b=2"),
                (b"cookie", format!("c=3; sticky=\"{tok}\"").as_bytes()),
            ],
        )
        .unwrap();
        assert_eq!(r.backend(), first.backend());
    }
}

fn client_sent_internal_headers_cannot_choose_a_backend(build: Build) {
    let mut rig = build.start(Spec::default());
    let target = rig.backend("v2-1").host();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&target);
    let mut hits = 0;
    for i in 0..40 {
        let id = format!("evil-{i}");
        let r = send(
            rig.addr(),
            "/",
            &[
                (b"x-sticky-cluster", b"v2"),
                (b"x-sticky-host", encoded.as_bytes()),
                (b"x-session-id", id.as_bytes()),
            ],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert!(r.header("x-sticky-host").is_none() && r.header("x-sticky-cluster").is_none());
        if r.backend().as_deref() == Some("v2-1") {
            hits += 1;
        }
    }
    // Under 90/10 and 2 hosts per cluster, v2-1 gets ~5% of fresh picks by chance.
    assert!(hits <= 8, "the client steered {hits}/40 requests");
    build.assert_clean(&mut rig);
}

fn no_internal_header_leaks_to_clients_or_backends(build: Build) {
    let mut rig = build.start(Spec::default());
    let mut s = Session::new("leak");
    for _ in 0..5 {
        let r = s.get(rig.addr()).unwrap();
        for (name, _) in &r.headers {
            assert!(
                name != "x-sticky-host" && name != "x-sticky-cluster",
                "{name} leaked"
            );
        }
    }
    build.assert_clean(&mut rig);
}

fn header_mode_pins_a_client_that_never_sends_cookies(build: Build) {
    let rig = build.start(Spec::default());
    let mut s = Session::header_mode("hdr", SESSION_HEADER);
    let first = s.get(rig.addr()).unwrap();
    assert!(
        first.header(SESSION_HEADER).is_some(),
        "{:?}",
        first.headers
    );
    for i in 0..20 {
        let r = s.get(rig.addr()).unwrap();
        assert_eq!(r.backend(), first.backend());
        assert_eq!(r.count(), Some(i + 2));
    }
}

fn an_http2_client_is_pinned_too(build: Build) {
    let rig = build.start(Spec::default());
    let url = format!("http://{}/", rig.addr());
    let curl = |cookie: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-i", "--http2-prior-knowledge", "--max-time", "10"]);
        if let Some(c) = cookie {
            cmd.args(["-H", &format!("cookie: a=1; {c}; b=2")]);
        }
        let out = cmd
            .arg(&url)
            .output()
            .expect("curl is installed by make setup");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = curl(None);
    assert!(first.starts_with("HTTP/2 200"), "{first}");
    let header = |text: &str, name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}: "))
                .map(|v| v.trim().to_owned())
        })
    };
    let backend = header(&first, "x-backend").unwrap();
    let cookie = header(&first, "set-cookie").unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    for _ in 0..10 {
        let r = curl(Some(&pair));
        assert_eq!(header(&r, "x-backend").as_deref(), Some(backend.as_str()));
        assert!(header(&r, "set-cookie").is_none());
    }
}

fn invalid_plugin_config_is_refused_naming_the_field(build: Build) {
    let mut plugin = sticky_e2e::rig::default_plugin(&["v1", "v2"]);
    plugin["keys"][0]["secret"] = serde_json::json!("c2hvcnQ=");
    let err = match build.try_start(Spec {
        plugin: Some(plugin),
        ..Spec::default()
    }) {
        Ok(_) => panic!("Envoy accepted an invalid plugin config"),
        Err(e) => e,
    };
    assert!(err.log.contains("field `keys[0].secret`"), "{}", err.log);
}

sticky_e2e::for_each_build!(
    first_response_sets_cookie_and_50_follow_ups_hit_the_same_host,
    each_of_120_sessions_keeps_cluster_and_host_under_a_90_10_split,
    bad_cookies_get_a_fresh_pick_never_a_5xx,
    of_two_valid_tokens_the_most_recent_wins,
    several_cookie_headers_are_all_read,
    client_sent_internal_headers_cannot_choose_a_backend,
    no_internal_header_leaks_to_clients_or_backends,
    header_mode_pins_a_client_that_never_sends_cookies,
    an_http2_client_is_pinned_too,
    invalid_plugin_config_is_refused_naming_the_field,
);
