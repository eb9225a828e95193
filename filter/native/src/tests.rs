//! The real hooks against the fake Envoy (`fake_envoy`): end state of
//! headers, host override, route re-matches, counters and logs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::ffi::c_void;

use sticky_core::config::wire::{self, PluginConfig};
use sticky_core::metrics::Metric;
use sticky_core::testing::json;

use crate::abi::{EnvoyBuffer, EnvoyPtr};
use crate::fake_envoy::{self, FakeEnv, FakeStream, Meta};
use crate::hooks::*;

/// base64 of 32 bytes 0x11.
const KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

/// The plugin config of the drop-in wiring: exactly the wasm's.
fn dropin_wire() -> PluginConfig {
    PluginConfig {
        cookie: Some(wire::Cookie {
            name: Some("sticky".into()),
            secure: Some(false),
            ..wire::Cookie::default()
        }),
        session_header: Some("x-sticky-session".into()),
        ..PluginConfig::new(&["v1", "v2"], "k1", KEY)
    }
}

/// The plugin config of the direct wiring (`override_host` present).
fn direct_wire() -> PluginConfig {
    PluginConfig {
        override_host: Some(wire::OverrideHost::default()),
        ..dropin_wire()
    }
}

/// [`direct_wire`] as JSON.
fn plugin() -> String {
    json(&direct_wire())
}

/// [`dropin_wire`] as JSON.
fn dropin() -> String {
    json(&dropin_wire())
}

fn buffer(bytes: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer {
        ptr: bytes.as_ptr().cast(),
        length: bytes.len(),
    }
}

/// `on_http_filter_config_new` as Envoy calls it, with the fake's clock
/// and deterministic randomness.
fn configure(json: &str) -> *const c_void {
    let mut envoy_config = 0u8;
    let ptr: EnvoyPtr = std::ptr::from_mut(&mut envoy_config).cast();
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    unsafe { new_config(ptr, buffer(json.as_bytes()), Box::new(FakeEnv)) }
}

#[test]
fn the_exported_config_hook_takes_a_valid_config_and_refuses_a_bad_one() {
    let mut envoy_config = 0u8;
    let ptr: EnvoyPtr = std::ptr::from_mut(&mut envoy_config).cast();
    let json = plugin();
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    unsafe {
        let config = envoy_dynamic_module_on_http_filter_config_new(
            ptr,
            buffer(b"sticky"),
            buffer(json.as_bytes()),
        );
        assert!(!config.is_null());
        envoy_dynamic_module_on_http_filter_config_destroy(config);
        let bad = envoy_dynamic_module_on_http_filter_config_new(
            ptr,
            buffer(b"sticky"),
            buffer(b"not json"),
        );
        assert!(bad.is_null());
    }
}

/// One request/response exchange through the hooks, direct wiring:
/// `upstream` is the host (and cluster) the load balancer would pick;
/// `None` is a local reply.
fn exchange(config: *const c_void, s: &mut FakeStream, upstream: Option<(&str, &str)>) {
    exchange_through(config, s, upstream, false);
}

/// The same with a header-based `stateful_session` after the module (the
/// drop-in wiring): it pins the host the host header names, and writes the
/// served host into the response when it differs.
fn exchange_dropin(config: *const c_void, s: &mut FakeStream, upstream: Option<(&str, &str)>) {
    exchange_through(config, s, upstream, true);
}

fn exchange_through(
    config: *const c_void,
    s: &mut FakeStream,
    upstream: Option<(&str, &str)>,
    session_filter: bool,
) {
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    unsafe {
        let filter = envoy_dynamic_module_on_http_filter_new(config, s.ptr());
        assert!(!filter.is_null());
        envoy_dynamic_module_on_http_filter_request_headers(s.ptr(), filter, true);
        let asked = match session_filter {
            true => s
                .request_values("x-sticky-host")
                .first()
                .map(|v| sticky_core::b64::decode_any(v).unwrap()),
            false => None,
        };
        if let Some((host, cluster)) = upstream {
            let host = match (&s.override_host, &asked) {
                (Some((h, _)), _) | (None, Some(h)) => String::from_utf8(h.clone()).unwrap(),
                (None, None) => host.to_owned(),
            };
            if session_filter && asked.as_deref() != Some(host.as_bytes()) {
                let echo = sticky_core::b64::encode_standard(host.as_bytes());
                s.response.push(("x-sticky-host".into(), echo.into_bytes()));
            }
            s.upstream_address = Some(host.into_bytes());
            s.cluster = Some(cluster.as_bytes().to_vec());
        }
        envoy_dynamic_module_on_http_filter_response_headers(s.ptr(), filter, true);
        envoy_dynamic_module_on_http_filter_stream_complete(s.ptr(), filter);
        envoy_dynamic_module_on_http_filter_destroy(filter);
    }
}

