//! Gateway API GEP-1619 `sessionPersistence`, in the three shapes users bring:
//! - v1.1–v1.5: `{sessionName, type, absoluteTimeout, idleTimeout, cookieConfig: {lifetimeType}}`
//! - v1.6: the same without `idleTimeout`
//! - main (2026-08): `{type, absoluteTimeout, cookie: {name, path, lifetimeType}, header: {name}}`
//!
//! (gateway-api `apis/v1/shared_types.go` at tags v1.1.0, v1.5.0, v1.6.0 and
//! main 4564255.) The idle timeout that v1.6 dropped stays as our own
//! extension (`spec.sticky.idleTimeout` in the policy).

use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::input::duration;
use crate::yaml::Document;

/// Which published shape a `sessionPersistence` block used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// v1.1–v1.5: `sessionName`, `cookieConfig`, with `idleTimeout`.
    V1_1To1_5,
    /// v1.6: `sessionName`, `cookieConfig`, no `idleTimeout` (also what a
    /// block with only the fields common to every shape is reported as).
    V1_6,
    /// gateway-api main as of 2026-08: `cookie: {name, path, lifetimeType}`, `header: {name}`.
    Main2026_08,
}

impl Shape {
    /// How the shape is named in messages.
    pub fn label(self) -> &'static str {
        match self {
            Shape::V1_1To1_5 => "Gateway API v1.1-v1.5 (sessionName, cookieConfig, idleTimeout)",
            Shape::V1_6 => "Gateway API v1.6 (sessionName, cookieConfig)",
            Shape::Main2026_08 => "Gateway API main 2026-08 (cookie, header)",
        }
    }
}

/// Cookie or header persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// A cookie carries the session.
    Cookie,
    /// A request/response header carries the session.
    Header,
}

/// Cookie lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// A browser-session cookie (no `Max-Age`).
    Session,
    /// `Max-Age` = the absolute timeout.
    Permanent,
}

