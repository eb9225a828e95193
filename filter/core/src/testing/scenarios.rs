//! The scenario table: named end-to-end cases, each a configuration and a
//! script of requests through the [`Sim`]. The same table runs against the
//! core natively ([`NativeRunner`](super::sim::NativeRunner), below) and
//! against the compiled `dist/sticky.wasm` in host-tests; each run asserts
//! the end state and yields a [`Transcript`], and host-tests checks that
//! both transcripts agree step by step (same backend, byte-identical
//! `Set-Cookie`, same request headers after the filter, same counters).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::sim::{Client, Exchange, Health, Runner, Sim};
use super::{FakeHost, KEY_A, KEY_B, json};
use crate::config::wire::{self, PluginConfig};
use crate::keys::{Key, KeyId, Keyring, NONCE_LEN};
use crate::token::{self, Claims};

/// One named case.
pub struct Scenario {
    /// The behaviour it pins, as a test name.
    pub name: &'static str,
    /// The plugin configuration loaded before the script runs.
    pub config: fn() -> String,
    /// The script: requests, clock and topology changes, and assertions.
    pub run: fn(&mut Script<'_>),
}

/// Any runner behind a reference, so one non-generic script drives both.
pub struct DynRunner<'a>(pub &'a mut dyn Runner);

impl Runner for DynRunner<'_> {
    fn configure(&mut self, json: &[u8]) -> bool {
        self.0.configure(json)
    }
    fn on_request(&mut self, host: &mut FakeHost, now: u64) {
        self.0.on_request(host, now);
    }
    fn on_response(&mut self, host: &mut FakeHost, now: u64) {
        self.0.on_response(host, now);
    }
    fn logs(&self) -> Vec<String> {
        self.0.logs()
    }
}

/// What one request looked like from outside the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which request of the script.
    pub label: String,
    /// The cluster that served it.
    pub cluster: Option<String>,
    /// The host that served it.
    pub host: Option<String>,
    /// Request headers as Envoy saw them after the filter.
    pub request: Vec<(String, Vec<u8>)>,
    /// Response headers as the client got them.
    pub response: Vec<(String, Vec<u8>)>,
    /// Every counter after the request.
    pub counters: BTreeMap<&'static str, u64>,
    /// Drain-metadata reads so far (the filter must rate-limit them).
    pub metadata_reads: u64,
}

/// Everything a scenario run produced.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// The scenario's name.
    pub scenario: &'static str,
    /// Result of every `configure`, in order.
    pub configures: Vec<bool>,
    /// One entry per request.
    pub steps: Vec<Step>,
    /// The runner's log lines at the end.
    pub logs: Vec<String>,
}

/// A scenario in progress: the sim plus the transcript being written.
pub struct Script<'a> {
    /// The simulated proxy around the runner.
    pub sim: Sim<DynRunner<'a>>,
    transcript: Transcript,
}

impl Script<'_> {
    /// Sends one request from `client` and records it.
    pub fn send(&mut self, label: &str, client: &mut Client) -> Exchange {
        let exchange = self.sim.send(client);
        let n = self.transcript.steps.len() + 1;
        self.transcript.steps.push(Step {
            label: format!("#{n} {label}"),
            cluster: exchange.cluster.clone(),
            host: exchange.host.clone(),
            request: exchange.request.clone(),
            response: exchange.response.clone(),
            counters: self.sim.host.counters.clone(),
            metadata_reads: self.sim.host.metadata_reads,
        });
        exchange
    }

    /// Loads a configuration and records whether the filter took it.
    pub fn configure(&mut self, json: &str) -> bool {
        let ok = self.sim.runner.configure(json.as_bytes());
        self.transcript.configures.push(ok);
        ok
    }

    /// Whether the scenario's own configuration was accepted.
    pub fn configured(&self) -> bool {
        self.transcript.configures.first().copied().unwrap_or(false)
    }

    /// A counter's value.
    pub fn counter(&self, name: &str) -> u64 {
        self.sim.host.counter(name)
    }

    /// The runner's log lines (and the warnings the filter logged through
    /// the fake host, where the runner routes them there).
    pub fn logs(&self) -> Vec<String> {
        let mut logs = self.sim.runner.logs();
        logs.extend(self.sim.host.logs.iter().cloned());
        logs
    }
}

/// Runs one scenario on a fresh, unconfigured runner.
pub fn run(scenario: &Scenario, runner: &mut dyn Runner) -> Transcript {
    let mut script = Script {
        sim: Sim::new(DynRunner(runner)),
        transcript: Transcript {
            scenario: scenario.name,
            ..Transcript::default()
        },
    };
    script.configure(&(scenario.config)());
    (scenario.run)(&mut script);
    let logs = script.logs();
    let mut transcript = script.transcript;
    transcript.logs = logs;
    transcript
}

/// Runs one scenario; a failed assertion becomes `Err` with its message.
pub fn run_checked(scenario: &Scenario, runner: &mut dyn Runner) -> Result<Transcript, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(scenario, runner))).map_err(
        |panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            format!("scenario `{}` failed: {text}", scenario.name)
        },
    )
}

/// Checks that two runs of one scenario agree: same configure results, same
/// steps, and every log line of `expected` appears inside one of `actual`
/// (the wasm build prefixes its lines and logs more on success).
pub fn compare(expected: &Transcript, actual: &Transcript) -> Result<(), String> {
    let name = expected.scenario;
    if expected.configures != actual.configures {
        return Err(format!(
            "scenario `{name}`: configure results differ: {:?} vs {:?}",
            expected.configures, actual.configures
        ));
    }
    for (a, b) in expected.steps.iter().zip(&actual.steps) {
        if a != b {
            return Err(format!(
                "scenario `{name}`: step {} differs\n--- expected\n{}--- actual\n{}",
                a.label,
                describe(a),
                describe(b)
            ));
        }
    }
    if expected.steps.len() != actual.steps.len() {
        return Err(format!(
            "scenario `{name}`: {} steps vs {}",
            expected.steps.len(),
            actual.steps.len()
        ));
    }
    for line in &expected.logs {
        if !actual.logs.iter().any(|l| l.contains(line.as_str())) {
            return Err(format!(
                "scenario `{name}`: log line {line:?} missing from {:?}",
                actual.logs
            ));
        }
    }
    Ok(())
}

