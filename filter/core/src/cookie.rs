//! Reading the session token out of `Cookie` headers and writing `Set-Cookie`.

use crate::config::CookieConfig;

/// At most this many candidate tokens are considered per request; the rest
/// are ignored so a hostile header cannot make the filter do unbounded work.
pub const MAX_CANDIDATES: usize = 4;

/// Candidate token values found in a request, in header order.
#[derive(Debug, Default)]
pub struct Candidates<'a> {
    values: [&'a [u8]; MAX_CANDIDATES],
    len: usize,
    /// Whether more candidates were present than were kept.
    pub truncated: bool,
}

impl<'a> Candidates<'a> {
    /// The kept candidate values.
    pub fn as_slice(&self) -> &[&'a [u8]] {
        self.values.get(..self.len).unwrap_or_default()
    }

    /// Adds a candidate unless it is empty or already present.
    pub fn push(&mut self, value: &'a [u8]) {
        if value.is_empty() || self.as_slice().contains(&value) {
            return;
        }
        match self.values.get_mut(self.len) {
            Some(slot) => {
                *slot = value;
                self.len = self.len.saturating_add(1);
            }
            None => self.truncated = true,
        }
    }

    /// Whether no candidate was found.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Collects the values of cookies named `name` from one or more `Cookie`
/// header values joined in `header`. Crumbs may be separated by `;` (one
/// header, or HTTP/2 crumbs joined by Envoy) or `,` (several HTTP/1 headers
/// joined by Envoy's `request.headers.cookie` property); a value may be quoted.
pub fn find_cookies<'a>(header: &'a [u8], name: &[u8], out: &mut Candidates<'a>) {
    for crumb in header.split(|&b| b == b';' || b == b',') {
        let crumb = trim(crumb);
        let Some(eq) = crumb.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = crumb.split_at(eq);
        if trim(key) != name {
            continue;
        }
        out.push(unquote(trim(value.get(1..).unwrap_or_default())));
    }
}

/// Collects token values from a session header; repeated headers arrive
/// joined with `,`.
pub fn find_header_tokens<'a>(header: &'a [u8], out: &mut Candidates<'a>) {
    for part in header.split(|&b| b == b',') {
        out.push(unquote(trim(part)));
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// Builds the `Set-Cookie` value carrying `token`.
pub fn set_cookie(cfg: &CookieConfig, token: &str) -> String {
    let mut out = String::with_capacity(
        token
            .len()
            .saturating_add(cfg.name.len())
            .saturating_add(96),
    );
    out.push_str(&cfg.name);
    out.push('=');
    out.push_str(token);
    if cfg.ttl_seconds > 0 {
        out.push_str("; Max-Age=");
        out.push_str(&cfg.ttl_seconds.to_string());
    }
    out.push_str("; Path=");
    out.push_str(&cfg.path);
    if let Some(domain) = &cfg.domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if cfg.secure {
        out.push_str("; Secure");
    }
    if cfg.http_only {
        out.push_str("; HttpOnly");
    }
    out.push_str("; SameSite=");
    out.push_str(cfg.same_site.as_str());
    out
}

/// Builds the `Set-Cookie` value that makes a browser drop the cookie
/// `name` set for `path` (a legacy cookie a sealed token replaced).
pub fn expire_cookie(name: &str, path: &str) -> String {
    format!("{name}=; Max-Age=0; Path={path}")
}

#[cfg(test)]
mod tests;
