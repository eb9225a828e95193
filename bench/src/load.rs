//! Load generators: wrk (HTTP/1.1 keep-alive) and h2load (HTTP/2 over
//! cleartext, prior knowledge), each bounded in time and killed by its PID if
//! it overstays, with their output parsed into one [`Sample`].

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which client, and how many requests it keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// wrk, one thread, `connections` HTTP/1.1 keep-alive connections.
    Wrk {
        /// Open connections (= requests in flight).
        connections: u32,
    },
    /// h2load, one thread, `clients` h2c connections with `streams` each.
    H2load {
        /// Connections.
        clients: u32,
        /// Concurrent streams per connection.
        streams: u32,
    },
}

impl Loader {
    /// The protocol column of the report.
    pub fn protocol(self) -> &'static str {
        match self {
            Loader::Wrk { .. } => "http1",
            Loader::H2load { .. } => "h2c",
        }
    }

    /// Requests in flight.
    pub fn concurrency(self) -> u32 {
        match self {
            Loader::Wrk { connections } => connections,
            Loader::H2load { clients, streams } => clients.saturating_mul(streams),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Completed requests per second.
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Completed requests.
    pub requests: u64,
    /// Responses that were not 2xx, plus socket errors.
    pub errors: u64,
    /// CPU time Envoy (all its threads) spent per completed request, µs:
    /// steadier than req/s on a shared machine, since another process's
    /// load delays Envoy but does not make its requests cost more.
    pub cpu_us: f64,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// Client and concurrency.
    pub loader: Loader,
    /// Envoy's listener.
    pub target: SocketAddr,
    /// `Cookie` header value sent on every request (`None`: no cookie).
    pub cookie: Option<&'a str>,
    /// Measured duration (whole seconds for wrk).
    pub duration: Duration,
    /// CPU to pin the client to (`taskset -c`).
    pub cpu: Option<u32>,
    /// Scratch directory (h2load's per-request log).
    pub scratch: &'a Path,
    /// Envoy's PID, for its CPU time.
    pub envoy_pid: u32,
}

/// Runs the load and parses what it printed.
pub fn run(r: &Run<'_>) -> Result<Sample, String> {
    let url = format!("http://{}/", r.target);
    let secs = r.duration.as_secs().max(1);
    let log = r.scratch.join("h2load.log");
    let mut cmd = match r.cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string());
            c
        }
        None => Command::new("env"),
    };
    match r.loader {
        Loader::Wrk { connections } => {
            cmd.arg("wrk")
                .args(["-t", "1", "-c", &connections.to_string()])
                .args(["-d", &format!("{secs}s"), "--latency", "--timeout", "5s"]);
            if let Some(c) = r.cookie {
                cmd.arg("-H").arg(format!("Cookie: {c}"));
            }
        }
        Loader::H2load { clients, streams } => {
            let _ = std::fs::remove_file(&log);
            cmd.arg("h2load")
                .args(["-t", "1", "-c", &clients.to_string()])
                .args(["-m", &streams.to_string(), "-D", &secs.to_string()])
                .arg(format!("--log-file={}", log.display()));
            if let Some(c) = r.cookie {
                cmd.arg("-H").arg(format!("cookie: {c}"));
            }
        }
    }
    cmd.arg(&url);
    let cpu_before = process_cpu_ns(r.envoy_pid);
    let out = run_bounded(cmd, r.duration + Duration::from_secs(20))?;
    let cpu_ns = process_cpu_ns(r.envoy_pid).saturating_sub(cpu_before);
    let mut s = match r.loader {
        Loader::Wrk { .. } => parse_wrk(&out)?,
        Loader::H2load { .. } => {
            let mut s = parse_h2load(&out)?;
            let text = std::fs::read_to_string(&log).map_err(|e| format!("h2load log: {e}"))?;
            let mut lat = h2load_latencies(&text);
            let [p50, p90, p99] = percentiles(&mut lat, [0.50, 0.90, 0.99])
                .ok_or_else(|| "h2load logged no request".to_owned())?;
            (s.p50_us, s.p90_us, s.p99_us) = (p50, p90, p99);
            s
        }
    };
    let done = s.requests.saturating_add(s.errors);
    if done > 0 {
        s.cpu_us = cpu_ns as f64 / 1e3 / done as f64;
    }
    Ok(s)
}