/// A step as readable text (long values cut).
pub fn describe(step: &Step) -> String {
    let show = |v: &[u8]| {
        let text = String::from_utf8_lossy(v);
        if text.chars().count() > 120 {
            format!(
                "{}… ({} bytes)",
                text.chars().take(120).collect::<String>(),
                v.len()
            )
        } else {
            text.into_owned()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "served by {:?} / {:?}", step.cluster, step.host);
    for (n, v) in &step.request {
        let _ = writeln!(out, "  > {n}: {}", show(v));
    }
    for (n, v) in &step.response {
        let _ = writeln!(out, "  < {n}: {}", show(v));
    }
    let _ = writeln!(
        out,
        "  counters {:?}, metadata reads {}",
        step.counters, step.metadata_reads
    );
    out
}

// ---------------------------------------------------------------------------
// Helpers for scripts.

const V1_HOST_2: &str = "10.0.1.2:8080";

/// The token a response set, if any.
pub fn token_of(e: &Exchange) -> Option<String> {
    let sc = e.set_cookies().into_iter().next()?;
    let pair = sc.split(';').next()?;
    pair.strip_prefix("sticky=").map(str::to_owned)
}

/// A token sealed with key `id` whose secret is 32 bytes of `fill`.
pub fn forge(id: &str, fill: u8, claims: &Claims) -> String {
    let keys = Keyring::new(vec![Key::new(KeyId::new(id).unwrap(), &[fill; 32])]);
    token::seal(claims, &keys, &[7; NONCE_LEN]).unwrap()
}

/// Claims for `cluster`/`host`, valid for 500 s around `now`.
pub fn claims(cluster: &str, host: &str, now: u64) -> Claims {
    Claims {
        cluster: cluster.into(),
        host: host.into(),
        issued_at: now - 10,
        expires_at: now + 500,
        last_seen: now - 10,
        key_hash: 0,
        app_id: Vec::new(),
        sealed_by_old_key: false,
    }
}

/// A config with the given keys (id, base64 secret), in sealing order.
pub fn config_with_keys(keys: &[(&str, &str)]) -> String {
    json(&PluginConfig {
        keys: Some(
            keys.iter()
                .map(|(id, secret)| wire::Key::new(id, secret))
                .collect(),
        ),
        ..super::wire()
    })
}

/// The key id a token was sealed with.
pub fn key_id_of(token: &str) -> String {
    let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    let len = usize::from(raw[1]);
    String::from_utf8(raw[2..2 + len].to_vec()).unwrap()
}

fn rejected(s: &Script<'_>) -> u64 {
    s.sim
        .host
        .counters
        .iter()
        .filter(|(k, _)| k.starts_with("sticky.tokens_rejected."))
        .map(|(_, v)| *v)
        .sum()
}

/// Asserts the filter steered nothing: no internal headers reached Envoy.
fn assert_unsteered(e: &Exchange) {
    assert_eq!(
        e.request_header("x-sticky-cluster"),
        None,
        "no cluster steering"
    );
    assert_eq!(e.request_header("x-sticky-host"), None, "no host steering");
}

/// Asserts the request was steered to `cluster`/`host`.
fn assert_steered(e: &Exchange, cluster: &str, host: &str) {
    assert_eq!(
        e.request_header("x-sticky-cluster").as_deref(),
        Some(cluster)
    );
    assert_eq!(
        e.request_header("x-sticky-host"),
        Some(STANDARD.encode(host)),
        "host header is base64(ip:port) for stateful_session"
    );
    assert_eq!(e.cluster.as_deref(), Some(cluster));
    assert_eq!(e.host.as_deref(), Some(host));
}

/// Asserts the response never leaks the internal host header.
fn assert_no_leak(e: &Exchange) {
    assert_eq!(
        e.response_header("x-sticky-host"),
        None,
        "internal header leaked"
    );
}

fn default_config() -> String {
    json(&super::wire())
}

fn header_config() -> String {
    json(&PluginConfig {
        session_header: Some("x-sticky-session".into()),
        ..super::wire()
    })
}

/// Calls `$callback!` with the name of every scenario of [`all`], so each
/// runner generates one `#[test]` per scenario and one case runs by name
/// (`cargo test -p sticky-core scenarios::pinned_session_stays_on_its_cluster_and_host`).
/// A test checks that this list and the table agree.
#[macro_export]
macro_rules! for_each_scenario {
    ($callback:ident) => {
        $callback!(
            new_session_gets_one_cookie_naming_its_backend,
            pinned_session_stays_on_its_cluster_and_host,
            tampered_token_is_rejected_and_replaced,
            truncated_token_is_rejected,
            expired_token_starts_a_fresh_session,
            token_of_an_unknown_key_is_rejected,
            token_forged_under_a_known_key_id_is_tampered,
            token_naming_a_cluster_off_the_allow_list_is_rejected,
            rotated_keys_keep_old_sessions_and_seal_with_the_first,
            canary_split_keeps_cluster_and_host,
            draining_host_keeps_its_sessions_before_the_deadline,
            sessions_leave_a_draining_host_after_the_deadline,
            draining_flag_keeps_sessions_but_pins_no_new_ones,
            unhealthy_host_is_repinned_within_its_cluster,
            idle_timeout_refreshes_active_sessions_and_ends_idle_ones,
            header_mode_pins_a_client_without_cookies,
            token_in_any_of_several_cookie_headers_is_found,
            of_two_valid_tokens_the_most_recent_wins,
            non_utf8_and_nul_bytes_are_no_session,
            huge_cookie_headers_are_no_session,
            client_sent_internal_headers_are_removed,
            strict_gone_host_is_one_503_then_another_host_of_the_cluster,
            internal_headers_an_upstream_reflects_never_reach_the_client,
            local_reply_gets_no_cookie,
            browser_session_cookie_has_no_max_age_and_its_token_expires,
            bad_config_is_refused_naming_the_field_and_passes_requests,
            refused_reconfiguration_keeps_the_running_config,
            envoy_native_cookie_migrates_to_a_sealed_token,
            shard_keys_route_by_jump_hash_and_missing_keys_get_400,
            wrap_mode_seals_minted_ids_and_restores_them,
            wrap_mode_ids_follow_drain_and_repin,
        );
    };
}

/// The scenario named `name`.
pub fn named(name: &str) -> Scenario {
    all()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario `{name}` in the table"))
}

/// Runs scenario `name` on `reference` and on `runner`: both must pass the
/// scenario's own assertions and agree step by step. Panics with the
/// difference otherwise.
pub fn check_agreement(name: &str, reference: &mut dyn Runner, runner: &mut dyn Runner) {
    let scenario = named(name);
    let result = match (
        run_checked(&scenario, reference),
        run_checked(&scenario, runner),
    ) {
        (Ok(r), Ok(m)) => compare(&r, &m),
        (Err(r), Ok(_)) => Err(format!("reference run: {r}")),
        (Ok(_), Err(m)) => Err(format!("run under test: {m}")),
        (Err(r), Err(m)) => Err(format!("reference run: {r}\nrun under test: {m}")),
    };
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// The table.

/// Every scenario, in a stable order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "new_session_gets_one_cookie_naming_its_backend",
            config: default_config,
            run: new_session,
        },
        Scenario {
            name: "pinned_session_stays_on_its_cluster_and_host",
            config: default_config,
            run: pinned_session,
        },
        Scenario {
            name: "tampered_token_is_rejected_and_replaced",
            config: default_config,
            run: tampered_token,
        },
        Scenario {
            name: "truncated_token_is_rejected",
            config: default_config,
            run: truncated_token,
        },
        Scenario {
            name: "expired_token_starts_a_fresh_session",
            config: default_config,
            run: expired_token,
        },
        Scenario {
            name: "token_of_an_unknown_key_is_rejected",
            config: default_config,
            run: unknown_key_token,
        },
        Scenario {
            name: "token_forged_under_a_known_key_id_is_tampered",
            config: default_config,
            run: forged_token,
        },
        Scenario {
            name: "token_naming_a_cluster_off_the_allow_list_is_rejected",
            config: default_config,
            run: unknown_cluster_token,
        },
        Scenario {
            name: "rotated_keys_keep_old_sessions_and_seal_with_the_first",
            config: default_config,
            run: key_rotation,
        },
        Scenario {
            name: "canary_split_keeps_cluster_and_host",
            config: default_config,
            run: canary_split,
        },
        Scenario {
            name: "draining_host_keeps_its_sessions_before_the_deadline",
            config: default_config,
            run: drain_before_deadline,
        },
        Scenario {
            name: "sessions_leave_a_draining_host_after_the_deadline",
            config: default_config,
            run: drain_after_deadline,
        },
        Scenario {
            name: "draining_flag_keeps_sessions_but_pins_no_new_ones",
            config: default_config,
            run: draining_flag,
        },
        Scenario {
            name: "unhealthy_host_is_repinned_within_its_cluster",
            config: default_config,
            run: unhealthy_host,
        },
        Scenario {
            name: "idle_timeout_refreshes_active_sessions_and_ends_idle_ones",
            config: || {
                json(&PluginConfig {
                    session: Some(wire::Session {
                        idle_timeout_seconds: Some(60),
                        ..wire::Session::default()
                    }),
                    ..super::wire()
                })
            },
            run: idle_timeout,
        },
        Scenario {
            name: "header_mode_pins_a_client_without_cookies",
            config: header_config,
            run: header_mode,
        },
        Scenario {
            name: "token_in_any_of_several_cookie_headers_is_found",
            config: default_config,
            run: multiple_cookie_headers,
        },
        Scenario {
            name: "of_two_valid_tokens_the_most_recent_wins",
            config: default_config,
            run: conflicting_tokens,
        },
        Scenario {
            name: "non_utf8_and_nul_bytes_are_no_session",
            config: header_config,
            run: hostile_bytes,
        },
        Scenario {
            name: "huge_cookie_headers_are_no_session",
            config: default_config,
            run: huge_values,
        },
        Scenario {
            name: "client_sent_internal_headers_are_removed",
            config: default_config,
            run: client_internal_headers,
        },
        Scenario {
            name: "strict_gone_host_is_one_503_then_another_host_of_the_cluster",
            config: || {
                json(&PluginConfig {
                    strict: Some(true),
                    ..super::wire()
                })
            },
            run: strict_gone_host,
        },
        Scenario {
            name: "internal_headers_an_upstream_reflects_never_reach_the_client",
            config: default_config,
            run: reflected_internal_headers,
        },
        Scenario {
            name: "local_reply_gets_no_cookie",
            config: default_config,
            run: local_reply,
        },
        Scenario {
            name: "browser_session_cookie_has_no_max_age_and_its_token_expires",
            config: || {
                json(&PluginConfig {
                    cookie: Some(wire::Cookie {
                        name: Some("sticky".into()),
                        ttl_seconds: Some(0),
                        secure: Some(true),
                        same_site: Some("Strict".into()),
                        path: Some("/app".into()),
                        ..wire::Cookie::default()
                    }),
                    ..super::wire()
                })
            },
            run: browser_session_cookie,
        },
        Scenario {
            name: "bad_config_is_refused_naming_the_field_and_passes_requests",
            config: || {
                r#"{"clusters": ["v1", "v2"], "keys": [{"id": "a", "secret": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}],
                    "cookie": {"same_site": "sometimes"}}"#
                    .to_owned()
            },
            run: bad_config,
        },
        Scenario {
            name: "refused_reconfiguration_keeps_the_running_config",
            config: default_config,
            run: refused_reconfiguration,
        },
        Scenario {
            name: "envoy_native_cookie_migrates_to_a_sealed_token",
            config: || {
                json(&PluginConfig {
                    migration: Some(wire::Migration {
                        envoy_cookie: Some("envoy-session".into()),
                        cluster: Some("v2".into()),
                        ..wire::Migration::default()
                    }),
                    ..super::wire()
                })
            },
            run: legacy_migration,
        },
        Scenario {
            name: "shard_keys_route_by_jump_hash_and_missing_keys_get_400",
            config: || {
                json(&PluginConfig {
                    cookie: Some(wire::Cookie {
                        secure: Some(false),
                        ..wire::Cookie::default()
                    }),
                    sharding: Some(wire::Sharding {
                        key: Some(wire::ShardKey {
                            query: Some("room".into()),
                            ..wire::ShardKey::default()
                        }),
                        clusters: Some(vec!["shard-0".into(), "shard-1".into(), "shard-2".into()]),
                        missing_key: Some("reject".into()),
                        ..wire::Sharding::default()
                    }),
                    ..PluginConfig::new(&["v1"], "a", KEY_A)
                })
            },
            run: sharded_keys,
        },
        Scenario {
            name: "wrap_mode_seals_minted_ids_and_restores_them",
            config: wrap_config,
            run: wrap_mode,
        },
        Scenario {
            name: "wrap_mode_ids_follow_drain_and_repin",
            config: wrap_config,
            run: wrap_drain,
        },
    ]
}

