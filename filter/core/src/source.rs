//! Where a session travels between the client and the filter, as Envoy's
//! `stateful_session` codecs do it: each [`SessionSource`] finds its
//! candidate values in the request header it is carried in, and hands the
//! sealed token back in the response. The filter reads each header once (the
//! cookies are shared by the sticky and the legacy cookie) and decides which
//! candidate holds; the sources only decode and encode.

use crate::config::{CookieConfig, MigrationConfig, WrapConfig};
use crate::cookie::{self, Candidates};
use crate::host::Host;

/// One way a session reaches the filter and goes back to the client.
pub trait SessionSource {
    /// Collects this source's candidate values from the request header it
    /// is carried in (the joined cookies, or its own header).
    fn candidates<'a>(&self, carried: &'a [u8], out: &mut Candidates<'a>);
    /// Hands the sealed `token` back to the client in the response.
    fn write<H: Host>(&self, host: &mut H, token: &str);
}

/// The sticky cookie (`cookie.name`): `Set-Cookie` on the way back.
#[derive(Debug, Clone, Copy)]
pub struct CookieSource<'a>(pub &'a CookieConfig);

impl SessionSource for CookieSource<'_> {
    #[inline]
    fn candidates<'a>(&self, carried: &'a [u8], out: &mut Candidates<'a>) {
        cookie::find_cookies(carried, self.0.name.as_bytes(), out);
    }

    fn write<H: Host>(&self, host: &mut H, token: &str) {
        let set_cookie = cookie::set_cookie(self.0, token);
        host.add_response_header("set-cookie", set_cookie.as_bytes());
    }
}

/// The session header (`session_header`), for clients without cookies.
#[derive(Debug, Clone, Copy)]
pub struct HeaderSource<'a>(pub &'a str);

impl SessionSource for HeaderSource<'_> {
    #[inline]
    fn candidates<'a>(&self, carried: &'a [u8], out: &mut Candidates<'a>) {
        cookie::find_header_tokens(carried, out);
    }

    fn write<H: Host>(&self, host: &mut H, token: &str) {
        host.set_response_header(self.0, token.as_bytes());
    }
}

/// Envoy's native session cookie (`migration.cookie`): read, and expired
/// once a sealed token replaces it.
#[derive(Debug, Clone, Copy)]
pub struct LegacyCookieSource<'a> {
    /// The legacy cookie's name.
    pub name: &'a str,
    /// Its `Path` (a cookie is expired only under its own path).
    pub path: &'a str,
}

impl<'a> LegacyCookieSource<'a> {
    /// The legacy cookie migration accepts, if any.
    pub fn of(migration: &'a MigrationConfig) -> Option<Self> {
        let name = migration.cookie.as_deref()?;
        Some(Self {
            name,
            path: &migration.cookie_path,
        })
    }
}

impl SessionSource for LegacyCookieSource<'_> {
    #[inline]
    fn candidates<'a>(&self, carried: &'a [u8], out: &mut Candidates<'a>) {
        cookie::find_cookies(carried, self.name.as_bytes(), out);
    }

    /// The sealed token goes out through the sticky cookie: this expires
    /// the legacy one.
    fn write<H: Host>(&self, host: &mut H, _token: &str) {
        let expire = cookie::expire_cookie(self.name, self.path);
        host.add_response_header("set-cookie", expire.as_bytes());
    }
}

/// A legacy session header (`migration.header`: Envoy's
/// `HeaderBasedSessionState`, gRPC A55 style): read only.
#[derive(Debug, Clone, Copy)]
pub struct LegacyHeaderSource<'a>(pub &'a str);

impl SessionSource for LegacyHeaderSource<'_> {
    #[inline]
    fn candidates<'a>(&self, carried: &'a [u8], out: &mut Candidates<'a>) {
        cookie::find_header_tokens(carried, out);
    }

    /// Clients that send it get the sticky token through the other sources.
    fn write<H: Host>(&self, _host: &mut H, _token: &str) {}
}

/// Wrap mode: the application's own session header carries the sealed id.
#[derive(Debug, Clone, Copy)]
pub struct WrapSource<'a>(pub &'a WrapConfig);

impl SessionSource for WrapSource<'_> {
    #[inline]
    fn candidates<'a>(&self, carried: &'a [u8], out: &mut Candidates<'a>) {
        out.push(carried);
    }

    fn write<H: Host>(&self, host: &mut H, token: &str) {
        host.set_response_header(&self.0.header, token.as_bytes());
    }
}

#[cfg(test)]
mod tests;
