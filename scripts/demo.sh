#!/usr/bin/env bash
# The demo: the scheduler service runs against the local stack, a producer publishes
# schedule requests to Kafka, and their lifecycle is read back from PostgreSQL.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${GEDGE_BIN_DIR:-$root/.build/debug}"
state="$root/.local"
mkdir -p "$state"

"$bin/scheduler" --log-format text --http-port 9101 >"$state/scheduler.log" 2>&1 &
scheduler=$!
trap 'kill -TERM $scheduler 2>/dev/null || true; wait $scheduler 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:9101/readyz >/dev/null 2>&1 && break
  kill -0 $scheduler 2>/dev/null || { echo "scheduler exited; see $state/scheduler.log" >&2; tail -n 20 "$state/scheduler.log" >&2; exit 1; }
  sleep 0.2
done
echo "== scheduler ready (pid $scheduler; ops on http://127.0.0.1:9101/metrics; log $state/scheduler.log)"
"$bin/gedge-demo"
echo "== scheduler metrics"
curl -fsS http://127.0.0.1:9101/metrics | grep -E '^gedge_scheduler_(requests|messages)' || true
echo "== stopping the scheduler (SIGTERM: finish in-flight work, commit offsets)"
kill -TERM $scheduler
wait $scheduler
trap - EXIT
tail -n 2 "$state/scheduler.log"