const MCP: &str = "mcp-session-id";

fn wrap_config() -> String {
    json(&PluginConfig {
        wrap: Some(wire::Wrap {
            header: Some("Mcp-Session-Id".into()),
            max_id_bytes: Some(64),
            ..wire::Wrap::default()
        }),
        ..super::wire()
    })
}

/// A client that keeps no cookies and echoes the `mcp-session-id` it got.
fn echo(id: Option<&str>) -> Client {
    let mut c = Client {
        no_cookies: true,
        ..Client::default()
    };
    if let Some(id) = id {
        c.extra.push((MCP.into(), id.as_bytes().to_vec()));
    }
    c
}

/// Sends from an echoing client whose current value is `id`; the backend
/// adds `minted` to the response. Returns the exchange and the value the
/// client holds afterwards.
fn wrap_send(
    s: &mut Script<'_>,
    label: &str,
    id: Option<&str>,
    minted: Option<&str>,
) -> (Exchange, Option<String>) {
    s.sim.app_response = minted
        .map(|m| vec![(MCP.to_owned(), m.as_bytes().to_vec())])
        .unwrap_or_default();
    let e = s.send(label, &mut echo(id));
    s.sim.app_response.clear();
    let held = e.response_header(MCP).or_else(|| id.map(str::to_owned));
    (e, held)
}

