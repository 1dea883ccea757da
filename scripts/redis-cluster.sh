#!/usr/bin/env bash
# Runs a command with a throw-away Redis Cluster of three masters (`ensure_redis_cluster` in
# scripts/common.sh): TEST_REDIS_CLUSTER_URLS names it while the command runs, and the servers
# and their directory are removed when it ends. Without a command, prints the URLs and holds the
# cluster until interrupted.
#
#   scripts/redis-cluster.sh cargo nextest run -p users-tests -E 'test(/cache|ratelimit/)'
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# A fresh cluster even when the caller's environment names one.
unset TEST_REDIS_CLUSTER_URLS
ensure_redis_cluster
if [ "$#" -eq 0 ]; then
  echo "TEST_REDIS_CLUSTER_URLS=$TEST_REDIS_CLUSTER_URLS"
  echo "(Ctrl-C stops the cluster)" >&2
  while true; do sleep 3600; done
fi
"$@"
