//! Fuzz entry points shared by the cargo-fuzz targets (fuzz/, nightly, long
//! runs) and the stable `fuzz-smoke` test that replays the committed corpus
//! plus deterministic mutations on every `make test`. Each must never panic.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use crate::config::Config;
use crate::config::wire::{self, PluginConfig};
use crate::cookie::{self, Candidates};
use crate::filter;
use crate::session;
use crate::testing::FakeHost;
use crate::token;
use crate::worker::Worker;

fn fuzz_config() -> Config {
    Config::from_wire(&PluginConfig {
        session_header: Some("x-sticky-session".into()),
        strict: Some(true),
        migration: Some(wire::Migration {
            header: Some("x-legacy".into()),
            ..wire::Migration::default()
        }),
        wrap: Some(wire::Wrap {
            header: Some("mcp-session-id".into()),
            max_id_bytes: Some(64),
            issue_cookie: Some(true),
        }),
        ..crate::testing::wire()
    })
    .unwrap()
}

/// Token opening and session lookup on arbitrary bytes.
pub fn token_open(data: &[u8]) {
    let cfg = fuzz_config();
    let _ = token::open(data, &cfg.keys);
    let _ = session::lookup(&cfg, &[data], 1_700_000_000, &mut Default::default());
}

/// Cookie and session-header parsing on arbitrary bytes.
pub fn cookie_parse(data: &[u8]) {
    let mut c = Candidates::default();
    cookie::find_cookies(data, b"sticky", &mut c);
    cookie::find_header_tokens(data, &mut c);
    assert!(c.as_slice().len() <= cookie::MAX_CANDIDATES);
}

/// Plugin configuration parsing on arbitrary bytes.
pub fn config_parse(data: &[u8]) {
    let _ = Config::from_json(data);
}

/// The whole request/response flow with arbitrary header bytes: the input is
/// split at 0xff bytes into cookie, session header, client-sent host header,
/// upstream host, cluster, drain deadline, wrapped id, minted id, a legacy
/// session value, response code details and a client-sent cluster header.
/// An empty upstream host is a local reply.
pub fn filter_flow(data: &[u8]) {
    let cfg = fuzz_config();
    let mut parts = data.split(|&b| b == 0xff);
    let mut next = || parts.next().unwrap_or_default().to_vec();
    let mut host = FakeHost::default();
    host.request.push(("cookie".into(), next()));
    host.request.push(("x-sticky-session".into(), next()));
    host.request.push(("x-sticky-host".into(), next()));
    let upstream = next();
    let cluster = next();
    let deadline = next();
    host.request.push(("mcp-session-id".into(), next()));
    let minted = next();
    host.request.push(("x-legacy".into(), next()));
    let details = next();
    host.request.push(("x-sticky-cluster".into(), next()));
    let mut worker = Worker::default();
    let stream = filter::on_request(&cfg, &mut worker, &mut host, 1_700_000_000);
    assert!(host.request_values("x-sticky-host").len() <= 1);
    for value in host.request_values("x-sticky-host") {
        // Only the filter's own pin survives: base64 of an address.
        let decoded = crate::b64::decode_any(value).unwrap_or_default();
        assert!(
            crate::addr::is_socket_addr(&decoded),
            "a client-sent host header survived"
        );
    }
    host.upstream_host = (!upstream.is_empty()).then(|| upstream.clone());
    host.upstream_cluster = Some(cluster);
    host.code_details = Some(details);
    if let Ok(h) = String::from_utf8(upstream) {
        host.set_metadata(&h, "sticky", "drain_deadline", deadline);
    }
    for value in host.request_values("x-sticky-cluster") {
        assert!(
            cfg.cluster_index(value).is_some(),
            "wrote a cluster off the allow-list"
        );
    }
    host.response
        .push(("mcp-session-id".into(), minted.clone()));
    // A careless upstream reflects the internal headers.
    host.response
        .push(("x-sticky-cluster".into(), b"v2".to_vec()));
    host.response
        .push(("x-sticky-host".into(), b"eA==".to_vec()));
    filter::on_response(&cfg, &mut worker, &stream, &mut host, 1_700_000_001);
    assert!(host.response_values("x-sticky-host").is_empty());
    assert!(host.response_values("x-sticky-cluster").is_empty());
    let out = host.response_values("mcp-session-id");
    assert_eq!(out.len(), 1, "the application's header stays one header");
    if out[0] == minted.as_slice() && !minted.is_empty() {
        assert!(
            host.counter("sticky.wrap.ids_not_wrapped") == 1,
            "an id that leaves raw is counted"
        );
    }
}

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target by name (the directory names under fuzz/corpus/).
pub const TARGETS: [(&str, Target); 4] = [
    ("token_open", token_open),
    ("cookie_parse", cookie_parse),
    ("config_parse", config_parse),
    ("filter_flow", filter_flow),
];

#[cfg(test)]
mod smoke {
    //! `make fuzz-smoke`: replays fuzz/corpus/<target>/* (seeds and every
    //! crash reproducer ever found) and a fixed number of deterministic
    //! mutations of each, on the stable toolchain.