fn wrap_mode(s: &mut Script<'_>) {
    let (e, _) = wrap_send(s, "no id yet", None, None);
    assert!(e.set_cookies().is_empty() && e.response_header(MCP).is_none());
    let (first, held) = wrap_send(s, "initialize: the backend mints", None, Some("sess-1"));
    let token = held.unwrap();
    assert_ne!(token, "sess-1");
    assert!(first.set_cookies().is_empty(), "wrap mode sets no cookie");
    let (cluster, host) = (first.cluster.clone().unwrap(), first.host.clone().unwrap());
    for i in 0..3 {
        let (e, held) = wrap_send(s, &format!("echoed {i}"), Some(&token), None);
        assert_steered(&e, &cluster, &host);
        assert_eq!(e.request_header(MCP).as_deref(), Some("sess-1"), "restored");
        assert_eq!(held.as_deref(), Some(token.as_str()), "nothing re-issued");
    }
    let (e, held) = wrap_send(s, "the backend echoes the id", Some(&token), Some("sess-1"));
    assert_steered(&e, &cluster, &host);
    let rewrapped = held.unwrap();
    assert_ne!(rewrapped, "sess-1");
    let (e, held) = wrap_send(
        s,
        "the backend changes the id",
        Some(&rewrapped),
        Some("sess-2"),
    );
    assert_eq!(e.request_header(MCP).as_deref(), Some("sess-1"));
    let (e, _) = wrap_send(s, "the new id", held.as_deref(), None);
    assert_steered(&e, &cluster, &host);
    assert_eq!(e.request_header(MCP).as_deref(), Some("sess-2"));
    assert_eq!(s.counter("sticky.sessions_created"), 2);
    assert_eq!(s.counter("sticky.wrap.ids_wrapped"), 3);
    let (e, _) = wrap_send(s, "a raw id", Some("raw-id"), None);
    assert_unsteered(&e);
    assert_eq!(
        e.request_header(MCP).as_deref(),
        Some("raw-id"),
        "untouched"
    );
    assert_eq!(s.counter("sticky.wrap.ids_unopened"), 1);
    assert!(
        s.logs()
            .iter()
            .any(|l| l.contains("mcp-session-id value could not be opened (malformed)")),
        "{:?}",
        s.logs()
    );
    let long = "L".repeat(65);
    let (e, held) = wrap_send(s, "an id over max_id_bytes", None, Some(&long));
    assert_eq!(held.as_deref(), Some(long.as_str()), "left as it was");
    assert!(e.set_cookies().is_empty());
    assert_eq!(s.counter("sticky.wrap.ids_not_wrapped"), 1);
}

fn wrap_drain(s: &mut Script<'_>) {
    let (first, held) = wrap_send(s, "initialize", None, Some("d-1"));
    let mut token = held.unwrap();
    let host = first.host.clone().unwrap();
    let deadline = s.sim.now + 30;
    set_deadline(s, &host, deadline);
    s.sim.now += 1;
    let (e, _) = wrap_send(s, "draining, before the deadline", Some(&token), None);
    assert_eq!(e.host.as_deref(), Some(host.as_str()));
    s.sim.now = deadline;
    let mut moved = None;
    for i in 0..2 {
        let (e, held) = wrap_send(s, &format!("past the deadline {i}"), Some(&token), None);
        assert_eq!(e.request_header(MCP).as_deref(), Some("d-1"));
        token = held.unwrap();
        if e.host.as_deref() != Some(host.as_str()) {
            moved = e.host.clone();
        }
    }
    let moved = moved.unwrap_or_else(|| panic!("left the drained host within two requests"));
    let (e, _) = wrap_send(s, "on the new host", Some(&token), None);
    assert_steered(&e, "v1", &moved);
    assert_eq!(e.request_header(MCP).as_deref(), Some("d-1"));
    s.sim.set_health(&moved, Health::Unhealthy);
    let (e, held) = wrap_send(s, "its host went unhealthy", Some(&token), None);
    let again = e.host.clone().unwrap();
    assert_ne!(again, moved);
    assert_eq!(e.request_header(MCP).as_deref(), Some("d-1"));
    let (e, _) = wrap_send(s, "re-pinned", held.as_deref(), None);
    assert_steered(&e, "v1", &again);
    assert_eq!(s.counter("sticky.sessions_drained"), 1);
    assert_eq!(s.counter("sticky.sessions_repinned"), 1);
}

fn legacy_migration(s: &mut Script<'_>) {
    let mut c = Client::default();
    // Envoy 1.40's own cookie for 10.0.2.3:8080 (proto {1: addr, 2: expiry}).
    let legacy = STANDARD.encode(b"\x0a\x0d10.0.2.3:8080\x10\x80\xe0\xa6\xdb\x06");
    c.cookies
        .insert("envoy-session".into(), format!("\"{legacy}\""));
    let e = s.send("legacy cookie", &mut c);
    assert_steered(&e, "v2", "10.0.2.3:8080");
    let set = e.set_cookies();
    assert!(set.iter().any(|v| v.starts_with("sticky=")), "{set:?}");
    assert!(
        set.iter()
            .any(|v| v.starts_with("envoy-session=; Max-Age=0; Path=/")),
        "{set:?}"
    );
    assert_eq!(s.counter("sticky.sessions_migrated"), 1);
    c.cookies.remove("envoy-session");
    let e = s.send("sealed token now", &mut c);
    assert_steered(&e, "v2", "10.0.2.3:8080");
    assert!(e.set_cookies().is_empty());
}

fn sharded_keys(s: &mut Script<'_>) {
    use super::sim::{SimCluster, SimHost};
    for i in 0..3 {
        s.sim.clusters.push(SimCluster {
            name: format!("shard-{i}"),
            weight: 0,
            hosts: vec![SimHost {
                addr: format!("10.9.{i}.1:80"),
                health: Health::Healthy,
            }],
        });
    }
    for room in ["lobby", "r-17", "%ff", "\u{0}x", ""] {
        let mut c = Client {
            path: Some(format!("/chat?room={room}&x=1")),
            ..Client::default()
        };
        let e = s.send(&format!("room {room:?}"), &mut c);
        if room.is_empty() {
            assert_eq!((e.status, e.cluster.as_deref()), (400, None), "no key: 400");
            assert!(e.set_cookies().is_empty());
        } else {
            let want = format!("shard-{}", crate::shard::shard_of(room.as_bytes(), 3));
            assert_eq!(e.cluster.as_deref(), Some(want.as_str()), "{room:?}");
            assert_eq!(e.set_cookies().len(), 1);
            let again = s.send(&format!("room {room:?} again"), &mut c);
            assert_eq!(again.cluster.as_deref(), Some(want.as_str()));
        }
    }
}

