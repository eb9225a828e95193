#![allow(clippy::as_conversions, clippy::arithmetic_side_effects)]
use super::*;
use crate::testing::{KEY_A, KEY_B, config_json};

fn err(json: &str) -> ConfigError {
    Config::from_json(json.as_bytes()).unwrap_err()
}

fn with_keys(keys: &str) -> String {
    format!(r#"{{"clusters": ["v1"], "keys": {keys}}}"#)
}

#[test]
fn design_example_parses_with_its_values() {
    let json = format!(
        r#"{{"cookie": {{"name": "sticky", "ttl_seconds": 600, "path": "/",
             "secure": false, "http_only": true, "same_site": "Lax"}},
             "session_header": "x-sticky-session", "clusters": ["v1", "v2"],
             "keys": [{{"id": "k1", "secret": "{KEY_A}"}}],
             "host_header": "x-sticky-host", "cluster_header": "x-sticky-cluster",
             "drain_metadata_namespace": "sticky"}}"#
    );
    let cfg = Config::from_json(json.as_bytes()).unwrap();
    assert_eq!(cfg.cookie.name, "sticky");
    assert_eq!(cfg.cookie.ttl_seconds, 600);
    assert!(!cfg.cookie.secure);
    assert_eq!(cfg.cookie.same_site, SameSite::Lax);
    assert_eq!(cfg.session_header.as_deref(), Some("x-sticky-session"));
    assert_eq!(cfg.clusters, ["v1", "v2"]);
    assert_eq!(cfg.keys.len(), 1);
    assert_eq!(cfg.drain.metadata_namespace, "sticky");
}