    use std::path::PathBuf;

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..=rng.below(4) {
            match rng.below(6) {
                0 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(v.len() + 1);
                    v.insert(i, rng.next() as u8);
                }
                2 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v.remove(i);
                }
                3 => v.truncate(rng.below(v.len() + 1)),
                4 => {
                    let i = rng.below(v.len() + 1);
                    let j = rng.below(other.len() + 1);
                    v.splice(i..i, other[..j].iter().copied());
                }
                _ => {
                    let i = rng.below(v.len() + 1);
                    let special: &[u8] = [
                        &b";"[..],
                        b",",
                        b"=",
                        b"\"",
                        b"\xff",
                        b"\0",
                        b"sticky=",
                        b"{",
                        b"}",
                    ][rng.below(9)];
                    v.splice(i..i, special.iter().copied());
                }
            }
        }
        v
    }

    /// Writes the seed corpus (run once: `cargo test -p sticky-core
    /// write_fuzz_seeds -- --ignored`); the files are committed.
    #[test]
    #[ignore = "regenerates fuzz/corpus seeds"]
    fn write_fuzz_seeds() {
        use crate::token::Claims;
        let cfg = super::fuzz_config();
        let claims = |cluster: &str, host: &str, exp: u64| Claims {
            cluster: cluster.into(),
            host: host.into(),
            issued_at: 1_699_999_000,
            expires_at: exp,
            last_seen: 1_699_999_900,
            key_hash: 0,
            app_id: Vec::new(),
            sealed_by_old_key: false,
        };
        let tok = |c: &Claims| crate::token::seal(c, &cfg.keys, &[7; 24]).unwrap();
        let valid = tok(&claims("v1", "10.0.1.1:8080", 1_700_000_600));
        let expired = tok(&claims("v1", "10.0.1.1:8080", 1_600_000_000));
        let other = tok(&claims("v9", "[::1]:80", 0));
        let hostless = tok(&claims("v2", "", 0));
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let write = |target: &str, name: &str, data: &[u8]| {
            std::fs::write(root.join(target).join(name), data).unwrap();
        };
        for (n, t) in [
            ("valid", &valid),
            ("expired", &expired),
            ("other", &other),
            ("hostless", &hostless),
        ] {
            write("token_open", n, t.as_bytes());
            write(
                "cookie_parse",
                n,
                format!("a=1; sticky={t}; b=\"q\", sticky=\"{t}\"").as_bytes(),
            );
        }
        write("token_open", "garbage", b"AQJrMdJb_TkjWLPI60a6E");
        write("cookie_parse", "plain", b"a=1;b=2;;=;sticky");
        write("config_parse", "design", crate::testing::config_json(r#""session_header": "x-sticky-session", "host_header": "x-sticky-host", "cluster_header": "x-sticky-cluster", "drain_metadata_namespace": "sticky", "session": {"idle_timeout_seconds": 60, "absolute_timeout_seconds": 600},"#).as_bytes());
        write(
            "config_parse",
            "minimal",
            crate::testing::config_json("").as_bytes(),
        );
        write("config_parse", "escapes", br#"{"cookie": {"name": "s\u00e9", "path": "/\ud83d\ude00"}, "clusters": ["a|b|c"], "keys": [{"id": "k", "secret": ""}]}"#);
        let flow = |cookie: &str, header: &str, upstream: &str, cluster: &str, deadline: &[u8]| {
            let mut v = Vec::new();
            for part in [
                cookie.as_bytes(),
                header.as_bytes(),
                b"",
                upstream.as_bytes(),
                cluster.as_bytes(),
                deadline,
            ] {
                v.extend_from_slice(part);
                v.push(0xff);
            }
            v.pop();
            v
        };
        write(
            "filter_flow",
            "pinned",
            &flow(&format!("sticky={valid}"), "", "10.0.1.1:8080", "v1", b""),
        );
        write(
            "filter_flow",
            "moved",
            &flow(&format!("sticky={valid}"), "", "10.0.1.2:8080", "v1", b""),
        );
        write(
            "filter_flow",
            "drained",
            &flow(
                &format!("sticky={valid}"),
                "",
                "10.0.1.1:8080",
                "v1",
                &1_600_000_000f64.to_le_bytes(),
            ),
        );
        write(
            "filter_flow",
            "header",
            &flow("", &hostless, "10.0.2.1:8080", "v2", b"1700000000"),
        );
        write(
            "filter_flow",
            "fresh",
            &flow("", "", "[::1]:8080", "v2", b""),
        );
    }

    #[test]
    fn fuzz_smoke_replays_corpus_and_mutations() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for (name, target) in super::TARGETS {
            let seeds = corpus(name);
            assert!(!seeds.is_empty(), "fuzz/corpus/{name} is empty");
            for seed in &seeds {
                target(seed);
            }
            for i in 0..20_000 {
                let a = &seeds[i % seeds.len()];
                let b = &seeds[rng.below(seeds.len())];
                target(&mutate(&mut rng, a, b));
            }
        }
    }
}
