//! What is particular to the native build (`dist/libsticky.so`, an Envoy
//! dynamic module) through a real Envoy 1.40. The behaviour both builds share
//! is tested for both in filter.rs and drain.rs (`name::native`); here: the
//! two builds open each other's tokens, the module's init refuses bad config,
//! and the no-retry case.
//!
//! The module's counters appear in /stats as `dynamicmodulescustom.<name>`
//! (Envoy's default `metrics_namespace` for dynamic modules).
//!
//! A crashed native module takes Envoy down with it, so every test ends by
//! checking that Envoy is still running.

use serde_json::json;
use sticky_e2e::client::{Response, Session};
use sticky_e2e::envoy::Envoy;
use sticky_e2e::rig::{Rig, SESSION_HEADER, Spec, default_plugin};
use stickyctl::render::envoy::{Affinity, NativeWiring, bootstrap};

/// Prefix of the module's counters in /stats.
const STATS: &str = "dynamicmodulescustom.";

fn native() -> Option<Affinity> {
    Some(Affinity::StickyNative {
        module: "sticky".into(),
        wiring: NativeWiring::Direct,
    })
}

fn start(spec: Spec) -> Rig {
    Rig::start(Spec {
        affinity: native(),
        ..spec
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn rig() -> Rig {
    start(Spec::default())
}

fn one_cluster(n: usize) -> Spec {
    Spec {
        clusters: vec![("v1".into(), 100, n)],
        ..Spec::default()
    }
}

/// A counter of the module (`sticky.requests_pinned`, ...), 0 when absent.
fn counter(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(&format!("{STATS}{name}")).unwrap_or(0)
}

fn get(addr: std::net::SocketAddr, s: &mut Session) -> Response {
    let r = s.get(addr).unwrap();
    assert_eq!(r.status, 200, "session {}: {:?}", s.id, r.headers);
    r
}

/// Envoy is alive (a module crash kills it) and no internal header reached
/// a backend.
fn assert_clean(rig: &mut Rig) {
    assert!(
        rig.envoy.exited().is_none(),
        "Envoy died: {}",
        rig.envoy.log()
    );
    for b in rig.backends.values().flatten() {
        assert_eq!(b.leaks(), 0, "internal header reached backend {}", b.name);
    }
}

#[test]
fn invalid_config_fails_the_module_init_naming_the_field() {
    for (field, value, named) in [
        (
            "keys",
            json!([{"id": "k1", "secret": "c2hvcnQ="}]),
            "keys[0].secret",
        ),
        ("clusters", json!([]), "clusters"),
    ] {
        let mut plugin = default_plugin(&["v1", "v2"]);
        plugin[field] = value;
        let err = match Rig::start(Spec {
            affinity: native(),
            plugin: Some(plugin),
            ..Spec::default()
        }) {
            Ok(_) => panic!("Envoy accepted an invalid plugin config ({named})"),
            Err(e) => e,
        };
        assert!(err.log.contains(&format!("field `{named}`")), "{}", err.log);
        assert!(
            err.log.contains("Failed to initialize dynamic module"),
            "{}",
            err.log
        );
    }
}

/// A second Envoy running the wasm build on the rig's fleet, so in front of
/// the same backends (the same EDS files).
fn wasm_twin(rig: &Rig) -> Envoy {
    let mut plan = rig.plan.clone();
    plan.affinity = Affinity::StickyWasm {
        wasm_path: sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm"),
    };
    rig.launch(&bootstrap(&plan), None, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tokens_are_interchangeable_between_the_wasm_and_native_builds() {
    let mut rig = rig();
    let wasm = wasm_twin(&rig);
    // Issued by wasm, honoured by native.
    for i in 0..10 {
        let mut s = Session::new(format!("w2n-{i}"));
        let issued = get(wasm.listener, &mut s);
        assert_eq!(issued.headers_named("set-cookie").len(), 1);
        let backend = issued.backend();
        for _ in 0..5 {
            let r = get(rig.addr(), &mut s);
            assert_eq!(
                r.backend(),
                backend,
                "{}: native moved a wasm session",
                s.id
            );
            assert!(r.headers_named("set-cookie").is_empty());
        }
    }
    assert_eq!(counter(&rig.envoy, "sticky.requests_pinned"), 50);
    assert_eq!(counter(&rig.envoy, "sticky.sessions_created"), 0);
    // Issued by native, honoured by wasm.
    for i in 0..10 {
        let mut s = Session::new(format!("n2w-{i}"));
        let issued = get(rig.addr(), &mut s);
        let backend = issued.backend();
        for _ in 0..5 {
            let r = get(wasm.listener, &mut s);
            assert_eq!(
                r.backend(),
                backend,
                "{}: wasm moved a native session",
                s.id
            );
            assert!(r.headers_named("set-cookie").is_empty());
        }
    }
    assert_eq!(wasm.stat("wasmcustom.sticky.requests_pinned"), Some(50));
    // And a header-mode token travels the same way.
    let mut h = Session::header_mode("hdr", SESSION_HEADER);
    let backend = get(wasm.listener, &mut h).backend();
    for _ in 0..5 {
        assert_eq!(get(rig.addr(), &mut h).backend(), backend);
    }
    assert_clean(&mut rig);
}

#[test]
fn without_a_retry_policy_a_killed_pinned_host_is_a_503_then_a_fresh_pick() {
    // Same as Envoy's stateful_session: the override is not strict, but a
    // host that is still in EDS is chosen, and without retries its refused
    // connection reaches the client once. The next request re-pins.
    let mut rig = start(Spec {
        retry: false,
        ..one_cluster(2)
    });
    let mut s = Session::new("noretry");
    let b = get(rig.addr(), &mut s).backend().unwrap();
    rig.backend(&b).kill();
    let r = s.get(rig.addr()).unwrap();
    assert_eq!(r.status, 503, "{:?}", r.headers);
    assert!(
        r.headers_named("set-cookie").is_empty(),
        "a local reply pins nothing"
    );
    // The refused host is now ejected only by outlier detection, which the
    // rig does not configure: removing it from EDS is what moves the session.
    rig.remove_backend(&b);
    let r = get(rig.addr(), &mut s);
    assert_ne!(r.backend(), Some(b));
    assert_eq!(r.headers_named("set-cookie").len(), 1);
    assert_clean(&mut rig);
}
