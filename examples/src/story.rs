//! The scripted scenario: steady traffic from many sessions while the demo
//! scales up, shifts the canary 90/10 → 0/100, drains an instance with a
//! deadline, stops it, and kills another one — run the same way against each
//! affinity mode. Every response names the instance that answered and the
//! session's state there, so the client knows exactly when a session lost
//! its state.
//!
//! A loss is *unavoidable* when the instance holding the session's state was
//! gone when the loss was seen (killed, stopped, or past its drain deadline:
//! in-memory state cannot survive that), and *avoidable* otherwise: the
//! instance was alive and the proxy sent the session elsewhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::client::{CartSession, CounterSession, DemoSession};
use crate::instance::{Instance, Kind};
use crate::stage::{Artifacts, Mode, Stage, StageSpec};

/// Number of phases.
pub const NPHASES: usize = 8;

/// The scenario's phases, in order; each starts with an event.
pub const PHASES: [&str; NPHASES] = [
    "steady (v1 only)",
    "scale-up v1 3→4",
    "v1-0 draining",
    "drain deadline passed",
    "v1-0 stopped",
    "canary 90/10",
    "canary 0/100",
    "kill -9 v1-1, v2-0",
];

/// Short phase names for the chart's columns.
pub const PHASES_SHORT: [&str; NPHASES] = [
    "steady",
    "scale-up",
    "draining",
    "deadline",
    "v1-0 stop",
    "90/10",
    "0/100",
    "kill -9",
];

/// How big and how long.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Concurrent sessions.
    pub sessions: usize,
    /// Length of each phase.
    pub phase: Duration,
    /// Pause between two requests of one session.
    pub think: Duration,
}

impl Scenario {
    /// The demo's run: 150 sessions, 2 s phases.
    pub fn full() -> Self {
        Self {
            sessions: 150,
            phase: Duration::from_millis(2000),
            think: Duration::from_millis(120),
        }
    }

    /// The test's run: 40 sessions, 1 s phases.
    pub fn fast() -> Self {
        Self {
            sessions: 40,
            phase: Duration::from_millis(1000),
            think: Duration::from_millis(60),
        }
    }
}

/// One run of the scenario: a service kind behind one affinity mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The service and its client.
    pub kind: Kind,
    /// The affinity mode.
    pub mode: Mode,
}

impl Run {
    /// The table's row label.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Cart => format!("{} (HTTP, cookies)", self.mode.label()),
            Kind::Counter => format!("{} (gRPC, header)", self.mode.label()),
        }
    }

    /// The story's runs: every mode with the browser-like cart client, then
    /// sticky with the gRPC client in header mode.
    pub fn all() -> Vec<Run> {
        let mut runs: Vec<Run> = Mode::ALL
            .iter()
            .map(|&mode| Run {
                kind: Kind::Cart,
                mode,
            })
            .collect();
        runs.push(Run {
            kind: Kind::Counter,
            mode: Mode::Sticky,
        });
        runs
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Row label.
    pub label: String,
    /// Sessions driven.
    pub sessions: usize,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed (transport error, non-200, gRPC error status).
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Sessions that never lost their state.
    pub kept: usize,
    /// Sessions that lost state only because their instance went away.
    pub lost_unavoidable: usize,
    /// Sessions that lost state at least once while their instance was alive.
    pub lost_avoidable: usize,
    /// Per phase: sessions with an avoidable loss in that phase.
    pub avoidable_by_phase: [usize; NPHASES],
    /// Per phase: requests sent.
    pub requests_by_phase: [u64; NPHASES],
    /// Per phase: failed requests.
    pub errors_by_phase: [u64; NPHASES],
    /// sticky's non-zero counters from Envoy's /stats (sticky runs only).
    pub counters: Vec<(String, u64)>,
    /// Envoy's retry and connect-failure counters, summed over the clusters.
    pub envoy_stats: Vec<(String, u64)>,
    /// Crashed-filter lines in Envoy's log (should be none).
    pub wasm_failures: Vec<String>,
}

struct Shared {
    phase: AtomicUsize,
    stop: AtomicBool,
    /// Instance → the moment its in-memory state counts as gone.
    gone: Mutex<HashMap<String, Instant>>,
}

#[derive(Default)]
struct Record {
    holder: Option<String>,
    value: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    avoidable: [u32; NPHASES],
    unavoidable: u32,
    requests_by_phase: [u64; NPHASES],
    errors_by_phase: [u64; NPHASES],
}

