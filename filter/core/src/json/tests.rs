use super::*;
use proptest::prelude::*;

fn ok(s: &str) -> Json {
    parse(s.as_bytes()).unwrap()
}

#[test]
fn parses_every_kind() {
    assert_eq!(ok(" null "), Json::Null);
    assert_eq!(ok("true"), Json::Bool(true));
    assert_eq!(ok("-12.5e3"), Json::Number("-12.5e3".into()));
    assert_eq!(
        ok(r#""a\"b\\c\u00e9\ud83d\ude00""#),
        Json::String("a\"b\\cé😀".into())
    );
    assert_eq!(
        ok("[1, [], {}]"),
        Json::Array(vec![
            Json::Number("1".into()),
            Json::Array(vec![]),
            Json::Object(vec![])
        ])
    );
    assert_eq!(
        ok(r#"{"a": {"b": false}}"#),
        Json::Object(vec![(
            "a".into(),
            Json::Object(vec![("b".into(), Json::Bool(false))])
        )])
    );
}

#[test]
fn numbers_read_as_u64_only_when_whole_and_non_negative() {
    assert_eq!(ok("600").as_u64(), Some(600));
    assert_eq!(ok("-1").as_u64(), None);
    assert_eq!(ok("1.5").as_u64(), None);
    assert_eq!(ok("1e3").as_u64(), None);
    assert_eq!(ok("99999999999999999999999").as_u64(), None);
}

#[test]
fn errors_carry_positions() {
    let e = parse(b"{\n  \"a\": tru\n}").unwrap_err();
    assert_eq!((e.line, e.column), (2, 8));
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\" 1}",
        "01x",
        "\"\\x\"",
        "\"\u{1}\"",
        "{} {}",
        "{\"a\":1,\"a\":2}",
        "\"\\ud800\"",
        "-",
        "1.",
    ] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
    assert!(parse(b"\"\xff\"").is_err());
}

#[test]
fn nesting_is_bounded() {
    let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
    assert!(parse(deep.as_bytes()).is_err());
    let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(parse(fine.as_bytes()).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn strings_round_trip_through_escaping(s in "\\PC{0,40}") {
        let quoted = format!("{:?}", s).replace("\\'", "'");
        if let Ok(Json::String(back)) = parse(quoted.as_bytes()) {
            prop_assert_eq!(back, s);
        }
    }
}
