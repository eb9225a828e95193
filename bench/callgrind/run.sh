#!/bin/bash
# Envoy's user-space instructions per request under callgrind, for the native
# build against its baselines: deterministic where `make bench`'s times are
# not (this machine has no hardware counters for `perf stat`). Each
# configuration: Envoy 1.40 (one worker) under valgrind, 300 warm-up requests,
# counters zeroed, N requests carrying a session cookie (h2load, HTTP/1.1,
# 4 connections), counters dumped. Needs `make native bench-empty-wasm` and
# stickyctl built; prints one line per configuration. `sticky-wasm` (not in
# the default list) runs dist/sticky.wasm, or STICKY_WASM, in V8. With
# STICKY_CALLGRIND_KEEP=DIR each configuration's dump is kept as DIR/VARIANT.cg,
# for `callgrind_annotate --inclusive=yes`.
#
#   bench/callgrind/run.sh [N] [configuration...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
n=${1:-2000}; shift || true
variants=${*:-none envoy-cookie empty-native sticky-native sticky-native-dropin}
envoy=${STICKY_ENVOY:-$root/.venv/envoy}
stickyctl=${STICKYCTL:-$target/debug/stickyctl}
work=$(mktemp -d)
mkdir -p "$work/mods"
cp "${STICKY_NATIVE:-$root/dist/libsticky.so}" "$work/mods/libsticky.so"
cp "$target/native/libsticky_bench_empty_module.so" "$work/mods/"
case " $variants " in
  *" sticky-wasm "*) cp "${STICKY_WASM:-$root/dist/sticky.wasm}" "$work/mods/sticky.wasm" ;;
esac
upstream_port=${UPSTREAM_PORT:-18089}
python3 "$here/upstream.py" $upstream_port &
upstream=$!
trap 'kill $upstream 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
kill -0 $upstream || { echo "upstream did not start on port $upstream_port (UPSTREAM_PORT)"; exit 1; }
port=10300
for v in $variants; do
  port=$((port + 10)); admin=$((port + 1))
  # V8 writes the code it runs: valgrind must re-check it (wasm only).
  smc=; [ "$v" = sticky-wasm ] && smc=--smc-check=all-non-file
  python3 "$here/render.py" "$v" $port $admin $upstream_port "$work/$v.json" "$stickyctl" "$root/istio/testdata"
  ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$work/mods" valgrind --tool=callgrind $smc \
    --callgrind-out-file="$work/cg.$v.%p" "$envoy" -c "$work/$v.json" --concurrency 1 -l error \
    --base-id $port > "$work/$v.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && break; sleep 1
  done
  cookie=$(curl -si "http://127.0.0.1:$port/" | tr -d '\r' \
    | awk -F': ' 'tolower($1)=="set-cookie"{print $2}' | cut -d';' -f1 | head -1)
  # A same-size stand-in where the configuration issues none.
  [ -z "$cookie" ] && cookie="sticky=$(head -c 132 /dev/zero | tr '\0' 'A')"
  h2load --h1 -n 300 -c 4 -H "cookie: $cookie" "http://127.0.0.1:$port/" >/dev/null 2>&1
  callgrind_control -z $pid >/dev/null 2>&1
  done_line=$(h2load --h1 -n "$n" -c 4 -H "cookie: $cookie" "http://127.0.0.1:$port/" 2>&1 \
    | grep -E "^requests:")
  callgrind_control -d $pid >/dev/null 2>&1
  sleep 1
  kill $pid; wait $pid 2>/dev/null || true
  dump=$(ls -t "$work"/cg.$v.$pid.* | grep -v "\.$pid$" | head -1)
  if [ -n "${STICKY_CALLGRIND_KEEP:-}" ]; then
    mkdir -p "$STICKY_CALLGRIND_KEEP" && cp "$dump" "$STICKY_CALLGRIND_KEEP/$v.cg"
  fi
  ir=$(grep -E "^(summary|totals):" "$dump" | head -1 | awk '{print $2}')
  printf '%-22s %8d instructions/request  (%s)\n' "$v" $((ir / n)) "$done_line"
done
