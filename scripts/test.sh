#!/usr/bin/env bash
# Runs the whole test suite: deploy manifests, formatting, lints, core for every target, then
# every test (unit, property and end-to-end against a real PostgreSQL, nginx failover, the
# Cloudflare edge under `wrangler dev` and the Spin component in the wasmtime test host, both
# built first) with nextest.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_toolchain
ensure_postgres
ensure_redis
ensure_nextest
ensure_nginx
ensure_wasm_tools

log "deploy/ validation"
scripts/validate-deploy.sh

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "users-core for wasm32-unknown-unknown and wasm32-wasip2"
cargo build -p users-core --locked --target wasm32-unknown-unknown
cargo build -p users-core --locked --target wasm32-wasip2
cargo build -p users-core --locked --no-default-features --target wasm32-unknown-unknown
log "users-edge for wasm32-unknown-unknown and wasm32-wasip2"
cargo clippy -p users-edge --locked --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p users-edge --locked --target wasm32-wasip2 -- -D warnings
log "schemathesis against the live origin"
scripts/schemathesis.sh
log "the Cloudflare worker (build/worker, for the edge tests)"
scripts/build-worker.sh
log "the Spin component (target/wasm32-wasip2/release/users_edge.wasm, for the edge tests)"
scripts/build-spin.sh
log "tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"