fn new_session(s: &mut Script<'_>) {
    assert!(s.configured());
    let mut c = Client::default();
    let e = s.send("first request", &mut c);
    assert_unsteered(&e);
    assert_no_leak(&e);
    let cookies = e.set_cookies();
    assert_eq!(cookies.len(), 1, "exactly one Set-Cookie");
    let token = token_of(&e).unwrap();
    assert!(
        cookies[0].ends_with("; Max-Age=600; Path=/; HttpOnly; SameSite=Lax"),
        "{}",
        cookies[0]
    );
    assert!(!token.contains("10.0."), "the token hides the host");
    assert_eq!(key_id_of(&token), "a");
    assert_eq!(e.response_header(":status").as_deref(), Some("200"));
    // End state: Envoy saw the request untouched; the client got the status
    // and the cookie, and not the host header stateful_session echoed.
    assert_eq!(names(&e.request), [":method", ":path"]);
    assert_eq!(names(&e.response), [":status", "set-cookie"]);
    assert_eq!(s.counter("sticky.sessions_created"), 1);
    assert_eq!(s.counter("sticky.requests_pinned"), 0);
}

fn names(headers: &[(String, Vec<u8>)]) -> Vec<&str> {
    headers.iter().map(|(n, _)| n.as_str()).collect()
}

fn pinned_session(s: &mut Script<'_>) {
    let mut a = Client::default();
    let mut b = Client::default();
    let first_a = s.send("a: new session", &mut a);
    let first_b = s.send("b: new session", &mut b);
    let (ha, hb) = (first_a.host.clone().unwrap(), first_b.host.clone().unwrap());
    assert_ne!(ha, hb, "round robin gave the two sessions different hosts");
    for i in 0..5 {
        let ea = s.send(&format!("a: pinned {i}"), &mut a);
        let eb = s.send(&format!("b: pinned {i}"), &mut b);
        assert_steered(&ea, "v1", &ha);
        assert_steered(&eb, "v1", &hb);
        assert!(
            ea.set_cookies().is_empty(),
            "no re-issue when nothing changed"
        );
        assert_no_leak(&ea);
        assert_no_leak(&eb);
        assert_eq!(
            names(&ea.request),
            [
                ":method",
                ":path",
                "cookie",
                "x-sticky-cluster",
                "x-sticky-host"
            ]
        );
        assert_eq!(names(&ea.response), [":status"]);
    }
    assert_eq!(s.counter("sticky.sessions_created"), 2);
    assert_eq!(s.counter("sticky.requests_pinned"), 10);
    assert_eq!(rejected(s), 0);
}

fn tampered_token(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let token = token_of(&first).unwrap();
    // Change one character well inside the ciphertext.
    let mut bytes = token.clone().into_bytes();
    let i = bytes.len() - 12;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    c.cookies.insert("sticky".into(), tampered.clone());
    let e = s.send("tampered token", &mut c);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.tampered"), 1);
    let fresh = token_of(&e).unwrap();
    assert_ne!(fresh, tampered);
    assert_eq!(s.counter("sticky.sessions_created"), 2);
    let e = s.send("new token works", &mut c);
    assert_eq!(e.request_header("x-sticky-cluster").as_deref(), Some("v1"));
}

fn truncated_token(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let token = token_of(&first).unwrap();
    c.cookies
        .insert("sticky".into(), token[..token.len() / 2].to_owned());
    let e = s.send("half a token", &mut c);
    assert_unsteered(&e);
    assert_eq!(rejected(s), 1);
    assert_eq!(e.set_cookies().len(), 1, "a fresh session");
    let mut short = Client::default();
    short.cookies.insert("sticky".into(), token[..3].to_owned());
    let e = s.send("three characters", &mut short);
    assert_unsteered(&e);
    assert_eq!(rejected(s), 2);
    assert_eq!(s.counter("sticky.tokens_rejected.malformed"), 2);
}

fn expired_token(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let host = first.host.clone().unwrap();
    let original = c.cookies.clone();
    s.sim.now += 599;
    let e = s.send("a second before expiry: the cookie slides", &mut c);
    assert_steered(&e, "v1", &host);
    assert_eq!(e.set_cookies().len(), 1);
    assert_eq!(s.counter("sticky.sessions_refreshed"), 1);
    s.sim.now += 1;
    let mut stale = Client {
        cookies: original,
        ..Client::default()
    };
    let e = s.send("the original token at its expiry", &mut stale);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.expired"), 1);
    assert_eq!(s.counter("sticky.sessions_created"), 2);
    let e = s.send("the slid token is still valid", &mut c);
    assert_steered(&e, "v1", &host);
}

fn unknown_key_token(s: &mut Script<'_>) {
    let mut c = Client::default();
    let t = forge("b", 2, &claims("v1", V1_HOST_2, s.sim.now));
    c.cookies.insert("sticky".into(), t);
    let e = s.send("token of key b", &mut c);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.unknown_key"), 1);
    assert_eq!(key_id_of(&token_of(&e).unwrap()), "a");
}

fn forged_token(s: &mut Script<'_>) {
    let mut c = Client::default();
    let t = forge("a", 2, &claims("v1", V1_HOST_2, s.sim.now));
    c.cookies.insert("sticky".into(), t);
    let e = s.send("key id a, other secret", &mut c);
    assert_unsteered(&e);
    assert_ne!(e.host.as_deref(), Some(V1_HOST_2));
    assert_eq!(s.counter("sticky.tokens_rejected.tampered"), 1);
}

fn unknown_cluster_token(s: &mut Script<'_>) {
    let mut c = Client::default();
    let t = forge("a", 1, &claims("v3", "10.0.3.1:8080", s.sim.now));
    c.cookies.insert("sticky".into(), t);
    let e = s.send("token for v3", &mut c);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.unknown_cluster"), 1);
    let good = forge("a", 1, &claims("v2", "10.0.2.3:8080", s.sim.now));
    c.cookies.insert("sticky".into(), good);
    let e = s.send("forged with the real key: honoured", &mut c);
    assert_steered(&e, "v2", "10.0.2.3:8080");
}

fn key_rotation(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("sealed with a", &mut c);
    let host = first.host.clone().unwrap();
    let mut idle = Client::default();
    s.send("a session idle during the overlap", &mut idle);
    assert!(s.configure(&config_with_keys(&[("b", KEY_B), ("a", KEY_A)])));
    // A new configuration starts a new drain cache in the wasm build (a new
    // root context); a second later both builds re-read drain metadata alike.
    s.sim.now += 1;
    let e = s.send("b seals, a still opens: re-sealed under b at once", &mut c);
    assert_steered(&e, "v1", &host);
    let token = token_of(&e).unwrap();
    assert_eq!(key_id_of(&token), "b");
    assert_eq!(s.counter("sticky.tokens_resealed"), 1);
    let e = s.send("re-sealed: nothing more to issue", &mut c);
    assert_steered(&e, "v1", &host);
    assert!(e.set_cookies().is_empty());
    assert_eq!(s.counter("sticky.tokens_resealed"), 1);
    assert!(s.configure(&config_with_keys(&[("b", KEY_B)])));
    s.sim.now += 1;
    let e = s.send("a retired: token of b still opens", &mut c);
    assert_steered(&e, "v1", &host);
    let mut old = Client::default();
    old.cookies
        .insert("sticky".into(), token_of(&first).unwrap());
    let e = s.send("token of the retired key", &mut old);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.unknown_key"), 1);
    let e = s.send("no request during the overlap: dropped", &mut idle);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.unknown_key"), 2);
}

