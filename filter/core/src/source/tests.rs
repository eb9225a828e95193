#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;
use crate::cookie::Candidates;
use crate::testing::{FakeHost, config};

fn found<S: SessionSource>(source: &S, carried: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Candidates::default();
    source.candidates(carried, &mut out);
    out.as_slice().iter().map(|v| v.to_vec()).collect()
}

#[test]
fn the_cookie_source_reads_its_cookie_and_sets_it() {
    let cfg = config();
    let source = CookieSource(&cfg.cookie);
    assert_eq!(found(&source, b"a=1; sticky=tok; b=2"), [b"tok".to_vec()]);
    let mut host = FakeHost::default();
    source.write(&mut host, "tok");
    let set = host.response_values("set-cookie");
    assert!(set[0].starts_with(b"sticky=tok; Max-Age=600; Path=/"));
}

#[test]
fn the_header_source_reads_every_copy_and_sets_one() {
    let source = HeaderSource("x-s");
    assert_eq!(found(&source, b"a, \"b\""), [b"a".to_vec(), b"b".to_vec()]);
    let mut host = FakeHost::default();
    source.write(&mut host, "t");
    assert_eq!(host.response_values("x-s"), [b"t"]);
}

#[test]
fn the_legacy_cookie_source_expires_the_cookie_under_its_path() {
    let source = LegacyCookieSource {
        name: "envoy",
        path: "/app",
    };
    assert_eq!(found(&source, b"envoy=\"abc\""), [b"abc".to_vec()]);
    let mut host = FakeHost::default();
    source.write(&mut host, "ignored");
    assert_eq!(
        host.response_values("set-cookie"),
        [b"envoy=; Max-Age=0; Path=/app"]
    );
}

#[test]
fn the_legacy_header_source_writes_nothing_back() {
    let source = LegacyHeaderSource("x-legacy");
    let mut host = FakeHost::default();
    source.write(&mut host, "t");
    assert!(host.response.is_empty());
}
