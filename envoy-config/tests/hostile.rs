//! Hostile requests and configurations through a real Envoy, for every build:
//! an injected older token does not unpin a session (the most recently seen
//! of several valid tokens wins), and plugin JSON the filter must refuse is
//! refused when pushed to a running Envoy, which keeps serving the old one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sticky_core::keys::{Key, KeyId, Keyring};
use sticky_core::token::{self, Claims};
use sticky_e2e::build::Build;
use sticky_e2e::client::{Response, Session, send};
use sticky_e2e::rig::{KEY_1, SESSION_HEADER, Spec, default_plugin};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn keyring() -> Keyring {
    let secret: [u8; 32] = STANDARD.decode(KEY_1).unwrap().try_into().unwrap();
    Keyring::new(vec![Key::new(KeyId::new("k1").unwrap(), &secret)])
}

/// The host pinned by the sticky token of a response's `Set-Cookie`, if any.
fn issued_host(r: &Response) -> Option<String> {
    let set = r.headers_named("set-cookie");
    let value = set.iter().find_map(|c| c.strip_prefix("sticky="))?;
    let value = value.split(';').next().unwrap_or_default();
    Some(token::open(value.as_bytes(), &keyring()).unwrap().host)
}

/// Request headers as (name, value) bytes.
type Headers = Vec<(Vec<u8>, Vec<u8>)>;

sticky_e2e::for_each_build!(an_injected_older_token_for_another_backend_does_not_unpin_a_session);

fn an_injected_older_token_for_another_backend_does_not_unpin_a_session(build: Build) {
    let mut rig = build.start(Spec::default());
    let mut s = Session::new("victim");
    let first = s.get(rig.addr()).unwrap();
    let backend = first.backend().unwrap();
    let mine = s.jar["sticky"].clone();
    // A valid token (the rig's key) for a backend of the other cluster, last
    // seen five minutes ago: what an attacker could plant in the victim's jar.
    let other = if rig.cluster_of(&backend).as_deref() == Some("v1") {
        "v2-1"
    } else {
        "v1-1"
    };
    let t = now();
    let older = token::seal(
        &Claims {
            cluster: rig.cluster_of(other).unwrap(),
            host: rig.backend(other).host(),
            issued_at: t - 600,
            expires_at: t + 600,
            last_seen: t - 300,
            ..Claims::default()
        },
        &keyring(),
        &[7; 24],
    )
    .unwrap();
    let pinned_before = build.counter(&rig, "sticky.requests_pinned");
    let created_before = build.counter(&rig, "sticky.sessions_created");
    let variants: Vec<(&str, Headers)> = vec![
        (
            "older first, one header",
            vec![(
                b"cookie".to_vec(),
                format!("sticky={older}; sticky={mine}").into_bytes(),
            )],
        ),
        (
            "older last, one header",
            vec![(
                b"cookie".to_vec(),
                format!("sticky={mine}; sticky={older}").into_bytes(),
            )],
        ),
        (
            "two Cookie headers",
            vec![
                (b"cookie".to_vec(), format!("sticky={older}").into_bytes()),
                (b"cookie".to_vec(), format!("sticky={mine}").into_bytes()),
            ],
        ),
        (
            "hidden behind a comma",
            vec![(
                b"cookie".to_vec(),
                format!("pref=x,sticky={older}; sticky={mine}").into_bytes(),
            )],
        ),
        (
            "older in the session header",
            vec![
                (
                    SESSION_HEADER.as_bytes().to_vec(),
                    older.clone().into_bytes(),
                ),
                (b"cookie".to_vec(), format!("sticky={mine}").into_bytes()),
            ],
        ),
    ];
    for i in 0..10u64 {
        let (what, headers) = &variants[i as usize % variants.len()];
        let mut headers = headers.clone();
        headers.push((b"x-session-id".to_vec(), b"victim".to_vec()));
        let refs: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let r = send(rig.addr(), "/", &refs).unwrap();
        assert_eq!(r.status, 200, "{what}");
        assert_eq!(
            r.backend().as_ref(),
            Some(&backend),
            "request {i} ({what}) left the session's backend"
        );
        assert_eq!(r.count(), Some(i + 2), "{what}: the backend kept its state");
        if let Some(host) = issued_host(&r) {
            assert_eq!(host, rig.backend(&backend).host(), "{what}: re-pinned");
        }
    }
    assert_eq!(
        build.counter(&rig, "sticky.requests_pinned") - pinned_before,
        10,
        "every request was pinned by the newer token"
    );
    assert_eq!(
        build.counter(&rig, "sticky.sessions_created"),
        created_before
    );
    build.assert_clean(&mut rig);
}

