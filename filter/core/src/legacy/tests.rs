use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const NOW: u64 = 1_795_483_393;

#[test]
fn reads_envoy_140_native_cookie() {
    // Captured from Envoy 1.40's CookieBasedSessionState (quoted, proto {1: addr, 2: expiry}).
    let s = open(b"\"Cg8xMjcuMC4wLjE6NDU3NjkQ19KT2AY=\"", NOW).unwrap();
    assert_eq!(
        s,
        LegacySession {
            host: "127.0.0.1:45769".into(),
            cluster: None,
            expires_at: 1_795_483_991
        }
    );
    assert_eq!(
        open(b"Cg8xMjcuMC4wLjE6NDU3NjkQ19KT2AY=", 1_795_483_991),
        Err(Reject::Expired)
    );
}

#[test]
fn reads_plain_base64_and_plain_addresses() {
    let b64 = STANDARD.encode("10.0.0.7:8080");
    assert_eq!(open(b64.as_bytes(), NOW).unwrap().host, "10.0.0.7:8080");
    assert_eq!(open(b"10.0.0.7:8080", NOW).unwrap().host, "10.0.0.7:8080");
    assert_eq!(open(b"[::1]:80", NOW).unwrap().host, "[::1]:80");
}

#[test]
fn reads_a55_style_cluster_suffix() {
    let v = format!(
        "{};cluster:outbound|80|v2|reviews.default.svc.cluster.local",
        STANDARD.encode("10.0.0.7:8080")
    );
    let s = open(v.as_bytes(), NOW).unwrap();
    assert_eq!(s.host, "10.0.0.7:8080");
    assert_eq!(
        s.cluster.as_deref(),
        Some("outbound|80|v2|reviews.default.svc.cluster.local")
    );
    assert_eq!(open(b"10.0.0.7:8080;cluster:", NOW), Err(Reject::Malformed));
}

#[test]
fn refuses_non_addresses_and_garbage() {
    for bad in [
        &b""[..],
        b"evil.example.com:80",
        b"\xff\xfe",
        b"!!!",
        b"\"\"",
        b"YWJj",
    ] {
        assert!(open(bad, NOW).is_err(), "{bad:?}");
    }
    let proto_with_name = STANDARD.encode(b"\x0a\x0fevil.example:80\x10\x01");
    assert!(open(proto_with_name.as_bytes(), NOW).is_err());
    assert_eq!(open(&[b'A'; 2000], NOW), Err(Reject::Oversized));
}
