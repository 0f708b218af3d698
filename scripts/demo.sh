#!/usr/bin/env bash
# The demo: the scheduler service runs against the local stack, a producer publishes
# schedule requests to Kafka, and their lifecycle is read back from PostgreSQL.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${GEDGE_BIN_DIR:-$root/.build/debug}"
state="$root/.local"
mkdir -p "$state"

agents=()
for c in cloud edge1 edge2; do
  "$bin/agent" --agent-cluster "$c" --agent-driver simulated --agent-topology "$root/config/topology-seed.json" \
    --http-port 0 --log-format text >"$state/agent-$c.log" 2>&1 &
  agents+=($!)
done
"$bin/scheduler" --log-format text --http-port 9101 >"$state/scheduler.log" 2>&1 &
scheduler=$!
trap 'kill -TERM $scheduler "${agents[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

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
kill -TERM $scheduler "${agents[@]}"
wait
trap - EXIT
tail -n 2 "$state/scheduler.log"
