//! Issue 11: switching a live deployment from Envoy's native stateful_session
//! cookie to sticky without dropping sessions. A real Envoy first issues
//! native cookies; a sticky Envoy with `migration` then takes over the same
//! backends, and every session stays on its backend with a sealed token.

use serde_json::json;
use sticky_e2e::client::Session;
use sticky_e2e::rig::{Rig, Spec, default_plugin};
use stickyctl::render::envoy::Affinity;

#[test]
fn sessions_on_envoy_native_cookies_survive_the_switch_to_sticky() {
    let mut rig = Rig::start(Spec {
        clusters: vec![("v1".into(), 100, 4)],
        affinity: Some(Affinity::EnvoyCookie {
            name: "envoy-session".into(),
            ttl_seconds: 600,
        }),
        ..Spec::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut sessions: Vec<(Session, String, u64)> = (0..40)
        .map(|i| {
            let mut s = Session::new(format!("mig-{i}"));
            let mut r = s.get(rig.addr()).unwrap();
            assert!(
                s.jar.contains_key("envoy-session"),
                "native cookie issued: {:?}",
                r.headers
            );
            r = s.get(rig.addr()).unwrap();
            (s, r.backend().unwrap(), r.count().unwrap())
        })
        .collect();
    let mut plugin = default_plugin(&["v1"]);
    plugin["migration"] = json!({"envoy_cookie": "envoy-session", "cluster": "v1"});
    let wasm = sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm");
    rig.replace_envoy(Affinity::StickyWasm { wasm_path: wasm }, plugin)
        .unwrap_or_else(|e| panic!("{e}"));
    for (s, backend, count) in &mut sessions {
        let r = s.get(rig.addr()).unwrap();
        assert_eq!(
            r.backend().as_ref(),
            Some(&*backend),
            "{} lost its backend in the switch",
            s.id
        );
        assert_eq!(r.count(), Some(*count + 1), "{}: state kept", s.id);
        let set = r.headers_named("set-cookie");
        assert!(
            set.iter().any(|c| c.starts_with("sticky=")),
            "{}: sealed token issued: {set:?}",
            s.id
        );
        assert!(
            set.iter()
                .any(|c| c.starts_with("envoy-session=; Max-Age=0")),
            "{}: legacy cookie expired",
            s.id
        );
        s.jar.retain(|k, v| k != "envoy-session" && !v.is_empty());
        for i in 2..5 {
            let r = s.get(rig.addr()).unwrap();
            assert_eq!(r.backend().as_ref(), Some(&*backend));
            assert_eq!(r.count(), Some(*count + i));
            assert!(r.headers_named("set-cookie").is_empty());
        }
    }
    assert_eq!(
        rig.envoy.stat("wasmcustom.sticky.sessions_migrated"),
        Some(40)
    );
    assert!(rig.wasm_failures().is_empty());
}
