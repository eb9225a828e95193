//! The demo's wrap-mode leg: an MCP server (streamable HTTP) that mints its
//! own `Mcp-Session-Id`, two Envoy replicas with the same keys, and a client
//! that only echoes the header, switching replicas on every request.

use sticky_core::config::wire;
use sticky_e2e::client::{Response, request};
use sticky_e2e::plugin::to_json;
use sticky_e2e::rig::{Rig, Spec, default_wire};

const INIT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"demo","version":"1"}}}"#;
const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

fn post(addr: std::net::SocketAddr, id: Option<&str>, body: &[u8]) -> Result<Response, String> {
    let mut headers: Vec<(&[u8], &[u8])> = vec![(b"content-type", b"application/json")];
    if let Some(id) = id {
        headers.push((b"mcp-session-id", id.as_bytes()));
    }
    request(addr, "POST", "/mcp", &headers, body).map_err(|e| e.to_string())
}

fn short(value: &str) -> String {
    if value.len() > 24 {
        format!("{}… ({} chars)", &value[..24], value.len())
    } else {
        value.to_owned()
    }
}

/// Runs the leg; prints what the client held and what the server received.
pub fn run() -> Result<(), String> {
    println!(
        "\n== wrap mode: an MCP server minting Mcp-Session-Id behind two Envoy replicas (v1 50, v2 50)"
    );
    let plugin = to_json(&wire::PluginConfig {
        wrap: Some(wire::Wrap {
            header: Some("Mcp-Session-Id".into()),
            ..wire::Wrap::default()
        }),
        ..default_wire(&["v1", "v2"])
    });
    let rig = Rig::start(Spec {
        clusters: vec![("v1".into(), 50, 2), ("v2".into(), 50, 2)],
        plugin: Some(plugin),
        ..Spec::default()
    })
    .map_err(|e| e.to_string())?;
    let replica = rig.start_replica().map_err(|e| e.to_string())?;
    let envoys = [("envoy-a", rig.addr()), ("envoy-b", replica.envoy.listener)];
    for client in ["alice", "bob", "carol"] {
        let r = post(envoys[0].1, None, INIT)?;
        let backend = r.backend().unwrap_or_default();
        let minted = rig
            .backend(&backend)
            .mcp()
            .minted
            .last()
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .unwrap_or_default();
        let token = r.header("mcp-session-id").unwrap_or_default();
        println!("   {client}: initialize via envoy-a → {backend} minted {minted}");
        println!("   {client}: holds Mcp-Session-Id {}", short(&token));
        let mut line = format!("   {client}: tools/list");
        for i in 0..4 {
            let (name, addr) = envoys[(i + 1) % 2];
            let r = post(addr, Some(&token), CALL)?;
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let received = body["result"]["session"].as_str().unwrap_or("?");
            let same = if received == minted {
                "its own id"
            } else {
                "ANOTHER id"
            };
            line.push_str(&format!(
                "\n     via {name} → HTTP {} from {} (received {same})",
                r.status,
                r.backend().unwrap_or_default()
            ));
        }
        println!("{line}");
    }
    let raw = post(rig.addr(), Some("made-up-id"), CALL)?;
    println!(
        "   an id that is not a sealed token passes untouched: HTTP {} from {} (the server decides)",
        raw.status,
        raw.backend().unwrap_or_default()
    );
    for (name, envoy) in [("envoy-a", &rig.envoy), ("envoy-b", &replica.envoy)] {
        let counters: Vec<String> = envoy
            .stats_matching("wasmcustom.sticky.wrap.")
            .iter()
            .map(|(k, v)| format!("{}={v}", k.trim_start_matches("wasmcustom.sticky.wrap.")))
            .collect();
        println!("   {name} counters: {}", counters.join(" "));
    }
    let failures = rig.wasm_failures();
    if !failures.is_empty() {
        return Err(format!("wasm failures in the Envoy log: {failures:?}"));
    }
    Ok(())
}