fn strict_gone_host(s: &mut Script<'_>) {
    s.sim.strict = true;
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let host = first.host.clone().unwrap();
    s.sim.remove_host(&host);
    let e = s.send("pinned host gone: strict 503", &mut c);
    assert_eq!(e.status, 503);
    assert_eq!(e.host, None);
    let released = token_of(&e);
    assert!(released.is_some(), "a token that names no host");
    assert_eq!(s.counter("sticky.sessions_repinned"), 1);
    let e = s.send("next request: another host of the cluster", &mut c);
    assert_eq!(e.status, 200);
    assert_eq!(e.cluster.as_deref(), Some("v1"));
    assert_ne!(e.host.as_deref(), Some(host.as_str()));
    let new_host = e.host.clone().unwrap();
    assert!(token_of(&e).is_some(), "pinned to its new host");
    assert_ne!(token_of(&e), released);
    let e = s.send("and stays there", &mut c);
    assert_steered(&e, "v1", &new_host);
}

fn reflected_internal_headers(s: &mut Script<'_>) {
    s.sim.app_response = vec![
        ("x-sticky-cluster".into(), b"v2".to_vec()),
        ("x-sticky-host".into(), b"MTAuMC4yLjE6ODA4MA==".to_vec()),
    ];
    let mut c = Client::default();
    for what in ["new session", "pinned session"] {
        let e = s.send(what, &mut c);
        assert_eq!(e.response_header("x-sticky-cluster"), None, "{what}");
        assert_eq!(e.response_header("x-sticky-host"), None, "{what}");
    }
}

fn canary_split(s: &mut Script<'_>) {
    let mut clients: Vec<(Client, String, String)> = (0..100)
        .map(|i| {
            let mut c = Client::default();
            let e = s.send(&format!("client {i}: new"), &mut c);
            (c, e.cluster.unwrap(), e.host.unwrap())
        })
        .collect();
    let on_v2 = clients.iter().filter(|c| c.1 == "v2").count();
    assert_eq!(on_v2, 10, "the 90/10 split sent 10 of 100 sessions to v2");
    for round in 0..2 {
        for (i, (c, cluster, host)) in clients.iter_mut().enumerate() {
            let e = s.send(&format!("client {i}: round {round}"), c);
            assert_steered(&e, cluster, host);
        }
    }
    // Shift all new traffic to v2: existing sessions stay where they are.
    s.sim.set_weight("v1", 0);
    s.sim.set_weight("v2", 100);
    for (i, (c, cluster, host)) in clients.iter_mut().enumerate().step_by(7) {
        let e = s.send(&format!("client {i}: after the shift"), c);
        assert_steered(&e, cluster, host);
    }
    let mut late = Client::default();
    let e = s.send("new client after the shift", &mut late);
    assert_eq!(e.cluster.as_deref(), Some("v2"));
    assert_eq!(s.counter("sticky.sessions_created"), 101);
}

fn set_deadline(s: &mut Script<'_>, host: &str, at: u64) {
    s.sim.set_health(host, Health::Draining);
    s.sim.host.set_metadata(
        host,
        "sticky",
        "drain_deadline",
        (at as f64).to_le_bytes().to_vec(),
    );
}

fn drain_before_deadline(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("pinned", &mut c);
    let host = first.host.clone().unwrap();
    let deadline = s.sim.now + 30;
    set_deadline(s, &host, deadline);
    for i in 0..5 {
        s.sim.now += 1;
        let e = s.send(&format!("draining, {i}s in"), &mut c);
        assert_steered(&e, "v1", &host);
        let mut other = Client::default();
        let n = s.send(&format!("a new session, {i}s in"), &mut other);
        assert_ne!(
            n.host.as_deref(),
            Some(host.as_str()),
            "no new session on a draining host"
        );
    }
    assert_eq!(s.counter("sticky.sessions_drained"), 0);
}

fn drain_after_deadline(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("pinned", &mut c);
    let host = first.host.clone().unwrap();
    let deadline = s.sim.now + 30;
    set_deadline(s, &host, deadline);
    s.sim.now += 1;
    let e = s.send("draining, before the deadline", &mut c);
    assert_eq!(e.host.as_deref(), Some(host.as_str()));
    s.sim.now = deadline;
    let a = s.send("at the deadline", &mut c);
    let b = s.send("after the deadline", &mut c);
    let moved = b.host.clone().unwrap();
    assert_ne!(moved, host, "the session left the draining host");
    assert_eq!(b.cluster.as_deref(), Some("v1"), "and kept its cluster");
    assert!(
        a.set_cookies().len() + b.set_cookies().len() >= 1,
        "a new token"
    );
    for i in 0..3 {
        let e = s.send(&format!("on the new host {i}"), &mut c);
        assert_steered(&e, "v1", &moved);
    }
    assert_eq!(s.counter("sticky.sessions_drained"), 1);
}

fn draining_flag(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("pinned", &mut c);
    let host = first.host.clone().unwrap();
    s.sim.set_health(&host, Health::Draining);
    s.sim
        .host
        .set_metadata(&host, "sticky", "draining", vec![1]);
    s.sim.now += 2;
    for i in 0..3 {
        let e = s.send(&format!("draining, no deadline {i}"), &mut c);
        assert_steered(&e, "v1", &host);
    }
    let mut other = Client::default();
    let e = s.send("new session elsewhere", &mut other);
    assert_ne!(e.host.as_deref(), Some(host.as_str()));
    assert_eq!(s.counter("sticky.sessions_drained"), 0);
}

fn unhealthy_host(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("pinned", &mut c);
    let host = first.host.clone().unwrap();
    s.sim.set_health(&host, Health::Unhealthy);
    let e = s.send("host failed", &mut c);
    let new_host = e.host.clone().unwrap();
    assert_ne!(new_host, host);
    assert_eq!(e.cluster, first.cluster);
    assert_eq!(e.set_cookies().len(), 1);
    let e = s.send("stays on the new host", &mut c);
    assert_steered(&e, "v1", &new_host);
    s.sim.remove_host(&new_host);
    let e = s.send("new host removed from EDS", &mut c);
    assert_ne!(e.host.as_deref(), Some(new_host.as_str()));
    assert_eq!(s.counter("sticky.sessions_repinned"), 2);
}

fn idle_timeout(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let host = first.host.clone().unwrap();
    s.sim.now += 20;
    let e = s.send("active: refreshed", &mut c);
    assert_steered(&e, "v1", &host);
    assert_eq!(e.set_cookies().len(), 1);
    assert_eq!(s.counter("sticky.sessions_refreshed"), 1);
    s.sim.now += 61;
    let e = s.send("idle too long", &mut c);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.expired"), 1);
}

