//! Medians, ratios and targets, written as `bench.md` and `bench.csv`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{Loader, Sample};
use crate::setup::Variant;

/// Which requests a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Every request carries a valid session (sticky's hot path).
    Session,
    /// Every request is a new session (sticky seals a token per response).
    New,
}

impl Path {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Path::Session => "session",
            Path::New => "new-session",
        }
    }
}

/// One load shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Client and concurrency.
    pub loader: Loader,
    /// Which requests.
    pub path: Path,
}

impl Scenario {
    /// "http1 c32 session".
    pub fn label(&self) -> String {
        format!(
            "{} c{} {}",
            self.loader.protocol(),
            self.loader.concurrency(),
            self.path.name()
        )
    }
}

/// Everything measured in one benchmark run.
#[derive(Debug, Default)]
pub struct Results {
    /// The scenarios, in run order.
    pub scenarios: Vec<Scenario>,
    /// Samples by (variant, scenario index), one per round.
    pub samples: BTreeMap<(Variant, usize), Vec<Sample>>,
    /// Envoy spawn to /ready, per variant, one per round.
    pub startup: BTreeMap<Variant, Vec<Duration>>,
    /// Variants that could not run, and why.
    pub unavailable: Vec<(Variant, String)>,
    /// Free-form lines about the run (machine, pinning, rounds).
    pub notes: Vec<String>,
    /// Artifact sizes: (name, bytes).
    pub sizes: Vec<(String, u64)>,
    /// host-tests instruction (fuel) counts.
    pub fuel: Fuel,
}

/// What host-tests said about instructions per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fuel {
    /// Its lines that carry fuel / instruction counts.
    Counts(Vec<String>),
    /// Why there are none.
    NotAvailable(String),
}

impl Default for Fuel {
    fn default() -> Self {
        Fuel::NotAvailable("not measured in this run".into())
    }
}

/// Targets of issue 8, on throughput (ratio ≥) and p50 (ratio ≤).
pub const TARGETS: [(Variant, Variant, f64); 3] = [
    (Variant::StickyWasm, Variant::EmptyWasm, 0.98),
    (Variant::StickyWasm, Variant::EnvoyCookie, 0.97),
    (Variant::StickyWasm, Variant::None, 0.93),
];
/// sticky's p50 at most this times Envoy's native cookie's.
pub const P50_TARGET: f64 = 1.05;
/// Targets of issue 14 for the native build (each wiring), on throughput
/// and on Envoy CPU per request (ratio ≥).
pub const NATIVE_TARGETS: [(Variant, f64); 2] =
    [(Variant::EnvoyCookie, 1.00), (Variant::None, 0.95)];
/// The native build's p50 at most this times Envoy's native cookie's.
pub const NATIVE_P50_TARGET: f64 = 1.02;
/// The native build in each wiring.
pub const NATIVE_BUILDS: [Variant; 2] = [Variant::StickyNative, Variant::StickyNativeDropIn];

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v.get(mid - 1)? + v.get(mid)?) / 2.0)
    }
}

impl Results {
    fn series(&self, v: Variant, s: usize, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.samples
            .get(&(v, s))
            .map(|xs| xs.iter().map(f).collect())
            .unwrap_or_default()
    }

    fn med(&self, v: Variant, s: usize, f: impl Fn(&Sample) -> f64) -> Option<f64> {
        median(&self.series(v, s, f))
    }

    /// Median over rounds of `a`'s value ÷ `b`'s in the same round: pairs
    /// measured minutes apart share the machine's state, so this is steadier
    /// than a ratio of medians on a noisy machine.
    pub fn ratio(
        &self,
        a: Variant,
        b: Variant,
        s: usize,
        f: impl Fn(&Sample) -> f64,
    ) -> Option<f64> {
        let (xa, xb) = (self.series(a, s, &f), self.series(b, s, &f));
        let paired: Vec<f64> = xa
            .iter()
            .zip(&xb)
            .filter(|(_, y)| **y > 0.0)
            .map(|(x, y)| x / y)
            .collect();
        median(&paired)
    }

