#!/usr/bin/env bash
# The fast inner loop, with no services: formatting, lints (host and both wasm targets), the
# origin's import rules, and every unit test (the end-to-end suite is scripts/test.sh).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_toolchain
ensure_nextest

log "cargo fmt --check"
cargo fmt --all --check
log "import rules of the origin (scripts/check-imports.py)"
python3 scripts/check-imports.py
log "cargo clippy (host)"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo clippy users-core and users-edge for wasm32-unknown-unknown and wasm32-wasip2"
# One run per target: the two crates share one resolution of their dependencies.
cargo clippy -p users-core -p users-edge --locked --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p users-core -p users-edge --locked --target wasm32-wasip2 -- -D warnings
cargo clippy -p users-core --locked --no-default-features --target wasm32-unknown-unknown -- -D warnings
log "unit tests"
cargo nextest run --workspace --locked --lib --bins --no-fail-fast "$@"
