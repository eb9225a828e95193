#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
use super::{Edit, RequestEdits};
use crate::host::{Host, Pinning};
use crate::session::Stream;
use crate::testing::scenarios::claims;
use crate::testing::{FakeHost, config};

fn request(headers: &[(&str, &str)]) -> FakeHost {
    FakeHost {
        request: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect(),
        ..FakeHost::default()
    }
}

#[test]
fn a_pinned_stream_sets_cluster_and_host_and_counts() {
    let stream = Stream::Pinned(claims("v1", "10.0.0.1:80", 1000));
    let edits = RequestEdits::of(&stream);
    assert_eq!(edits.cluster, Edit::Set("v1"));
    assert_eq!(edits.host, Edit::Set("10.0.0.1:80"));
    let mut host = request(&[("x-sticky-cluster", "v2"), ("x-sticky-host", "x")]);
    edits.apply(&config(), &mut host);
    assert_eq!(host.request_values("x-sticky-cluster"), [b"v1"]);
    assert_eq!(
        host.request_values("x-sticky-host"),
        [crate::b64::encode_standard(b"10.0.0.1:80").as_bytes()]
    );
    assert_eq!(host.counter("sticky.requests_pinned"), 1);
}

#[test]
fn a_fresh_stream_removes_client_copies() {
    let mut host = request(&[("x-sticky-cluster", "v2"), ("x-sticky-host", "x")]);
    RequestEdits::of(&Stream::Fresh).apply(&config(), &mut host);
    assert!(host.request.is_empty());
}

#[test]
fn the_override_wiring_pins_through_envoy_and_strips_only_the_cluster() {
    let stream = Stream::Pinned(claims("v1", "10.0.0.1:80", 1000));
    let mut host = request(&[("x-sticky-cluster", "v2"), ("x-sticky-host", "x")]);
    host.pinning = Some(Pinning::Override { strict: true });
    RequestEdits::of(&stream).apply(&config(), &mut host);
    assert_eq!(host.override_host, Some(("10.0.0.1:80".to_owned(), true)));
    assert_eq!(host.request_values("x-sticky-cluster"), [b"v1"]);
    assert_eq!(host.request_values("x-sticky-host"), [b"x"], "inert, left");
}

/// A host that is already routed to `v1` and counts route re-matches.
#[derive(Default)]
struct Routed {
    fake: FakeHost,
    clears: u32,
}

impl Host for Routed {
    fn pinning(&self) -> Pinning {
        self.fake.pinning()
    }
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.fake.request_header(name)
    }
    fn routed_to_cluster(&mut self, cluster: &[u8]) -> bool {
        cluster == b"v1"
    }
    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        self.fake.set_request_header(name, value);
    }
    fn remove_request_header(&mut self, name: &str) -> crate::host::Removal {
        self.fake.remove_request_header(name)
    }
    fn clear_route_cache(&mut self) {
        self.clears += 1;
    }
    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.fake.response_header(name)
    }
    fn remove_response_header(&mut self, name: &str) {
        self.fake.remove_response_header(name);
    }
    fn add_response_header(&mut self, name: &str, value: &[u8]) {
        self.fake.add_response_header(name, value);
    }
    fn set_response_header(&mut self, name: &str, value: &[u8]) {
        self.fake.set_response_header(name, value);
    }
    fn upstream_host(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn upstream_cluster(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn response_code_details(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn host_drain(&mut self, namespace: &str) -> crate::drain::HostDrain {
        self.fake.host_drain(namespace)
    }
    fn random(&mut self, buf: &mut [u8]) -> bool {
        self.fake.random(buf)
    }
    fn count(&mut self, metric: crate::metrics::Metric) {
        self.fake.count(metric);
    }
}

#[test]
fn a_stream_already_routed_to_the_sessions_cluster_is_not_rerouted() {
    let stream = Stream::Pinned(claims("v1", "10.0.0.1:80", 1000));
    let mut host = Routed::default();
    RequestEdits::of(&stream).apply(&config(), &mut host);
    assert_eq!(host.clears, 0, "no re-match");
    assert!(host.fake.request_values("x-sticky-cluster").is_empty());
    let other = Stream::Pinned(claims("v2", "10.0.0.1:80", 1000));
    RequestEdits::of(&other).apply(&config(), &mut host);
    assert_eq!(host.clears, 1);
    assert_eq!(host.fake.request_values("x-sticky-cluster"), [b"v2"]);
}

#[test]
fn a_removed_client_copy_forces_the_rematch_even_when_routed() {
    let stream = Stream::Pinned(claims("v1", "10.0.0.1:80", 1000));
    let mut host = Routed::default();
    host.fake.pinning = Some(Pinning::Override { strict: false });
    host.fake.request = vec![("x-sticky-cluster".into(), b"v1".to_vec())];
    RequestEdits::of(&stream).apply(&config(), &mut host);
    assert_eq!(host.clears, 1);
    assert_eq!(host.fake.request_values("x-sticky-cluster"), [b"v1"]);
}

#[test]
fn a_restored_wrap_id_is_written_into_the_applications_header_and_counted() {
    let wire = crate::config::wire::PluginConfig {
        wrap: Some(crate::config::wire::Wrap {
            header: Some("mcp-session-id".into()),
            ..Default::default()
        }),
        ..crate::testing::wire()
    };
    let cfg = crate::config::Config::from_wire(&wire).unwrap();
    let stream = Stream::Pinned(claims("v1", "10.0.0.1:80", 1000));
    let edits = RequestEdits::of(&stream);
    assert_eq!(edits.wrap_id, None, "deciding the stream restores nothing");
    let mut host = request(&[("mcp-session-id", "sealed")]);
    edits.restoring(Some(b"app-7")).apply(&cfg, &mut host);
    assert_eq!(host.request_values("mcp-session-id"), [b"app-7"]);
    assert_eq!(host.counter("sticky.wrap.ids_unwrapped"), 1);
}
