//! The control-plane section of bench.md and bench-xds.csv.

use std::fmt::Write as _;

use crate::xds::fanout::CostRow;
use crate::xds::grpc::{GrpcPath, GrpcResults, GrpcSample};
use crate::xds::{FANOUT_TARGET_AT, FANOUT_TARGET_MS, Plan, med};

/// Start of the section in bench.md.
pub const BEGIN: &str = "<!-- bench-xds:begin -->";
/// End of the section in bench.md.
pub const END: &str = "<!-- bench-xds:end -->";

/// Everything the xDS part measured.
#[derive(Debug, Clone)]
pub struct XdsResults {
    /// What was run.
    pub plan: Plan,
    /// gRPC samples by path.
    pub grpc: GrpcResults,
    /// Control-plane cost by endpoint count.
    pub cost: Vec<CostRow>,
    /// Load average before and after.
    pub loadavg: (String, String),
}

/// `md` with its xDS section replaced by `section` (appended when absent).
pub fn splice(md: &str, section: &str) -> String {
    match (md.find(BEGIN), md.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{section}{}", &md[..b], &md[e + END.len()..])
        }
        _ => format!("{}\n{section}\n", md.trim_end()),
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "n/a".into(),
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

impl XdsResults {
    fn series(&self, p: GrpcPath, f: impl Fn(&GrpcSample) -> f64) -> Vec<f64> {
        self.grpc
            .get(&p)
            .map(|xs| xs.iter().map(f).collect())
            .unwrap_or_default()
    }

    fn med(&self, p: GrpcPath, f: impl Fn(&GrpcSample) -> f64) -> Option<f64> {
        med(&self.series(p, f))
    }

    /// Median over rounds of `a`'s value ÷ `b`'s in the same round.
    pub fn ratio(&self, a: GrpcPath, b: GrpcPath, f: impl Fn(&GrpcSample) -> f64) -> Option<f64> {
        let (xa, xb) = (self.series(a, &f), self.series(b, &f));
        let r: Vec<f64> = xa
            .iter()
            .zip(&xb)
            .filter(|(_, y)| **y > 0.0)
            .map(|(x, y)| x / y)
            .collect();
        med(&r)
    }

    fn errors(&self, p: GrpcPath) -> u64 {
        self.grpc
            .get(&p)
            .map_or(0, |xs| xs.iter().map(|x| x.errors).sum())
    }

    /// What should have a number and has none, or went wrong (errors,
    /// sessions without a cookie or answered by two backends).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in GrpcPath::ALL {
            let xs = self.grpc.get(&p).cloned().unwrap_or_default();
            if xs.is_empty()
                || xs
                    .iter()
                    .any(|x| (x.rps.is_nan() || x.rps <= 0.0) || !x.p50_us.is_finite())
            {
                out.push(format!("grpc {}: no calls/s or p50", p.name()));
            }
            for x in &xs {
                if x.errors > 0 {
                    out.push(format!("grpc {}: {} failed calls", p.name(), x.errors));
                }
                if p.sticky() && x.sessions_with_cookie < x.sessions {
                    out.push(format!(
                        "grpc {}: {} of {} sessions got a cookie",
                        p.name(),
                        x.sessions_with_cookie,
                        x.sessions
                    ));
                }
                if p.sticky() && x.sessions_moved > 0 {
                    out.push(format!(
                        "grpc {}: {} sessions answered by two backends",
                        p.name(),
                        x.sessions_moved
                    ));
                }
            }
        }
        for n in &self.plan.cost.endpoints {
            let Some(r) = self.cost.iter().find(|r| r.endpoints == n + 1) else {
                out.push(format!("control plane, {n} endpoints: not measured"));
                continue;
            };
            if r.rss_idle_kib.is_none() || r.rebuild_ms.is_empty() {
                out.push(format!(
                    "control plane, {n} endpoints: no RSS or rebuild time"
                ));
            }
            for s in &self.plan.cost.streams {
                if !r
                    .fanout
                    .iter()
                    .any(|f| f.streams == *s && f.last_ms.iter().any(|x| x.is_finite()))
                {
                    out.push(format!("fan-out, {n} endpoints, {s} streams: no time"));
                }
            }
        }
        out
    }

    /// The bench.md section, markers included.
    pub fn markdown(&self, commit: &str) -> String {
        let g = &self.plan.grpc;
        let c = &self.plan.cost;
        let mut md = format!(
            "{BEGIN}\n## gRPC unary: proxyless vs through Envoy (one `stickyctl serve`)\n\n"
        );
        let _ = writeln!(
            md,
            "- commit `{commit}`; {} round(s) × {} s per path (+{} s warm-up), paths interleaved, order rotated per round; medians over rounds, ratios = median of within-round ratios",
            g.rounds, g.seconds, g.warmup
        );
        let _ = writeln!(
            md,
            "- load generator for every path: `bench/grpc_load.py` (grpcio {} processes × {} concurrent sessions, one channel per process, grpc.aio); each session's first call has no cookie, later calls carry the `set-cookie` it got",
            g.procs, g.sessions
        );
        md.push_str("- backends: three `sticky-counter` (examples/, tonic h2c) — reviews-v1 ×2, reviews-v2 ×1, route 90/10 (istio/testdata); Envoy 1.40 with one worker; nothing pinned (the client processes need both CPUs)\n");
        md.push_str("- Envoy's clusters: HTTP/2 to the gRPC backends — sent by `stickyctl serve --upstream-protocol http2` to the sticky Envoy, static with the same options in the no-affinity Envoy (it takes no CDS); endpoints by EDS from the same server for both\n");
        let _ = writeln!(
            md,
            "- load average {} before, {} after (2 CPUs shared with other builds: compare ratios, not absolute numbers)\n",
            self.loadavg.0, self.loadavg.1
        );
        for p in GrpcPath::ALL {
            let _ = writeln!(md, "- **{}**: {}", p.name(), p.describe());
        }
        md.push_str(
            "\n| path | calls/s | p50 ms | p90 ms | p99 ms | errors | sessions: with cookie / moved |\n|---|---:|---:|---:|---:|---:|---|\n",
        );
        for p in GrpcPath::ALL {
            let xs = self.grpc.get(&p).cloned().unwrap_or_default();
            let sessions: u64 = xs.iter().map(|x| x.sessions).sum();
            let cookie: u64 = xs.iter().map(|x| x.sessions_with_cookie).sum();
            let moved: u64 = xs.iter().map(|x| x.sessions_moved).sum();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {cookie}/{sessions} / {moved} |",
                p.name(),
                num(self.med(p, |x| x.rps), 0),
                num(self.med(p, |x| x.p50_us / 1000.0), 2),
                num(self.med(p, |x| x.p90_us / 1000.0), 2),
                num(self.med(p, |x| x.p99_us / 1000.0), 2),
                self.errors(p),
            );
        }
        use GrpcPath::{EnvoyPlain, EnvoySticky, Proxyless};
        md.push_str("\n| ratio | calls/s | p50 | p99 |\n|---|---:|---:|---:|\n");
        for (a, b) in [
            (EnvoySticky, EnvoyPlain),
            (Proxyless, EnvoySticky),
            (Proxyless, EnvoyPlain),
        ] {
            let _ = writeln!(
                md,
                "| {} / {} | {} | {} | {} |",
                a.name(),
                b.name(),
                num(self.ratio(a, b, |x| x.rps), 3),
                num(self.ratio(a, b, |x| x.p50_us), 3),
                num(self.ratio(a, b, |x| x.p99_us), 3),
            );
        }
        md.push_str(
            "| KubeCon 2023 talk, their hardware: proxyless 20k RPS p50 0.31 ms / proxy 3k RPS p50 3.31 ms | 6.7 | 0.094 | |\n\n\
             Where proxyless wins: no second hop and no proxy CPU — the client balances from EDS itself. \
             What the proxy buys: sticky's token is sealed (an AEAD, ChaCha20-Poly1305, under rotating \
             keys: a client can neither read its pod's address nor forge a token; gRPC's cookie is \
             plain `base64(ip:port;cluster)`), the drain deadline is enforced in the proxy itself (proxyless clients have none: the \
             server must remove the endpoint at the deadline, and a client that lost its ADS stream keeps \
             a drained host), wrap mode (sticking on the application's own session id, e.g. `Mcp-Session-Id`, for clients \
             that never keep a cookie), one policy for every \
             language (proxyless affinity exists only in gRPC C-core: C++, Python, Ruby, PHP), and HTTP \
             clients.\n",
        );

        md.push_str("\n## Control plane cost (`stickyctl serve`)\n\n");
        let _ = writeln!(
            md,
            "- endpoints generated into `reviews-v1` (+1 in `reviews-v2`); a change = endpoint 0 toggled serving ⇄ terminating by an atomic rename of its file, {} change(s) per stream count, medians shown",
            c.changes
        );
        md.push_str("- ADS streams: lightweight tonic clients in the bench process (one connection each, EDS for `reviews-v1`, ACKing every response), opened cumulatively; they share the 2 CPUs with the server\n");
        md.push_str("- start-up: spawn → its first stdout line (inputs read, first snapshot built, ports bound); change → snapshot: rename → the server's `snapshot N` log line (millisecond log timestamps): file watch, parse, model and snapshot build. The server exports no build-time metric.\n\n");
        let _ = write!(
            md,
            "| endpoints | start-up ms | change → snapshot ms | RSS idle MiB |"
        );
        for s in &c.streams {
            let _ = write!(md, " RSS {s} streams MiB |");
        }
        md.push_str("\n|---:|---:|---:|---:|");
        for _ in &c.streams {
            md.push_str("---:|");
        }
        md.push('\n');
        for r in &self.cost {
            let _ = write!(
                md,
                "| {} | {} | {} | {} |",
                r.endpoints,
                num(Some(r.startup_ms), 0),
                num(med(&r.rebuild_ms), 0),
                mib(r.rss_idle_kib)
            );
            for s in &c.streams {
                let f = r.fanout.iter().find(|f| f.streams == *s);
                let _ = write!(md, " {} |", mib(f.and_then(|f| f.rss_kib)));
            }
            md.push('\n');
        }
        let (ts, te) = FANOUT_TARGET_AT;
        let _ = writeln!(
            md,
            "\nOne endpoint change → every ADS stream has the new EDS (ms, median over changes; target ≤ {FANOUT_TARGET_MS} ms for {ts} streams at {te} endpoints: ✅ meets, ❌ misses):\n"
        );
        md.push_str("| endpoints | streams | → last stream | → median stream | target |\n|---:|---:|---:|---:|---|\n");
        for r in &self.cost {
            for f in &r.fanout {
                let last = med(&f.last_ms);
                let judged = if f.streams == ts && r.endpoints.abs_diff(te) <= 1 {
                    match last {
                        Some(x) if x <= FANOUT_TARGET_MS => "✅",
                        Some(_) => "❌",
                        None => "n/a",
                    }
                } else {
                    ""
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {judged} |",
                    r.endpoints,
                    f.streams,
                    num(last, 1),
                    num(med(&f.median_ms), 1)
                );
            }
        }
        md.push_str(END);
        md.push('\n');
        md
    }

    /// bench-xds.csv: `table,case,metric,value`, one row per number.
    pub fn csv(&self) -> String {
        let mut out = String::from("table,case,metric,value\n");
        let mut row = |t: &str, case: &str, m: &str, v: String| {
            let _ = writeln!(out, "{t},{case},{m},{v}");
        };
        for p in GrpcPath::ALL {
            row(
                "grpc",
                p.name(),
                "rounds",
                self.series(p, |x| x.rps).len().to_string(),
            );
            row("grpc", p.name(), "rps", num(self.med(p, |x| x.rps), 0));
            for (m, f) in [
                (
                    "p50_us",
                    (|x: &GrpcSample| x.p50_us) as fn(&GrpcSample) -> f64,
                ),
                ("p90_us", |x| x.p90_us),
                ("p99_us", |x| x.p99_us),
            ] {
                row("grpc", p.name(), m, num(self.med(p, f), 0));
            }
            row("grpc", p.name(), "errors", self.errors(p).to_string());
        }
        use GrpcPath::{EnvoyPlain, EnvoySticky, Proxyless};
        for (a, b) in [
            (EnvoySticky, EnvoyPlain),
            (Proxyless, EnvoySticky),
            (Proxyless, EnvoyPlain),
        ] {
            let case = format!("{}/{}", a.name(), b.name());
            row(
                "grpc_ratio",
                &case,
                "rps",
                num(self.ratio(a, b, |x| x.rps), 3),
            );
            row(
                "grpc_ratio",
                &case,
                "p50",
                num(self.ratio(a, b, |x| x.p50_us), 3),
            );
            row(
                "grpc_ratio",
                &case,
                "p99",
                num(self.ratio(a, b, |x| x.p99_us), 3),
            );
        }
        for r in &self.cost {
            let e = r.endpoints.to_string();
            row(
                "control_plane",
                &e,
                "startup_ms",
                num(Some(r.startup_ms), 1),
            );
            row(
                "control_plane",
                &e,
                "change_to_snapshot_ms",
                num(med(&r.rebuild_ms), 1),
            );
            row(
                "control_plane",
                &e,
                "rss_idle_kib",
                r.rss_idle_kib.map_or("n/a".into(), |k| k.to_string()),
            );
            for f in &r.fanout {
                let case = format!("{}x{}", r.endpoints, f.streams);
                row("fanout", &case, "last_stream_ms", num(med(&f.last_ms), 1));
                row(
                    "fanout",
                    &case,
                    "median_stream_ms",
                    num(med(&f.median_ms), 1),
                );
                row(
                    "fanout",
                    &case,
                    "rss_kib",
                    f.rss_kib.map_or("n/a".into(), |k| k.to_string()),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_marked_section() {
        let md = format!("# a\n\nkeep\n\n{BEGIN}\nold\n{END}\n\ntail\n");
        let out = splice(&md, &format!("{BEGIN}\nnew\n{END}"));
        assert!(out.contains("keep") && out.contains("new") && out.contains("tail"));
        assert!(!out.contains("old"));
    }

    #[test]
    fn splice_appends_when_there_is_no_section() {
        let out = splice("# a\n", &format!("{BEGIN}\nnew\n{END}"));
        assert!(out.starts_with("# a\n") && out.contains("new"));
    }
}
