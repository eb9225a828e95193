//! The artifact itself: size budget, cost per request in wasm instructions,
//! and no growth of linear memory over a long run.

use std::io::Write as _;

use sticky_core::testing::config_json;
use sticky_core::testing::sim::{Client, Runner, Sim};
use sticky_host_tests::runner::StreamCost;
use sticky_host_tests::{WasmRunner, module};

/// Ceilings per path, in fuel (≈ wasm instructions): about 1.3× what the
/// filter needs today (measured 2026-12-04, median of 25 streams, after the
/// hot path's whole-token comparisons went word-wise, base64 stopped
/// pushing chars, a pinned host's own response skips re-checking its
/// claims and reads its drain state in one lookup), so a 30% regression
/// fails here.
/// New session: measured 47,992.
const NEW_SESSION_CEILING: u64 = 62_400;
/// Pinned, nothing re-issued: measured 14,285.
const PINNED_CEILING: u64 = 18_600;
/// Wrap mode, pinned: measured 15,534.
const WRAP_PINNED_CEILING: u64 = 20_200;
/// Wrap mode, pinned, the application echoing its id: measured 24,050.
const WRAP_ECHOED_CEILING: u64 = 31_300;

fn sim() -> Sim<WasmRunner> {
    let mut runner = WasmRunner::new().unwrap_or_else(|e| panic!("{e}"));
    assert!(runner.configure(config_json("").as_bytes()));
    Sim::new(runner)
}