fn request(headers: &[(&str, &[u8])]) -> FakeStream {
    FakeStream {
        request: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect(),
        ..FakeStream::default()
    }
}

/// The cookie pair ("sticky=...") of a response's Set-Cookie.
fn cookie_of(s: &FakeStream) -> String {
    let set = s.response_values("set-cookie");
    assert_eq!(set.len(), 1, "{:?}", s.response);
    let text = String::from_utf8(set[0].clone()).unwrap();
    text.split(';').next().unwrap().to_owned()
}

fn destroy(config: *const c_void) {
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    unsafe { envoy_dynamic_module_on_http_filter_config_destroy(config) };
}

#[test]
fn program_init_returns_the_abi_version_envoy_1_40_expects() {
    // SAFETY: the hook returns the module's static, NUL-terminated version.
    let version = unsafe { std::ffi::CStr::from_ptr(envoy_dynamic_module_on_program_init()) };
    assert_eq!(version.to_str().unwrap(), "v0.2.0");
}

#[test]
fn an_invalid_config_is_refused_and_the_log_names_the_field() {
    let bad = plugin().replace(KEY, "c2hvcnQ=");
    assert!(configure(&bad).is_null());
    assert!(
        fake_envoy::logs()
            .iter()
            .any(|l| l.contains("field `keys[0].secret`")),
        "{:?}",
        fake_envoy::logs()
    );
    assert!(configure("not json").is_null());
    assert!(configure("").is_null());
}

#[test]
fn a_valid_config_defines_every_counter_under_its_metric_name() {
    let config = configure(&plugin());
    assert!(!config.is_null());
    let names: Vec<String> =
        fake_envoy::process(|p| p.counters.iter().map(|c| c.0.clone()).collect());
    let want: Vec<String> = Metric::all().map(|m| m.name().to_owned()).collect();
    assert_eq!(names, want);
    destroy(config);
}

#[test]
fn a_new_session_gets_a_cookie_and_later_requests_pin_cluster_and_host() {
    let config = configure(&plugin());
    let mut first = request(&[]);
    exchange(config, &mut first, Some(("10.0.0.7:8080", "v2")));
    assert_eq!(first.override_host, None);
    assert_eq!(first.route_cache_clears, 0, "nothing changed routing");
    let cookie = cookie_of(&first);
    assert_eq!(first.response_values("x-sticky-session").len(), 1);
    assert_eq!(fake_envoy::counter("sticky.sessions_created"), 1);

    for _ in 0..3 {
        let mut next = request(&[("cookie", cookie.as_bytes())]);
        exchange(config, &mut next, Some(("10.0.0.1:8080", "v1")));
        assert_eq!(
            next.override_host,
            Some((b"10.0.0.7:8080".to_vec(), false)),
            "pinned, not strict"
        );
        assert_eq!(
            next.request_values("x-sticky-cluster"),
            vec![b"v2".to_vec()]
        );
        assert!(
            next.request_values("x-sticky-host").is_empty(),
            "no header: the ABI pins"
        );
        assert_eq!(
            next.route_cache_clears, 1,
            "the cluster header route is re-matched once"
        );
        assert!(next.response_values("set-cookie").is_empty());
    }
    assert_eq!(fake_envoy::counter("sticky.requests_pinned"), 3);
    destroy(config);
}

#[test]
fn client_sent_internal_headers_are_removed_and_the_route_matched_again() {
    let config = configure(&plugin());
    let mut s = request(&[
        ("x-sticky-cluster", b"v2"),
        ("x-sticky-host", b"MTAuMC4wLjc6ODA4MA=="),
        ("x-sticky-cluster", b"v1"),
    ]);
    exchange(config, &mut s, Some(("10.0.0.1:8080", "v1")));
    assert!(s.request_values("x-sticky-cluster").is_empty());
    // The direct wiring has no stateful_session: the host header steers
    // nothing (the upstream went to the load balancer's pick) and is left
    // for the route's request_headers_to_remove.
    assert_eq!(s.upstream_address, Some(b"10.0.0.1:8080".to_vec()));
    assert_eq!(s.override_host, None);
    assert_eq!(
        s.route_cache_clears, 1,
        "Envoy cached the route of the client's headers"
    );
    destroy(config);
}

