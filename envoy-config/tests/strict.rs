//! Strict mode through a real Envoy, for every build: a pinned host that left
//! EDS is one 503 (Envoy's "no healthy upstream"), not a 503 on every request
//! until the token expires. That 503 carries a token that keeps the session's
//! cluster but names no host, so the next request is served by another host
//! of the same cluster and pinned there.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sticky_core::keys::{Key, KeyId, Keyring};
use sticky_core::token::{self, Claims};
use sticky_e2e::build::Build;
use sticky_e2e::client::{Response, Session};
use sticky_e2e::plugin::to_json;
use sticky_e2e::rig::{KEY_1, Spec, default_wire};

/// The claims of the sticky token a response's `Set-Cookie` issues.
fn issued(r: &Response) -> Option<Claims> {
    let secret: [u8; 32] = STANDARD.decode(KEY_1).unwrap().try_into().unwrap();
    let keys = Keyring::new(vec![Key::new(KeyId::new("k1").unwrap(), &secret)]);
    let set = r.headers_named("set-cookie");
    let value = set.iter().find_map(|c| c.strip_prefix("sticky="))?;
    let value = value.split(';').next().unwrap_or_default();
    Some(token::open(value.as_bytes(), &keys).unwrap())
}

sticky_e2e::for_each_build!(
    strict_session_whose_host_left_eds_gets_one_503_then_a_host_of_its_cluster
);

fn strict_session_whose_host_left_eds_gets_one_503_then_a_host_of_its_cluster(build: Build) {
    let mut plugin = default_wire(&["v1", "v2"]);
    // The native direct wiring gets `override_host: {"strict": true}` from
    // `Spec::strict`; the others say it at the top level.
    if build != Build::Native {
        plugin.strict = Some(true);
    }
    let plugin = to_json(&plugin);
    let mut rig = build.start(Spec {
        clusters: vec![("v1".into(), 50, 2), ("v2".into(), 50, 2)],
        plugin: Some(plugin),
        strict: true,
        ..Spec::default()
    });
    // A session in v2; then the split sends every new session to v1, so a
    // host of v2 can only come from the session's token.
    rig.set_weights(&[("v1", 0), ("v2", 100)]);
    let mut s = Session::new("strict");
    let pinned = s.get(rig.addr()).unwrap().backend().unwrap();
    assert_eq!(rig.cluster_of(&pinned).as_deref(), Some("v2"));
    rig.set_weights(&[("v1", 100), ("v2", 0)]);
    let r = s.get(rig.addr()).unwrap();
    assert_eq!(
        r.backend().as_ref(),
        Some(&pinned),
        "pinned across the shift"
    );
    let other = if pinned == "v2-0" { "v2-1" } else { "v2-0" };

    rig.remove_backend(&pinned);
    // The first request: strict means Envoy's 503, with a host-less token.
    let gone = s.get(rig.addr()).unwrap();
    assert_eq!(gone.status, 503, "{}", gone.head());
    assert_eq!(gone.backend(), None);
    let released =
        issued(&gone).unwrap_or_else(|| panic!("the 503 issues no token: {}", gone.head()));
    assert_eq!(
        released.cluster, "v2",
        "the token keeps the session's cluster"
    );
    assert_eq!(released.host, "", "the token names no host");

    // The next request: another host of the same cluster, pinned there.
    let next = s.get(rig.addr()).unwrap();
    assert_eq!(next.status, 200, "{}", next.head());
    assert_eq!(next.backend().as_deref(), Some(other), "{}", next.head());
    assert_eq!(next.count(), Some(1));
    let repinned =
        issued(&next).unwrap_or_else(|| panic!("no token pinning the new host: {}", next.head()));
    assert_eq!(repinned.cluster, "v2");
    assert_eq!(repinned.host, rig.backend(other).host());
    for i in 0..5 {
        let r = s.get(rig.addr()).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.backend().as_deref(), Some(other), "request {i}");
        assert_eq!(r.count(), Some(i + 2));
    }
    for b in ["v1-0", "v1-1"] {
        assert_eq!(rig.backend(b).requests(), 0, "{b} served the session");
    }
    build.assert_clean(&mut rig);
}