sticky_e2e::for_each_build!(a_plugin_config_the_filter_must_refuse_pushed_live_changes_nothing);

fn a_plugin_config_the_filter_must_refuse_pushed_live_changes_nothing(build: Build) {
    let mut rig = build.start(Spec {
        lds: true,
        ..Spec::default()
    });
    let mut s = Session::new("keep");
    let backend = s.get(rig.addr()).unwrap().backend().unwrap();
    let plugin = default_plugin(&["v1", "v2"]);
    let leading_zero = |text: String| {
        assert!(text.contains("\"ttl_seconds\":600"), "{text}");
        text.replace("\"ttl_seconds\":600", "\"ttl_seconds\":00600")
    };
    assert!(
        !rig.update_plugin_text(plugin.clone(), leading_zero),
        "Envoy accepted `\"ttl_seconds\": 00600`"
    );
    for name in ["set-cookie", "Set-Cookie"] {
        let mut bad = plugin.clone();
        bad["session_header"] = json!(name);
        assert!(
            !rig.update_plugin(bad),
            "Envoy accepted `\"session_header\": \"{name}\"`"
        );
    }
    assert!(
        rig.envoy.wait_for(std::time::Duration::from_secs(3), |e| e
            .log()
            .contains("field `session_header`")),
        "the refusal names the field: {}",
        rig.envoy.log()
    );
    // The old configuration serves: the session keeps its backend, a new
    // session gets the old cookie and session header.
    for i in 0..10 {
        let r = s.get(rig.addr()).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.backend().as_ref(), Some(&backend), "request {i}");
        assert_eq!(r.count(), Some(i + 2));
    }
    let fresh = Session::new("fresh").get(rig.addr()).unwrap();
    let set = fresh.headers_named("set-cookie");
    assert_eq!(set.len(), 1, "{}", fresh.head());
    assert!(set[0].starts_with("sticky=") && set[0].contains("Max-Age=600"));
    assert!(fresh.header(SESSION_HEADER).is_some());
    // The same edit without the leading zero is accepted (the text path works).
    assert!(rig.update_plugin_text(plugin, |t| {
        t.replace("\"ttl_seconds\":600", "\"ttl_seconds\":601")
    }));
    let fresh = Session::new("fresh-2").get(rig.addr()).unwrap();
    assert!(
        fresh.headers_named("set-cookie")[0].contains("Max-Age=601"),
        "{}",
        fresh.head()
    );
    assert_eq!(s.get(rig.addr()).unwrap().backend(), Some(backend));
    // A refused configuration is no crash: Envoy is up, no filter panicked
    // (the wasm's refusals show as "Wasm VM failed Failed to configure").
    assert!(rig.envoy.exited().is_none(), "Envoy died");
    let crashes: Vec<String> = rig
        .wasm_failures()
        .into_iter()
        .filter(|l| !l.contains("Failed to configure base Wasm plugin"))
        .collect();
    assert!(crashes.is_empty(), "{crashes:?}");
    for b in rig.backends.values().flatten() {
        assert_eq!(b.leaks(), 0, "internal header reached backend {}", b.name);
    }
}
