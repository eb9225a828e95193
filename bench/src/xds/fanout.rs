//! The control plane's own cost: `stickyctl serve` over 100 … 10,000
//! endpoints — start-up (load + first snapshot), change → snapshot
//! published (from its log), resident memory — and the time one endpoint
//! change takes to reach every one of N open ADS streams. The streams are
//! lightweight clients in this process (tonic, one connection each, ACKing
//! every response), subscribed to the changed cluster's EDS; each timestamps
//! the response carrying the new version.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::xds::procs::{ControlPlane, Inputs, Tools, endpoint_file};

const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// The cluster whose endpoints are generated and changed.
const CLUSTER: &str = "reviews-v1";

/// What to measure.
#[derive(Debug, Clone)]
pub struct CostPlan {
    /// Endpoint counts (one control plane each).
    pub endpoints: Vec<usize>,
    /// Open ADS streams, cumulative (10 → 100 → 500 opens 90, then 400 more).
    pub streams: Vec<usize>,
    /// Endpoint changes timed at each stream count.
    pub changes: usize,
}

/// One stream count at one endpoint count.
#[derive(Debug, Clone, Default)]
pub struct FanRow {
    /// Open ADS streams.
    pub streams: usize,
    /// Resident memory of `stickyctl serve` with them open, KiB.
    pub rss_kib: Option<u64>,
    /// Per change: file renamed → the last stream received the new EDS, ms.
    pub last_ms: Vec<f64>,
    /// Per change: the median stream's time, ms.
    pub median_ms: Vec<f64>,
}

/// One endpoint count.
#[derive(Debug, Clone, Default)]
pub struct CostRow {
    /// Endpoints in the snapshot (all in `reviews-v1`, plus one in `reviews-v2`).
    pub endpoints: usize,
    /// Spawn → first stdout line: inputs read, first snapshot built, bound, ms.
    pub startup_ms: f64,
    /// Per change: file renamed → the server logged the new snapshot, ms
    /// (its log has millisecond resolution).
    pub rebuild_ms: Vec<f64>,
    /// Resident memory with no client, KiB.
    pub rss_idle_kib: Option<u64>,
    /// By stream count.
    pub fanout: Vec<FanRow>,
}

/// What every stream last received: (version, when).
type Seen = Arc<Mutex<Vec<Option<(String, Instant)>>>>;

/// Runs the plan, one control plane per endpoint count.
pub fn run(tools: &Tools, plan: &CostPlan) -> Result<Vec<CostRow>, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for &n in &plan.endpoints {
        let row = rt.block_on(one_size(tools, plan, n))?;
        rows.push(row);
    }
    Ok(rows)
}

/// `n` distinct pod addresses (10.0.0.0/8, port 9080); endpoint 0 is
/// terminating in the second file, serving in the first.
fn files(n: usize) -> [String; 2] {
    let addrs: Vec<std::net::SocketAddr> = (0..n)
        .map(|i| {
            let i = u32::try_from(i).unwrap_or(0) + 1;
            std::net::SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9080))
        })
        .collect();
    let with = |first: &str| {
        let eps: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, if i == 0 { first } else { "serving" }))
            .collect();
        endpoint_file(CLUSTER, &eps)
    };
    [with("serving"), with("terminating")]
}

