#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the core parsers: libFuzzer through cargo-fuzz on the
# nightly toolchain (fuzz/, its own workspace). Each target starts from its committed seeds in
# fuzz/corpus/<target> and runs FUZZ_SECONDS (default 20); what it learns goes to a throw-away
# corpus, so the tree stays clean. A crash fails the run and keeps its input under
# fuzz/artifacts/<target>/ (reproduce: cargo +nightly fuzz run <target> <file>; then add it as
# a regular test in core).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
TARGETS=(token cursor merge_patch fields ratelimit wire)
ensure_cargo_fuzz
export PATH="$CARGO_TOOLS/bin:$PATH"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
log "cargo fuzz build (nightly, AddressSanitizer)"
cargo +nightly fuzz build --fuzz-dir fuzz >/dev/null
for target in "${TARGETS[@]}"; do
  mkdir -p "$WORK/corpus/$target" "fuzz/artifacts/$target"
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$WORK/corpus/$target" "fuzz/corpus/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -max_len=4096 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$target/" >"$WORK/$target.log" 2>&1; then
    tail -n 40 "$WORK/$target.log" >&2
    echo "fuzz $target: crashed; the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$target.log" | tail -n1)"
  units="$(find "$WORK/corpus/$target" -type f | wc -l)"
  echo "fuzz $target: ${runs:-?} inputs in ${FUZZ_SECONDS}s, ${units} new corpus entries, no crash"
done
rmdir fuzz/artifacts/* fuzz/artifacts 2>/dev/null || true
