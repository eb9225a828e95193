#!/usr/bin/env bash
# Reproducible-build check for dist/sticky.wasm.
#
# Copies the source tree (tracked and untracked-but-not-ignored files, as they
# are on disk) to two directories with different absolute paths, builds each
# through the Makefile's own `wasm` target (so with exactly its
# WASM_RUSTFLAGS and wasm-opt flags) into two fresh target directories that
# also sit at different paths, outside the trees, and compares the bytes of
# the raw rustc output and of the optimized module.
#
# Exit status: 0 identical; 1 the builds differ (the first differing bytes are
# printed); 2 a build failed. REPRO_KEEP=1 keeps the work directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sticky-repro.XXXXXX")
if [ "${REPRO_KEEP:-0}" = 1 ]; then
  echo "repro: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi

# Flags from the caller's environment would override the Makefile's per-target
# remap flags (cargo prefers RUSTFLAGS over target rustflags): build clean.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_TARGET_DIR \
  CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS SOURCE_DATE_EPOCH

copy_tree() {
  local dest=$1
  mkdir -p "$dest"
  (
    cd "$root"
    git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
      tar --null -T - -cf -
  ) | tar -xf - -C "$dest"
}

build() {
  local tree=$1 target=$2 log=$3
  echo "repro: building in $tree (target dir $target)"
  if ! CARGO_TARGET_DIR="$target" make -C "$tree" --no-print-directory wasm >"$log" 2>&1; then
    echo "repro: build in $tree failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 2
  fi
}

# Different lengths and depths on purpose: a leaked or unremapped path shows
# up as a byte difference.
tree_a="$work/a/sticky"
tree_b="$work/second-build/deeper/sticky-copy"
target_a="$work/t1"
target_b="$work/other-target-dir/t2"
copy_tree "$tree_a"
copy_tree "$tree_b"
build "$tree_a" "$target_a" "$work/a.log"
build "$tree_b" "$target_b" "$work/b.log"

raw=wasm32-wasip1/release/sticky_wasm.wasm
sha() { sha256sum "$1" | cut -d' ' -f1; }
echo "repro: raw rustc output   A $(sha "$target_a/$raw")"
echo "repro: raw rustc output   B $(sha "$target_b/$raw")"
echo "repro: dist/sticky.wasm   A $(sha "$tree_a/dist/sticky.wasm")  ($(stat -c %s "$tree_a/dist/sticky.wasm") bytes)"
echo "repro: dist/sticky.wasm   B $(sha "$tree_b/dist/sticky.wasm")  ($(stat -c %s "$tree_b/dist/sticky.wasm") bytes)"
if [ -f "$root/dist/sticky.wasm" ]; then
  echo "repro: (for reference, this checkout's dist/sticky.wasm $(sha "$root/dist/sticky.wasm"))"
fi

status=0
if ! cmp -s "$target_a/$raw" "$target_b/$raw"; then
  echo "repro: FAIL: the raw rustc outputs differ (rustc/cargo level); first differing bytes:" >&2
  cmp -l "$target_a/$raw" "$target_b/$raw" | head -n 10 >&2 || true
  status=1
fi
if ! cmp -s "$tree_a/dist/sticky.wasm" "$tree_b/dist/sticky.wasm"; then
  echo "repro: FAIL: dist/sticky.wasm differs between the two builds; first differing bytes:" >&2
  cmp -l "$tree_a/dist/sticky.wasm" "$tree_b/dist/sticky.wasm" | head -n 10 >&2 || true
  status=1
fi
for leak in "$work" "$HOME" "$root"; do
  if grep -q -F -- "$leak" "$tree_a/dist/sticky.wasm"; then
    echo "repro: FAIL: dist/sticky.wasm contains the build path $leak" >&2
    status=1
  fi
done
if [ $status = 0 ]; then
  echo "repro: OK: two clean builds at different paths are byte-identical"
fi
exit $status
