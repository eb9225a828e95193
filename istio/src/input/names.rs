//! Names the policy gives to things the filter reads or writes (cookies,
//! headers), checked the way the plugin config checks them.

use crate::error::Result;
use crate::yaml::Document;

/// Checks a cookie or header name is an HTTP token, naming the field otherwise.
pub fn token_name(doc: &Document, field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(sticky_core::config::is_tchar) {
        return Err(doc.error(
            field,
            format!("{name:?} must be 1-64 characters of an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"),
        ));
    }
    Ok(())
}
