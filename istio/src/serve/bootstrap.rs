//! Bootstraps that point a client at `stickyctl serve` and nothing else:
//! Envoy gets node + admin + ADS (google_grpc, so no static cluster is
//! needed); a proxyless gRPC client gets the GRPC_XDS_BOOTSTRAP file.

use serde_json::{Value, json};

/// An Envoy bootstrap whose listeners, routes, clusters and endpoints all
/// come from the ADS server at `xds` (`HOST:PORT`).
pub fn envoy(node_id: &str, xds: &str, admin_port: u16) -> Value {
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    json!({
        "node": {
            "id": node_id,
            "cluster": "sticky",
            "metadata": {"sticky.group": "envoy"},
        },
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}},
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"google_grpc": {"target_uri": xds, "stat_prefix": "ads"}}],
                "set_node_on_first_message_only": true,
            },
            "lds_config": ads,
            "cds_config": ads,
        },
    })
}

/// A `GRPC_XDS_BOOTSTRAP` file for a proxyless client (grpcio / C-core).
pub fn grpc(node_id: &str, xds: &str) -> Value {
    json!({
        "xds_servers": [{
            "server_uri": xds,
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": node_id,
            "metadata": {"sticky.group": "grpc"},
        },
    })
}
