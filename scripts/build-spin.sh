#!/usr/bin/env bash
# Builds the Spin component (edge/ for wasm32-wasip2, spin-sdk 7) into
# target/wasm32-wasip2/release/users_edge.wasm: the file spin.toml names, and the one the
# tests and benchmarks run. `spin build` runs the same cargo command.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
ensure_toolchain
cargo build -p users-edge --target wasm32-wasip2 --release --locked
