#![allow(
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::cast_precision_loss
)]
use super::*;
use proptest::prelude::*;

#[test]
fn matches_the_reference_jump_hash_and_fnv() {
    // Values from an independent implementation of the published algorithms.
    assert_eq!(fnv1a64(b"account-1"), 0xde63_7fc2_4868_1e56);
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(jump(123_456_789, 10), 7);
    assert_eq!(jump(0xdead_beef, 1000), 285);
    let got: Vec<u32> = [1, 2, 3, 4, 5, 10, 100]
        .iter()
        .map(|&n| jump(fnv1a64(b"tenant-42"), n))
        .collect();
    assert_eq!(got, [0, 0, 2, 3, 3, 8, 24]);
    assert_eq!(jump(42, 0), 0);
}

#[test]
fn growing_by_one_shard_moves_about_one_in_n_plus_one_keys_and_only_to_the_new_shard() {
    let keys: Vec<String> = (0..20_000).map(|i| format!("account-{i}")).collect();
    for n in [3usize, 4, 9] {
        let mut moved = 0;
        let mut moved_mod = 0;
        for k in &keys {
            let (a, b) = (shard_of(k.as_bytes(), n), shard_of(k.as_bytes(), n + 1));
            if a != b {
                assert_eq!(b, n, "a moved key goes to the new shard");
                moved += 1;
            }
            let h = fnv1a64(k.as_bytes());
            if h % n as u64 != h % (n as u64 + 1) {
                moved_mod += 1;
            }
        }
        let share = moved as f64 / keys.len() as f64;
        let theory = 1.0 / (n as f64 + 1.0);
        assert!(
            (share - theory).abs() < 0.02,
            "n={n}: moved {share}, theory {theory}"
        );
        assert!(
            moved_mod as f64 / keys.len() as f64 > 0.6,
            "mod N moves most keys"
        );
    }
}

#[test]
fn spreads_keys_evenly() {
    let mut counts = [0u32; 8];
    for i in 0..40_000 {
        counts[shard_of(format!("k{i}").as_bytes(), 8)] += 1;
    }
    for c in counts {
        assert!((4_500..5_500).contains(&c), "{counts:?}");
    }
}

#[test]
fn extracts_keys_from_each_source() {
    let h = KeySource::Header("x-account".into());
    assert_eq!(extract(&h, Some(b" 42 , 43"), None, None), Some(&b"42"[..]));
    assert_eq!(extract(&h, Some(b"  "), None, None), None);
    assert_eq!(extract(&h, None, None, None), None);
    let c = KeySource::Cookie("account".into());
    assert_eq!(
        extract(&c, None, Some(b"a=1; account=\"77\""), None),
        Some(&b"77"[..])
    );
    let p = KeySource::PathSegment(2);
    assert_eq!(
        extract(&p, None, None, Some(b"/accounts/12/cart?x=1")),
        Some(&b"12"[..])
    );
    assert_eq!(
        extract(&p, None, None, Some(b"//accounts//12")),
        Some(&b"12"[..])
    );
    assert_eq!(extract(&p, None, None, Some(b"/accounts")), None);
    let q = KeySource::Query("room".into());
    assert_eq!(
        extract(&q, None, None, Some(b"/chat?x=1&room=9&room=10")),
        Some(&b"9"[..])
    );
    assert_eq!(extract(&q, None, None, Some(b"/chat?roomx=1")), None);
    assert_eq!(extract(&q, None, None, Some(b"/chat")), None);
    let long = vec![b'a'; 1000];
    assert_eq!(
        extract(&h, Some(&long), None, None).map(<[u8]>::len),
        Some(MAX_KEY)
    );
}

proptest! {
    #[test]
    fn any_key_and_shard_count_is_in_range(key in proptest::collection::vec(any::<u8>(), 0..300), n in 1usize..2000) {
        prop_assert!(shard_of(&key, n) < n);
    }

    #[test]
    fn extraction_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), seg in 0usize..5) {
        for source in [KeySource::Header("h".into()), KeySource::Cookie("c".into()), KeySource::PathSegment(seg), KeySource::Query("q".into())] {
            let _ = extract(&source, Some(&bytes), Some(&bytes), Some(&bytes));
        }
    }
}
