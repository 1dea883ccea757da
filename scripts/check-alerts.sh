#!/usr/bin/env bash
# Checks the alerting rules with promtool (Debian's `prometheus` package, installed by
# scripts/test.sh through ensure_prometheus):
#   - promtool check rules: deploy/prometheus/alerts.yml and the PrometheusRule's groups
#     (deploy/k8s/monitoring/prometheusrule.yaml) parse, and every expression is valid PromQL;
#   - promtool test rules: deploy/prometheus/alerts.test.yml, series that must fire each alert
#     and series that must not.
# scripts/validate-deploy.sh checks that both files hold the same groups, and that every alert
# has a summary, a severity and a runbook section.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

PROMTOOL="${PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}"
if [ ! -x "$PROMTOOL" ]; then
  echo "promtool is not installed: apt-get install -y --no-install-recommends prometheus" >&2
  exit 1
fi
"$PROMTOOL" --version 2>&1 | head -n1 >&2

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The PrometheusRule's spec is a rule file once taken out of its envelope.
python3 - deploy/k8s/monitoring/prometheusrule.yaml "$WORK/operator-rules.yml" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines(keepends=True)
start = lines.index("spec:\n") + 1
with open(sys.argv[2], "w") as out:
    out.writelines(l[2:] if l.strip() else l for l in lines[start:])
PY

log "promtool check rules"
"$PROMTOOL" check rules deploy/prometheus/alerts.yml "$WORK/operator-rules.yml"
log "promtool test rules"
"$PROMTOOL" test rules deploy/prometheus/alerts.test.yml