/// Prints past libtest's output capture, so the numbers show in every run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn wasm_is_within_the_makefile_size_budget() {
    let path = module::wasm_path();
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make wasm`", path.display()))
        .len();
    let budget = module::wasm_budget().unwrap_or_else(|e| panic!("{e}"));
    report(&format!(
        "host-tests size: {}: {size} bytes, budget {budget} (Makefile WASM_BUDGET)",
        path.display()
    ));
    assert!(
        size <= budget,
        "{} is {size} bytes, over the Makefile's WASM_BUDGET of {budget}",
        path.display()
    );
}

#[test]
fn cost_per_request_in_wasm_instructions() {
    let mut s = sim();
    let mut fresh: Vec<StreamCost> = Vec::new();
    for _ in 0..25 {
        let mut c = Client::default();
        let e = s.send(&mut c);
        assert_eq!(e.set_cookies().len(), 1, "a new session");
        fresh.push(s.runner.last_cost().clone());
    }
    let mut c = Client::default();
    s.send(&mut c);
    let mut pinned: Vec<StreamCost> = Vec::new();
    for _ in 0..25 {
        let e = s.send(&mut c);
        assert!(e.set_cookies().is_empty(), "pinned, nothing re-issued");
        pinned.push(s.runner.last_cost().clone());
    }
    let summarize = |name: &str, costs: &[StreamCost]| {
        let total = median(costs.iter().map(StreamCost::fuel).collect());
        let request = median(costs.iter().map(|c| c.request).collect());
        let response = median(costs.iter().map(|c| c.response).collect());
        let end = median(costs.iter().map(|c| c.end).collect());
        let calls = median(costs.iter().map(StreamCost::host_calls).collect());
        report(&format!(
            "host-tests fuel: {name}: {total} wasm instructions per request \
             (request phase {request}, response phase {response}, stream end {end}), {calls} host calls"
        ));
        total
    };
    let new_total = summarize("new-session path", &fresh);
    let pinned_total = summarize("pinned path", &pinned);
    let last = pinned.last().unwrap();
    report(&format!(
        "host-tests fuel: pinned path host calls: {:?}",
        last.calls
    ));
    assert!(
        new_total <= NEW_SESSION_CEILING,
        "new-session path costs {new_total} fuel (ceiling {NEW_SESSION_CEILING})"
    );
    assert!(
        pinned_total <= PINNED_CEILING,
        "pinned path costs {pinned_total} fuel (ceiling {PINNED_CEILING})"
    );
    // DESIGN: fewer data-returning host calls is the main lever. A matched
    // token needs the cookie and at most the served address, nothing more
    // (no cluster name, no drain metadata within the check interval).
    let properties = last.calls.get("proxy_get_property").copied().unwrap_or(0);
    assert!(
        (1..=2).contains(&properties),
        "pinned path read {properties} properties: {:?}",
        last.calls
    );
    assert_eq!(
        last.calls.get("random_get"),
        None,
        "no token sealed on the pinned path"
    );
    let new_calls = &fresh.last().unwrap().calls;
    assert_eq!(
        new_calls.get("random_get"),
        Some(&1),
        "one nonce per new token"
    );
}

#[test]
fn linear_memory_does_not_grow_over_100k_requests() {
    let mut s = sim();
    let mut pool: Vec<Client> = (0..64).map(|_| Client::default()).collect();
    let drive = |s: &mut Sim<WasmRunner>, pool: &mut Vec<Client>, i: usize| {
        if i.is_multiple_of(1000) {
            // Clock moves: refreshes and drain-metadata checks happen too.
            s.now += 5;
        }
        if i.is_multiple_of(10) {
            s.send(&mut Client::default());
        } else if i.is_multiple_of(97) {
            let mut forged = Client::default();
            forged
                .cookies
                .insert("sticky".into(), "AQFhAAAA".repeat(20));
            s.send(&mut forged);
        } else {
            let n = pool.len();
            s.send(&mut pool[i % n]);
        }
    };
    for i in 0..5_000 {
        drive(&mut s, &mut pool, i);
    }
    let before = s.runner.memory_bytes();
    let started = std::time::Instant::now();
    for i in 0..100_000 {
        drive(&mut s, &mut pool, i);
    }
    let after = s.runner.memory_bytes();
    report(&format!(
        "host-tests memory: linear memory {before} bytes after warm-up, {after} after 100k more requests ({:.1?})",
        started.elapsed()
    ));
    assert!(s.host.counter("sticky.sessions_created") > 10_000);
    assert!(s.host.counter("sticky.requests_pinned") > 80_000);
    assert_eq!(
        after, before,
        "linear memory grew over 100k requests: a leak"
    );
}

#[test]
fn wrap_mode_cost_per_request_and_no_seal_for_an_echo() {
    let mut runner = WasmRunner::new().unwrap_or_else(|e| panic!("{e}"));
    assert!(runner.configure(config_json(r#""wrap": {"header": "mcp-session-id"},"#).as_bytes()));
    let mut s = Sim::new(runner);
    let header = "mcp-session-id".to_owned();
    s.app_response = vec![(
        header.clone(),
        b"5b7e0c2a-3f41-4a8e-9d2b-6c1f0e4a7b93".to_vec(),
    )];
    let minted = s.send(&mut Client::default());
    let token = minted
        .response_header(&header)
        .expect("the minted id is wrapped");
    let mut c = Client {
        no_cookies: true,
        ..Client::default()
    };
    c.extra.push((header.clone(), token.clone().into_bytes()));
    let mut costs = |s: &mut Sim<WasmRunner>, echo: bool| -> Vec<StreamCost> {
        (0..25)
            .map(|_| {
                let e = s.send(&mut c);
                assert_eq!(
                    e.request_header(&header).as_deref(),
                    Some("5b7e0c2a-3f41-4a8e-9d2b-6c1f0e4a7b93")
                );
                if echo {
                    assert_eq!(e.response_header(&header).as_deref(), Some(token.as_str()));
                }
                s.runner.last_cost().clone()
            })
            .collect()
    };
    s.app_response.clear();
    let silent = costs(&mut s, false);
    s.app_response = vec![(
        header.clone(),
        b"5b7e0c2a-3f41-4a8e-9d2b-6c1f0e4a7b93".to_vec(),
    )];
    let echoed = costs(&mut s, true);
    for (name, costs, ceiling) in [
        ("wrap pinned path", &silent, WRAP_PINNED_CEILING),
        ("wrap pinned path, id echoed", &echoed, WRAP_ECHOED_CEILING),
    ] {
        let total = median(costs.iter().map(StreamCost::fuel).collect());
        report(&format!(
            "host-tests fuel: {name}: {total} wasm instructions per request, {} host calls",
            median(costs.iter().map(StreamCost::host_calls).collect())
        ));
        assert!(
            total <= ceiling,
            "{name} costs {total} fuel (ceiling {ceiling})"
        );
        let last = costs.last().unwrap();
        assert_eq!(
            last.calls.get("random_get"),
            None,
            "{name}: no token sealed for an unchanged session"
        );
    }
}
