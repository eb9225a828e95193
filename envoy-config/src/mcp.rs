//! The MCP side of the demo backend (`/mcp`): a stateful server the way the
//! streamable-HTTP transport of MCP specifies it. `initialize` mints a session
//! id and returns it in `Mcp-Session-Id`; every later request must carry it;
//! an id this instance did not mint is a 404 (the client must start over),
//! a missing one a 400; `DELETE` ends the session. It records every id it
//! minted and received, so tests can prove which instance served a session
//! and that it got back exactly the bytes it minted. Test knob: an
//! `initialize` with `x-test-id-length: N` mints an id of N characters.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

/// One instance's sessions and what it saw.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    /// Every id it minted, in order.
    pub minted: Vec<Vec<u8>>,
    /// Ids of sessions that are open.
    pub live: HashSet<Vec<u8>>,
    /// The id of every request it served for an open session, in order.
    pub received: Vec<Vec<u8>>,
    /// Ids it answered 404 to (not minted here, or ended).
    pub unknown: Vec<Vec<u8>>,
    /// Requests without an id that were not `initialize` (answered 400).
    pub missing: u64,
}

impl Sessions {
    /// Answers one request to `/mcp`: the whole HTTP/1.1 response.
    pub fn answer(
        &mut self,
        name: &str,
        method: &str,
        id: Option<&[u8]>,
        id_length: Option<usize>,
        body: &[u8],
    ) -> Vec<u8> {
        let text = String::from_utf8_lossy(body);
        if method == "POST" && is_initialize(&text) {
            let mut minted = mint();
            if let Some(n) = id_length {
                minted = minted.repeat(n / minted.len() + 1);
                minted.truncate(n);
            }
            self.minted.push(minted.clone().into_bytes());
            self.live.insert(minted.clone().into_bytes());
            let payload = format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"protocolVersion":"2025-06-18","serverInfo":{{"name":"{name}"}}}}}}"#
            );
            return response(200, name, Some(&minted), &payload);
        }
        let Some(id) = id else {
            self.missing += 1;
            return response(
                400,
                name,
                None,
                r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: Mcp-Session-Id header is required"}}"#,
            );
        };
        if !self.live.contains(id) {
            self.unknown.push(id.to_vec());
            return response(
                404,
                name,
                None,
                r#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"}}"#,
            );
        }
        self.received.push(id.to_vec());
        if method == "DELETE" {
            self.live.remove(id);
            return response(200, name, None, "{}");
        }
        let calls = self.received.iter().filter(|r| r.as_slice() == id).count();
        let payload = format!(
            r#"{{"jsonrpc":"2.0","id":2,"result":{{"backend":"{name}","session":"{}","calls":{calls}}}}}"#,
            String::from_utf8_lossy(id)
        );
        response(200, name, None, &payload)
    }
}

fn is_initialize(body: &str) -> bool {
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains(r#""method":"initialize""#)
}

/// A random UUID (version 4 layout), as MCP servers typically mint.
fn mint() -> String {
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    };
    let (a, b) = (half(), half());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn response(status: u16, name: &str, session: Option<&str>, payload: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-backend: {name}\r\ncontent-length: {}\r\n",
        payload.len()
    );
    if let Some(id) = session {
        head.push_str(&format!("mcp-session-id: {id}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(payload.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_mints_and_later_requests_need_the_id() {
        let mut s = Sessions::default();
        let init = s.answer(
            "b0",
            "POST",
            None,
            None,
            br#"{"jsonrpc":"2.0","id":1,"method": "initialize"}"#,
        );
        let text = String::from_utf8(init).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"));
        let id = s.minted[0].clone();
        assert_eq!(id.len(), 36);
        assert!(text.contains(&format!("mcp-session-id: {}", String::from_utf8_lossy(&id))));
        let ok = String::from_utf8(s.answer("b0", "POST", Some(&id), None, b"{}")).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains(r#""calls":1"#));
        let missing = String::from_utf8(s.answer("b0", "POST", None, None, b"{}")).unwrap();
        assert!(missing.starts_with("HTTP/1.1 400"));
        let other = String::from_utf8(s.answer("b0", "POST", Some(b"nope"), None, b"{}")).unwrap();
        assert!(other.starts_with("HTTP/1.1 404"));
        s.answer("b0", "DELETE", Some(&id), None, b"");
        let gone = String::from_utf8(s.answer("b0", "POST", Some(&id), None, b"{}")).unwrap();
        assert!(gone.starts_with("HTTP/1.1 404"));
        assert_ne!(mint(), mint());
        s.answer(
            "b0",
            "POST",
            None,
            Some(1000),
            br#"{"method":"initialize"}"#,
        );
        assert_eq!(s.minted.last().unwrap().len(), 1000);
    }
}
