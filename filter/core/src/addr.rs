//! Validation of "ip:port" strings (`[v6]:port` for IPv6), as Envoy's
//! `upstream.address` writes them. Hand-written rather than
//! `str::parse::<SocketAddr>` because it runs on every request and std's
//! general address parser costs ~4 KB of wasm; a property test checks it
//! agrees with std on the canonical forms Envoy produces.

/// Whether `s` is a literal "ip:port" (IPv6 in brackets, no zone id).
pub fn is_socket_addr(s: &[u8]) -> bool {
    match s {
        [b'[', rest @ ..] => {
            let Some(close) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let (ip, after) = rest.split_at(close);
            match after {
                [b']', b':', port @ ..] => is_port(port) && is_ipv6(ip),
                _ => false,
            }
        }
        _ => {
            let Some(colon) = s.iter().rposition(|&b| b == b':') else {
                return false;
            };
            let (ip, port) = s.split_at(colon);
            is_port(port.get(1..).unwrap_or_default()) && is_ipv4(ip)
        }
    }
}

fn is_port(p: &[u8]) -> bool {
    !p.is_empty() && p.len() <= 5 && decimal(p).is_some_and(|v| v <= 65_535)
}

fn decimal(d: &[u8]) -> Option<u32> {
    d.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| {
            acc.saturating_mul(10)
                .saturating_add(u32::from(b.wrapping_sub(b'0')))
        })
    })
}

fn is_ipv4(ip: &[u8]) -> bool {
    let mut parts = 0usize;
    for octet in ip.split(|&b| b == b'.') {
        parts = parts.saturating_add(1);
        let leading_zero = octet.len() > 1 && octet.first() == Some(&b'0');
        if octet.is_empty()
            || octet.len() > 3
            || leading_zero
            || decimal(octet).is_none_or(|v| v > 255)
        {
            return false;
        }
    }
    parts == 4
}

fn is_ipv6(ip: &[u8]) -> bool {
    if ip.is_empty() {
        return false;
    }
    let (head, tail, compressed) = match ip.windows(2).position(|w| w == b"::") {
        Some(at) => (
            ip.get(..at).unwrap_or_default(),
            ip.get(at.saturating_add(2)..).unwrap_or_default(),
            true,
        ),
        None => (ip, &[][..], false),
    };
    let Some(head_groups) = groups(head, !compressed) else {
        return false;
    };
    let Some(tail_groups) = groups(tail, true) else {
        return false;
    };
    let total = head_groups.saturating_add(tail_groups);
    if compressed { total <= 7 } else { total == 8 }
}

/// Counts the 16-bit groups of one side of `::`; an embedded IPv4 address
/// (only allowed at the very end) counts as two.
fn groups(side: &[u8], may_end_with_v4: bool) -> Option<usize> {
    if side.is_empty() {
        return Some(0);
    }
    let parts: Vec<&[u8]> = side.split(|&b| b == b':').collect();
    let last = parts.len().saturating_sub(1);
    let mut n = 0usize;
    for (i, part) in parts.iter().enumerate() {
        if i == last && may_end_with_v4 && part.contains(&b'.') {
            if !is_ipv4(part) {
                return None;
            }
            n = n.saturating_add(2);
        } else if !part.is_empty() && part.len() <= 4 && part.iter().all(u8::is_ascii_hexdigit) {
            n = n.saturating_add(1);
        } else {
            return None;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn std_ok(s: &str) -> bool {
        s.parse::<std::net::SocketAddr>().is_ok()
    }

    #[test]
    fn accepts_what_envoy_writes() {
        for ok in [
            "10.0.0.7:8080",
            "127.0.0.1:0",
            "255.255.255.255:65535",
            "[::1]:80",
            "[fe80::1:2]:9",
            "[2001:db8::]:443",
            "[::ffff:10.0.0.1]:80",
            "[1:2:3:4:5:6:7:8]:1",
        ] {
            assert!(is_socket_addr(ok.as_bytes()), "{ok}");
            assert!(std_ok(ok), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            ":80",
            "10.0.0.7",
            "10.0.0.7:",
            "10.0.0.7:65536",
            "10.0.0.256:1",
            "10.0.0:1",
            "10.0.0.7.8:1",
            "01.0.0.7:1",
            "host:80",
            "[::1]",
            "[::1:80",
            "::1:80",
            "[1:2:3:4:5:6:7:8:9]:1",
            "[1::2::3]:1",
            "[12345::]:1",
            "[:::]:1",
            "10.0.0.7:+80",
            "[::1]:8a",
        ] {
            assert!(!is_socket_addr(bad.as_bytes()), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_std_on_v4(a in any::<[u8; 4]>(), port in any::<u16>()) {
            let s = format!("{}.{}.{}.{}:{port}", a[0], a[1], a[2], a[3]);
            prop_assert!(is_socket_addr(s.as_bytes()));
        }

        #[test]
        fn agrees_with_std_on_v6(seg in any::<[u16; 8]>(), port in any::<u16>()) {
            let ip = std::net::Ipv6Addr::from(seg);
            let s = format!("[{ip}]:{port}");
            prop_assert!(is_socket_addr(s.as_bytes()), "{}", s);
        }

        #[test]
        fn never_accepts_what_std_refuses(s in "[0-9a-f:.\\[\\]]{0,24}") {
            if is_socket_addr(s.as_bytes()) {
                prop_assert!(std_ok(&s), "{}", s);
            }
        }
    }
}
