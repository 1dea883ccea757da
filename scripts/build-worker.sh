#!/usr/bin/env bash
# Builds the Cloudflare Worker (edge/) into build/worker with worker-build, using pinned tools
# from the registries: worker-build and wasm-bindgen-cli from crates.io (into the per-machine tool cache), esbuild
# and wasm-opt from npm (node_modules). Nothing is downloaded from elsewhere.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
ensure_worker_tools
export WASM_BINDGEN_BIN="$CARGO_TOOLS/bin/wasm-bindgen" ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild" \
  WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
cd edge
worker-build --release
rm -rf "$ROOT/build" && mv build "$ROOT/build"
