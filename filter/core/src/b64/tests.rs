use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;

#[test]
fn known_vectors() {
    // RFC 4648 section 10.
    for (plain, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(encode_standard(plain.as_bytes()), enc);
        assert_eq!(decode_any(enc.as_bytes()).unwrap(), plain.as_bytes());
        assert_eq!(
            decode_url(enc.trim_end_matches('=').as_bytes()).unwrap(),
            plain.as_bytes()
        );
    }
}

#[test]
fn strict_decoding_refuses_padding_other_alphabets_and_non_canonical_bits() {
    assert_eq!(decode_url(b"Zg=="), None);
    assert_eq!(decode_url(b"+/+/"), None);
    assert_eq!(decode_url(b"Zh"), None, "non-zero trailing bits");
    assert_eq!(decode_url(b"Zm9"), None, "non-zero trailing bits");
    assert_eq!(decode_url(b"Z"), None);
    assert_eq!(decode_url(b"Zm9v\n"), None);
    assert_eq!(decode_any(b"Zg="), None, "wrong padding");
    assert_eq!(decode_any(b"+/+/").unwrap(), vec![0xfb, 0xff, 0xbf]);
    assert_eq!(decode_any(b"-_-_").unwrap(), vec![0xfb, 0xff, 0xbf]);
}

proptest! {
    #[test]
    fn encoders_match_the_base64_crate(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(encode_standard(&bytes), STANDARD.encode(&bytes));
        prop_assert_eq!(encode_url(&bytes), URL_SAFE_NO_PAD.encode(&bytes));
    }

    #[test]
    fn strict_decoder_matches_the_base64_crate(text in "[A-Za-z0-9_+/=-]{0,80}") {
        prop_assert_eq!(decode_url(text.as_bytes()), URL_SAFE_NO_PAD.decode(&text).ok());
    }

    #[test]
    fn lenient_decoder_accepts_what_any_engine_accepts(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        for text in [STANDARD.encode(&bytes), STANDARD_NO_PAD.encode(&bytes), URL_SAFE.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes)] {
            prop_assert_eq!(decode_any(text.as_bytes()), Some(bytes.clone()));
        }
    }

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_url(&bytes);
        let _ = decode_any(&bytes);
    }
}