#[test]
fn defaults_are_secure() {
    let cfg =
        Config::from_json(with_keys(&format!(r#"[{{"id":"a","secret":"{KEY_A}"}}]"#)).as_bytes())
            .unwrap();
    assert!(cfg.cookie.secure);
    assert!(cfg.cookie.http_only);
    assert_eq!(cfg.cookie.same_site, SameSite::Lax);
    assert_eq!(cfg.host_header, "x-sticky-host");
    assert_eq!(cfg.cluster_header, "x-sticky-cluster");
    assert_eq!(cfg.session_header, None);
    assert_eq!(cfg.session.refresh_interval_seconds, 1);
}

#[test]
fn missing_keys_names_keys() {
    assert_eq!(err(r#"{"clusters": ["v1"]}"#).field, "keys");
    assert_eq!(err(&with_keys("[]")).field, "keys");
}

#[test]
fn short_key_names_the_secret() {
    let e = err(&with_keys(r#"[{"id":"a","secret":"AQID"}]"#));
    assert_eq!(e.field, "keys[0].secret");
    assert!(e.message.contains("got 3"), "{e}");
}

#[test]
fn bad_base64_names_the_secret() {
    let e = err(&with_keys(&format!(
        r#"[{{"id":"a","secret":"{KEY_A}"}}, {{"id":"b","secret":"!!not base64!!"}}]"#
    )));
    assert_eq!(e.field, "keys[1].secret");
}

#[test]
fn url_safe_and_unpadded_secrets_are_accepted() {
    let unpadded = KEY_B.trim_end_matches('=');
    assert!(
        Config::from_json(
            with_keys(&format!(r#"[{{"id":"a","secret":"{unpadded}"}}]"#)).as_bytes()
        )
        .is_ok()
    );
}

#[test]
fn duplicate_or_bad_key_ids_are_refused() {
    let e = err(&with_keys(&format!(
        r#"[{{"id":"a","secret":"{KEY_A}"}}, {{"id":"a","secret":"{KEY_B}"}}]"#
    )));
    assert_eq!(e.field, "keys[1].id");
    let e = err(&with_keys(&format!(
        r#"[{{"id":"a b","secret":"{KEY_A}"}}]"#
    )));
    assert_eq!(e.field, "keys[0].id");
}

#[test]
fn empty_cluster_list_names_clusters() {
    let e = err(&format!(
        r#"{{"clusters": [], "keys": [{{"id":"a","secret":"{KEY_A}"}}]}}"#
    ));
    assert_eq!(e.field, "clusters");
    let e = err(&format!(r#"{{"keys": [{{"id":"a","secret":"{KEY_A}"}}]}}"#));
    assert_eq!(e.field, "clusters");
}

#[test]
fn bad_cluster_entries_name_their_index() {
    let e = err(&format!(
        r#"{{"clusters": ["v1", "v 2"], "keys": [{{"id":"a","secret":"{KEY_A}"}}]}}"#
    ));
    assert_eq!(e.field, "clusters[1]");
    let e = err(&format!(
        r#"{{"clusters": ["v1", "v1"], "keys": [{{"id":"a","secret":"{KEY_A}"}}]}}"#
    ));
    assert_eq!(e.field, "clusters[1]");
}

#[test]
fn istio_cluster_names_are_accepted_whole() {
    let cfg = Config::from_json(
        format!(r#"{{"clusters": ["outbound|80|v2|reviews.default.svc.cluster.local"], "keys": [{{"id":"a","secret":"{KEY_A}"}}]}}"#).as_bytes(),
    )
    .unwrap();
    assert_eq!(
        cfg.cluster_index(b"outbound|80|v2|reviews.default.svc.cluster.local"),
        Some(0)
    );
}

#[test]
fn invalid_cookie_name_names_cookie_name() {
    for name in ["", "a b", "a;b", "a=b", "é"] {
        let json = config_json("").replace(r#""name": "sticky""#, &format!(r#""name": "{name}""#));
        assert_eq!(err(&json).field, "cookie.name", "{name:?}");
    }
}

#[test]
fn invalid_same_site_names_same_site() {
    let json = config_json("").replace(
        r#""secure": false"#,
        r#""secure": false, "same_site": "Sometimes""#,
    );
    let e = err(&json);
    assert_eq!(e.field, "cookie.same_site");
    assert!(e.message.contains("Sometimes"));
}

#[test]
fn same_site_none_requires_secure() {
    let json = config_json("").replace(
        r#""secure": false"#,
        r#""secure": false, "same_site": "None""#,
    );
    assert_eq!(err(&json).field, "cookie.same_site");
    let json = config_json("").replace(
        r#""secure": false"#,
        r#""secure": true, "same_site": "none""#,
    );
    assert_eq!(
        Config::from_json(json.as_bytes()).unwrap().cookie.same_site,
        SameSite::None
    );
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let e = err(&config_json(r#""cokie": {},"#));
    assert!(e.message.contains("cokie"), "{e}");
    let json = config_json("").replace(r#""secure": false"#, r#""secure": false, "max_age": 5"#);
    let e = err(&json);
    assert!(e.message.contains("max_age"), "{e}");
}

#[test]
fn wrong_types_name_the_field_path() {
    let json = config_json("").replace(r#""ttl_seconds": 600"#, r#""ttl_seconds": "600""#);
    assert_eq!(err(&json).field, "cookie.ttl_seconds");
    let json = config_json("").replace(r#""ttl_seconds": 600"#, r#""ttl_seconds": -1"#);
    assert_eq!(err(&json).field, "cookie.ttl_seconds");
}

#[test]
fn not_json_is_refused() {
    assert_eq!(err("").field, "<root>");
    assert!(Config::from_json(b"[1,2]").is_err());
    assert!(Config::from_json(b"\xff\xfe").is_err());
}

#[test]
fn header_names_are_checked_and_lowercased() {
    let cfg = Config::from_json(config_json(r#""session_header": "X-Sticky-Session","#).as_bytes())
        .unwrap();
    assert_eq!(cfg.session_header.as_deref(), Some("x-sticky-session"));
    assert_eq!(
        err(&config_json(r#""host_header": "x y","#)).field,
        "host_header"
    );
    assert_eq!(
        err(&config_json(r#""cluster_header": "x-sticky-host","#)).field,
        "cluster_header"
    );
    assert_eq!(
        err(&config_json(r#""session_header": "cookie","#)).field,
        "session_header"
    );
}

#[test]
fn durations_are_bounded() {
    let json = config_json("").replace(r#""ttl_seconds": 600"#, r#""ttl_seconds": 99999999999"#);
    assert_eq!(err(&json).field, "cookie.ttl_seconds");
    let e = err(&config_json(
        r#""session": {"idle_timeout_seconds": 60, "refresh_interval_seconds": 60},"#,
    ));
    assert_eq!(e.field, "session.refresh_interval_seconds");
}

#[test]
fn refresh_interval_defaults_to_a_quarter_of_idle() {
    let cfg =
        Config::from_json(config_json(r#""session": {"idle_timeout_seconds": 600},"#).as_bytes())
            .unwrap();
    assert_eq!(cfg.session.refresh_interval_seconds, 150);
}

#[test]
fn cookie_path_and_domain_are_checked() {
    let json = config_json("").replace(r#""secure": false"#, r#""secure": false, "path": "app""#);
    assert_eq!(err(&json).field, "cookie.path");
    let json = config_json("").replace(r#""secure": false"#, r#""secure": false, "domain": "a;b""#);
    assert_eq!(err(&json).field, "cookie.domain");
}

#[test]
fn display_names_the_field() {
    let e = err(&with_keys("[]"));
    assert!(e.to_string().contains("field `keys`"), "{e}");
}

#[test]
fn migration_is_opt_in_and_checked() {
    assert_eq!(
        Config::from_json(config_json("").as_bytes())
            .unwrap()
            .migration,
        None
    );
    let cfg = Config::from_json(
        config_json(r#""migration": {"envoy_cookie": "envoy-session", "cluster": "v1"},"#)
            .as_bytes(),
    )
    .unwrap();
    let m = cfg.migration.unwrap();
    assert_eq!(
        (
            m.cookie.as_deref(),
            m.cluster.as_deref(),
            m.cookie_path.as_str()
        ),
        (Some("envoy-session"), Some("v1"), "/")
    );
    assert_eq!(err(&config_json(r#""migration": {},"#)).field, "migration");
    assert_eq!(
        err(&config_json(r#""migration": {"envoy_cookie": "a b"},"#)).field,
        "migration.envoy_cookie"
    );
    assert_eq!(
        err(&config_json(
            r#""migration": {"header": "x", "cluster": "v9"},"#
        ))
        .field,
        "migration.cluster"
    );
    assert_eq!(
        err(&config_json(r#""migration": {"header": "x-sticky-host"},"#)).field,
        "migration.header"
    );
    assert_eq!(
        err(&config_json(
            r#""migration": {"header": "x", "colour": 1},"#
        ))
        .field,
        "migration.colour"
    );
}

#[test]
fn sharding_config_is_checked_and_joins_the_allow_list() {
    let json = format!(
        r#"{{"keys": [{{"id": "a", "secret": "{KEY_A}"}}], "sharding": {{"key": {{"header": "X-Account"}}, "clusters": ["shard-0", "shard-1"], "missing_key": "reject"}}}}"#
    );
    let cfg = Config::from_json(json.as_bytes()).unwrap();
    let s = cfg.sharding.as_ref().unwrap();
    assert_eq!(s.key, crate::config::KeySource::Header("x-account".into()));
    assert_eq!(s.missing_key, crate::config::MissingKey::Reject);
    assert_eq!(cfg.clusters, ["shard-0", "shard-1"]);
    let bad = |sharding: &str| err(&config_json(&format!(r#""sharding": {sharding},"#))).field;
    assert_eq!(bad(r#"{"clusters": ["s0"]}"#), "sharding.key");
    assert_eq!(bad(r#"{"key": {}, "clusters": ["s0"]}"#), "sharding.key");
    assert_eq!(
        bad(r#"{"key": {"header": "a", "query": "b"}, "clusters": ["s0"]}"#),
        "sharding.key"
    );
    assert_eq!(
        bad(r#"{"key": {"path_segment": 0}, "clusters": ["s0"]}"#),
        "sharding.key.path_segment"
    );
    assert_eq!(
        bad(r#"{"key": {"query": "a=b"}, "clusters": ["s0"]}"#),
        "sharding.key.query"
    );
    assert_eq!(
        bad(r#"{"key": {"cookie": "a b"}, "clusters": ["s0"]}"#),
        "sharding.key.cookie"
    );
    assert_eq!(
        bad(r#"{"key": {"header": "a"}, "clusters": []}"#),
        "sharding.clusters"
    );
    assert_eq!(
        bad(r#"{"key": {"header": "a"}, "clusters": ["s0", "s0"]}"#),
        "sharding.clusters[1]"
    );
    assert_eq!(
        bad(r#"{"key": {"header": "a"}, "clusters": ["s0"], "missing_key": "drop"}"#),
        "sharding.missing_key"
    );
}

#[test]
fn summary_names_the_version_and_the_shape() {
    let cfg = Config::from_json(config_json(r#""session_header": "x-s","#).as_bytes()).unwrap();
    let line = cfg.summary();
    assert!(
        line.starts_with(&format!("sticky {} configured", crate::VERSION)),
        "{line}"
    );
    assert!(
        line.contains("2 clusters") && line.contains("session header x-s"),
        "{line}"
    );
}

fn with_field(field: &str) -> String {
    format!(r#"{{"clusters": ["v1"], "keys": [{{"id":"a","secret":"{KEY_A}"}}], {field}}}"#)
}

#[test]
fn wrap_defaults_and_limits() {
    let cfg = Config::from_json(with_field(r#""wrap": {"header": "Mcp-Session-Id"}"#).as_bytes())
        .unwrap();
    assert!(!cfg.issues_cookie());
    let wrap = cfg.wrap.unwrap();
    assert_eq!(wrap.header, "mcp-session-id");
    assert_eq!(wrap.max_id_bytes, 256);
    assert!(!wrap.issue_cookie);
    let cfg = Config::from_json(
        with_field(r#""wrap": {"header": "x-game", "max_id_bytes": 1024}"#).as_bytes(),
    )
    .unwrap();
    assert_eq!(cfg.wrap.unwrap().max_id_bytes, 1024);
    let cfg = Config::from_json(
        with_field(r#""wrap": {"header": "x-game", "issue_cookie": true}"#).as_bytes(),
    )
    .unwrap();
    assert!(cfg.issues_cookie());
    assert!(
        Config::from_json(with_keys(&format!(r#"[{{"id":"a","secret":"{KEY_A}"}}]"#)).as_bytes())
            .unwrap()
            .wrap
            .is_none()
    );
}

#[test]
fn wrap_errors_name_the_field() {
    for (field, want) in [
        (r#""wrap": {}"#, "wrap.header"),
        (r#""wrap": {"header": "bad header"}"#, "wrap.header"),
        (r#""wrap": {"header": "x-sticky-host"}"#, "wrap.header"),
        (r#""wrap": {"header": "cookie"}"#, "wrap.header"),
        (
            r#""wrap": {"header": "x-a", "max_id_bytes": 0}"#,
            "wrap.max_id_bytes",
        ),
        (
            r#""wrap": {"header": "x-a", "max_id_bytes": 1025}"#,
            "wrap.max_id_bytes",
        ),
        (r#""wrap": {"header": "x-a", "ttl": 1}"#, "wrap.ttl"),
        (
            r#""wrap": {"header": "x-a", "issue_cookie": 1}"#,
            "wrap.issue_cookie",
        ),
        (r#""wrap": "x-a""#, "wrap"),
    ] {
        assert_eq!(err(&with_field(field)).field, want, "{field}");
    }
    let json = format!(
        r#"{{"clusters": ["v1"], "keys": [{{"id":"a","secret":"{KEY_A}"}}], "session_header": "x-s", "wrap": {{"header": "X-S"}}}}"#
    );
    assert_eq!(err(&json).field, "wrap.header");
}

#[test]
fn override_host_is_parsed_and_checked() {
    let cfg = Config::from_json(with_field(r#""override_host": {}"#).as_bytes()).unwrap();
    assert_eq!(
        cfg.override_host,
        Some(OverrideHostConfig { strict: false })
    );
    let cfg =
        Config::from_json(with_field(r#""override_host": {"strict": true}"#).as_bytes()).unwrap();
    assert_eq!(cfg.override_host, Some(OverrideHostConfig { strict: true }));
    assert!(cfg.summary().contains("upstream override (strict)"));
    assert_eq!(
        err(&with_field(r#""override_host": {"strict": "yes"}"#)).field,
        "override_host.strict"
    );
    assert_eq!(
        err(&with_field(r#""override_host": {"mode": 1}"#)).field,
        "override_host.mode"
    );
}

#[test]
fn reserved_pseudo_and_envoy_header_names_are_refused_where_the_filter_writes() {
    for (field, name) in [
        ("session_header", "set-cookie"),
        ("session_header", "Transfer-Encoding"),
        ("session_header", "host"),
        ("session_header", "authorization"),
        ("session_header", "x-envoy-original-path"),
        ("host_header", "content-length"),
        ("cluster_header", "connection"),
        ("cluster_header", ":authority"),
    ] {
        let e = err(&config_json(&format!(r#""{field}": "{name}","#)));
        assert_eq!(e.field, field, "{name}");
    }
    let e = err(&config_json(r#""wrap": {"header": "cookie"},"#));
    assert_eq!(e.field, "wrap.header");
    let e = err(&config_json(r#""wrap": {"header": "location"},"#));
    assert_eq!(e.field, "wrap.header");
    assert!(e.message.contains("reserved"), "{e}");
    // A name of its own is fine.
    let cfg = Config::from_json(config_json(r#""session_header": "X-Cart-Session","#).as_bytes())
        .unwrap();
    assert_eq!(cfg.session_header.as_deref(), Some("x-cart-session"));
}

#[test]
fn a_defaulted_refresh_interval_is_held_to_the_same_rule() {
    // idle 1 would default the refresh interval to 1 = the idle timeout: an
    // active session would expire. Refused, naming the field the user set.
    let e = err(&config_json(r#""session": {"idle_timeout_seconds": 1},"#));
    assert_eq!(e.field, "session.idle_timeout_seconds");
    let cfg =
        Config::from_json(config_json(r#""session": {"idle_timeout_seconds": 2},"#).as_bytes())
            .unwrap();
    assert_eq!(cfg.session.refresh_interval_seconds, 1);
}

#[test]
fn numbers_with_leading_zeros_are_refused() {
    let json = config_json("").replace("600", "00600");
    assert!(json.contains("00600"));
    let e = err(&json);
    assert!(e.message.contains("leading zero"), "{e}");
    assert!(Config::from_json(config_json("").replace("600", "0").as_bytes()).is_ok());
}

#[test]
fn every_token_has_a_maximum_lifetime_by_default() {
    let cfg = Config::from_json(config_json("").as_bytes()).unwrap();
    assert_eq!(cfg.session.max_lifetime_seconds, DEFAULT_MAX_LIFETIME);
    let cfg =
        Config::from_json(config_json(r#""session": {"max_lifetime_seconds": 3600},"#).as_bytes())
            .unwrap();
    assert_eq!(cfg.session.max_lifetime_seconds, 3600);
    for bad in ["0", "59"] {
        let e = err(&config_json(&format!(
            r#""session": {{"max_lifetime_seconds": {bad}}},"#
        )));
        assert_eq!(e.field, "session.max_lifetime_seconds");
    }
    let e = err(&config_json(
        r#""session": {"refresh_interval_seconds": 100, "max_lifetime_seconds": 150},"#,
    ));
    assert_eq!(e.field, "session.max_lifetime_seconds");
}

#[test]
fn strict_and_trust_cluster_are_read() {
    let cfg = Config::from_json(config_json("").as_bytes()).unwrap();
    assert!(!cfg.strict);
    let cfg = Config::from_json(config_json(r#""strict": true,"#).as_bytes()).unwrap();
    assert!(cfg.strict);
    let cfg =
        Config::from_json(config_json(r#""override_host": {"strict": true},"#).as_bytes()).unwrap();
    assert!(cfg.strict, "override_host.strict is strict mode");
    let cfg = Config::from_json(
        config_json(r#""migration": {"header": "x-s", "trust_cluster": true},"#).as_bytes(),
    )
    .unwrap();
    assert!(cfg.migration.unwrap().trust_cluster);
    let e = err(&config_json(r#""strict": "yes","#));
    assert_eq!(e.field, "strict");
}
