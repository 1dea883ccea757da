#!/usr/bin/env bash
# Load benchmark of the origin: creates a throw-away database, seeds a million users, starts the
# origin in-process, measures each scenario at saturation and at half of it, and writes
# bench/results.json and docs/benchmarks.md. Takes about 5–8 minutes after the build.
# Options are passed on (scripts/bench.sh --help). `scripts/bench.sh --edge` runs the edge
# benchmark instead (bench/src/bin/edge.rs); `scripts/bench.sh --transfer` the import and export
# benchmark (bench/src/bin/transfer.rs).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_toolchain
ensure_postgres
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    log "starting Redis"
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes >/dev/null
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
  else
    echo "Redis is not reachable at 127.0.0.1:6379 (install redis-server)" >&2
    exit 1
  fi
fi

if [ "${1:-}" = "--edge" ]; then
  # The edge benchmark: the worker under wrangler dev, then the Spin component in the
  # release-built test host, each in front of the same in-process origin.
  scripts/build-worker.sh
  scripts/build-spin.sh
  cargo build --release --locked -p users-spin-host
  exec cargo run --release --locked -p users-bench --bin users-bench-edge
fi
if [ "${1:-}" = "--transfer" ]; then
  # Import and export of 100 000 accounts through the release-built origin, as a child process.
  cargo build --release --locked -p users-origin
  exec cargo run --release --locked -p users-bench --bin users-bench-transfer
fi
# The seed's stack, measured in the same run (bench/seed_stack/app.py), from pinned PyPI
# packages in a venv of its own (its pins must not move the tools' venv).
SEED_VENV="$TOOLS/seed-venv"
[ -x "$SEED_VENV/bin/pip" ] || python3 -m venv "$SEED_VENV"
if ! "$SEED_VENV/bin/python" - bench/seed_stack/requirements.txt <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
pins = [l.split("==") for l in open(sys.argv[1]) if "==" in l and not l.startswith("#")]
sys.exit(any(m.version(n.strip()) != v.strip() for n, v in pins))
PY
  log "installing the seed's stack (bench/seed_stack/requirements.txt) into $SEED_VENV"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$SEED_VENV/bin/pip" install -q -r bench/seed_stack/requirements.txt </dev/null
fi
export SEED_PYTHON="$SEED_VENV/bin/python"
# The open-loop runs hold a connection per request in flight: more than the default 1024 fds.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec cargo run --release --locked -p users-bench -- \
  --out bench/results.json --md docs/benchmarks.md "$@"
