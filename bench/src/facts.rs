//! Real-Envoy checks of the Envoy behaviour sticky's wasm fast path relies on
//! (`Pinning::SessionFilter`): setting an internal request header
//! replaces every copy a client sent, and a backend that sends the host
//! header itself neither leaks it nor moves or re-issues sessions. Requests
//! are told apart by the upstream that answered (`x-upstream`). The native
//! module's drop-in wiring relies on the same facts through the dynamic
//! module ABI's `set_header`: checked for it too.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sticky_e2e::client::{self, Response};

use crate::setup::{Artifacts, Variant, World};

fn artifacts() -> Artifacts {
    Artifacts {
        envoy: sticky_e2e::artifact("STICKY_ENVOY", ".venv/envoy"),
        sticky_wasm: sticky_e2e::artifact("STICKY_WASM", "dist/sticky.wasm"),
        empty_wasm: None,
        native: Some(sticky_e2e::artifact("STICKY_NATIVE", "dist/libsticky.so")),
        empty_native: None,
        compare_wasm: None,
    }
}

/// The builds that pin through `stateful_session` (header).
const VIA_SESSION_FILTER: [Variant; 2] = [Variant::StickyWasm, Variant::StickyNativeDropIn];

fn cookie_of(r: &Response) -> String {
    let set = r.header("set-cookie").expect("a new session gets a cookie");
    set.split(';').next().unwrap().to_owned()
}

fn assert_pinned(r: &Response, upstream: &str) {
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream").as_deref(), Some(upstream), "moved");
    assert_eq!(r.header("set-cookie"), None, "re-issued a pinned session");
    assert_eq!(r.header("x-sticky-host"), None, "internal header leaked");
}

#[test]
fn setting_an_internal_header_replaces_every_client_copy() {
    for v in VIA_SESSION_FILTER {
        setting_an_internal_header_replaces_every_client_copy_in(v);
    }
}

fn setting_an_internal_header_replaces_every_client_copy_in(v: Variant) {
    let art = artifacts();
    let world = World::start(&art.envoy, None).unwrap();
    let envoy = world.start_envoy(v, &art).unwrap();
    let first = client::send(envoy.listener, "/", &[]).unwrap();
    let upstream = first.header("x-upstream").unwrap();
    let cookie = cookie_of(&first);
    // Another cluster's host, which a client copy surviving the set would reach.
    let elsewhere = world
        .fleet
        .upstreams()
        .find(|u| u.addr.port().to_string() != upstream)
        .unwrap();
    let forged = STANDARD.encode(elsewhere.addr.to_string());
    for _ in 0..20 {
        let r = client::send(
            envoy.listener,
            "/",
            &[
                (b"x-sticky-host", forged.as_bytes()),
                (b"cookie", cookie.as_bytes()),
                (b"x-sticky-host", forged.as_bytes()),
                (b"x-sticky-cluster", b"v2"),
                (b"x-sticky-cluster", b"v2"),
            ],
        )
        .unwrap();
        assert_pinned(&r, &upstream);
    }
}

#[test]
fn a_backend_that_sends_the_host_header_itself_changes_nothing() {
    for v in VIA_SESSION_FILTER {
        a_backend_that_sends_the_host_header_itself_changes_nothing_in(v);
    }
}

fn a_backend_that_sends_the_host_header_itself_changes_nothing_in(v: Variant) {
    let art = artifacts();
    // base64("127.0.0.1:1"): a host that is in no cluster.
    let world = World::start_with(&art.envoy, None, "x-sticky-host: MTI3LjAuMC4xOjE=\r\n").unwrap();
    let envoy = world.start_envoy(v, &art).unwrap();
    let first = client::send(envoy.listener, "/", &[]).unwrap();
    assert_eq!(
        first.header("x-sticky-host"),
        None,
        "internal header leaked"
    );
    let upstream = first.header("x-upstream").unwrap();
    let cookie = cookie_of(&first);
    for _ in 0..20 {
        let r = client::send(envoy.listener, "/", &[(b"cookie", cookie.as_bytes())]).unwrap();
        assert_pinned(&r, &upstream);
    }
}
