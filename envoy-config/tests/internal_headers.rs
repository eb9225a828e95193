//! sticky's internal headers (`x-sticky-cluster`, `x-sticky-host`) through a
//! real Envoy: a backend that answers with them never shows them to a client,
//! and a client that sends them never steers a request, not even one whose
//! request hook panics (native builds, `fault-injection` feature).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sticky_e2e::build::Build;
use sticky_e2e::client::{Response, Session, send};
use sticky_e2e::rig::{SESSION_HEADER, Spec, default_plugin};

const REFLECT: (&[u8], &[u8]) = (b"x-test-reflect-internal", b"1");

fn assert_no_internal(r: &Response, what: &str) {
    assert!(
        r.header("x-sticky-cluster").is_none() && r.header("x-sticky-host").is_none(),
        "{what}: internal header in the response:\n{}",
        r.head()
    );
}

sticky_e2e::for_each_build!(internal_headers_a_backend_answers_with_never_reach_the_client);

fn internal_headers_a_backend_answers_with_never_reach_the_client(build: Build) {
    let mut rig = build.start(Spec::default());
    // The backend does answer with them when asked (else this proves nothing).
    let direct = send(rig.backend("v1-0").addr, "/", &[REFLECT]).unwrap();
    assert_eq!(direct.header("x-sticky-cluster").as_deref(), Some("v1"));
    assert_eq!(
        direct.header("x-sticky-host"),
        Some(STANDARD.encode(rig.backend("v1-0").host()))
    );

    // Cookie session: the fresh pick, then the pinned path.
    let mut s = Session::new("reflect-cookie");
    s.extra.push((REFLECT.0.to_vec(), REFLECT.1.to_vec()));
    let first = s.get(rig.addr()).unwrap();
    assert_eq!(first.status, 200);
    assert!(s.jar.contains_key("sticky"), "{}", first.head());
    assert_no_internal(&first, "fresh cookie session");
    let backend = first.backend().unwrap();
    for i in 0..10 {
        let r = s.get(rig.addr()).unwrap();
        assert_eq!(r.backend().as_ref(), Some(&backend), "pinned request {i}");
        assert_no_internal(&r, "pinned cookie session");
    }

    // Header mode: the fresh pick, then the pinned path.
    let mut h = Session::header_mode("reflect-header", SESSION_HEADER);
    h.extra.push((REFLECT.0.to_vec(), REFLECT.1.to_vec()));
    let first = h.get(rig.addr()).unwrap();
    assert_eq!(first.status, 200);
    assert!(first.header(SESSION_HEADER).is_some(), "{}", first.head());
    assert_no_internal(&first, "fresh header session");
    let backend = first.backend().unwrap();
    for i in 0..10 {
        let r = h.get(rig.addr()).unwrap();
        assert_eq!(r.backend().as_ref(), Some(&backend), "pinned request {i}");
        assert_no_internal(&r, "pinned header session");
    }

    // No session at all, and an unusable token: fresh picks every time.
    for i in 0..10 {
        let cookie = format!("sticky=garbage{i}");
        let r = send(rig.addr(), "/", &[REFLECT, (b"cookie", cookie.as_bytes())]).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.backend().is_some());
        assert_no_internal(&r, "bad token");
        let r = send(rig.addr(), "/", &[REFLECT]).unwrap();
        assert!(r.backend().is_some());
        assert_no_internal(&r, "no session");
    }
    build.assert_clean(&mut rig);
}

/// The native module built with `--features fault-injection` (its request
/// hook panics on `x-sticky-fault: panic`).
fn fault_module() -> PathBuf {
    let path = std::env::var_os("STICKY_NATIVE_FAULT")
        .map(PathBuf::from)
        .unwrap_or_else(|| sticky_e2e::root().join("target/fault/debug/libsticky_native.so"));
    assert!(
        path.exists(),
        "{} not found: run `make native-fault` (or set STICKY_NATIVE_FAULT)",
        path.display()
    );
    path
}

mod client_internal_headers_never_steer_when_the_request_hook_panics {
    #[test]
    fn native() {
        super::client_internal_headers_never_steer_when_the_request_hook_panics(
            sticky_e2e::build::Build::Native,
        );
    }
    #[test]
    fn native_dropin() {
        super::client_internal_headers_never_steer_when_the_request_hook_panics(
            sticky_e2e::build::Build::NativeDropIn,
        );
    }
}

