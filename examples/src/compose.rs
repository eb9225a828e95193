//! The docker-compose demo's Envoy files (examples/compose/): two Envoys on
//! the official image (one for the cart over HTTP, one for the gRPC counter),
//! their bootstraps rendered by stickyctl's renderer exactly like the
//! loopback stages, and EDS files naming the instances' fixed addresses on
//! the compose network. `tests/compose.rs` checks that the committed files
//! are what this renders and that Envoy 1.40 validates them.

use std::path::PathBuf;

use serde_json::Value;
use stickyctl::eds::{self, Endpoint};
use stickyctl::render::envoy::{ClusterPlan, Plan, bootstrap};

use crate::instance::Kind;
use crate::stage::{Mode, affinity, plugin_config, retry_headroom, upstream_http2};

/// Where the compose file mounts sticky's files inside the Envoy containers.
pub const CONTAINER_ROOT: &str = "/etc/sticky";

/// The port every demo instance listens on inside the compose network.
pub const INSTANCE_PORT: u16 = 8080;

/// One demo instance of the compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeInstance {
    /// Service kind.
    pub kind: Kind,
    /// Instance name (`v1-0`), also its version prefix.
    pub name: &'static str,
    /// Cluster / version.
    pub version: &'static str,
    /// Fixed address on the compose network.
    pub ip: &'static str,
}

/// The instances docker-compose.yml starts (names and addresses must match it).
pub const INSTANCES: [ComposeInstance; 6] = [
    ComposeInstance {
        kind: Kind::Cart,
        name: "v1-0",
        version: "v1",
        ip: "172.28.5.11",
    },
    ComposeInstance {
        kind: Kind::Cart,
        name: "v1-1",
        version: "v1",
        ip: "172.28.5.12",
    },
    ComposeInstance {
        kind: Kind::Cart,
        name: "v2-0",
        version: "v2",
        ip: "172.28.5.21",
    },
    ComposeInstance {
        kind: Kind::Counter,
        name: "v1-0",
        version: "v1",
        ip: "172.28.5.31",
    },
    ComposeInstance {
        kind: Kind::Counter,
        name: "v1-1",
        version: "v1",
        ip: "172.28.5.32",
    },
    ComposeInstance {
        kind: Kind::Counter,
        name: "v2-0",
        version: "v2",
        ip: "172.28.5.41",
    },
];

/// A file under examples/compose/ and its rendered content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path relative to examples/compose/.
    pub path: String,
    /// Content.
    pub content: String,
}

/// examples/compose/ in this checkout.
pub fn compose_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compose")
}

fn kind_dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Cart => "cart",
        Kind::Counter => "counter",
    }
}

/// The bootstrap of one compose Envoy (`envoy-cart` on 10000, admin 9901;
/// `envoy-counter` on 10001, admin 9902).
pub fn envoy_bootstrap(kind: Kind) -> Value {
    let dir = kind_dir(kind);
    let (port, admin) = match kind {
        Kind::Cart => (10000, 9901),
        Kind::Counter => (10001, 9902),
    };
    let eds_dir = PathBuf::from(format!("{CONTAINER_ROOT}/eds/{dir}"));
    let plan = Plan {
        listen_address: "0.0.0.0".into(),
        listen_port: port,
        admin_port: admin,
        affinity: affinity(
            Mode::Sticky,
            PathBuf::from(format!("{CONTAINER_ROOT}/sticky.wasm")),
        ),
        plugin_config: plugin_config(&["v1", "v2"]),
        clusters: vec![
            ClusterPlan {
                name: "v1".into(),
                weight: 90,
                eds_path: eds_dir.join("v1.json"),
            },
            ClusterPlan {
                name: "v2".into(),
                weight: 10,
                eds_path: eds_dir.join("v2.json"),
            },
        ],
        eds_dir,
        retry: true,
        strict: false,
        runtime_key_prefix: Some("sticky.split".into()),
        connect_timeout_ms: 250,
    };
    let mut config = bootstrap(&plan);
    retry_headroom(&mut config);
    if kind == Kind::Counter {
        upstream_http2(&mut config);
    }
    // Published only on the host's loopback by docker-compose.yml; inside the
    // container the admin must listen beyond 127.0.0.1 to be reachable at all.
    if let Some(a) = config.pointer_mut("/admin/address/socket_address/address") {
        *a = Value::from("0.0.0.0");
    }
    config
}

/// Writes the rendered files under examples/compose/ (used to regenerate them).
pub fn write_all() -> Result<(), String> {
    let root = compose_dir();
    for f in render()? {
        let path = root.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&path, &f.content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Every generated file: two bootstraps and four EDS files.
pub fn render() -> Result<Vec<RenderedFile>, String> {
    let mut files = Vec::new();
    for kind in [Kind::Cart, Kind::Counter] {
        let dir = kind_dir(kind);
        let text =
            serde_json::to_string_pretty(&envoy_bootstrap(kind)).map_err(|e| e.to_string())?;
        files.push(RenderedFile {
            path: format!("envoy-{dir}.json"),
            content: text + "\n",
        });
        for version in ["v1", "v2"] {
            let eps: Vec<Endpoint> = INSTANCES
                .iter()
                .filter(|i| i.kind == kind && i.version == version)
                .map(|i| Endpoint::healthy(i.ip, INSTANCE_PORT))
                .collect();
            let text = serde_json::to_string_pretty(&eds::render(version, &eps, "sticky", 1))
                .map_err(|e| e.to_string())?;
            files.push(RenderedFile {
                path: format!("eds/{dir}/{version}.json"),
                content: text + "\n",
            });
        }
    }
    Ok(files)
}
