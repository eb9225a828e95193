//! The request paths profiled, each driven the way host-tests' cost tests
//! drive it (`host-tests/tests/host/artifact.rs`), and checked to be that
//! path: a profile of the wrong path would mislead.

use std::collections::BTreeMap;

use sticky_core::testing::config_json;
use sticky_core::testing::sim::{Client, Sim};
use sticky_host_tests::WasmRunner;
use sticky_host_tests::profile::Cost;
use wasmtime::Module;

/// A path through the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A request with a valid session cookie; nothing re-issued.
    Pinned,
    /// A request without a session; the response starts one.
    NewSession,
    /// Wrap mode: the application's header carries the sealed id, which
    /// the filter opens and restores; the response echoes nothing.
    WrapPinned,
}

impl Path {
    /// Every path, in report order.
    pub const ALL: [Path; 3] = [Path::Pinned, Path::NewSession, Path::WrapPinned];

    /// The path's name on the command line and in saved profiles.
    pub fn name(self) -> &'static str {
        match self {
            Path::Pinned => "pinned",
            Path::NewSession => "new-session",
            Path::WrapPinned => "wrap-pinned",
        }
    }

    /// The path called `name`.
    pub fn named(name: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The application's session header of the wrap path.
const WRAP_HEADER: &str = "mcp-session-id";
/// The id the application mints on the wrap path.
const APP_ID: &[u8] = b"5b7e0c2a-3f41-4a8e-9d2b-6c1f0e4a7b93";

/// What `streams` streams of one path cost, per function name (functions
/// whose names differ only in their hash are summed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measured {
    /// Streams measured.
    pub streams: u64,
    /// Fuel of those streams, as host-tests counts it.
    pub fuel: u64,
    /// Cost per function name, over all streams.
    pub functions: BTreeMap<String, Cost>,
    /// Calls and inclusive cost per (caller, callee) name, over all streams
    /// (not saved: a diff compares functions).
    pub edges: BTreeMap<(String, String), Cost>,
}

/// Runs `streams` streams of `path` through an instrumented `module`,
/// after the warm-up the cost tests do; `names` are its function names.
pub fn measure(
    module: &Module,
    names: &[String],
    path: Path,
    streams: u64,
) -> Result<Measured, String> {
    let mut runner = WasmRunner::with_module(module).map_err(|e| e.to_string())?;
    let config = match path {
        Path::WrapPinned => config_json(&format!(r#""wrap": {{"header": "{WRAP_HEADER}"}},"#)),
        Path::Pinned | Path::NewSession => config_json(""),
    };
    if !runner
        .try_configure(config.as_bytes())
        .map_err(|e| e.to_string())?
    {
        return Err("the filter refused the test configuration".into());
    }
    let mut sim = Sim::new(runner);
    let mut client = match path {
        Path::Pinned | Path::NewSession => Client::default(),
        Path::WrapPinned => wrapped_client(&mut sim)?,
    };
    // Warm-up: a first session and caches filled, as the cost tests do.
    sim.send(&mut client);
    sim.send(&mut client);
    sim.runner.profile().clear();
    let mut fuel = 0u64;
    for _ in 0..streams {
        if path == Path::NewSession {
            client = Client::default();
        }
        let exchange = sim.send(&mut client);
        let issued = exchange.set_cookies().len();
        let is_path = match path {
            Path::Pinned => issued == 0,
            Path::NewSession => issued == 1,
            Path::WrapPinned => {
                exchange
                    .request_header(WRAP_HEADER)
                    .as_deref()
                    .map(str::as_bytes)
                    == Some(APP_ID)
            }
        };
        if !is_path {
            return Err(format!(
                "a stream did not take the {} path (status {})",
                path.name(),
                exchange.status
            ));
        }
        fuel = fuel.saturating_add(sim.runner.last_cost().fuel());
    }
    let profile = sim.runner.profile();
    if !profile.balanced() {
        return Err("a call never returned (the filter trapped)".into());
    }
    let name = |index: u32| {
        usize::try_from(index)
            .ok()
            .and_then(|i| names.get(i))
            .cloned()
            .unwrap_or_else(|| format!("#{index}"))
    };
    let mut functions: BTreeMap<String, Cost> = BTreeMap::new();
    for (index, cost) in profile.costs() {
        add(functions.entry(name(*index)).or_default(), cost);
    }
    let mut edges: BTreeMap<(String, String), Cost> = BTreeMap::new();
    for ((caller, callee), cost) in profile.edges() {
        add(
            edges.entry((name(*caller), name(*callee))).or_default(),
            cost,
        );
    }
    Ok(Measured {
        streams,
        fuel,
        functions,
        edges,
    })
}

/// Adds `cost` into `sum`.
fn add(sum: &mut Cost, cost: &Cost) {
    sum.calls = sum.calls.saturating_add(cost.calls);
    sum.inclusive = sum.inclusive.saturating_add(cost.inclusive);
    sum.own = sum.own.saturating_add(cost.own);
}

/// A client holding a wrapped id: the application minted `APP_ID` once and
/// the filter sealed it into the header the client now sends.
fn wrapped_client(sim: &mut Sim<WasmRunner>) -> Result<Client, String> {
    sim.app_response = vec![(WRAP_HEADER.to_owned(), APP_ID.to_vec())];
    let minted = sim.send(&mut Client::default());
    sim.app_response.clear();
    let token = minted
        .response_header(WRAP_HEADER)
        .ok_or("the filter did not wrap the minted id")?;
    let mut client = Client {
        no_cookies: true,
        ..Client::default()
    };
    client
        .extra
        .push((WRAP_HEADER.to_owned(), token.into_bytes()));
    Ok(client)
}
