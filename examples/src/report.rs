//! The story's results as a terminal table, a Markdown table and an SVG
//! chart (stacked bars of sessions kept / lost with the instance gone / lost
//! with the instance alive, per mode).

use std::fmt::Write as _;

use crate::story::{Outcome, PHASES, PHASES_SHORT, Scenario};

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

/// The summary table for a terminal (fixed-width columns).
pub fn text_table(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let w = outcomes
        .iter()
        .map(|o| o.label.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "{:<w$}  {:>8}  {:>12}  {:>21}  {:>22}  {:>16}",
        "mode",
        "sessions",
        "kept",
        "lost, instance gone",
        "lost, instance alive",
        "errors/requests"
    );
    let _ = writeln!(s, "{}", "-".repeat(w + 92));
    for o in outcomes {
        let _ = writeln!(
            s,
            "{:<w$}  {:>8}  {:>5} ({:>3.0}%)  {:>13} ({:>3.0}%)  {:>14} ({:>3.0}%)  {:>16}",
            o.label,
            o.sessions,
            o.kept,
            pct(o.kept, o.sessions),
            o.lost_unavoidable,
            pct(o.lost_unavoidable, o.sessions),
            o.lost_avoidable,
            pct(o.lost_avoidable, o.sessions),
            format!("{}/{}", o.errors, o.requests),
        );
    }
    let _ = writeln!(
        s,
        "\nsessions that lost state while their instance was alive, by phase:"
    );
    let _ = write!(s, "{:<w$}", "mode");
    for p in PHASES {
        let _ = write!(s, "  {:>w2$}", p, w2 = p.chars().count().max(5));
    }
    let _ = writeln!(s);
    for o in outcomes {
        let _ = write!(s, "{:<w$}", o.label);
        for (p, name) in PHASES.iter().enumerate() {
            let n = o.avoidable_by_phase.get(p).copied().unwrap_or(0);
            let _ = write!(s, "  {:>w2$}", n, w2 = name.chars().count().max(5));
        }
        let _ = writeln!(s);
    }
    s
}

/// The same results as Markdown (results/story.md).
pub fn markdown(outcomes: &[Outcome], scenario: &Scenario) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# sticky story: sessions kept vs lost\n");
    let _ = writeln!(
        s,
        "{} sessions send steady traffic through Envoy 1.40 to stateful demo instances \
         (cluster v1: 3 instances; canary v2: 2 instances, weight 0) while, {:.1} s apart: \
         v1 scales up 3→4, v1-0 drains with a deadline, the deadline passes, v1-0 stops, \
         the canary goes to 90/10 and then 0/100, and v1-1 and v2-0 are killed (SIGKILL). \
         Same scenario, same bootstrap renderer, one affinity mode per row. \
         Written by `sticky-story` (`examples/story`).\n",
        scenario.sessions,
        scenario.phase.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "A session *lost state* when a response came from another instance than the one \
         holding its cart/counter. *Instance gone*: the holder had been killed, stopped or \
         was past its drain deadline (unavoidable for in-memory state). *Instance alive*: \
         the proxy sent the session away from a live holder.\n"
    );
    let _ = writeln!(
        s,
        "| mode | sessions | kept | lost, instance gone | lost, instance alive | errors / requests |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for o in outcomes {
        let _ = writeln!(
            s,
            "| {} | {} | {} ({:.0}%) | {} ({:.0}%) | **{}** ({:.0}%) | {} / {} |",
            o.label,
            o.sessions,
            o.kept,
            pct(o.kept, o.sessions),
            o.lost_unavoidable,
            pct(o.lost_unavoidable, o.sessions),
            o.lost_avoidable,
            pct(o.lost_avoidable, o.sessions),
            o.errors,
            o.requests
        );
    }
    let _ = writeln!(
        s,
        "\nSessions that lost state while their instance was alive, by the phase it happened in:\n"
    );
    let _ = writeln!(s, "| mode | {} |", PHASES.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(PHASES.len()));
    for o in outcomes {
        let cells: Vec<String> = o.avoidable_by_phase.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(s, "| {} | {} |", o.label, cells.join(" | "));
    }
    let _ = writeln!(
        s,
        "\nErrors are requests that failed (HTTP 503, gRPC UNAVAILABLE): only when instances are killed. \
         Every route retries connect failures and resets on another host (2 retries, `previous_hosts`) \
         and every cluster allows {} concurrent retries (Envoy's default of 3 turns a crash under load into 503s). \
         Ring hash retries hash to the same dead host again, so some of its retries fail.",
        crate::stage::MAX_CONCURRENT_RETRIES
    );
    for o in outcomes.iter().filter(|o| !o.counters.is_empty()) {
        let list: Vec<String> = o
            .counters
            .iter()
            .map(|(k, v)| format!("`{}` {v}", k.trim_start_matches("wasmcustom.")))
            .collect();
        let _ = writeln!(s, "\n{} — filter counters: {}", o.label, list.join(", "));
    }
    let _ = writeln!(s, "\n![chart](story.svg)");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A self-contained SVG chart (results/story.svg): stacked bars of the
