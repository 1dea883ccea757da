#!/usr/bin/env bash
# Fuzzes the live origin against its own OpenAPI description with schemathesis (bounded number
# of examples): no server error, and every response matches the documented status codes,
# content types, headers and schemas. Uses a throw-away database and Redis key prefix.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

SCHEMATHESIS_VERSION="4.32.5"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
pip_pin schemathesis "$SCHEMATHESIS_VERSION"
ensure_postgres
cargo build -p users-origin --locked -q

start_origin st schema-fuzz

# Positive and negative data, NUL bytes and full UTF-8 in generated strings, past
# authentication as the bootstrap admin and then as a plain user; the hooks log in afresh every
# few seconds (scripts/schemathesis_hooks.py). Logout and ending every session are left out: they
# revoke the very token the run holds (tests/it/sessions and the hostile sweep cover them).
run_as() {
  log "schemathesis as $1: $MAX_EXAMPLES examples per operation"
  ST_BASE="$ORIGIN_URL" ST_LOGIN="$1" ST_PASSWORD="$2" ST_REGISTER="$3" \
    SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/scripts" \
    "$VENV/bin/schemathesis" run "$ORIGIN_URL/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --exclude-path /auth/logout \
    --exclude-operation-id revoke_many_mine --exclude-operation-id revoke_many_of \
    --mode all --generation-allow-x00 true --generation-codec utf-8 \
    --max-examples "$MAX_EXAMPLES" --seed 1 --workers 1 --no-color | tee "$ORIGIN_DATA/st-$1.log"
  # Only 403s are expected (a plain user's GET /users); a run that met 401s did not get in.
  if grep -q "Authentication Error\|401 Unauthorized (" "$ORIGIN_DATA/st-$1.log"; then
    echo "schemathesis as $1: operations did not get past authentication" >&2
    exit 1
  fi
}
run_as admin "$ADMIN_PW" 0
USER_PW="schema-user-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
curl -sf "$ORIGIN_URL/auth/register" -H 'content-type: application/json' \
  -d "{\"username\":\"plainuser\",\"email\":\"plain@example.com\",\"password\":\"$USER_PW\"}" >/dev/null
run_as plainuser "$USER_PW" 1
if grep -qiE '"level":"ERROR"|ERROR' "$ORIGIN_DATA/origin.log"; then
  echo "the origin logged errors during the run:" >&2
  grep -iE 'ERROR' "$ORIGIN_DATA/origin.log" | head -20 >&2
  exit 1
fi
