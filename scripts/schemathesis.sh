#!/usr/bin/env bash
# Fuzzes the live origin against its own OpenAPI description with schemathesis (bounded number
# of examples): no server error, and every response matches the documented status codes,
# content types, headers and schemas. Uses a throw-away database and Redis key prefix.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

SCHEMATHESIS_VERSION="4.32.5"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
ensure_venv
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
ensure_postgres
cargo build -p users-origin --locked -q

DB="users_st_$(date +%s)_$$"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATA="$(mktemp -d)"
ADMIN_PW="schema-fuzz-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE \"$DB\""
cleanup() {
  [ -n "${ORIGIN_PID:-}" ] && kill "$ORIGIN_PID" 2>/dev/null && wait "$ORIGIN_PID" 2>/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" || true
  redis-cli --scan --pattern "st:$DB:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT

DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" LISTEN_ADDR="127.0.0.1:$PORT" DATA_DIR="$DATA" \
  ADMIN_USERNAME=admin ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD="$ADMIN_PW" \
  REDIS_URL=redis://127.0.0.1:6379 REDIS_PREFIX="st:$DB:" ARGON2_M_KIB=1024 ARGON2_T=1 \
  RATE_LIMIT_AUTH_IP=1000000/60s RATE_LIMIT_USER=1000000/60s RUST_LOG=warn \
  "$ROOT/target/debug/users-origin" >"$DATA/origin.log" 2>&1 &
ORIGIN_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

# Positive and negative data, NUL bytes and full UTF-8 in generated strings, past
# authentication as the bootstrap admin and then as a plain user; the hooks log in afresh every
# few seconds (scripts/schemathesis_hooks.py). Logout and ending every session are left out: they
# revoke the very token the run holds (tests/it/sessions and the hostile sweep cover them).
run_as() {
  log "schemathesis as $1: $MAX_EXAMPLES examples per operation"
  ST_BASE="http://127.0.0.1:$PORT" ST_LOGIN="$1" ST_PASSWORD="$2" ST_REGISTER="$3" \
    SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/scripts" \
    "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --exclude-path /auth/logout \
    --exclude-operation-id revoke_many_mine --exclude-operation-id revoke_many_of \
    --mode all --generation-allow-x00 true --generation-codec utf-8 \
    --max-examples "$MAX_EXAMPLES" --seed 1 --workers 1 --no-color | tee "$DATA/st-$1.log"
  # Only 403s are expected (a plain user's GET /users); a run that met 401s did not get in.
  if grep -q "Authentication Error\|401 Unauthorized (" "$DATA/st-$1.log"; then
    echo "schemathesis as $1: operations did not get past authentication" >&2
    exit 1
  fi
}
run_as admin "$ADMIN_PW" 0
USER_PW="schema-user-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
curl -sf "http://127.0.0.1:$PORT/auth/register" -H 'content-type: application/json' \
  -d "{\"username\":\"plainuser\",\"email\":\"plain@example.com\",\"password\":\"$USER_PW\"}" >/dev/null
run_as plainuser "$USER_PW" 1
if grep -qiE '"level":"ERROR"|ERROR' "$DATA/origin.log"; then
  echo "the origin logged errors during the run:" >&2
  grep -iE 'ERROR' "$DATA/origin.log" | head -20 >&2
  exit 1
fi
