#!/usr/bin/env bash
# Opens the live origin's Swagger UI (/docs) in headless Chromium through Selenium
# (scripts/docs_browser.py): the operations render, "Authorize" with the OAuth2 password flow as
# the bootstrap admin works, and "Try it out" on GET /users/me shows a live 200. Writes a
# screenshot of the page to docs/docs-page.png. Chromium and its driver come from Debian,
# Selenium from PyPI (pinned); nothing is downloaded by Selenium itself. Needs
# target/debug/users-origin built.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

SELENIUM_VERSION="4.51.0"
ensure_chromium
pip_pin selenium "$SELENIUM_VERSION"
ensure_postgres
ensure_redis
start_origin docs

DOCS_TMP="$(mktemp -d)"
# Kept when the run fails: it holds the failure screenshot.
on_exit '[ "${DOCS_OK:-0}" = 1 ] && rm -rf "$DOCS_TMP"'
log "Swagger UI at $ORIGIN_URL/docs in $(/usr/bin/chromium --version 2>/dev/null), selenium $SELENIUM_VERSION"
# Selenium Manager stays offline and unused: the driver and the browser are given by path.
SE_OFFLINE=true SE_AVOID_STATS=true DOCS_BASE="$ORIGIN_URL" DOCS_ADMIN_PASSWORD="$ADMIN_PW" \
  DOCS_SCREENSHOT="$ROOT/docs/docs-page.png" DOCS_TMP="$DOCS_TMP" \
  "$VENV/bin/python" "$ROOT/scripts/docs_browser.py"
DOCS_OK=1
