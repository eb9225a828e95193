//! `make bench`'s control-plane part (issue 18): unary gRPC proxyless vs
//! through Envoy (+ sticky, + nothing), all fed by `stickyctl serve`, and
//! the control plane's own cost as endpoints and ADS streams grow. Written
//! as one section of bench.md (between markers, so `--xds-only` can replace
//! it alone) and as bench-xds.csv.

pub mod fanout;
pub mod grpc;
pub mod procs;
mod report;

pub use report::{XdsResults, splice};

use std::path::Path;

use crate::report::median;

/// Fan-out target: one change to 500 streams at 10,000 endpoints, ms.
pub const FANOUT_TARGET_MS: f64 = 100.0;
/// The streams and endpoints the target is stated for.
pub const FANOUT_TARGET_AT: (usize, usize) = (500, 10_000);

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The gRPC comparison's load.
    pub grpc: grpc::GrpcLoad,
    /// The cost measurements.
    pub cost: fanout::CostPlan,
}

/// Runs both parts.
pub fn run(
    root: &Path,
    envoy: &Path,
    sticky_wasm: &Path,
    plan: &Plan,
) -> Result<XdsResults, String> {
    let tools = procs::Tools::find(root, envoy, sticky_wasm)?;
    let loadavg_before = crate::loadavg();
    eprintln!("gRPC unary: proxyless vs through Envoy, one control plane");
    let grpc = grpc::run(&tools, plan.grpc)?;
    eprintln!("control plane cost");
    let cost = fanout::run(&tools, &plan.cost)?;
    Ok(XdsResults {
        plan: plan.clone(),
        grpc,
        cost,
        loadavg: (loadavg_before, crate::loadavg()),
    })
}

/// Median of a series, NaN-free.
fn med(v: &[f64]) -> Option<f64> {
    median(v)
}
