//! Logs and Prometheus-text metrics of the control plane: clients
//! connected, pushes by group and type, ACKs, NACKs, stale nonces, refused
//! inputs, and the push latency (input change seen → client ACK) histogram.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// One log line on stderr: unix time with milliseconds, level, message.
pub fn log(level: &str, message: &str) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "{}.{:03} stickyctl serve {level}: {message}",
        t.as_secs(),
        t.subsec_millis()
    );
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    /// (metric name, label text) → value.
    values: BTreeMap<(&'static str, String), f64>,
    histograms: BTreeMap<String, Histogram>,
}

/// The metrics registry (one per server).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

const HELP: [(&str, &str, &str); 10] = [
    (
        "sticky_xds_clients_connected",
        "gauge",
        "ADS streams open, by node group.",
    ),
    (
        "sticky_xds_pushes_total",
        "counter",
        "Discovery responses sent, by group and type.",
    ),
    (
        "sticky_xds_acks_total",
        "counter",
        "Responses applied by a client, by group and type.",
    ),
    (
        "sticky_xds_nacks_total",
        "counter",
        "Responses refused by a client (it keeps its last good config).",
    ),
    (
        "sticky_xds_stale_requests_total",
        "counter",
        "Requests answering an older nonce, ignored.",
    ),
    (
        "sticky_input_errors_total",
        "counter",
        "Input changes refused (the last good state keeps serving), by source.",
    ),
    (
        "sticky_input_errors_current",
        "gauge",
        "Inputs whose newest version is refused now, by source.",
    ),
    ("sticky_snapshots_total", "counter", "Snapshots published."),
    (
        "sticky_snapshot_version_info",
        "gauge",
        "Current snapshot generation.",
    ),
    ("sticky_endpoints", "gauge", "Endpoints in EDS, by state."),
];

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Adds `by` to a counter or gauge.
    pub fn add(&self, name: &'static str, labels: &str, by: f64) {
        self.with(|i| *i.values.entry((name, labels.to_owned())).or_insert(0.0) += by);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &str, value: f64) {
        self.with(|i| {
            i.values.insert((name, labels.to_owned()), value);
        });
    }

    /// The value of a counter or gauge (tests, readiness).
    pub fn get(&self, name: &'static str, labels: &str) -> f64 {
        self.with(|i| {
            i.values
                .get(&(name, labels.to_owned()))
                .copied()
                .unwrap_or(0.0)
        })
    }

    /// Records one push latency for `labels`.
    pub fn observe_latency(&self, labels: &str, d: Duration) {
        let secs = d.as_secs_f64();
        self.with(|i| {
            let h = i.histograms.entry(labels.to_owned()).or_default();
            for (c, b) in h.counts.iter_mut().zip(BUCKETS) {
                if secs <= b {
                    *c = c.saturating_add(1);
                }
            }
            h.count = h.count.saturating_add(1);
            h.sum += secs;
        });
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|i| {
            let mut out = String::new();
            for (name, kind, help) in HELP {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for ((n, labels), v) in &i.values {
                    if *n == name {
                        let _ = writeln!(out, "{name}{} {v}", braces(labels));
                    }
                }
            }
            let name = "sticky_xds_push_latency_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Input change seen to client ACK, by group and type.\n# TYPE {name} histogram"
            );
            for (labels, h) in &i.histograms {
                let sep = if labels.is_empty() { "" } else { "," };
                for (c, b) in h.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{} {}", braces(labels), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", braces(labels), h.count);
            }
            out
        })
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// `group="envoy",type="eds"`.
pub fn labels(group: &str, ty: &str) -> String {
    format!("group=\"{group}\",type=\"{ty}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_counters_and_a_histogram() {
        let m = Metrics::default();
        m.add("sticky_xds_nacks_total", &labels("grpc", "lds"), 1.0);
        m.observe_latency(&labels("envoy", "eds"), Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("sticky_xds_nacks_total{group=\"grpc\",type=\"lds\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "sticky_xds_push_latency_seconds_bucket{group=\"envoy\",type=\"eds\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "sticky_xds_push_latency_seconds_bucket{group=\"envoy\",type=\"eds\",le=\"0.0025\"} 0"
        ));
        assert!(
            text.contains("sticky_xds_push_latency_seconds_count{group=\"envoy\",type=\"eds\"} 1")
        );
    }
}