async fn one_size(tools: &Tools, plan: &CostPlan, n: usize) -> Result<CostRow, String> {
    let inputs = Inputs::new(tools)?;
    let texts = files(n);
    inputs.write_endpoints(CLUSTER, &texts[0])?;
    let other = std::net::SocketAddr::from(([10, 255, 0, 1], 9080));
    inputs.write_endpoints(
        "reviews-v2",
        &endpoint_file("reviews-v2", &[(other, "serving")]),
    )?;
    let cp = ControlPlane::start(tools, &inputs, &[])?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut row = CostRow {
        endpoints: n + 1,
        startup_ms: cp.startup.as_secs_f64() * 1000.0,
        rss_idle_kib: cp.rss_kib(),
        ..CostRow::default()
    };
    eprintln!(
        "control plane, {} endpoints: start-up {:.0} ms, RSS {} KiB",
        row.endpoints,
        row.startup_ms,
        row.rss_idle_kib.unwrap_or(0)
    );
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let mut state = 0;
    for &s in &plan.streams {
        while tasks.len() < s {
            let i = tasks.len();
            seen.lock().map_err(|e| e.to_string())?.push(None);
            tasks.push(open_stream(&cp.xds, i, seen.clone()).await?);
        }
        wait_all(&seen, |_| true, Duration::from_secs(60))
            .await
            .map_err(|e| format!("{s} streams: initial EDS: {e}"))?;
        let mut fan = FanRow {
            streams: s,
            ..FanRow::default()
        };
        for _ in 0..plan.changes {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let before = versions(&seen)?;
            let log_len = cp.log_text().len();
            state = 1 - state;
            let text = texts.get(state).cloned().unwrap_or_default();
            // The rename is the change; the temp file is written first.
            let tmp = inputs.path(&format!("eps/.{CLUSTER}.json.tmp"));
            std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            let wall = unix_ms();
            std::fs::rename(&tmp, inputs.path(&format!("eps/{CLUSTER}.json")))
                .map_err(|e| e.to_string())?;
            let times = wait_all(
                &seen,
                |(i, v)| before.get(i).is_some_and(|b| b.as_deref() != Some(v)),
                Duration::from_secs(30),
            )
            .await
            .map_err(|e| format!("{n} endpoints, {s} streams: change: {e}"))?;
            let mut ms: Vec<f64> = times
                .iter()
                .map(|t| t.saturating_duration_since(t0).as_secs_f64() * 1000.0)
                .collect();
            ms.sort_by(f64::total_cmp);
            fan.last_ms.push(ms.last().copied().unwrap_or(f64::NAN));
            fan.median_ms
                .push(ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN));
            if let Some(at) = published_at(&cp.log_text(), log_len) {
                row.rebuild_ms.push((at - wall).max(0.0));
            }
        }
        fan.rss_kib = cp.rss_kib();
        eprintln!(
            "  {s:>4} streams: change → last stream {:?} ms, RSS {} KiB",
            fan.last_ms
                .iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>(),
            fan.rss_kib.unwrap_or(0)
        );
        row.fanout.push(fan);
    }
    for t in tasks {
        t.abort();
    }
    drop(cp);
    Ok(row)
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The time (unix ms) of the first "snapshot N" line after byte `from` of the log.
fn published_at(log: &str, from: usize) -> Option<f64> {
    log.get(from..)?
        .lines()
        .find(|l| l.contains(": snapshot "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse::<f64>().ok())
        .map(|s| s * 1000.0)
}

fn versions(seen: &Seen) -> Result<Vec<Option<String>>, String> {
    Ok(seen
        .lock()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|x| x.as_ref().map(|(v, _)| v.clone()))
        .collect())
}

/// Waits until every stream's last response satisfies `done((index,
/// version))`; when each arrived.
async fn wait_all(
    seen: &Seen,
    done: impl Fn((usize, &str)) -> bool,
    timeout: Duration,
) -> Result<Vec<Instant>, String> {
    let began = Instant::now();
    loop {
        {
            let g = seen.lock().map_err(|e| e.to_string())?;
            let got: Vec<Instant> = g
                .iter()
                .enumerate()
                .filter_map(|(i, x)| x.as_ref().filter(|(v, _)| done((i, v))).map(|(_, t)| *t))
                .collect();
            if got.len() == g.len() {
                return Ok(got);
            }
            if began.elapsed() > timeout {
                return Err(format!(
                    "{} of {} streams after {timeout:?}",
                    got.len(),
                    g.len()
                ));
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Opens stream `i` on its own connection: subscribes to the cluster's
/// EDS and ACKs every response.
async fn open_stream(
    xds: &str,
    i: usize,
    seen: Seen,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{xds}"))
        .await
        .map_err(|e| format!("connect {xds}: {e}"))?
        // 10,000 endpoints are ~0.5 MB per response.
        .max_decoding_message_size(256 << 20);
    let (tx, rx) = mpsc::channel(8);
    let first = DiscoveryRequest {
        node: Some(Node {
            id: format!("bench-fanout-{i}"),
            cluster: "bench".into(),
            ..Node::default()
        }),
        type_url: EDS.into(),
        resource_names: vec![CLUSTER.into()],
        ..DiscoveryRequest::default()
    };
    tx.send(first).await.map_err(|e| e.to_string())?;
    let mut inbound = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("stream: {e}"))?
        .into_inner();
    Ok(tokio::spawn(async move {
        while let Ok(Some(r)) = inbound.message().await {
            let at = Instant::now();
            let DiscoveryResponse {
                version_info,
                nonce,
                ..
            } = r;
            if let Ok(mut g) = seen.lock()
                && let Some(slot) = g.get_mut(i)
            {
                *slot = Some((version_info.clone(), at));
            }
            let ack = DiscoveryRequest {
                version_info,
                response_nonce: nonce,
                type_url: EDS.into(),
                resource_names: vec![CLUSTER.into()],
                ..DiscoveryRequest::default()
            };
            if tx.send(ack).await.is_err() {
                break;
            }
        }
    }))
}
