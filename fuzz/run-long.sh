#!/usr/bin/env bash
# Long fuzzing run (nightly + cargo-fuzz): SECONDS_PER_TARGET each, corpus grows
# in a scratch copy; crashes land in fuzz/artifacts/<target>/. `make fuzz`.
set -euo pipefail
cd "$(dirname "$0")"
per=${SECONDS_PER_TARGET:-150}
for t in token_open cookie_parse config_parse filter_flow; do
  mkdir -p "target/corpus/$t"
  cp -n corpus/$t/* "target/corpus/$t/" 2>/dev/null || true
  echo "== $t for ${per}s"
  cargo +nightly fuzz run -O "$t" "target/corpus/$t" corpus/$t -- \
    -max_total_time="$per" -max_len=4096 -print_final_stats=1 2>&1 | grep -E "^(stat::|#[0-9]+ *DONE|==|SUMMARY|Done)" || true
done
