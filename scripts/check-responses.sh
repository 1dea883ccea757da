#!/usr/bin/env bash
# Validates the answers the end-to-end suite recorded (USERS_RESPONSE_LOG, written by the
# test client) against the live origin's OpenAPI document with openapi-core
# (scripts/check-responses.py); fails on any answer the document does not describe.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

OPENAPI_CORE_VERSION="0.23.1"
LOG_DIR="${1:-${USERS_RESPONSE_LOG:-$ROOT/target/response-log}}"
pip_pin openapi-core "$OPENAPI_CORE_VERSION"
ensure_postgres
cargo build -p users-origin --locked -q
start_origin responses
DOC="$ORIGIN_DATA/openapi.json"
curl -sf "$ORIGIN_URL/openapi.json" >"$DOC"
# The checker finds a mismatch in a known-bad answer, or it checks nothing.
"$VENV/bin/python" scripts/check-responses.py --self-test "$DOC"
"$VENV/bin/python" scripts/check-responses.py "$DOC" "$LOG_DIR"