fn header_mode(s: &mut Script<'_>) {
    s.sim.session_header = Some("x-sticky-session".into());
    let mut c = Client {
        no_cookies: true,
        session_header: Some(("x-sticky-session".into(), String::new())),
        ..Client::default()
    };
    let first = s.send("no token yet", &mut c);
    let token = first.response_header("x-sticky-session").unwrap();
    assert_eq!(
        Some(token.clone()),
        token_of(&first),
        "header and cookie carry one token"
    );
    let host = first.host.clone().unwrap();
    for i in 0..3 {
        let e = s.send(&format!("token in the header {i}"), &mut c);
        assert_steered(&e, "v1", &host);
        assert_eq!(e.response_header("x-sticky-session"), None);
    }
    let mut dup = c.clone();
    dup.session_header = Some(("x-sticky-session".into(), format!("{token}, {token}")));
    let e = s.send("the same token twice", &mut dup);
    assert_steered(&e, "v1", &host);
    assert_eq!(s.counter("sticky.requests_pinned"), 4);
}

fn multiple_cookie_headers(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let token = token_of(&first).unwrap();
    let host = first.host.clone().unwrap();
    let mut split = Client {
        no_cookies: true,
        ..Client::default()
    };
    split.extra = vec![
        ("cookie".into(), b"theme=dark; lang=en".to_vec()),
        (
            "cookie".into(),
            format!("a=1; sticky={token}; b=2").into_bytes(),
        ),
    ];
    let e = s.send("token in the second Cookie header", &mut split);
    assert_steered(&e, "v1", &host);
    split.extra = vec![(
        "cookie".into(),
        format!("sticky=garbage; sticky=\"{token}\"").into_bytes(),
    )];
    let e = s.send("garbage then a quoted token", &mut split);
    assert_steered(&e, "v1", &host);
    assert_eq!(s.counter("sticky.requests_pinned"), 2);
}

fn conflicting_tokens(s: &mut Script<'_>) {
    let now = s.sim.now;
    // An older token (another Path's cookie, or one injected beside the
    // session's own) must not cancel the session: the most recent wins.
    let older = Claims {
        last_seen: now.saturating_sub(100),
        ..claims("v1", "10.0.1.1:8080", now)
    };
    let a = forge("a", 1, &older);
    let b = forge("a", 1, &claims("v1", "10.0.1.3:8080", now));
    let mut c = Client {
        no_cookies: true,
        ..Client::default()
    };
    for (what, order) in [("older first", [&a, &b]), ("newer first", [&b, &a])] {
        c.extra = vec![
            ("cookie".into(), format!("sticky={}", order[0]).into_bytes()),
            ("cookie".into(), format!("sticky={}", order[1]).into_bytes()),
        ];
        let e = s.send(what, &mut c);
        assert_steered(&e, "v1", "10.0.1.3:8080");
    }
    c.extra = vec![(
        "cookie".into(),
        format!("pref=x,sticky={a}; sticky={b}").into_bytes(),
    )];
    let e = s.send("a token smuggled in another cookie's value", &mut c);
    assert_steered(&e, "v1", "10.0.1.3:8080");
    assert_eq!(s.counter("sticky.tokens_rejected.conflict"), 0);
    assert_eq!(s.counter("sticky.requests_pinned"), 3);
}