/// outcome per mode, then a grid of avoidable losses per phase.
pub fn svg(outcomes: &[Outcome], scenario: &Scenario) -> String {
    const KEPT: &str = "#2da44e";
    const GONE: &str = "#afb8c1";
    const ALIVE: &str = "#cf222e";
    let (left, bar_w, row_h) = (310.0, 560.0, 34.0);
    let width = left + bar_w + 110.0;
    let rows = outcomes.len() as f64;
    let bars_top = 96.0;
    let grid_title = bars_top + row_h * rows + 28.0;
    let grid_top = grid_title + 46.0;
    let height = grid_top + row_h * rows + 58.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="13">"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="16" y="26" font-size="17" font-weight="bold">Stateful sessions under churn: kept vs lost (Envoy 1.40, {} sessions, real processes)</text>"##,
        scenario.sessions
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="47" fill="#444">{}</text>"##,
        esc(&PHASES.join(" → "))
    );
    let mut x = left;
    for (color, name) in [
        (KEPT, "kept all along"),
        (GONE, "lost: its instance was gone"),
        (ALIVE, "lost: its instance was alive"),
    ] {
        let _ = writeln!(
            s,
            r##"<rect x="{x}" y="64" width="12" height="12" fill="{color}"/><text x="{}" y="75">{name}</text>"##,
            x + 16.0
        );
        x += 190.0;
    }
    for (i, o) in outcomes.iter().enumerate() {
        let y = bars_top + row_h * i as f64;
        let total = o.sessions.max(1) as f64;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left - 10.0,
            y + 18.0,
            esc(&o.label)
        );
        let mut x = left;
        for (n, color) in [
            (o.kept, KEPT),
            (o.lost_unavoidable, GONE),
            (o.lost_avoidable, ALIVE),
        ] {
            let w = bar_w * n as f64 / total;
            if w > 0.0 {
                let _ = writeln!(
                    s,
                    r##"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="24" fill="{color}"><title>{n} sessions</title></rect>"##
                );
                if w > 34.0 {
                    let fill = if color == GONE { "#222" } else { "#fff" };
                    let _ = writeln!(
                        s,
                        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="{fill}">{:.0}%</text>"##,
                        x + w / 2.0,
                        y + 17.0,
                        pct(n, o.sessions)
                    );
                }
            }
            x += w;
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" fill="{}">{} errors</text>"##,
            left + bar_w + 10.0,
            y + 17.0,
            if o.errors == 0 { "#555" } else { ALIVE },
            o.errors
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="16" y="{grid_title}" font-size="15" font-weight="bold">Sessions moved away from a live instance, by phase</text>"##
    );
    let col_w = bar_w / PHASES_SHORT.len() as f64;
    for (p, name) in PHASES_SHORT.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
            left + col_w * (p as f64 + 0.5),
            grid_top - 10.0,
            esc(name)
        );
    }
    for (i, o) in outcomes.iter().enumerate() {
        let y = grid_top + row_h * i as f64;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left - 10.0,
            y + 18.0,
            esc(&o.label)
        );
        for (p, n) in o.avoidable_by_phase.iter().enumerate() {
            let share = if o.sessions == 0 {
                0.0
            } else {
                *n as f64 / o.sessions as f64
            };
            let x = left + col_w * p as f64;
            let (fill, text) = if *n == 0 {
                ("#dafbe1", "#1a7f37")
            } else if share < 0.5 {
                ("#ffb3b8", "#222")
            } else {
                (ALIVE, "#fff")
            };
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{y}" width="{:.1}" height="26" fill="{fill}" stroke="#fff" stroke-width="2"/><text x="{:.1}" y="{}" text-anchor="middle" fill="{text}">{n}</text>"##,
                x,
                col_w,
                x + col_w / 2.0,
                y + 18.0
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="16" y="{}" fill="#555">Instance gone: killed, stopped, or past its drain deadline (in-memory state cannot survive that). Alive: the proxy sent the session elsewhere.</text>"##,
        height - 30.0
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="{}" fill="#555">Measured by sticky-story (examples/story) on loopback: {:.1} s per phase, every mode on the same stickyctl-rendered bootstrap.</text>"##,
        height - 12.0,
        scenario.phase.as_secs_f64()
    );
    let _ = writeln!(s, "</svg>");
    s
}
