#![allow(clippy::as_conversions, clippy::arithmetic_side_effects)]
use super::*;
use crate::keys::{Key, KeyId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

fn ring(ids: &[(&str, u8)]) -> Keyring {
    Keyring::new(
        ids.iter()
            .map(|(id, b)| Key::new(KeyId::new(id).unwrap(), &[*b; 32]))
            .collect(),
    )
}

fn claims() -> Claims {
    Claims {
        cluster: "outbound|80|v2|reviews.default.svc.cluster.local".into(),
        host: "10.0.0.7:8080".into(),
        issued_at: 1_700_000_000,
        expires_at: 1_700_000_600,
        last_seen: 1_700_000_100,
        key_hash: 0,
        app_id: Vec::new(),
        sealed_by_old_key: false,
    }
}

#[test]
fn round_trip() {
    let keys = ring(&[("k1", 1)]);
    let t = seal(&claims(), &keys, &[7; NONCE_LEN]).unwrap();
    assert_eq!(open(t.as_bytes(), &keys).unwrap(), claims());
}

#[test]
fn token_hides_host_and_cluster() {
    let keys = ring(&[("k1", 1)]);
    let t = seal(&claims(), &keys, &[7; NONCE_LEN]).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
    for needle in [&b"10.0.0.7"[..], b"reviews", b"8080"] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
    }
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
}

#[test]
fn different_nonces_give_different_tokens() {
    let keys = ring(&[("k1", 1)]);
    let a = seal(&claims(), &keys, &[1; NONCE_LEN]).unwrap();
    let b = seal(&claims(), &keys, &[2; NONCE_LEN]).unwrap();
    assert_ne!(a, b);
}

#[test]
fn rotation_first_seals_all_open() {
    let old = ring(&[("old", 1)]);
    let rotated = ring(&[("new", 2), ("old", 1)]);
    let legacy = seal(&claims(), &old, &[3; NONCE_LEN]).unwrap();
    let opened = open(legacy.as_bytes(), &rotated).unwrap();
    assert!(
        opened.sealed_by_old_key,
        "an old key's token is marked for re-sealing"
    );
    assert_eq!(
        Claims {
            sealed_by_old_key: false,
            ..opened
        },
        claims()
    );
    let fresh = seal(&claims(), &rotated, &[3; NONCE_LEN]).unwrap();
    assert!(!open(fresh.as_bytes(), &rotated).unwrap().sealed_by_old_key);
    assert_eq!(open(fresh.as_bytes(), &old), Err(Reject::UnknownKey));
    assert_eq!(
        open(fresh.as_bytes(), &ring(&[("new", 2)])).unwrap(),
        claims()
    );
}

#[test]
fn same_id_other_secret_is_tampered() {
    let t = seal(&claims(), &ring(&[("k1", 1)]), &[7; NONCE_LEN]).unwrap();
    assert_eq!(
        open(t.as_bytes(), &ring(&[("k1", 9)])),
        Err(Reject::Tampered)
    );
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let keys = ring(&[("k1", 1)]);
    let t = seal(&claims(), &keys, &[7; NONCE_LEN]).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
    for i in 0..raw.len() {
        for bit in 0..8 {
            let mut bad = raw.clone();
            bad[i] ^= 1 << bit;
            let text = URL_SAFE_NO_PAD.encode(&bad);
            assert!(open(text.as_bytes(), &keys).is_err(), "byte {i} bit {bit}");
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    let keys = ring(&[("k1", 1)]);
    let t = seal(&claims(), &keys, &[7; NONCE_LEN]).unwrap();
    for n in 0..t.len() {
        assert!(open(&t.as_bytes()[..n], &keys).is_err(), "prefix {n}");
    }
}

#[test]
fn rejects_by_reason() {
    let keys = ring(&[("k1", 1)]);
    assert_eq!(open(b"", &keys), Err(Reject::Malformed));
    assert_eq!(open(b"!!!!", &keys), Err(Reject::Malformed));
    assert_eq!(
        open(&[b'A'; MAX_TOKEN_CHARS + 1], &keys),
        Err(Reject::Oversized)
    );
    assert_eq!(open(b"\xff\xfe\x00", &keys), Err(Reject::Malformed));
    let v2 = URL_SAFE_NO_PAD.encode([2u8; 60]);
    assert_eq!(open(v2.as_bytes(), &keys), Err(Reject::UnknownVersion));
    // A well-formed token under a key id nobody configured.
    let foreign = seal(&claims(), &ring(&[("zz", 1)]), &[0; NONCE_LEN]).unwrap();
    assert_eq!(open(foreign.as_bytes(), &keys), Err(Reject::UnknownKey));
}

#[test]
fn edited_key_id_is_rejected() {
    // Same secret under two ids: the id is authenticated, so swapping it fails.
    let keys = ring(&[("k1", 1), ("k2", 1)]);
    let t = seal(&claims(), &keys, &[7; NONCE_LEN]).unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
    raw[3] = b'2';
    let text = URL_SAFE_NO_PAD.encode(&raw);
    assert_eq!(open(text.as_bytes(), &keys), Err(Reject::Tampered));
}

proptest! {
    #[test]
    fn any_claims_round_trip(cluster in "[ -~]{1,255}",
                             host in "(10\\.[1-9]?[0-9]\\.[1-9]?[0-9]\\.[1-9]?[0-9]:[1-9][0-9]{0,3})?",
                             app_id in "[ -~]{0,256}",
                             issued in any::<u64>(), exp in any::<u64>(), seen in any::<u64>(),
                             nonce in any::<[u8; 24]>()) {
        let keys = ring(&[("k1", 1)]);
        let c = Claims { cluster, host, issued_at: issued, expires_at: exp, last_seen: seen, key_hash: 0, app_id: app_id.into_bytes(), sealed_by_old_key: false };
        let t = seal(&c, &keys, &nonce).unwrap();
        prop_assert!(t.len() <= MAX_TOKEN_CHARS);
        prop_assert_eq!(open(t.as_bytes(), &keys).unwrap(), c);
    }

    #[test]
    fn arbitrary_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let keys = ring(&[("k1", 1)]);
        prop_assert!(open(&bytes, &keys).is_err());
    }
}

#[test]
fn a_host_that_is_not_an_address_does_not_open() {
    let keys = ring(&[("k1", 1)]);
    for host in ["evil.example:80", "10.0.0.1", "10.0.0.1:99999", "[::1]"] {
        let c = Claims {
            host: host.into(),
            ..claims()
        };
        let t = seal(&c, &keys, &[7; NONCE_LEN]).unwrap();
        assert_eq!(open(t.as_bytes(), &keys), Err(Reject::Malformed), "{host}");
    }
}