#[test]
fn every_cookie_header_is_read() {
    let config = configure(&plugin());
    let mut first = request(&[]);
    exchange(config, &mut first, Some(("10.0.0.7:8080", "v1")));
    let cookie = cookie_of(&first);
    let mut s = request(&[("cookie", b"a=1; b=2"), ("cookie", cookie.as_bytes())]);
    exchange(config, &mut s, Some(("10.0.0.1:8080", "v1")));
    assert_eq!(s.override_host, Some((b"10.0.0.7:8080".to_vec(), false)));
    destroy(config);
}

#[test]
fn the_session_header_works_without_cookies() {
    let config = configure(&plugin());
    let mut first = request(&[]);
    exchange(config, &mut first, Some(("10.0.0.7:8080", "v1")));
    let token = first.response_values("x-sticky-session").remove(0);
    let mut s = request(&[("x-sticky-session", &token)]);
    exchange(config, &mut s, Some(("10.0.0.1:8080", "v1")));
    assert_eq!(s.override_host, Some((b"10.0.0.7:8080".to_vec(), false)));
    destroy(config);
}

#[test]
fn a_forged_token_is_counted_and_gets_a_fresh_session() {
    let config = configure(&plugin());
    let mut s = request(&[("cookie", b"sticky=AQJrMXx0OV49gWiqSEVq")]);
    exchange(config, &mut s, Some(("10.0.0.1:8080", "v1")));
    assert_eq!(s.override_host, None);
    assert_eq!(s.response_values("set-cookie").len(), 1);
    assert_eq!(fake_envoy::counter("sticky.tokens_rejected.malformed"), 1);
    destroy(config);
}

#[test]
fn a_local_reply_issues_nothing() {
    let config = configure(&plugin());
    let mut s = request(&[]);
    exchange(config, &mut s, None);
    assert!(s.response.is_empty());
    destroy(config);
}

#[test]
fn a_passed_drain_deadline_in_host_metadata_moves_the_session() {
    let config = configure(&json(&PluginConfig {
        drain_check_interval_seconds: Some(0),
        ..direct_wire()
    }));
    let mut first = request(&[]);
    exchange(config, &mut first, Some(("10.0.0.7:8080", "v1")));
    let cookie = cookie_of(&first);
    // The response of a pinned request reads the host's metadata: deadline passed.
    let mut s = request(&[("cookie", cookie.as_bytes())]);
    s.metadata = vec![
        ("sticky".into(), "draining".into(), Meta::Bool(true)),
        (
            "sticky".into(),
            "drain_deadline".into(),
            Meta::Number(1_000.0),
        ),
    ];
    exchange(config, &mut s, Some(("10.0.0.1:8080", "v1")));
    // The next request of the session leaves the host (same worker's cache).
    let mut next = request(&[("cookie", cookie.as_bytes())]);
    exchange(config, &mut next, Some(("10.0.0.2:8080", "v1")));
    assert_eq!(
        next.override_host, None,
        "the drained host is not pinned any more"
    );
    assert_eq!(
        next.request_values("x-sticky-cluster"),
        vec![b"v1".to_vec()]
    );
    assert_eq!(
        next.response_values("set-cookie").len(),
        1,
        "re-pinned elsewhere"
    );
    assert!(fake_envoy::counter("sticky.sessions_drained") >= 1);
    assert!(
        !fake_envoy::logs().iter().any(|l| l.contains("is not a")),
        "typed reads match the control side's types: {:?}",
        fake_envoy::logs()
    );
    destroy(config);
}

#[test]
fn a_deadline_written_as_a_string_is_read_too() {
    let config = configure(&json(&PluginConfig {
        drain_check_interval_seconds: Some(0),
        ..direct_wire()
    }));
    let mut first = request(&[]);
    exchange(config, &mut first, Some(("10.0.0.7:8080", "v1")));
    let cookie = cookie_of(&first);
    let mut s = request(&[("cookie", cookie.as_bytes())]);
    s.metadata = vec![(
        "sticky".into(),
        "drain_deadline".into(),
        Meta::Str(b"1000".to_vec()),
    )];
    exchange(config, &mut s, Some(("10.0.0.1:8080", "v1")));
    let mut next = request(&[("cookie", cookie.as_bytes())]);
    exchange(config, &mut next, Some(("10.0.0.2:8080", "v1")));
    assert_eq!(next.override_host, None);
    destroy(config);
}