fn hostile_bytes(s: &mut Script<'_>) {
    s.sim.session_header = Some("x-sticky-session".into());
    let mut c = Client {
        no_cookies: true,
        ..Client::default()
    };
    let cases: [(&str, &[u8]); 4] = [
        ("cookie", b"sticky=\xff\xfe\xfd; x=\x00"),
        (
            "cookie",
            b"sticky=AQFh\x00\x00\x00\x00AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
        ("x-sticky-session", b"\xc3\x28, \x00, \"\xff\""),
        (
            "cookie",
            b"=; ;;; sticky; sticky==; \"sticky\"=x; sticky=\"\"",
        ),
    ];
    for (i, (name, value)) in cases.iter().enumerate() {
        c.extra = vec![((*name).to_owned(), value.to_vec())];
        let e = s.send(&format!("hostile {name} {i}"), &mut c);
        assert_unsteered(&e);
        assert_eq!(e.set_cookies().len(), 1, "a fresh session");
        assert_no_leak(&e);
    }
    assert!(rejected(s) >= 3);
    assert_eq!(s.counter("sticky.sessions_created"), 4);
}

fn huge_values(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let token = token_of(&first).unwrap();
    let host = first.host.clone().unwrap();
    let mut big = Client {
        no_cookies: true,
        ..Client::default()
    };
    let filler = "f".repeat(60_000);
    big.extra = vec![(
        "cookie".into(),
        format!("junk={filler}; sticky={token}").into_bytes(),
    )];
    let e = s.send("a valid token after 60 KB of other cookies", &mut big);
    assert_steered(&e, "v1", &host);
    big.extra = vec![(
        "cookie".into(),
        format!("sticky={}", "A".repeat(5000)).into_bytes(),
    )];
    let e = s.send("a 5000-character token", &mut big);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.oversized"), 1);
    let many: Vec<String> = (0..2000).map(|i| format!("sticky=x{i}")).collect();
    big.extra = vec![("cookie".into(), many.join("; ").into_bytes())];
    let e = s.send("2000 sticky cookies", &mut big);
    assert_unsteered(&e);
    assert_eq!(e.set_cookies().len(), 1);
}

fn client_internal_headers(s: &mut Script<'_>) {
    let mut c = Client {
        extra: vec![
            ("x-sticky-cluster".into(), b"v2".to_vec()),
            (
                "x-sticky-host".into(),
                STANDARD.encode("10.0.2.3:8080").into_bytes(),
            ),
        ],
        ..Client::default()
    };
    let e = s.send("client asks for v2/10.0.2.3", &mut c);
    assert_unsteered(&e);
    assert_eq!(
        e.cluster.as_deref(),
        Some("v1"),
        "the split, not the client, chose"
    );
    assert_no_leak(&e);
    let host = e.host.clone().unwrap();
    c.extra = vec![
        (
            "x-sticky-host".into(),
            STANDARD.encode("10.0.1.3:8080").into_bytes(),
        ),
        ("x-sticky-host".into(), b"\xff\x00".to_vec()),
        ("x-sticky-cluster".into(), b"not-a-cluster".to_vec()),
    ];
    let e = s.send("session plus forged internal headers", &mut c);
    assert_steered(&e, "v1", &host);
    let copies = e
        .request
        .iter()
        .filter(|(n, _)| n == "x-sticky-host")
        .count();
    assert_eq!(copies, 1, "only the filter's own host header reaches Envoy");
}

fn local_reply(s: &mut Script<'_>) {
    let mut c = Client::default();
    for h in 1..=3 {
        s.sim.remove_host(&format!("10.0.1.{h}:8080"));
    }
    let e = s.send("no healthy host: 503", &mut c);
    assert_eq!(e.response_header(":status").as_deref(), Some("503"));
    assert!(e.set_cookies().is_empty(), "nothing to pin");
    assert_eq!(s.counter("sticky.sessions_created"), 0);
}

fn browser_session_cookie(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let host = first.host.clone().unwrap();
    let sc = first.set_cookies();
    assert_eq!(sc.len(), 1);
    assert!(!sc[0].contains("Max-Age"), "{}", sc[0]);
    assert!(
        sc[0].ends_with("; Path=/app; Secure; HttpOnly; SameSite=Strict"),
        "{}",
        sc[0]
    );
    // No Max-Age, but the token inside expires: a day
    // (session.max_lifetime_seconds) after it was issued or refreshed.
    s.sim.now += 45_000;
    let e = s.send(
        "12.5 hours later: valid, refreshed past half its lifetime",
        &mut c,
    );
    assert_steered(&e, "v1", &host);
    assert_eq!(e.set_cookies().len(), 1);
    s.sim.now += 80_000;
    let e = s.send("22 hours after the refresh: still valid", &mut c);
    assert_steered(&e, "v1", &host);
    assert_eq!(s.counter("sticky.requests_pinned"), 2);
    s.sim.now += 86_400;
    let e = s.send("a day without a request: the token expired", &mut c);
    assert_unsteered(&e);
    assert_eq!(s.counter("sticky.tokens_rejected.expired"), 1);
}

/// Bad configurations and the field each error must name.
const BAD_CONFIGS: &[(&str, &str)] = &[
    (r#"{"clusters": ["v1"], "keys": []}"#, "`keys`"),
    (
        r#"{"clusters": ["v1"], "keys": [{"id": "a", "secret": "c2hvcnQ="}]}"#,
        "`keys[0].secret`",
    ),
    (
        r#"{"clusters": [], "keys": [{"id": "a", "secret": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}]}"#,
        "`clusters`",
    ),
    (
        r#"{"clusters": ["v1"], "colour": "blue", "keys": [{"id": "a", "secret": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}]}"#,
        "colour",
    ),
    (
        r#"{"clusters": ["v1"], "cookie": {"ttl_seconds": -1}, "keys": [{"id": "a", "secret": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}]}"#,
        "`cookie.ttl_seconds`",
    ),
];

fn bad_config(s: &mut Script<'_>) {
    assert!(!s.configured(), "same_site \"sometimes\" is refused");
    assert!(
        s.logs().iter().any(|l| l.contains("`cookie.same_site`")),
        "the log names the field: {:?}",
        s.logs()
    );
    for (json, field) in BAD_CONFIGS {
        assert!(!s.configure(json), "refused: {json}");
        assert!(
            s.logs().iter().any(|l| l.contains(field)),
            "the log names {field}: {:?}",
            s.logs()
        );
    }
    let mut c = Client {
        extra: vec![("x-sticky-cluster".into(), b"v2".to_vec())],
        ..Client::default()
    };
    let e = s.send("unconfigured: pass through", &mut c);
    assert!(e.set_cookies().is_empty());
    assert_eq!(
        e.request_header("x-sticky-cluster").as_deref(),
        Some("v2"),
        "an unconfigured filter changes nothing"
    );
    assert!(s.sim.host.counters.is_empty());
}

fn refused_reconfiguration(s: &mut Script<'_>) {
    let mut c = Client::default();
    let first = s.send("new session", &mut c);
    let host = first.host.clone().unwrap();
    assert!(!s.configure(r#"{"clusters": ["v1"]}"#));
    assert!(s.logs().iter().any(|l| l.contains("`keys`")));
    let e = s.send("still served by the running config", &mut c);
    assert_steered(&e, "v1", &host);
}

/// One test per scenario, under both wirings of a pinned host: the
/// header-based `stateful_session` (the wasm's, and the native drop-in) and
/// the upstream override (native direct), which must agree.
#[cfg(test)]
macro_rules! core_scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::testing::sim::NativeRunner;

                #[test]
                fn drop_in() {
                    let scenario = super::named(stringify!($name));
                    if let Err(e) = super::run_checked(&scenario, &mut NativeRunner::default()) {
                        panic!("{e}");
                    }
                }

                #[test]
                fn direct() {
                    super::check_direct_wiring(stringify!($name));
                }
            }
        )*
    };
}

#[cfg(test)]
for_each_scenario!(core_scenario_tests);

/// The direct wiring must pass the scenario and, once configured, agree
/// with the drop-in one (an unconfigured filter leaves Envoy's own
/// `stateful_session` echo, which only the drop-in chain has).
#[cfg(test)]
fn check_direct_wiring(name: &str) {
    use crate::host::Pinning;
    use crate::testing::sim::NativeRunner;
    let scenario = named(name);
    let direct = Pinning::Override { strict: false };
    let actual = run_checked(&scenario, &mut NativeRunner::with_pinning(direct))
        .unwrap_or_else(|e| panic!("{e}"));
    if actual.configures.first() == Some(&true) {
        let expected = run(&scenario, &mut NativeRunner::default());
        compare(&expected, &actual).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sim::NativeRunner;

    #[test]
    fn the_per_scenario_tests_cover_the_table() {
        let mut listed = Vec::new();
        macro_rules! collect {
            ($($name:ident),* $(,)?) => {
                $(listed.push(stringify!($name));)*
            };
        }
        for_each_scenario!(collect);
        let table: Vec<&str> = all().iter().map(|s| s.name).collect();
        assert_eq!(listed, table, "for_each_scenario! lists the table in order");
    }

    #[test]
    fn native_runs_are_deterministic() {
        for s in all() {
            let a = run(&s, &mut NativeRunner::default());
            let b = run(&s, &mut NativeRunner::default());
            compare(&a, &b).unwrap();
            assert!(
                !a.steps.is_empty() || !a.configures.is_empty(),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn compare_reports_the_first_differing_step() {
        let s = all().into_iter().next().unwrap();
        let a = run(&s, &mut NativeRunner::default());
        let mut b = a.clone();
        b.steps[0]
            .response
            .push(("set-cookie".into(), b"x".to_vec()));
        let err = compare(&a, &b).unwrap_err();
        assert!(err.contains("step #1 first request differs"), "{err}");
        let mut c = a.clone();
        c.configures = vec![false];
        assert!(
            compare(&a, &c)
                .unwrap_err()
                .contains("configure results differ")
        );
        let mut d = a.clone();
        d.logs = vec!["info: other".into()];
        let mut with_log = a.clone();
        with_log.logs = vec!["invalid sticky config".into()];
        assert!(compare(&with_log, &d).is_err());
    }

    #[test]
    fn scenario_names_are_unique() {
        let mut names: Vec<&str> = all().iter().map(|s| s.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
