#![allow(clippy::as_conversions, clippy::arithmetic_side_effects)]
use super::*;

#[test]
fn deadline_from_number_and_string() {
    assert_eq!(
        decode_deadline(&1_700_000_000f64.to_le_bytes()),
        Some(1_700_000_000)
    );
    assert_eq!(decode_deadline(b"1700000000"), Some(1_700_000_000));
    assert_eq!(decode_deadline(&1.5f64.to_le_bytes()), Some(1));
}

#[test]
fn unusable_deadlines_are_none() {
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -5.0] {
        assert_eq!(decode_deadline(&v.to_le_bytes()), None, "{v}");
    }
    assert_eq!(decode_deadline(b""), None);
    assert_eq!(decode_deadline(b"soon"), None);
    assert_eq!(decode_deadline(&[1]), None);
    assert_eq!(decode_deadline(b"99999999999999999999999"), None);
}

#[test]
fn far_future_saturates_and_far_past_has_passed() {
    assert_eq!(decode_deadline(&1e300f64.to_le_bytes()), Some(u64::MAX));
    let past = HostDrain::from_metadata(None, Some(&0f64.to_le_bytes()));
    assert!(past.draining && past.expired(1));
}

#[test]
fn draining_flag_and_deadline() {
    let d = HostDrain::from_metadata(Some(&[1]), None);
    assert!(d.draining && !d.expired(u64::MAX));
    let d = HostDrain::from_metadata(Some(&[0]), None);
    assert!(!d.draining);
    let d = HostDrain::from_metadata(Some(b"true"), None);
    assert!(d.draining);
    let d = HostDrain::from_metadata(None, Some(&100f64.to_le_bytes()));
    assert!(d.draining && !d.expired(99) && d.expired(100));
    let d = HostDrain::from_metadata(Some(b"garbage"), Some(b"garbage"));
    assert_eq!(d, HostDrain::default());
}

#[test]
fn cache_rate_limits_checks_and_knows_expiry() {
    let mut c = DrainCache::new();
    assert_eq!(c.fresh(b"h:1", 10, 1), None);
    let state = HostDrain {
        draining: true,
        deadline: Some(20),
    };
    c.record(b"h:1", state, 10);
    assert_eq!(c.fresh(b"h:1", 10, 1), Some(state));
    assert_eq!(c.fresh(b"h:1", 11, 1), None, "a check is due again");
    assert!(!c.expired(b"h:1", 19));
    assert!(c.expired(b"h:1", 20));
    assert!(!c.expired(b"other:1", 20));
}

#[test]
fn cache_is_bounded() {
    let mut c = DrainCache::new();
    for i in 0..(MAX_HOSTS + 10) {
        c.record(format!("10.0.0.1:{i}").as_bytes(), HostDrain::default(), 1);
    }
    assert!(c.len() <= MAX_HOSTS);
}
