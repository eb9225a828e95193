#![allow(clippy::as_conversions, clippy::arithmetic_side_effects)]
use super::*;
use crate::config::SameSite;
use proptest::prelude::*;

fn find(header: &[u8]) -> Vec<Vec<u8>> {
    let mut c = Candidates::default();
    find_cookies(header, b"sticky", &mut c);
    c.as_slice().iter().map(|v| v.to_vec()).collect()
}

#[test]
fn finds_the_named_cookie_among_others() {
    assert_eq!(find(b"a=1; sticky=tok; b=2"), vec![b"tok".to_vec()]);
    assert_eq!(find(b"sticky=tok"), vec![b"tok".to_vec()]);
    assert!(find(b"a=1; b=2").is_empty());
    assert!(find(b"").is_empty());
}

#[test]
fn name_must_match_exactly() {
    assert!(find(b"xsticky=1; stickyx=2; Sticky=3").is_empty());
}

#[test]
fn handles_whitespace_quotes_and_empty_values() {
    assert_eq!(find(b"  sticky = \"tok\"  ;x=1"), vec![b"tok".to_vec()]);
    assert!(find(b"sticky=; sticky=\"\"").is_empty());
    assert_eq!(
        find(b"sticky=\"unterminated"),
        vec![b"\"unterminated".to_vec()]
    );
}

#[test]
fn several_headers_joined_by_comma_are_all_read() {
    // Envoy's request.headers.cookie joins repeated Cookie headers with ','.
    assert_eq!(find(b"a=1,sticky=tok,b=2"), vec![b"tok".to_vec()]);
    assert_eq!(find(b"a=1; b=2,c=3; sticky=tok"), vec![b"tok".to_vec()]);
}

#[test]
fn duplicates_collapse_and_distinct_values_are_kept_in_order() {
    assert_eq!(find(b"sticky=a; sticky=a"), vec![b"a".to_vec()]);
    assert_eq!(
        find(b"sticky=a; sticky=b"),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
}

#[test]
fn candidates_are_bounded() {
    let header: Vec<u8> = (0..100)
        .flat_map(|i| format!("sticky=v{i};").into_bytes())
        .collect();
    let mut c = Candidates::default();
    find_cookies(&header, b"sticky", &mut c);
    assert_eq!(c.as_slice().len(), MAX_CANDIDATES);
    assert!(c.truncated);
}

#[test]
fn non_utf8_bytes_do_not_matter() {
    assert_eq!(
        find(b"\xff\xfe=1; sticky=\xc3\x28"),
        vec![b"\xc3\x28".to_vec()]
    );
}

#[test]
fn header_tokens_split_on_commas() {
    let mut c = Candidates::default();
    find_header_tokens(b" t1 , t2,t1,", &mut c);
    assert_eq!(c.as_slice(), &[&b"t1"[..], &b"t2"[..]]);
}

fn cookie_cfg(ttl: u64, secure: bool, domain: Option<&str>) -> CookieConfig {
    CookieConfig {
        name: "sticky".into(),
        ttl_seconds: ttl,
        path: "/".into(),
        domain: domain.map(Into::into),
        secure,
        http_only: true,
        same_site: SameSite::Lax,
    }
}

#[test]
fn set_cookie_carries_every_attribute() {
    assert_eq!(
        set_cookie(&cookie_cfg(600, true, Some("example.com")), "T"),
        "sticky=T; Max-Age=600; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Lax"
    );
}

#[test]
fn session_cookie_has_no_max_age() {
    let v = set_cookie(&cookie_cfg(0, false, None), "T");
    assert_eq!(v, "sticky=T; Path=/; HttpOnly; SameSite=Lax");
}

proptest! {
    #[test]
    fn arbitrary_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut c = Candidates::default();
        find_cookies(&bytes, b"sticky", &mut c);
        find_header_tokens(&bytes, &mut c);
        prop_assert!(c.as_slice().len() <= MAX_CANDIDATES);
    }

    #[test]
    fn a_token_is_found_wherever_it_sits(before in "[a-z]{1,8}=[a-z0-9]{0,8}", after in "[a-z]{1,8}=[a-z0-9]{0,8}",
                                         tok in "[A-Za-z0-9_-]{1,200}", sep in prop::sample::select(vec!["; ", ";", ",", " ; "])) {
        let h = format!("{before}{sep}sticky={tok}{sep}{after}");
        let mut c = Candidates::default();
        find_cookies(h.as_bytes(), b"sticky", &mut c);
        prop_assert_eq!(c.as_slice(), &[tok.as_bytes()]);
    }
}
