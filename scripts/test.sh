#!/usr/bin/env bash
# Runs the whole test suite: deploy manifests, the alerting rules (promtool), the fast checks
# (scripts/check.sh: formatting, import rules, lints for the host and both wasm targets, unit
# tests), then every test (unit, property and end-to-end against a real PostgreSQL, nginx
# failover, the cache and the rate limits also on a throw-away Redis Cluster, the Cloudflare
# edge under `wrangler dev` and the Spin component in the wasmtime test host, both built first
# in release, which also builds users-core for both wasm targets; the alerting rules in a real
# Prometheus) with nextest. Between them:
# schemathesis as the admin and as a plain user, a short flow through a Python client generated
# from the document, the Swagger UI at /docs in headless Chromium, and bounded fuzzing of the core
# parsers.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_stack
ensure_nextest
ensure_nginx
ensure_wasm_tools
ensure_prometheus

log "deploy/ validation"
scripts/validate-deploy.sh
log "alerting rules: promtool check rules, promtool test rules"
scripts/check-alerts.sh

# fmt, import rules, clippy for the host and both wasm targets, unit tests: the fast path.
scripts/check.sh
log "schemathesis against the live origin, as the admin and as a plain user"
scripts/schemathesis.sh
log "a Python client generated from /openapi.json (openapi-python-client), through a short flow"
scripts/sdk-flow.sh
log "Swagger UI at /docs in headless Chromium: OAuth2 password login, Try it out on GET /users/me"
scripts/docs-browser.sh
log "bounded coverage-guided fuzzing of the core parsers (cargo fuzz)"
scripts/fuzz.sh
log "the Cloudflare worker (build/worker, for the edge tests)"
scripts/build-worker.sh
log "the Spin component (target/wasm32-wasip2/release/users_edge.wasm, for the edge tests)"
scripts/build-spin.sh
log "tests"
# Every answer the suite receives is recorded, then checked against the OpenAPI document.
export USERS_RESPONSE_LOG="$ROOT/target/response-log"
# The reference hashes of other systems' formats (tests/it/legacy.rs).
pip_pin passlib 1.7.4
pip_pin bcrypt 4.0.1
rm -rf "$USERS_RESPONSE_LOG"
# The origin's warnings (a dependency unavailable, a deadline passed) go to each test's output,
# which nextest shows for a failing test only.
export TEST_LOG="${TEST_LOG:-warn}"
# A throw-away three-master Redis Cluster (TEST_REDIS_CLUSTER_URLS) for the cache and rate-limit
# tests' cluster variants; removed when this script exits.
ensure_redis_cluster
cargo nextest run --workspace --locked --no-fail-fast "$@"
log "every recorded answer against the OpenAPI document (openapi-core)"
scripts/check-responses.sh "$USERS_RESPONSE_LOG"