/// A validated `sessionPersistence` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// The shape it was written in.
    pub shape: Shape,
    /// Cookie or header.
    pub carrier: Carrier,
    /// Cookie name (Cookie) or header name (Header), when given.
    pub name: Option<String>,
    /// Cookie path (main shape only).
    pub cookie_path: Option<String>,
    /// Cookie lifetime.
    pub lifetime: Lifetime,
    /// `absoluteTimeout` in seconds.
    pub absolute_timeout: Option<u64>,
    /// `idleTimeout` in seconds (v1.1–v1.5 only).
    pub idle_timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    session_name: Option<String>,
    absolute_timeout: Option<String>,
    idle_timeout: Option<String>,
    #[serde(rename = "type")]
    carrier: Option<String>,
    cookie_config: Option<WireLifetime>,
    cookie: Option<WireCookie>,
    header: Option<WireHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireLifetime {
    lifetime_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireCookie {
    name: Option<String>,
    path: Option<String>,
    lifetime_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    name: String,
}

/// Parses the `sessionPersistence` block `value` found at `path` in `doc`.
pub fn parse(doc: &Document, value: &Value, path: &str) -> Result<Persistence> {
    let w: Wire = doc.parse_at(value, path)?;
    let at = |f: &str| format!("{path}.{f}");
    let legacy = [
        ("sessionName", w.session_name.is_some()),
        ("cookieConfig", w.cookie_config.is_some()),
        ("idleTimeout", w.idle_timeout.is_some()),
    ];
    let main = [
        ("cookie", w.cookie.is_some()),
        ("header", w.header.is_some()),
    ];
    let shape = match (legacy.iter().find(|f| f.1), main.iter().find(|f| f.1)) {
        (Some(l), Some(m)) => {
            return Err(doc.error(
                &at(m.0),
                format!(
                    "mixes `{}` (Gateway API v1.1-v1.6) with `{}` (main 2026-08); use one shape",
                    l.0, m.0
                ),
            ));
        }
        (None, Some(_)) => Shape::Main2026_08,
        _ if w.idle_timeout.is_some() => Shape::V1_1To1_5,
        _ => Shape::V1_6,
    };
    let carrier = match w.carrier.as_deref() {
        None | Some("Cookie") => Carrier::Cookie,
        Some("Header") => Carrier::Header,
        Some(other) => {
            return Err(doc.error(
                &at("type"),
                format!("must be Cookie or Header, got {other:?}"),
            ));
        }
    };
    let seconds = |field: &str, text: &Option<String>| -> Result<Option<u64>> {
        match text {
            None => Ok(None),
            Some(t) => duration::seconds(t).map(Some).ok_or_else(|| {
                doc.error(
                    &at(field),
                    format!("{t:?} is not a Gateway API duration (like 1h, 30m, 10s, 500ms)"),
                )
            }),
        }
    };
    let absolute_timeout = seconds("absoluteTimeout", &w.absolute_timeout)?;
    let idle_timeout = seconds("idleTimeout", &w.idle_timeout)?;
    let (lifetime_text, lifetime_field) = match (&w.cookie_config, &w.cookie) {
        (Some(c), _) => (c.lifetime_type.clone(), "cookieConfig.lifetimeType"),
        (_, Some(c)) => (c.lifetime_type.clone(), "cookie.lifetimeType"),
        _ => (None, ""),
    };
    let lifetime = match lifetime_text.as_deref() {
        None | Some("Session") => Lifetime::Session,
        Some("Permanent") => Lifetime::Permanent,
        Some(other) => {
            return Err(doc.error(
                &at(lifetime_field),
                format!("must be Permanent or Session, got {other:?}"),
            ));
        }
    };
    if lifetime == Lifetime::Permanent && absolute_timeout.is_none() {
        return Err(doc.error(
            &at(lifetime_field),
            "Permanent needs absoluteTimeout (it becomes the cookie's Max-Age)",
        ));
    }
    match carrier {
        Carrier::Header => {
            if w.cookie_config.is_some() || w.cookie.is_some() {
                let f = if w.cookie.is_some() {
                    "cookie"
                } else {
                    "cookieConfig"
                };
                return Err(doc.error(&at(f), "can only be set with type Cookie"));
            }
        }
        Carrier::Cookie => {
            if w.header.is_some() {
                return Err(doc.error(&at("header"), "can only be set with type Header"));
            }
        }
    }
    let (name, name_field) = match shape {
        Shape::Main2026_08 => match carrier {
            Carrier::Cookie => (
                w.cookie.as_ref().and_then(|c| c.name.clone()),
                "cookie.name",
            ),
            Carrier::Header => (w.header.as_ref().map(|h| h.name.clone()), "header.name"),
        },
        _ => (w.session_name.clone(), "sessionName"),
    };
    if let Some(n) = &name
        && (n.is_empty() || n.len() > 64 || !n.bytes().all(sticky_core::config::is_tchar))
    {
        return Err(doc.error(
            &at(name_field),
            format!(
                "{n:?} must be 1-64 characters of an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
            ),
        ));
    }
    let cookie_path = w.cookie.as_ref().and_then(|c| c.path.clone());
    if let Some(p) = &cookie_path
        && !p.starts_with('/')
    {
        return Err(doc.error(&at("cookie.path"), "must start with '/'"));
    }
    Ok(Persistence {
        shape,
        carrier,
        name,
        cookie_path,
        lifetime,
        absolute_timeout,
        idle_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_str;

    fn sp(text: &str) -> Result<Persistence> {
        let docs = parse_str("p.yaml", text)?;
        let doc = &docs[0];
        parse(doc, &doc.value["sessionPersistence"], "sessionPersistence")
    }

    #[test]
    fn v1_5_shape_with_idle_timeout() {
        let p = sp("sessionPersistence:\n  sessionName: cart\n  absoluteTimeout: 1h\n  idleTimeout: 10m\n  cookieConfig:\n    lifetimeType: Permanent\n").unwrap();
        assert_eq!(p.shape, Shape::V1_1To1_5);
        assert_eq!(p.name.as_deref(), Some("cart"));
        assert_eq!(p.idle_timeout, Some(600));
        assert_eq!(p.absolute_timeout, Some(3600));
        assert_eq!(p.lifetime, Lifetime::Permanent);
    }

    #[test]
    fn v1_6_shape_without_idle_timeout() {
        let p = sp("sessionPersistence:\n  sessionName: cart\n  type: Header\n").unwrap();
        assert_eq!(p.shape, Shape::V1_6);
        assert_eq!(p.carrier, Carrier::Header);
    }

    #[test]
    fn main_shape_with_cookie_block() {
        let p =
            sp("sessionPersistence:\n  type: Cookie\n  cookie:\n    name: cart\n    path: /shop\n")
                .unwrap();
        assert_eq!(p.shape, Shape::Main2026_08);
        assert_eq!(p.cookie_path.as_deref(), Some("/shop"));
        assert_eq!(p.lifetime, Lifetime::Session);
    }

    #[test]
    fn mixed_shapes_are_refused_at_the_field() {
        let e = sp("sessionPersistence:\n  sessionName: a\n  cookie:\n    name: b\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.yaml:3: field `sessionPersistence.cookie`"),
            "{e}"
        );
    }

    #[test]
    fn permanent_without_absolute_timeout_is_refused() {
        let e = sp("sessionPersistence:\n  cookie:\n    lifetimeType: Permanent\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sessionPersistence.cookie.lifetimeType"), "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused() {
        let e = sp("sessionPersistence:\n  sesionName: a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `sesionName`"), "{e}");
        let e = sp("sessionPersistence:\n  absoluteTimeout: 1d\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.yaml:2: field `sessionPersistence.absoluteTimeout`"),
            "{e}"
        );
    }
}