fn client_internal_headers_never_steer_when_the_request_hook_panics(build: Build) {
    let mut rig = build.start(Spec {
        clusters: vec![
            ("v1".into(), 90, 2),
            ("v2".into(), 10, 2),
            ("admin".into(), 0, 1),
        ],
        plugin: Some(default_plugin(&["v1", "v2"])),
        native_module: Some(fault_module()),
        ..Spec::default()
    });
    let fault: (&[u8], &[u8]) = (b"x-sticky-fault", b"panic");
    // The fault fires: the hook panics, the guard logs it, the request goes on.
    let r = send(rig.addr(), "/", &[fault]).unwrap();
    assert_eq!(r.status, 200, "{}", r.head());
    assert!(
        rig.envoy
            .wait_for(Duration::from_secs(5), |e| e.log().contains("panicked in")),
        "the fault-injection build did not panic: {}",
        rig.envoy.log()
    );

    // Steering into an allowed cluster, at a chosen host.
    let chosen = rig.backend("v2-0").host();
    let chosen_b64 = STANDARD.encode(&chosen);
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    let total = 50;
    for i in 0..total {
        let id = format!("fault-{i}");
        let r = send(
            rig.addr(),
            "/",
            &[
                fault,
                (b"x-sticky-cluster", b"v2"),
                (b"x-sticky-host", chosen_b64.as_bytes()),
                (b"x-session-id", id.as_bytes()),
            ],
        )
        .unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.head());
        assert_no_internal(&r, "panicking request");
        let backend = r
            .backend()
            .unwrap_or_else(|| panic!("request {i}: no backend: {}", r.head()));
        *served.entry(backend).or_insert(0) += 1;
    }
    eprintln!("served (split 90/10, steered at v2-0): {served:?}");
    let got = |b: &str| served.get(b).copied().unwrap_or(0);
    // Under the 90/10 split v2-0 expects about 2.5 of 50, v2 about 5.
    assert!(
        got("v2-0") <= 12,
        "the chosen backend got {} of {total}: {served:?}",
        got("v2-0")
    );
    assert!(
        got("v2-0") + got("v2-1") <= 15,
        "the named cluster got {} of {total}: {served:?}",
        got("v2-0") + got("v2-1")
    );
    assert!(got("v1-0") + got("v1-1") >= 35, "{served:?}");

    // Steering into a cluster that is not on the allow-list.
    let admin_b64 = STANDARD.encode(rig.backend("admin-0").host());
    for i in 0..20 {
        let r = send(
            rig.addr(),
            "/",
            &[
                fault,
                (b"x-sticky-cluster", b"admin"),
                (b"x-sticky-host", admin_b64.as_bytes()),
            ],
        )
        .unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.head());
        assert_ne!(r.backend().as_deref(), Some("admin-0"), "request {i}");
    }
    assert_eq!(rig.backend("admin-0").requests(), 0);

    // The module still pins sessions after the panics.
    let mut s = Session::new("after-fault");
    let b = s.get(rig.addr()).unwrap().backend();
    for _ in 0..5 {
        assert_eq!(s.get(rig.addr()).unwrap().backend(), b);
    }
    // Envoy is up and no backend ever saw an internal header.
    build.assert_clean(&mut rig);
}

/// A filter that does not run at all (bypassed, e.g. a plugin loaded with
/// fail-open that failed): the listener's early header mutation strips
/// client-sent internal headers before routing and before `stateful_session`,
/// so they still steer nothing.
#[test]
fn client_internal_headers_never_steer_when_the_filter_is_bypassed() {
    let mut rig = Build::Wasm.start(Spec {
        lds: true,
        ..Spec::default()
    });
    let bypassed = rig.update_listener(|listener| {
        let filters = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_array_mut()
            .expect("http_filters");
        let before = filters.len();
        filters.retain(|f| f["name"] != "sticky");
        assert_eq!(
            filters.len() + 1,
            before,
            "the sticky filter was in the chain"
        );
    });
    assert!(bypassed, "Envoy applied the listener without the filter");
    let target = rig.backend("v2-1").host();
    let steer_host = STANDARD.encode(&target);
    let steered = |rig: &sticky_e2e::rig::Rig| {
        let mut hits: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..60 {
            let r = send(
                rig.addr(),
                "/",
                &[
                    (b"x-sticky-cluster", b"v2"),
                    (b"x-sticky-host", steer_host.as_bytes()),
                ],
            )
            .unwrap();
            assert_eq!(r.status, 200, "{}", r.head());
            assert!(r.header("set-cookie").is_none(), "the filter did not run");
            *hits.entry(r.backend().unwrap()).or_default() += 1;
        }
        (hits.get("v2-1").copied().unwrap_or(0), hits)
    };
    let (on_target, hits) = steered(&rig);
    assert!(
        on_target < 20,
        "the client's headers steered {on_target} of 60 requests to v2-1: {hits:?}"
    );
    // Control: the same bypassed chain without the early header mutation
    // obeys the client, so the test above can fail.
    assert!(rig.update_listener(|listener| {
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["http_filters"]
            .as_array_mut()
            .expect("http_filters")
            .retain(|f| f["name"] != "sticky");
        hcm.as_object_mut()
            .expect("hcm")
            .remove("early_header_mutation_extensions")
            .expect("the bootstrap strips internal headers early");
    }));
    let (on_target, hits) = steered(&rig);
    assert_eq!(
        on_target, 60,
        "without the mutation the client steers: {hits:?}"
    );
}
