//! The plugin config every harness user starts from, built as the filter's
//! wire model ([`sticky_core::config::wire`]) rather than written as JSON.

use serde_json::Value;
use sticky_core::config::wire::{Cookie, PluginConfig};

/// Loopback defaults: cookie `cookie` that is not `Secure` (plain HTTP on
/// loopback), the session header for API clients, `clusters` allowed, one
/// key `key_id` sealing with `secret`.
pub fn loopback(
    cookie: &str,
    session_header: &str,
    clusters: &[&str],
    key_id: &str,
    secret: &str,
) -> PluginConfig {
    PluginConfig {
        cookie: Some(Cookie {
            name: Some(cookie.to_owned()),
            ttl_seconds: Some(600),
            secure: Some(false),
            ..Cookie::default()
        }),
        session_header: Some(session_header.to_owned()),
        ..PluginConfig::new(clusters, key_id, secret)
    }
}

/// The JSON the filter (and stickyctl's renderer) takes.
pub fn to_json(config: &PluginConfig) -> Value {
    // Serialising plain structs of strings, numbers and bools cannot fail.
    serde_json::to_value(config).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_default_is_a_valid_filter_config() {
        let wire = loopback(
            "sticky",
            "x-sticky-session",
            &["v1", "v2"],
            "k1",
            crate::rig::KEY_1,
        );
        let bytes = serde_json::to_vec(&to_json(&wire)).unwrap_or_default();
        let cfg = sticky_core::config::Config::from_json(&bytes).map_err(|e| e.to_string());
        assert_eq!(cfg.map(|c| c.clusters), Ok(vec!["v1".into(), "v2".into()]));
    }
}
