use proptest::prelude::*;

use super::same;

#[test]
fn equal_only_when_every_byte_and_the_length_match() {
    for len in 0..=40usize {
        let a: Vec<u8> = (0..len)
            .map(|i| u8::try_from(i * 37 % 251).unwrap())
            .collect();
        assert!(same(&a, &a.clone()), "{len}");
        for at in 0..len {
            let mut b = a.clone();
            b[at] ^= 0x80;
            assert!(!same(&a, &b), "len {len}, byte {at}");
        }
        let mut longer = a.clone();
        longer.push(0);
        assert!(!same(&a, &longer), "{len}");
    }
}

proptest! {
    #[test]
    fn agrees_with_slice_equality(a in proptest::collection::vec(any::<u8>(), 0..300),
                                  b in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(same(&a, &b), a == b);
        prop_assert!(same(&a, &a.clone()));
    }
}
