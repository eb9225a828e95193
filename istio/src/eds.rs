//! EDS files for standalone Envoy: endpoints with health status and sticky's
//! drain metadata, written atomically (temp file + rename) because Envoy only
//! notices a file that is moved into its watched directory.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Health of one endpoint as Envoy's EDS carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    /// Takes new sessions.
    Healthy,
    /// Keeps pinned sessions (with `override_host_status`), takes no new ones.
    Draining,
    /// Out of rotation.
    Unhealthy,
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Health status.
    pub health: Health,
    /// Drain deadline (unix seconds) written to `filter_metadata.<ns>.drain_deadline`.
    pub drain_deadline: Option<u64>,
}

impl Endpoint {
    /// A healthy endpoint.
    pub fn healthy(address: &str, port: u16) -> Self {
        Self {
            address: address.to_owned(),
            port,
            health: Health::Healthy,
            drain_deadline: None,
        }
    }

    /// "ip:port" as Envoy's `upstream.address` reports it.
    pub fn host(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// The EDS discovery response for `cluster`, as JSON.
pub fn render(cluster: &str, endpoints: &[Endpoint], namespace: &str, version: u64) -> Value {
    let lb_endpoints: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            let mut v = json!({
                "endpoint": {"address": {"socket_address": {"address": e.address, "port_value": e.port}}},
                "health_status": e.health,
            });
            let draining = e.health == Health::Draining || e.drain_deadline.is_some();
            if draining {
                let mut meta = json!({"draining": true});
                if let Some(d) = e.drain_deadline {
                    meta["drain_deadline"] = json!(d);
                }
                v["metadata"] = json!({"filter_metadata": {namespace: meta}});
            }
            v
        })
        .collect();
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": cluster,
            "endpoints": [{"lb_endpoints": lb_endpoints}],
        }],
    })
}

/// Writes `content` to `path` atomically: a temp file beside it, then rename.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Renders and writes the EDS file of `cluster`.
pub fn write(
    path: &Path,
    cluster: &str,
    endpoints: &[Endpoint],
    namespace: &str,
    version: u64,
) -> std::io::Result<()> {
    let value = render(cluster, endpoints, namespace, version);
    let text = serde_json::to_vec_pretty(&value).map_err(std::io::Error::other)?;
    write_atomic(path, &text)
}