    /// Median over rounds of `a`'s value minus `b`'s in the same round.
    pub fn delta(
        &self,
        a: Variant,
        b: Variant,
        s: usize,
        f: impl Fn(&Sample) -> f64,
    ) -> Option<f64> {
        let (xa, xb) = (self.series(a, s, &f), self.series(b, s, &f));
        let paired: Vec<f64> = xa.iter().zip(&xb).map(|(x, y)| x - y).collect();
        median(&paired)
    }

    /// Variants that produced samples, in report order.
    pub fn variants(&self) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| self.samples.keys().any(|(w, _)| w == v))
            .collect()
    }

    /// Problems that make the run useless: a variant and scenario without
    /// numbers (what `--smoke` asserts against).
    pub fn missing_numbers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.variants() {
            for (i, s) in self.scenarios.iter().enumerate() {
                let ok = self.samples.get(&(v, i)).is_some_and(|xs| {
                    !xs.is_empty()
                        && xs.iter().all(|x| {
                            x.rps > 0.0 && x.p50_us > 0.0 && x.p99_us > 0.0 && x.requests > 0
                        })
                });
                if !ok {
                    out.push(format!("{} / {}: no numbers", v.name(), s.label()));
                }
            }
        }
        out
    }

    /// The CSV: one row per variant and scenario, with its ratios to the
    /// three baselines.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "variant,protocol,path,concurrency,rounds,rps,p50_us,p90_us,p99_us,errors,rps_min,rps_max,\
             rps_vs_none,rps_vs_envoy_cookie,rps_vs_empty_wasm,p50_vs_envoy_cookie,cpu_us_per_req,\
             cpu_delta_vs_none_us,cpu_delta_vs_envoy_cookie_us,cpu_delta_vs_empty_wasm_us,startup_ms\n",
        );
        for v in self.variants() {
            for (i, s) in self.scenarios.iter().enumerate() {
                let xs = self.samples.get(&(v, i)).cloned().unwrap_or_default();
                let rps = self.series(v, i, |x| x.rps);
                let errors: u64 = xs.iter().map(|x| x.errors).sum();
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    v.name(),
                    s.loader.protocol(),
                    s.path.name(),
                    s.loader.concurrency(),
                    xs.len(),
                    num(self.med(v, i, |x| x.rps), 0),
                    num(self.med(v, i, |x| x.p50_us), 0),
                    num(self.med(v, i, |x| x.p90_us), 0),
                    num(self.med(v, i, |x| x.p99_us), 0),
                    errors,
                    num(rps.iter().copied().reduce(f64::min), 0),
                    num(rps.iter().copied().reduce(f64::max), 0),
                    num(self.ratio(v, Variant::None, i, |x| x.rps), 3),
                    num(self.ratio(v, Variant::EnvoyCookie, i, |x| x.rps), 3),
                    num(self.ratio(v, Variant::EmptyWasm, i, |x| x.rps), 3),
                    num(self.ratio(v, Variant::EnvoyCookie, i, |x| x.p50_us), 3),
                    num(self.med(v, i, |x| x.cpu_us), 2),
                    num(self.delta(v, Variant::None, i, |x| x.cpu_us), 2),
                    num(self.delta(v, Variant::EnvoyCookie, i, |x| x.cpu_us), 2),
                    num(self.delta(v, Variant::EmptyWasm, i, |x| x.cpu_us), 2),
                    num(self.startup_ms(v), 0),
                );
            }
        }
        out
    }

    /// The native build against issue 14's targets: throughput, p50 and
    /// Envoy CPU per request for each wiring, and where its cost goes.
    fn native_section(&self, md: &mut String) {
        let builds: Vec<Variant> = NATIVE_BUILDS
            .into_iter()
            .filter(|v| self.variants().contains(v))
            .collect();
        if builds.is_empty() {
            return;
        }
        md.push_str(
            "\n## Native build (`dist/libsticky.so`) against its targets\n\n\
             Same rounds, same machine. req/s and p50: median over rounds of the within-round \
             ratio; CPU: baseline's Envoy CPU per request ÷ the module's (read like a throughput \
             ratio). ✅ meets the target, ❌ misses it. The targets apply to the session path; the \
             new-session path (a token sealed per response) is reported against the same \
             numbers.\n\n| scenario | build |",
        );
        for (b, t) in NATIVE_TARGETS {
            let _ = write!(md, " /{} req/s (≥ {t:.2}) |", b.name());
        }
        let _ = write!(md, " /envoy-cookie p50 (≤ {NATIVE_P50_TARGET}) |");
        for (b, t) in NATIVE_TARGETS {
            let _ = write!(md, " CPU /{} (≥ {t:.2}) |", b.name());
        }
        md.push_str(
            " Δ CPU − none µs | Δ CPU − envoy-cookie µs |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (i, s) in self.scenarios.iter().enumerate() {
            for &v in &builds {
                let _ = write!(md, "| {} | {} |", s.label(), v.name());
                for (b, t) in NATIVE_TARGETS {
                    let r = self.ratio(v, b, i, |x| x.rps);
                    let _ = write!(md, " {} |", judged(r, |r| r >= t));
                }
                let p = self.ratio(v, Variant::EnvoyCookie, i, |x| x.p50_us);
                let _ = write!(md, " {} |", judged(p, |r| r <= NATIVE_P50_TARGET));
                for (b, t) in NATIVE_TARGETS {
                    let r = self.ratio(b, v, i, |x| x.cpu_us);
                    let _ = write!(md, " {} |", judged(r, |r| r >= t));
                }
                let _ = writeln!(
                    md,
                    " {} | {} |",
                    num(self.delta(v, Variant::None, i, |x| x.cpu_us), 1),
                    num(self.delta(v, Variant::EnvoyCookie, i, |x| x.cpu_us), 1)
                );
            }
        }
        if !self.variants().contains(&Variant::EmptyNative) {
            return;
        }
        md.push_str(
            "\nWhere the native build's cost goes (Envoy CPU µs per request, median of \
             within-round differences): `empty-native` is a dynamic module that does nothing, so \
             empty-native − none is the price of the dynamic-module boundary itself (Envoy's \
             per-stream filter object and hook calls), paid by any module; \
             envoy-cookie − none is what Envoy's own `stateful_session` costs.\n\n\
             | scenario | empty-native/none req/s | empty-native − none µs | envoy-cookie − none µs |",
        );
        for &v in &builds {
            let _ = write!(md, " {} − empty-native µs |", v.name());
        }
        md.push_str("\n|---|---:|---:|---:|");
        for _ in &builds {
            md.push_str("---:|");
        }
        md.push('\n');
        for (i, s) in self.scenarios.iter().enumerate() {
            let _ = write!(
                md,
                "| {} | {} | {} | {} |",
                s.label(),
                num(
                    self.ratio(Variant::EmptyNative, Variant::None, i, |x| x.rps),
                    3
                ),
                num(
                    self.delta(Variant::EmptyNative, Variant::None, i, |x| x.cpu_us),
                    1
                ),
                num(
                    self.delta(Variant::EnvoyCookie, Variant::None, i, |x| x.cpu_us),
                    1
                ),
            );
            for &v in &builds {
                let _ = write!(
                    md,
                    " {} |",
                    num(self.delta(v, Variant::EmptyNative, i, |x| x.cpu_us), 1)
                );
            }
            md.push('\n');
        }
    }

    fn startup_ms(&self, v: Variant) -> Option<f64> {
        let ms: Vec<f64> = self
            .startup
            .get(&v)
            .map(|d| d.iter().map(|d| d.as_secs_f64() * 1e3).collect())
            .unwrap_or_default();
        median(&ms)
    }

    /// The markdown report.
    pub fn markdown(&self) -> String {
        let mut md = String::from("# sticky benchmark (`make bench`)\n\n");
        for n in &self.notes {
            let _ = writeln!(md, "- {n}");
        }
        md.push_str("\nConfigurations:\n\n");
        for v in self.variants() {
            let _ = writeln!(md, "- **{}**: {}", v.name(), v.describe());
        }
        for (v, why) in &self.unavailable {
            let _ = writeln!(md, "- **{}**: {why}", v.name());
        }

        md.push_str("\n## Throughput and latency (medians over rounds)\n\n");
        md.push_str(
            "| scenario | configuration | req/s | p50 µs | p90 µs | p99 µs | Envoy CPU µs/req | errors |\n",
        );
        md.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
        for (i, s) in self.scenarios.iter().enumerate() {
            for v in self.variants() {
                let errors: u64 = self
                    .samples
                    .get(&(v, i))
                    .map(|xs| xs.iter().map(|x| x.errors).sum())
                    .unwrap_or(0);
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    s.label(),
                    v.name(),
                    num(self.med(v, i, |x| x.rps), 0),
                    num(self.med(v, i, |x| x.p50_us), 0),
                    num(self.med(v, i, |x| x.p90_us), 0),
                    num(self.med(v, i, |x| x.p99_us), 0),
                    num(self.med(v, i, |x| x.cpu_us), 1),
                    errors
                );
            }
        }

        md.push_str(
            "\n## Ratios (median over rounds of the ratio within a round)\n\n\
             Throughput ratios (higher is better) and the p50 ratio (lower is better); \
             ✅ meets the target, ❌ misses it.\n\n",
        );
        md.push_str("| scenario |");
        for (a, b, t) in TARGETS {
            let _ = write!(md, " {}/{} req/s (≥ {t}) |", a.name(), b.name());
        }
        let _ = writeln!(
            md,
            " sticky-wasm/envoy-cookie p50 (≤ {P50_TARGET}) | sticky-wasm/floor-wasm req/s | empty-wasm/none req/s |"
        );
        md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for (i, s) in self.scenarios.iter().enumerate() {
            let _ = write!(md, "| {} |", s.label());
            for (a, b, t) in TARGETS {
                let r = self.ratio(a, b, i, |x| x.rps);
                let _ = write!(md, " {} |", judged(r, |r| r >= t));
            }
            let p = self.ratio(Variant::StickyWasm, Variant::EnvoyCookie, i, |x| x.p50_us);
            let _ = write!(md, " {} |", judged(p, |r| r <= P50_TARGET));
            for (a, b) in [
                (Variant::StickyWasm, Variant::FloorWasm),
                (Variant::EmptyWasm, Variant::None),
            ] {
                let _ = write!(md, " {} |", num(self.ratio(a, b, i, |x| x.rps), 3));
            }
            md.push('\n');
        }
        self.native_section(&mut md);

        md.push_str(
            "\n## Envoy CPU per request (the same targets, measured as cost)\n\n\
             Envoy's CPU time (all threads, `/proc/PID/task/*/schedstat`) per completed request. \
             With one saturated worker, throughput is the inverse of this cost, and unlike req/s \
             it does not drop when other processes take the CPU, so on a shared machine it is the \
             steadier measure. Ratio = baseline's cost ÷ sticky's (read like a throughput ratio); \
             Δ = sticky's extra µs per request.\n\n",
        );
        md.push_str("| scenario |");
        for (a, b, t) in TARGETS {
            let _ = write!(md, " {}/{} (≥ {t}) | Δ µs |", a.name(), b.name());
        }
        md.push_str(
            " sticky-wasm − floor-wasm µs (sticky's logic) | floor-wasm − empty-wasm µs (the wiring) | \
             empty-wasm − none µs (the wasm boundary) |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (i, s) in self.scenarios.iter().enumerate() {
            let _ = write!(md, "| {} |", s.label());
            for (a, b, t) in TARGETS {
                let r = self.ratio(b, a, i, |x| x.cpu_us);
                let d = self.delta(a, b, i, |x| x.cpu_us);
                let _ = write!(md, " {} | {} |", judged(r, |r| r >= t), num(d, 1));
            }
            for (a, b) in [
                (Variant::StickyWasm, Variant::FloorWasm),
                (Variant::FloorWasm, Variant::EmptyWasm),
                (Variant::EmptyWasm, Variant::None),
            ] {
                let _ = write!(md, " {} |", num(self.delta(a, b, i, |x| x.cpu_us), 1));
            }
            md.push('\n');
        }

        if self.variants().contains(&Variant::StickyWasmB) {
            md.push_str(
                "\n## sticky-wasm-b against sticky-wasm (median of within-round differences)\n\n\
                 | scenario | req/s ratio b/a | Envoy CPU Δ b − a µs/req |\n|---|---:|---:|\n",
            );
            for (i, s) in self.scenarios.iter().enumerate() {
                let (a, b) = (Variant::StickyWasm, Variant::StickyWasmB);
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    s.label(),
                    num(self.ratio(b, a, i, |x| x.rps), 3),
                    num(self.delta(b, a, i, |x| x.cpu_us), 2)
                );
            }
        }

        md.push_str("\n## Envoy start-to-ready (spawn to `/ready` 200, median)\n\n");
        md.push_str("| configuration | ms |\n|---|---:|\n");
        for v in Variant::ALL {
            if let Some(ms) = self.startup_ms(v) {
                let _ = writeln!(md, "| {} | {ms:.0} |", v.name());
            }
        }

        md.push_str("\n## Sizes\n\n| artifact | bytes |\n|---|---:|\n");
        for (name, bytes) in &self.sizes {
            let _ = writeln!(md, "| {name} | {bytes} |");
        }

        md.push_str("\n## host-tests instruction counts per request\n\n");
        match &self.fuel {
            Fuel::Counts(lines) => {
                md.push_str("From `cargo test -p sticky-host-tests -- --nocapture`:\n\n```\n");
                for l in lines {
                    md.push_str(l);
                    md.push('\n');
                }
                md.push_str("```\n");
            }
            Fuel::NotAvailable(why) => {
                let _ = writeln!(md, "Not available: {why}");
            }
        }
        md
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) => format!("{x:.decimals$}"),
        None => String::new(),
    }
}

