#!/usr/bin/env bash
# Generates a Python client from the live origin's /openapi.json with openapi-python-client
# (PyPI, pinned) into a temporary directory and runs a short flow through the generated
# functions (scripts/sdk_flow.py): register, log in, read yourself, list users as the admin, and
# two problem answers. Any generator warning or error fails the run with the generator's words (a
# defect of the document), and so does a generated module that does not import. Nothing
# generated is kept. Needs target/debug/users-origin built.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# Not 0.28.0–0.29.1: for a required request body with two media types (POST /auth/login, PATCH
# /roles/{name}) they annotate `| Unset` without importing it, and the module does not import
# (openapi-python-client issue #1451).
OPENAPI_PYTHON_CLIENT_VERSION="0.27.1"
pip_pin openapi-python-client "$OPENAPI_PYTHON_CLIENT_VERSION"
ensure_postgres
ensure_redis
start_origin sdk

SDK="$(mktemp -d)"
on_exit "rm -rf '$SDK'"
# Fixed names, whatever the document's title; no formatting hooks (nothing is kept). The
# generator has no NDJSON type: the import and export streams are bytes to it, as they are.
cat >"$SDK/config.yml" <<'YAML'
project_name_override: users-api-client
package_name_override: users_api_client
post_hooks: []
content_type_overrides:
  application/x-ndjson: application/octet-stream
YAML
log "openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION: generating a client from $ORIGIN_URL/openapi.json"
# --fail-on-warning: an endpoint or schema the generator had to skip fails the run too.
if ! NO_COLOR=1 COLUMNS=200 "$VENV/bin/openapi-python-client" generate --url "$ORIGIN_URL/openapi.json" \
  --config "$SDK/config.yml" --meta none --output-path "$SDK/users_api_client" \
  --fail-on-warning </dev/null >"$SDK/generate.log" 2>&1; then
  echo "openapi-python-client could not handle the document (its own words):" >&2
  cat "$SDK/generate.log" >&2
  exit 1
fi
log "a flow through the generated client"
PYTHONPATH="$SDK" SDK_BASE="$ORIGIN_URL" SDK_ADMIN_PASSWORD="$ADMIN_PW" \
  "$VENV/bin/python" "$ROOT/scripts/sdk_flow.py"