#[test]
fn streams_outlive_their_config_and_tolerate_null_pointers() {
    let config = configure(&plugin());
    let mut s = request(&[]);
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    let filter = unsafe { envoy_dynamic_module_on_http_filter_new(config, s.ptr()) };
    destroy(config);
    s.upstream_address = Some(b"10.0.0.7:8080".to_vec());
    s.cluster = Some(b"v1".to_vec());
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    unsafe {
        envoy_dynamic_module_on_http_filter_request_headers(s.ptr(), filter, true);
        envoy_dynamic_module_on_http_filter_response_headers(s.ptr(), filter, true);
        envoy_dynamic_module_on_http_filter_destroy(filter);
    }
    assert_eq!(s.response_values("set-cookie").len(), 1);
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    unsafe {
        assert!(envoy_dynamic_module_on_http_filter_new(std::ptr::null(), s.ptr()).is_null());
        assert_eq!(
            envoy_dynamic_module_on_http_filter_request_headers(s.ptr(), std::ptr::null(), true),
            0
        );
        assert_eq!(
            envoy_dynamic_module_on_http_filter_response_headers(s.ptr(), std::ptr::null(), true),
            0
        );
        envoy_dynamic_module_on_http_filter_destroy(std::ptr::null());
        envoy_dynamic_module_on_http_filter_config_destroy(std::ptr::null());
    }
}

#[test]
fn per_route_config_is_refused() {
    let json = plugin();
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    let ptr = unsafe {
        envoy_dynamic_module_on_http_filter_per_route_config_new(
            buffer(b"sticky"),
            buffer(json.as_bytes()),
        )
    };
    assert!(ptr.is_null());
    assert!(fake_envoy::logs().iter().any(|l| l.contains("per-route")));
}

#[test]
fn workers_beyond_the_shard_count_share_caches_safely() {
    let config = configure(&plugin());
    for worker in [0, 63, 64, 1000, u32::MAX] {
        let mut s = request(&[]);
        s.worker = worker;
        exchange(config, &mut s, Some(("10.0.0.7:8080", "v1")));
        assert_eq!(s.response_values("set-cookie").len(), 1, "worker {worker}");
    }
    destroy(config);
}

#[test]
fn drop_in_pins_through_the_host_header_for_stateful_session() {
    let config = configure(&dropin());
    let mut first = request(&[]);
    exchange_dropin(config, &mut first, Some(("10.0.0.7:8080", "v2")));
    let cookie = cookie_of(&first);
    assert!(
        first.response_values("x-sticky-host").is_empty(),
        "stateful_session's echo never reaches the client"
    );
    for _ in 0..3 {
        let mut next = request(&[("cookie", cookie.as_bytes())]);
        exchange_dropin(config, &mut next, Some(("10.0.0.1:8080", "v1")));
        assert_eq!(
            next.override_host, None,
            "stateful_session pins, not the ABI"
        );
        assert_eq!(
            next.request_values("x-sticky-host"),
            vec![b"MTAuMC4wLjc6ODA4MA==".to_vec()],
            "base64(10.0.0.7:8080)"
        );
        assert_eq!(
            next.request_values("x-sticky-cluster"),
            vec![b"v2".to_vec()]
        );
        assert_eq!(next.upstream_address, Some(b"10.0.0.7:8080".to_vec()));
        assert_eq!(next.route_cache_clears, 1);
        assert!(next.response.is_empty(), "{:?}", next.response);
    }
    assert_eq!(fake_envoy::counter("sticky.requests_pinned"), 3);
    destroy(config);
}

#[test]
fn drop_in_replaces_client_sent_internal_headers() {
    let config = configure(&dropin());
    let mut s = request(&[
        ("x-sticky-cluster", b"v2"),
        ("x-sticky-host", b"MTAuMC4wLjc6ODA4MA=="),
        ("x-sticky-cluster", b"v1"),
    ]);
    exchange_dropin(config, &mut s, Some(("10.0.0.1:8080", "v1")));
    assert!(s.request_values("x-sticky-cluster").is_empty());
    assert!(s.request_values("x-sticky-host").is_empty());
    assert_eq!(s.upstream_address, Some(b"10.0.0.1:8080".to_vec()));
    assert_eq!(s.route_cache_clears, 1);
    assert!(s.response_values("x-sticky-host").is_empty());
    assert_eq!(s.response_values("set-cookie").len(), 1);
    destroy(config);
}

