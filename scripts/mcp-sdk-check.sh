#!/bin/bash
# Wrap mode against the official MCP Python SDK (`make mcp-sdk`, not part of
# `make test`: it installs the SDK from PyPI). Four SDK servers (stateful
# streamable HTTP, each minting its own Mcp-Session-Id) behind two Envoy
# replicas running dist/sticky.wasm with the same keys, rendered by stickyctl
# from istio/testdata/policy-mcp.yaml (wrap mode) and route.yaml (90/10
# split). The SDK client alternates its HTTP requests between the replicas;
# every call must reach the instance that minted the session's id, carrying
# exactly that id. Every process started here is stopped by its PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv=$root/.venv-mcp
sdk=${MCP_SDK_VERSION:-2.3.0}
sessions=${MCP_SESSIONS:-8}
calls=${MCP_CALLS:-6}
envoy=${STICKY_ENVOY:-$root/.venv/envoy}

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$sdk"
cargo build --quiet --locked -p stickyctl
stickyctl=$target/debug/stickyctl

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() { # URL, what
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$2 did not come up ($1)" >&2
  exit 1
}

declare -A port
for name in v1-0 v1-1 v2-0 v2-1; do
  port[$name]=$(free_port)
  "$venv/bin/python" "$root/examples/mcp/server.py" "$name" "${port[$name]}" >"$work/$name.log" 2>&1 &
  pids+=($!)
done
for name in "${!port[@]}"; do wait_for "http://127.0.0.1:${port[$name]}/" "MCP server $name"; done

listen=()
for replica in a b; do
  listen_port=$(free_port)
  admin_port=$(free_port)
  "$stickyctl" render envoy -p "$root/istio/testdata/policy-mcp.yaml" -r "$root/istio/testdata/route.yaml" \
    --keys "$root/istio/testdata/keys.json" --wasm "$root/dist/sticky.wasm" \
    --listen "127.0.0.1:$listen_port" --admin-port "$admin_port" \
    --endpoint "reviews-v1=127.0.0.1:${port[v1-0]},127.0.0.1:${port[v1-1]}" \
    --endpoint "reviews-v2=127.0.0.1:${port[v2-0]},127.0.0.1:${port[v2-1]}" \
    --out "$work/envoy-$replica" >/dev/null
  "$envoy" -c "$work/envoy-$replica/envoy.json" --concurrency 1 --base-id "$listen_port" \
    -l warning --log-path "$work/envoy-$replica.log" >/dev/null 2>&1 &
  pids+=($!)
  wait_for "http://127.0.0.1:$admin_port/ready" "Envoy $replica"
  listen+=("$listen_port")
  admins+=("$admin_port")
done

echo "MCP SDK $sdk: 4 servers (reviews-v1: v1-0 v1-1, reviews-v2: v2-0 v2-1, split 90/10) behind two Envoy replicas with sticky (wrap mode)"
status=0
"$venv/bin/python" "$root/examples/mcp/client.py" "${listen[0]}" "${listen[1]}" "$sessions" "$calls" || status=$?
for i in 0 1; do
  echo "replica $i: $(curl -s "http://127.0.0.1:${admins[$i]}/stats" | grep 'sticky.wrap' | tr '\n' ' ')"
done
exit $status
