use super::*;
use crate::config::Config;
use crate::testing::{KEY_A, KEY_B};

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

/// Every field of the wire model set: struct literals without `..Default`,
/// so a new field fails to compile here until the test covers it.
fn every_field() -> PluginConfig {
    PluginConfig {
        cookie: Some(Cookie {
            name: s("sticky"),
            ttl_seconds: Some(600),
            path: s("/app"),
            domain: s("example.com"),
            secure: Some(true),
            http_only: Some(false),
            same_site: s("Strict"),
        }),
        session_header: s("x-sticky-session"),
        clusters: Some(vec!["v1".into(), "v2".into()]),
        keys: Some(vec![
            Key {
                id: s("k1"),
                secret: s(KEY_A),
            },
            Key {
                id: s("k2"),
                secret: s(KEY_B),
            },
        ]),
        host_header: s("x-h"),
        cluster_header: s("x-c"),
        drain_metadata_namespace: s("sticky"),
        drain_check_interval_seconds: Some(2),
        session: Some(Session {
            idle_timeout_seconds: Some(600),
            absolute_timeout_seconds: Some(3600),
            refresh_interval_seconds: Some(60),
            max_lifetime_seconds: Some(7200),
        }),
        migration: Some(Migration {
            envoy_cookie: s("envoy-session"),
            header: s("x-legacy"),
            cluster: s("v1"),
            cookie_path: s("/"),
            trust_cluster: Some(true),
        }),
        sharding: Some(Sharding {
            key: Some(ShardKey {
                header: s("x-account"),
                cookie: s("account"),
                path_segment: Some(2),
                query: s("account"),
            }),
            clusters: Some(vec!["shard-0".into(), "shard-1".into()]),
            missing_key: s("reject"),
            reshard_deadline: Some(1_900_000_000),
        }),
        wrap: Some(Wrap {
            header: s("mcp-session-id"),
            max_id_bytes: Some(512),
            issue_cookie: Some(true),
        }),
        override_host: Some(OverrideHost { strict: Some(true) }),
        strict: Some(true),
    }
}

#[test]
fn every_wire_field_serialises_and_reads_back_with_the_filters_reader() {
    let wire = every_field();
    let json = serde_json::to_vec(&wire).unwrap();
    assert_eq!(PluginConfig::from_json(&json).unwrap(), wire);
    // serde's own reading agrees with the filter's.
    assert_eq!(serde_json::from_slice::<PluginConfig>(&json).unwrap(), wire);
}

#[test]
fn omitted_fields_are_not_written() {
    assert_eq!(
        serde_json::to_string(&PluginConfig::default()).unwrap(),
        "{}"
    );
    let wire = PluginConfig::new(&["v1"], "k1", KEY_A);
    let json = serde_json::to_string(&wire).unwrap();
    assert_eq!(
        json,
        format!(r#"{{"clusters":["v1"],"keys":[{{"id":"k1","secret":"{KEY_A}"}}]}}"#)
    );
    assert_eq!(PluginConfig::from_json(json.as_bytes()).unwrap(), wire);
}

#[test]
fn a_built_wire_config_validates() {
    let mut wire = every_field();
    // Exactly one shard key source is valid.
    if let Some(key) = wire.sharding.as_mut().and_then(|s| s.key.as_mut()) {
        *key = ShardKey {
            header: s("x-account"),
            ..ShardKey::default()
        };
    }
    let cfg = Config::from_wire(&wire).unwrap();
    assert_eq!(cfg.clusters, ["v1", "v2", "shard-0", "shard-1"]);
    assert_eq!(cfg.keys.len(), 2);
    assert!(cfg.strict);
}

#[test]
fn reader_errors_name_nested_fields() {
    for (json, field) in [
        (r#"{"keys": [{"id": 1}]}"#, "keys[0].id"),
        (r#"{"keys": [{"id": "a", "x": 1}]}"#, "keys[0].x"),
        (r#"{"keys": ["a"]}"#, "keys[0]"),
        (
            r#"{"sharding": {"key": {"header": 5}}}"#,
            "sharding.key.header",
        ),
        (r#"{"clusters": ["v1", 2]}"#, "clusters[1]"),
        (r#"{"clusters": "v1"}"#, "clusters"),
        (r#"[]"#, "<root>"),
    ] {
        assert_eq!(
            PluginConfig::from_json(json.as_bytes()).unwrap_err().field,
            field,
            "{json}"
        );
    }
}