impl Record {
    fn observe(
        &mut self,
        phase: usize,
        result: Result<crate::client::Observation, String>,
        shared: &Shared,
    ) {
        self.requests = self.requests.saturating_add(1);
        if let Some(r) = self.requests_by_phase.get_mut(phase) {
            *r = r.saturating_add(1);
        }
        let obs = match result {
            Ok(o) => o,
            Err(e) => {
                self.errors = self.errors.saturating_add(1);
                if let Some(n) = self.errors_by_phase.get_mut(phase) {
                    *n = n.saturating_add(1);
                }
                self.first_error.get_or_insert(e);
                return;
            }
        };
        if let Some(holder) = &self.holder {
            let kept = *holder == obs.instance && obs.value == self.value.saturating_add(1);
            if !kept {
                let gone = shared
                    .gone
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(holder)
                    .is_some_and(|since| *since <= Instant::now());
                if gone {
                    self.unavoidable = self.unavoidable.saturating_add(1);
                } else if let Some(a) = self.avoidable.get_mut(phase) {
                    *a = a.saturating_add(1);
                }
            }
        }
        self.holder = Some(obs.instance);
        self.value = obs.value;
    }
}

/// Runs `run` under `scenario`; `say` receives the narration as it happens.
pub fn run(
    run: Run,
    scenario: &Scenario,
    artifacts: &Artifacts,
    say: &mut dyn FnMut(String),
) -> Result<Outcome, String> {
    let spec = StageSpec {
        kind: run.kind,
        mode: run.mode,
        clusters: vec![("v1".into(), 100, 3), ("v2".into(), 0, 2)],
        listen_port: 0,
    };
    let mut stage = Stage::start(&spec, artifacts)?;
    let began = Instant::now();
    let t = |began: Instant| format!("t={:>5.1}s", began.elapsed().as_secs_f64());
    say(format!(
        "{} Envoy pid {} on {} ({}), instances {}",
        t(began),
        stage.envoy.pid(),
        stage.addr(),
        run.label(),
        stage
            .instance_names()
            .iter()
            .filter_map(|n| stage.instance(n).map(|i| format!("{n} (pid {})", i.pid())))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared {
        phase: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        gone: Mutex::new(HashMap::new()),
    });
    let addr = stage.addr();
    let sessions = runtime.block_on(async {
        let mut sessions = Vec::with_capacity(scenario.sessions);
        for i in 0..scenario.sessions {
            sessions.push(match run.kind {
                Kind::Cart => DemoSession::Cart(CartSession::new(addr)?),
                Kind::Counter => {
                    DemoSession::Counter(CounterSession::connect(addr, format!("s{i}")).await?)
                }
            });
        }
        Ok::<_, String>(sessions)
    })?;
    // Hard stop for every session loop, whatever happens to the conductor.
    let hard_stop = Instant::now() + scenario.phase * 16 + Duration::from_secs(20);
    let n = u32::try_from(scenario.sessions.max(1)).unwrap_or(1);
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let offset = scenario.think * u32::try_from(i).unwrap_or(0) / n;
            runtime.spawn(drive(s, shared.clone(), scenario.think, offset, hard_stop))
        })
        .collect();

    let result = conduct(&mut stage, scenario, &shared, began, say);
    shared.stop.store(true, Ordering::SeqCst);
    let records: Vec<Record> = runtime.block_on(async {
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Ok(r) = task.await {
                out.push(r);
            }
        }
        out
    });
    result?;
    let mut outcome = Outcome {
        label: run.label(),
        sessions: records.len(),
        ..Outcome::default()
    };
    for r in &records {
        outcome.requests = outcome.requests.saturating_add(r.requests);
        outcome.errors = outcome.errors.saturating_add(r.errors);
        if outcome.first_error.is_none() {
            outcome.first_error = r.first_error.clone();
        }
        let avoidable = r.avoidable.iter().any(|a| *a > 0);
        if avoidable {
            outcome.lost_avoidable += 1;
        } else if r.unavoidable > 0 {
            outcome.lost_unavoidable += 1;
        } else {
            outcome.kept += 1;
        }
        for (p, a) in r.avoidable.iter().enumerate() {
            if *a > 0
                && let Some(slot) = outcome.avoidable_by_phase.get_mut(p)
            {
                *slot += 1;
            }
        }
        for (p, n) in r.requests_by_phase.iter().enumerate() {
            if let Some(slot) = outcome.requests_by_phase.get_mut(p) {
                *slot = slot.saturating_add(*n);
            }
        }
        for (p, n) in r.errors_by_phase.iter().enumerate() {
            if let Some(slot) = outcome.errors_by_phase.get_mut(p) {
                *slot = slot.saturating_add(*n);
            }
        }
    }
    outcome.envoy_stats = [
        "upstream_rq_retry",
        "upstream_rq_retry_overflow",
        "upstream_rq_retry_success",
        "upstream_cx_connect_fail",
    ]
    .iter()
    .map(|k| {
        let total: u64 = ["v1", "v2"]
            .iter()
            .filter_map(|c| stage.envoy.stat(&format!("cluster.{c}.{k}")))
            .sum();
        ((*k).to_owned(), total)
    })
    .collect();
    if run.mode == Mode::Sticky {
        outcome.counters = stage.sticky_counters();
        outcome.wasm_failures = stage.wasm_failures();
    }
    say(format!(
        "{} stopping Envoy (pid {}) and the instances",
        t(began),
        stage.envoy.pid()
    ));
    drop(stage);
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(outcome)
}