/// CPU time (ns) used so far by every thread of process `pid`, from
/// `/proc/PID/task/*/schedstat` (nanosecond resolution, unlike `stat`).
pub fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Runs `cmd` to completion, killing it (by PID) if it outlives `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Result<String, String> {
    let program = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > end => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} ran past {limit:?}: killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{program}: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{program} failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

/// Parses `wrk --latency` output.
pub fn parse_wrk(out: &str) -> Result<Sample, String> {
    let mut s = Sample::default();
    let mut seen = [false; 4];
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                s.rps = v.parse().map_err(|_| format!("wrk: bad rate {v}"))?;
                seen[0] = true;
            }
            (Some(pct @ ("50%" | "90%" | "99%")), Some(v)) => {
                let us = wrk_duration_us(v).ok_or_else(|| format!("wrk: bad latency {v}"))?;
                match pct {
                    "50%" => (s.p50_us, seen[1]) = (us, true),
                    "90%" => (s.p90_us, seen[2]) = (us, true),
                    _ => (s.p99_us, seen[3]) = (us, true),
                }
            }
            (Some(n), Some("requests")) => s.requests = n.parse().unwrap_or(0),
            (Some("Non-2xx"), _) => s.errors += last_number(line),
            (Some("Socket"), Some("errors:")) => {
                s.errors += line
                    .split(',')
                    .map(|part| last_number(part.trim()))
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if seen.iter().all(|&x| x) {
        Ok(s)
    } else {
        Err(format!(
            "wrk printed no rate or latency distribution:\n{out}"
        ))
    }
}

fn last_number(s: &str) -> u64 {
    s.split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// wrk prints durations as `812.00us`, `1.20ms` or `1.05s`.
fn wrk_duration_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(num * scale)
}

/// Parses h2load's summary (rate, counts); latencies come from its log.
pub fn parse_h2load(out: &str) -> Result<Sample, String> {
    let mut s = Sample::default();
    let mut rate = false;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // "finished in 5.00s, 24000.00 req/s, 1.2MB/s"
            if let Some(v) = rest
                .split(", ")
                .nth(1)
                .and_then(|p| p.strip_suffix(" req/s"))
            {
                s.rps = v.parse().map_err(|_| format!("h2load: bad rate {v}"))?;
                rate = true;
            }
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            // "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
            for part in rest.split(", ") {
                let mut w = part.split_whitespace();
                let n: u64 = w.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                match w.next() {
                    Some("succeeded") => s.requests = n,
                    Some("failed" | "errored" | "timeout") => s.errors += n,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            // "status codes: N 2xx, N 3xx, N 4xx, N 5xx"
            for part in rest.split(", ") {
                let mut w = part.split_whitespace();
                let n: u64 = w.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                if matches!(w.next(), Some("4xx" | "5xx")) {
                    s.errors += n;
                }
            }
        }
    }
    if rate {
        Ok(s)
    } else {
        Err(format!("h2load printed no rate:\n{out}"))
    }
}

/// Per-request latencies (µs) from an h2load `--log-file`: start time,
/// status, microseconds until the end of the response.
pub fn h2load_latencies(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect()
}

/// Nearest-rank percentiles of `values` (sorted in place); `None` if empty.
pub fn percentiles<const N: usize>(values: &mut [f64], ps: [f64; N]) -> Option<[f64; N]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let last = values.len() - 1;
    Some(ps.map(|p| {
        let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values.get(rank.min(last)).copied().unwrap_or(f64::NAN)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:1/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.35ms  200.00us   9.00ms   90.00%
    Req/Sec    23.00k     1.00k   25.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.40ms
     90%    1.50ms
     99%    1.05s
  115000 requests in 5.00s, 10.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  23000.50
Transfer/sec:      2.00MB
";

    #[test]
    fn parses_wrk_rate_percentiles_and_errors() {
        let s = parse_wrk(WRK).unwrap();
        assert_eq!(s.rps, 23000.5);
        assert_eq!((s.p50_us, s.p90_us, s.p99_us), (812.0, 1500.0, 1.05e6));
        assert_eq!(s.requests, 115000);
        assert_eq!(s.errors, 6);
    }

    #[test]
    fn wrk_output_without_numbers_is_an_error() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1").is_err());
    }

    #[test]
    fn parses_h2load_summary_and_log() {
        let out = "finished in 5.00s, 24000.25 req/s, 1.20MB/s
requests: 120000 total, 120000 started, 120000 done, 119990 succeeded, 10 failed, 0 errored, 0 timeout
status codes: 119990 2xx, 0 3xx, 0 4xx, 10 5xx
";
        let s = parse_h2load(out).unwrap();
        assert_eq!(s.rps, 24000.25);
        assert_eq!(s.requests, 119990);
        assert_eq!(s.errors, 20);
        assert!(process_cpu_ns(std::process::id()) > 0);
        let mut lat = h2load_latencies("1\t200\t300\n2\t200\t100\n3\t200\t200\n");
        assert_eq!(
            percentiles(&mut lat, [0.5, 0.9, 0.99]),
            Some([200.0, 300.0, 300.0])
        );
    }
}
