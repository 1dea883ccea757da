#!/usr/bin/env bash
# Runs the system locally: PostgreSQL started or reused, the `users` database created,
# migrations applied, an admin bootstrapped, the origin serving on LISTEN_ADDR.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_toolchain
ensure_postgres

[ -f .env ] && { set -a; source .env; set +a; }
DB_NAME="${USERS_DB_NAME:-users}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB_NAME}"
export LISTEN_ADDR="${LISTEN_ADDR:-127.0.0.1:8080}"
export DATA_DIR="${DATA_DIR:-$ROOT/.data}"
export ADMIN_USERNAME="${ADMIN_USERNAME:-admin}"
export ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.com}"
mkdir -p "$DATA_DIR"
if [ -z "${ADMIN_PASSWORD:-}" ]; then
  if [ ! -f "$DATA_DIR/admin-password" ]; then
    (umask 077; python3 -c 'import secrets; print("-".join(secrets.token_urlsafe(6) for _ in range(4)))' \
      > "$DATA_DIR/admin-password")
  fi
  ADMIN_PASSWORD="$(cat "$DATA_DIR/admin-password")"
fi
export ADMIN_PASSWORD

if ! psql "${DATABASE_URL%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '${DATABASE_URL##*/}'" | grep -q 1; then
  log "creating database ${DATABASE_URL##*/}"
  psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"${DATABASE_URL##*/}\""
fi

log "building the origin"
cargo build -p users-origin --locked
cat >&2 <<INFO
==> users-origin on http://$LISTEN_ADDR (Ctrl-C stops it)
    admin login: $ADMIN_USERNAME with ADMIN_PASSWORD, or the generated one in $DATA_DIR/admin-password
    try: curl -s http://$LISTEN_ADDR/auth/login -H 'content-type: application/json' \\
           -d "{\"login\":\"$ADMIN_USERNAME\",\"password\":\"\$(cat $DATA_DIR/admin-password)\"}"
INFO
exec "$ROOT/target/debug/users-origin"
