#!/usr/bin/env bash
# Runs the system locally: PostgreSQL and Redis started or reused, the `users` database
# created, migrations applied, an admin bootstrapped, the origin on :8080 and the Cloudflare
# edge (wrangler dev, local workerd) on :8787 in front of it. Ctrl-C stops everything.
#   EDGE=spin scripts/dev.sh    the Spin edge on :3000 instead (`spin up` when the spin CLI is
#                               installed, otherwise the bundled wasmtime host, users-spin-host)
#   EDGE=both scripts/dev.sh    both edges
#   EDGE=none scripts/dev.sh    the origin alone
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_stack

[ -f .env ] && { set -a; source .env; set +a; }
DB_NAME="${USERS_DB_NAME:-users}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB_NAME}"
export LISTEN_ADDR="${LISTEN_ADDR:-127.0.0.1:8080}"
export PUBLIC_URL="${PUBLIC_URL:-http://$LISTEN_ADDR}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DATA_DIR="${DATA_DIR:-$ROOT/.data}"
export ADMIN_USERNAME="${ADMIN_USERNAME:-admin}"
export ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.com}"
EDGE="${EDGE:-cloudflare}"
EDGE_PORT="${EDGE_PORT:-8787}"
SPIN_PORT="${SPIN_PORT:-3000}"
case "$EDGE" in
  cloudflare | spin | both | none) ;;
  *) echo "EDGE=$EDGE: use cloudflare, spin, both or none" >&2; exit 2 ;;
esac
mkdir -p "$DATA_DIR"
secret_file() { # name: a random secret kept in DATA_DIR
  if [ ! -f "$DATA_DIR/$1" ]; then
    (umask 077; python3 -c 'import secrets; print("-".join(secrets.token_urlsafe(6) for _ in range(4)))' >"$DATA_DIR/$1")
  fi
  cat "$DATA_DIR/$1"
}
export ADMIN_PASSWORD="${ADMIN_PASSWORD:-$(secret_file admin-password)}"
export EDGE_SHARED_SECRET="${EDGE_SHARED_SECRET:-$(secret_file edge-secret)}"

if ! psql "${DATABASE_URL%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '${DATABASE_URL##*/}'" | grep -q 1; then
  log "creating database ${DATABASE_URL##*/}"
  psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"${DATABASE_URL##*/}\""
fi

log "building the origin"
cargo build -p users-origin --locked
if [ "$EDGE" = none ]; then
  log "users-origin on http://$LISTEN_ADDR (Ctrl-C stops it)"
  print_login "http://$LISTEN_ADDR"
  exec "$ROOT/target/debug/users-origin"
fi

if [ "$EDGE" != spin ]; then
  log "building the edge worker"
  scripts/build-worker.sh
fi
if [ "$EDGE" != cloudflare ]; then
  log "building the Spin component"
  scripts/build-spin.sh
  command -v spin >/dev/null || cargo build -p users-spin-host --locked
fi
"$ROOT/target/debug/users-origin" &
PIDS=("$!")
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://$LISTEN_ADDR/healthz" >/dev/null && break; sleep 0.2; done

start_spin() { # in the background; the variables are spin.toml's, in Spin's environment form
  export SPIN_VARIABLE_ORIGIN_URL="http://$LISTEN_ADDR" SPIN_VARIABLE_JWT_ISSUER="$PUBLIC_URL" \
    SPIN_VARIABLE_EDGE_SHARED_SECRET="$EDGE_SHARED_SECRET"
  if command -v spin >/dev/null; then
    # `default` is built in; `profiles` needs a store of its own (SQLite, in DATA_DIR).
    printf '[key_value_store.profiles]\ntype = "spin"\npath = "%s"\n' "$DATA_DIR/spin-profiles.db" \
      >"$DATA_DIR/spin-runtime.toml"
    spin up -f spin.toml --listen "127.0.0.1:$SPIN_PORT" --runtime-config-file "$DATA_DIR/spin-runtime.toml" &
  else
    "$ROOT/target/debug/users-spin-host" --wasm target/wasm32-wasip2/release/users_edge.wasm \
      --listen "127.0.0.1:$SPIN_PORT" --store default --store profiles &
  fi
  PIDS+=("$!")
}

case "$EDGE" in
  spin)
    log "origin on http://$LISTEN_ADDR, Spin edge on http://127.0.0.1:$SPIN_PORT (Ctrl-C stops both)"
    print_login "http://127.0.0.1:$SPIN_PORT"
    start_spin
    wait "${PIDS[1]}"
    exit
    ;;
  both)
    log "origin on http://$LISTEN_ADDR, Spin edge on http://127.0.0.1:$SPIN_PORT"
    start_spin
    ;;
esac

DEV_TOML="$DATA_DIR/wrangler.dev.toml"
sed -e '/^\[build\]/,/^command/d' -e "s|^main = .*|main = \"$ROOT/build/worker/shim.mjs\"|" wrangler.toml >"$DEV_TOML"
log "origin on http://$LISTEN_ADDR, edge on http://127.0.0.1:$EDGE_PORT (Ctrl-C stops them)"
print_login "http://127.0.0.1:$EDGE_PORT"
node_modules/.bin/wrangler dev -c "$DEV_TOML" --ip 127.0.0.1 --port "$EDGE_PORT" --persist-to "$DATA_DIR/wrangler" \
  --var "ORIGIN_URL:http://$LISTEN_ADDR" --var "JWT_ISSUER:$PUBLIC_URL" --var "EDGE_SHARED_SECRET:$EDGE_SHARED_SECRET"
