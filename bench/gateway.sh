#!/usr/bin/env bash
# The gateway's request-creation benchmark: wrk against POST /v1/requests with Kafka and
# PostgreSQL live (each request validated, its token checked, published to Kafka and
# acknowledged by the brokers before the 202), beside wrk against /healthz on the same
# server in the same run (the HTTP ceiling). Prints requests/s and latency percentiles.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/args.sh"
script_help "$@"
[ $# -eq 0 ] || refuse "bench/gateway.sh (no arguments; GEDGE_BENCH_DURATION, GEDGE_BENCH_CONNECTIONS, GEDGE_BENCH_PORT)" "$1"
bin="${GEDGE_BIN_DIR:-$root/.build/release}"
state="$root/.local"
duration="${GEDGE_BENCH_DURATION:-10s}"
connections="${GEDGE_BENCH_CONNECTIONS:-32}"
port="${GEDGE_BENCH_PORT:-8899}"
export $(bash "$root/scripts/stack.sh" env | xargs)

GEDGE_GATEWAY_RATE=0 "$bin/gateway" --http-port "$port" --log-level warning >"$state/bench-gateway.log" 2>&1 &
gw=$!
trap 'kill -TERM $gw 2>/dev/null || true; wait $gw 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
admin="$(cat "$GEDGE_GATEWAY_ADMIN_TOKEN_FILE")"
token="$(curl -fsS -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  --data '{"user_name":"bench","workspace_name":"bench","project_name":"bench"}' "http://127.0.0.1:$port/v1/tokens" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
export GEDGE_BENCH_TOKEN="$token"

run() { # name, wrk arguments...
  local name="$1"; shift
  local out
  out="$(wrk -t2 -c"$connections" -d"$duration" --latency "$@")"
  local rps p50 p99 errors
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$out" | awk '$1 == "50%" {print $2}')"
  p99="$(echo "$out" | awk '$1 == "99%" {print $2}')"
  errors="$(echo "$out" | awk '/Non-2xx/ {print $5}')"
  printf '%-32s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo "gateway benchmark: wrk, 2 threads, $connections connections, $duration each, loopback, release build"
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  --data '{"policy":"most","workload":{"kind":"Pod","spec":{"containers":[]}}}' "http://127.0.0.1:$port/v1/requests"
run "GET /healthz (HTTP ceiling)" "http://127.0.0.1:$port/healthz"
run "POST /v1/requests" -s "$root/bench/create-request.lua" "http://127.0.0.1:$port"
# With client-chosen request IDs each is first looked up in PostgreSQL (a taken ID is a 409).
GEDGE_BENCH_CLIENT_IDS=1 run "POST /v1/requests, client IDs" -s "$root/bench/create-request.lua" "http://127.0.0.1:$port"
published="$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^gedge_gateway_requests_published_total/ {print $2}')"
echo "published to Kafka and acknowledged: $published"