fn judged(r: Option<f64>, ok: impl Fn(f64) -> bool) -> String {
    match r {
        Some(x) if ok(x) => format!("{x:.3} ✅"),
        Some(x) => format!("{x:.3} ❌"),
        None => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rps: f64, p50: f64) -> Sample {
        Sample {
            rps,
            p50_us: p50,
            p90_us: p50,
            p99_us: p50,
            requests: 1,
            errors: 0,
            cpu_us: 1.0,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratios_pair_samples_of_the_same_round() {
        let mut r = Results {
            scenarios: vec![Scenario {
                loader: Loader::Wrk { connections: 1 },
                path: Path::Session,
            }],
            ..Results::default()
        };
        r.samples.insert(
            (Variant::StickyWasm, 0),
            vec![sample(90.0, 1.0), sample(45.0, 1.0), sample(99.0, 1.0)],
        );
        r.samples.insert(
            (Variant::None, 0),
            vec![sample(100.0, 1.0), sample(50.0, 1.0), sample(100.0, 1.0)],
        );
        assert_eq!(
            r.ratio(Variant::StickyWasm, Variant::None, 0, |x| x.rps),
            Some(0.9)
        );
        assert!(r.missing_numbers().is_empty());
        assert!(
            r.csv()
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("none,http1,session,1,3,100,")
        );
    }

    #[test]
    fn a_scenario_without_numbers_is_reported() {
        let mut r = Results {
            scenarios: vec![Scenario {
                loader: Loader::Wrk { connections: 1 },
                path: Path::New,
            }],
            ..Results::default()
        };
        r.samples.insert((Variant::None, 0), vec![sample(0.0, 0.0)]);
        assert_eq!(r.missing_numbers().len(), 1);
    }
}