#[test]
fn a_strict_override_host_is_passed_to_envoy() {
    let config = configure(&json(&PluginConfig {
        override_host: Some(wire::OverrideHost { strict: Some(true) }),
        ..dropin_wire()
    }));
    let mut first = request(&[]);
    exchange(config, &mut first, Some(("10.0.0.7:8080", "v2")));
    let cookie = cookie_of(&first);
    let mut next = request(&[("cookie", cookie.as_bytes())]);
    exchange(config, &mut next, Some(("10.0.0.1:8080", "v1")));
    assert_eq!(next.override_host, Some((b"10.0.0.7:8080".to_vec(), true)));
    destroy(config);
}

#[test]
fn a_missing_shard_key_is_answered_locally_and_stops_the_request() {
    let config = configure(&json(&PluginConfig {
        sharding: Some(wire::Sharding {
            key: Some(wire::ShardKey {
                header: Some("x-tenant".into()),
                ..wire::ShardKey::default()
            }),
            clusters: Some(vec!["v1".into(), "v2".into()]),
            missing_key: Some("reject".into()),
            ..wire::Sharding::default()
        }),
        ..dropin_wire()
    }));
    assert!(!config.is_null(), "{:?}", fake_envoy::logs());
    let mut s = request(&[]);
    // SAFETY: this test's own config, filter and stream pointers, live for the call.
    let status = unsafe {
        let filter = envoy_dynamic_module_on_http_filter_new(config, s.ptr());
        let status = envoy_dynamic_module_on_http_filter_request_headers(s.ptr(), filter, true);
        envoy_dynamic_module_on_http_filter_destroy(filter);
        status
    };
    assert_eq!(status, crate::abi::STATUS_STOP_ITERATION);
    let (code, body) = s.local_reply.clone().unwrap();
    assert_eq!(code, 400);
    assert!(String::from_utf8(body).unwrap().contains("shard key"));
    destroy(config);
}

#[test]
fn the_route_is_matched_again_only_when_the_pinned_cluster_is_not_the_routed_one() {
    type Exchange = fn(*const c_void, &mut FakeStream, Option<(&str, &str)>);
    let wirings: [(&str, Exchange); 2] = [("direct", exchange), ("drop-in", exchange_dropin)];
    for (wiring, exchange_with) in wirings {
        let config = configure(&if wiring == "direct" {
            plugin()
        } else {
            dropin()
        });
        let mut first = request(&[]);
        exchange_with(config, &mut first, Some(("10.0.0.7:8080", "v2")));
        let cookie = cookie_of(&first);
        // Envoy's split already picked v2 (the session's cluster): no re-match.
        let mut same = request(&[("cookie", cookie.as_bytes())]);
        same.cluster = Some(b"v2".to_vec());
        exchange_with(config, &mut same, Some(("10.0.0.1:8080", "v2")));
        assert_eq!(same.route_cache_clears, 0, "{wiring}");
        assert!(
            same.request_values("x-sticky-cluster").is_empty(),
            "{wiring}: routed there already, the header would change nothing"
        );
        assert_eq!(
            same.upstream_address,
            Some(b"10.0.0.7:8080".to_vec()),
            "{wiring}"
        );
        // The split picked v1: the cluster header route must win.
        let mut other = request(&[("cookie", cookie.as_bytes())]);
        other.cluster = Some(b"v1".to_vec());
        exchange_with(config, &mut other, Some(("10.0.0.1:8080", "v2")));
        assert_eq!(other.route_cache_clears, 1, "{wiring}");
        // A client-sent cluster header (removed or replaced) always re-matches
        // in the direct wiring, which removes it first.
        let mut forged = request(&[("cookie", cookie.as_bytes()), ("x-sticky-cluster", b"v2")]);
        forged.cluster = Some(b"v2".to_vec());
        exchange_with(config, &mut forged, Some(("10.0.0.1:8080", "v2")));
        assert_eq!(
            forged.route_cache_clears,
            u32::from(wiring == "direct"),
            "{wiring}"
        );
        assert_eq!(
            forged.request_values("x-sticky-cluster"),
            vec![b"v2".to_vec()]
        );
        destroy(config);
    }
}
