//! Issue 11: switching a live deployment from Envoy's native stateful_session
//! cookie to sticky without dropping sessions. A real Envoy first issues
//! native cookies; a sticky Envoy with `migration` then takes over the same
//! backends, and every session stays on its backend with a sealed token.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sticky_core::config::wire;
use sticky_e2e::build::Build;
use sticky_e2e::client::Session;
use sticky_e2e::plugin::to_json;
use sticky_e2e::rig::{Rig, Spec, default_wire};
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
    let plugin = to_json(&wire::PluginConfig {
        migration: Some(wire::Migration {
            envoy_cookie: Some("envoy-session".into()),
            cluster: Some("v1".into()),
            ..wire::Migration::default()
        }),
        ..default_wire(&["v1"])
    });
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

sticky_e2e::for_each_build!(a_legacy_cluster_suffix_steers_only_with_trust_cluster);

/// An A55-style legacy value (`HOST;cluster:NAME`) names its own cluster.
/// That suffix is the client's word: by default it is ignored (the legacy
/// host is looked for in `migration.cluster`), and only with
/// `migration.trust_cluster` does it pick the cluster. The split sends every
/// fresh pick to v1, so a v2 host can only come from the suffix.
fn a_legacy_cluster_suffix_steers_only_with_trust_cluster(build: Build) {
    for trust in [false, true] {
        let plugin = to_json(&wire::PluginConfig {
            migration: Some(wire::Migration {
                header: Some("x-legacy-session".into()),
                cluster: Some("v1".into()),
                trust_cluster: trust.then_some(true),
                ..wire::Migration::default()
            }),
            ..default_wire(&["v1", "v2"])
        });
        let mut rig = build.start(Spec {
            clusters: vec![("v1".into(), 100, 2), ("v2".into(), 0, 2)],
            plugin: Some(plugin),
            ..Spec::default()
        });
        let target = rig.backend("v2-1").host();
        for i in 0..6 {
            // Both legacy host spellings: base64("ip:port") and plain "ip:port".
            let host = if i % 2 == 0 {
                STANDARD.encode(&target)
            } else {
                target.clone()
            };
            let mut s = Session::new(format!("a55-{trust}-{i}"));
            s.extra.push((
                b"x-legacy-session".to_vec(),
                format!("{host};cluster:v2").into_bytes(),
            ));
            let r = s.get(rig.addr()).unwrap();
            assert_eq!(r.status, 200, "{}", r.head());
            let served = r.backend().unwrap();
            if trust {
                assert_eq!(served, "v2-1", "trust_cluster: the suffix's host");
            } else {
                assert_eq!(
                    rig.cluster_of(&served).as_deref(),
                    Some("v1"),
                    "default: the suffix is ignored, got {served}"
                );
            }
            assert!(s.jar.contains_key("sticky"), "sealed token: {}", r.head());
            for _ in 0..3 {
                let r = s.get(rig.addr()).unwrap();
                assert_eq!(r.backend().as_ref(), Some(&served), "{}", s.id);
            }
        }
        let v2 = rig.backend("v2-0").requests() + rig.backend("v2-1").requests();
        assert_eq!(
            v2 > 0,
            trust,
            "v2 served {v2} requests (trust_cluster {trust})"
        );
        build.assert_clean(&mut rig);
    }
}