/// The events, one per phase, while the sessions' traffic runs.
fn conduct(
    stage: &mut Stage,
    scenario: &Scenario,
    shared: &Shared,
    began: Instant,
    say: &mut dyn FnMut(String),
) -> Result<(), String> {
    let t = || format!("t={:>5.1}s", began.elapsed().as_secs_f64());
    let enter = |p: usize| shared.phase.store(p, Ordering::SeqCst);
    let gone = |name: &str, at: Instant| {
        shared
            .gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), at);
    };
    say(format!(
        "{} {} sessions send requests steadily; the canary v2 is deployed at weight 0",
        t(),
        scenario.sessions
    ));
    std::thread::sleep(scenario.phase);

    enter(1);
    let added = stage.add_upstream("v1")?;
    say(format!(
        "{} scale-up: started {added} and added it to EDS",
        t()
    ));
    std::thread::sleep(scenario.phase);

    enter(2);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let deadline = (now + scenario.phase).as_secs().saturating_add(1);
    let until = Duration::from_secs(deadline).saturating_sub(now);
    let deadline_at = Instant::now() + until;
    gone("v1-0", deadline_at);
    stage.drain("v1-0", Some(deadline))?;
    say(format!(
        "{} drain: v1-0 is DRAINING in EDS, drain_deadline in {:.1} s",
        t(),
        until.as_secs_f64()
    ));
    std::thread::sleep(deadline_at.saturating_duration_since(Instant::now()));

    enter(3);
    say(format!(
        "{} v1-0's drain deadline passed (the process still runs: its grace period)",
        t()
    ));
    std::thread::sleep(scenario.phase);

    enter(4);
    stage.remove_upstream("v1-0")?;
    let pid = kill(stage, "v1-0")?;
    say(format!(
        "{} v1-0 removed from EDS and stopped (pid {pid})",
        t()
    ));
    std::thread::sleep(scenario.phase);

    enter(5);
    stage.shift_weights(&[("v1", 90), ("v2", 10)])?;
    say(format!(
        "{} canary: weights v1=90 v2=10 (POST /runtime_modify)",
        t()
    ));
    std::thread::sleep(scenario.phase);

    enter(6);
    stage.shift_weights(&[("v1", 0), ("v2", 100)])?;
    say(format!("{} canary: weights v1=0 v2=100", t()));
    if let Some(landed) = new_sessions_land_on(stage, 6) {
        say(format!(
            "{}   6 new browser sessions land on {landed}: new sessions follow the new weights",
            t()
        ));
    }
    std::thread::sleep(scenario.phase);

    enter(7);
    for victim in ["v1-1", "v2-0"] {
        gone(victim, Instant::now());
        let pid = kill(stage, victim)?;
        say(format!(
            "{} {victim} killed with SIGKILL (pid {pid}); EDS still lists it, as right after a crash",
            t()
        ));
    }
    std::thread::sleep(scenario.phase);
    say(format!("{} traffic stops", t()));
    Ok(())
}

/// Kills an instance by PID (SIGKILL); returns the PID.
fn kill(stage: &mut Stage, name: &str) -> Result<u32, String> {
    let pid = stage.instance(name).map(Instance::pid);
    stage.kill(name)?;
    pid.ok_or_else(|| format!("no instance {name}"))
}

/// Where `n` brand-new cookie sessions land now (cart stages only): one
/// request each for the page, answered with `x-backend`.
fn new_sessions_land_on(stage: &Stage, n: usize) -> Option<String> {
    let mut landed = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..n {
        let mut s = sticky_e2e::client::Session::new(format!("newcomer-{i}"));
        let backend = s.get(stage.addr()).ok()?.backend()?;
        *landed.entry(backend).or_default() += 1;
    }
    Some(
        landed
            .iter()
            .map(|(b, c)| format!("{b} ×{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

async fn drive(
    mut session: DemoSession,
    shared: Arc<Shared>,
    think: Duration,
    offset: Duration,
    hard_stop: Instant,
) -> Record {
    let mut record = Record::default();
    tokio::time::sleep(offset).await;
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < hard_stop {
        let phase = shared.phase.load(Ordering::SeqCst);
        let result = session.step().await;
        record.observe(phase, result, &shared);
        tokio::time::sleep(think).await;
    }
    record
}
