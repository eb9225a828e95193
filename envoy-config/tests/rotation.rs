//! Key rotation through a real Envoy, for every build: a token that opens
//! under a key other than the sealing (first) key is re-sealed under the
//! sealing key on that response, so a session that made one request while
//! both keys were configured survives the old key's retirement. A session
//! that made none is dropped then: that is the documented condition.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sticky_core::config::wire;
use sticky_core::keys::{Key, KeyId, Keyring};
use sticky_core::token;
use sticky_e2e::build::Build;
use sticky_e2e::client::{Response, Session};
use sticky_e2e::plugin::to_json;
use sticky_e2e::rig::{KEY_1, KEY_2, Rig, SESSION_HEADER, Spec, default_wire};

/// The key id a token was sealed under: the token is base64url (no padding)
/// of `[version = 1, kid_len, kid, 24-byte nonce, ciphertext]`.
fn key_id(token: &str) -> String {
    let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    assert_eq!(raw[0], 1, "token version");
    let len = usize::from(raw[1]);
    String::from_utf8(raw[2..2 + len].to_vec()).unwrap()
}

/// The sticky token of a response's `Set-Cookie`, if it has one.
fn cookie_token(r: &Response) -> Option<String> {
    let set = r.headers_named("set-cookie");
    let tokens: Vec<String> = set
        .iter()
        .filter_map(|c| c.strip_prefix("sticky="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect();
    assert!(tokens.len() <= 1, "one sticky cookie at most: {set:?}");
    tokens.into_iter().next()
}

fn plugin(ids: &[&str]) -> serde_json::Value {
    let keys = ids
        .iter()
        .map(|id| match *id {
            "k1" => wire::Key::new("k1", KEY_1),
            _ => wire::Key::new("k2", KEY_2),
        })
        .collect();
    to_json(&wire::PluginConfig {
        keys: Some(keys),
        ..default_wire(&["v1", "v2"])
    })
}

/// The host a token pins, opened with the key `id`.
fn pinned_host(token: &str, id: &str, secret: &str) -> String {
    let secret: [u8; 32] = STANDARD.decode(secret).unwrap().try_into().unwrap();
    let keys = Keyring::new(vec![Key::new(KeyId::new(id).unwrap(), &secret)]);
    token::open(token.as_bytes(), &keys).unwrap().host
}

struct Live {
    session: Session,
    backend: String,
    count: u64,
}

fn start_sessions(rig: &Rig, cookies: usize, headers: usize) -> Vec<Live> {
    let mut out = Vec::new();
    for i in 0..cookies + headers {
        let mut session = if i < cookies {
            Session::new(format!("rot-c{i}"))
        } else {
            Session::header_mode(format!("rot-h{i}"), SESSION_HEADER)
        };
        let first = session.get(rig.addr()).unwrap();
        assert_eq!(first.status, 200);
        let backend = first.backend().unwrap();
        let again = session.get(rig.addr()).unwrap();
        assert_eq!(
            again.backend().as_ref(),
            Some(&backend),
            "{} pinned",
            session.id
        );
        out.push(Live {
            session,
            backend,
            count: again.count().unwrap(),
        });
    }
    out
}

sticky_e2e::for_each_build!(sessions_resealed_during_the_key_overlap_survive_retiring_the_old_key);

fn sessions_resealed_during_the_key_overlap_survive_retiring_the_old_key(build: Build) {
    let mut rig = build.start(Spec {
        clusters: vec![("v1".into(), 60, 3), ("v2".into(), 40, 2)],
        plugin: Some(plugin(&["k1"])),
        lds: true,
        ..Spec::default()
    });
    let mut live = start_sessions(&rig, 12, 3);
    // Control: a session that makes no request while both keys are listed.
    let mut idle = Session::new("rot-idle");
    let idle_backend = idle.get(rig.addr()).unwrap().backend().unwrap();
    assert_eq!(key_id(&idle.jar["sticky"]), "k1");
    let backends: std::collections::BTreeSet<&str> =
        live.iter().map(|l| l.backend.as_str()).collect();
    let clusters: std::collections::BTreeSet<String> =
        backends.iter().filter_map(|b| rig.cluster_of(b)).collect();
    assert!(
        backends.len() >= 3 && clusters.len() == 2,
        "sessions spread over both clusters: {backends:?}"
    );

    // Overlap: k2 seals, k1 still opens. One request per session re-seals.
    assert!(
        rig.update_plugin(plugin(&["k2", "k1"])),
        "Envoy refused [k2, k1]"
    );
    let resealed_before = build.counter(&rig, "sticky.tokens_resealed");
    for l in &mut live {
        let r = l.session.get(rig.addr()).unwrap();
        let id = &l.session.id;
        assert_eq!(r.status, 200, "{id}");
        assert_eq!(
            r.backend().as_ref(),
            Some(&l.backend),
            "{id} moved on rotation"
        );
        l.count += 1;
        assert_eq!(r.count(), Some(l.count), "{id}: backend state kept");
        let cookie = cookie_token(&r)
            .unwrap_or_else(|| panic!("{id}: no re-sealed Set-Cookie: {}", r.head()));
        assert_eq!(key_id(&cookie), "k2", "{id}: Set-Cookie sealed by k2");
        let header = r
            .header(SESSION_HEADER)
            .unwrap_or_else(|| panic!("{id}: no re-sealed session header: {}", r.head()));
        assert_eq!(key_id(&header), "k2", "{id}: session header sealed by k2");
        let backend = rig.backend(&l.backend).host();
        assert_eq!(pinned_host(&cookie, "k2", KEY_2), backend, "{id}");
        assert_eq!(pinned_host(&header, "k2", KEY_2), backend, "{id}");
    }
    assert_eq!(
        build.counter(&rig, "sticky.tokens_resealed") - resealed_before,
        live.len() as u64,
        "one re-seal per session"
    );

    // Retire k1: every re-sealed session keeps its backend.
    assert!(rig.update_plugin(plugin(&["k2"])), "Envoy refused [k2]");
    let rejected_before = build.counter(&rig, "sticky.tokens_rejected.unknown_key");
    let created_before = build.counter(&rig, "sticky.sessions_created");
    let (mut moved, mut errors) = (Vec::new(), Vec::new());
    for l in &mut live {
        for _ in 0..4 {
            let r = l.session.get(rig.addr()).unwrap();
            if r.status != 200 {
                errors.push((l.session.id.clone(), r.status));
            } else if r.backend().as_ref() != Some(&l.backend) {
                moved.push((l.session.id.clone(), r.backend()));
            } else {
                l.count += 1;
                assert_eq!(r.count(), Some(l.count), "{}: state kept", l.session.id);
            }
        }
    }
    assert!(errors.is_empty(), "errors after retiring k1: {errors:?}");
    assert!(
        moved.is_empty(),
        "sessions moved after retiring k1: {moved:?}"
    );
    assert_eq!(
        build.counter(&rig, "sticky.tokens_rejected.unknown_key"),
        rejected_before,
        "no re-sealed token was refused"
    );
    assert_eq!(
        build.counter(&rig, "sticky.sessions_created"),
        created_before
    );

    // The control session still holds a k1 token: dropped, a fresh pick.
    let r = idle.get(rig.addr()).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        build.counter(&rig, "sticky.tokens_rejected.unknown_key"),
        rejected_before + 1,
        "the idle session's k1 token is refused"
    );
    assert_eq!(
        build.counter(&rig, "sticky.sessions_created"),
        created_before + 1
    );
    let fresh = cookie_token(&r).unwrap_or_else(|| panic!("no fresh token: {}", r.head()));
    assert_eq!(key_id(&fresh), "k2");
    let served = r.backend().unwrap();
    assert_eq!(
        pinned_host(&fresh, "k2", KEY_2),
        rig.backend(&served).host(),
        "the fresh token pins the backend that served (was {idle_backend})"
    );
    build.assert_clean(&mut rig);
}
