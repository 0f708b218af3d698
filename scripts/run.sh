#!/usr/bin/env bash
# The local suite in the background: three simulated cluster agents (the GS-Scheduler seed's
# topology), the scheduler and the gateway, against the stack scripts/stack.sh started.
# Logs and pids under .local/ (or GEDGE_RUN_DIR); the admin token is the stack's,
# .local/admin-token.
#
#   run.sh start    start them and wait until the gateway answers and every agent reported
#   run.sh stop     stop them (SIGTERM, then SIGKILL after 15 s)
#   run.sh status   which run
#
# Ports: GEDGE_RUN_GATEWAY_PORT (8888), GEDGE_RUN_SCHEDULER_PORT (9101); the services read
# GEDGE_KAFKA_BROKERS, GEDGE_POSTGRES_URL and the other GEDGE_* keys from the environment.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/args.sh"
script_help "$@"
[ $# -le 1 ] || refuse "scripts/run.sh start|stop|status" "$2"
bin="${GEDGE_BIN_DIR:-$root/.build/debug}"
state="${GEDGE_RUN_DIR:-$root/.local}"
gateway_port="${GEDGE_RUN_GATEWAY_PORT:-8888}"
scheduler_port="${GEDGE_RUN_SCHEDULER_PORT:-9101}"
pids="$state/run"
names=(agent-cloud agent-edge1 agent-edge2 scheduler gateway)

running() { [ -f "$pids/$1.pid" ] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }

start() {
  mkdir -p "$pids"
  for n in "${names[@]}"; do
    if running "$n"; then echo "$n is already running (pid $(cat "$pids/$n.pid")); run.sh stop first" >&2; exit 1; fi
  done
  local token="$root/.local/admin-token"
  [ -s "$token" ] || { echo "no admin token at $token: run scripts/stack.sh up (make up) first" >&2; exit 1; }
  for c in cloud edge1 edge2; do
    "$bin/agent" --agent-cluster "$c" --agent-driver simulated --agent-topology "$root/config/topology-seed.json" \
      --http-port 0 --log-format text >"$state/agent-$c.log" 2>&1 &
    echo $! >"$pids/agent-$c.pid"
  done
  # The local stack believes every producer (no producers.secret here).
  "$bin/scheduler" --log-format text --http-port "$scheduler_port" --scheduler-producers trusted >"$state/scheduler.log" 2>&1 &
  echo $! >"$pids/scheduler.pid"
  # The key that seals push-mode clusters' credentials (gedgectl cluster register): local, private.
  key="$state/cluster-credentials-key"
  [ -s "$key" ] || (umask 077 && openssl rand -hex 32 >"$key")
  GEDGE_GATEWAY_ADMIN_TOKEN_FILE="$token" GEDGE_CLUSTER_CREDENTIALS_KEY_FILE="$key" "$bin/gateway" --log-format text --http-port "$gateway_port" \
    >"$state/gateway.log" 2>&1 &
  echo $! >"$pids/gateway.pid"
  for _ in $(seq 1 150); do
    for n in "${names[@]}"; do
      running "$n" || { echo "$n exited:" >&2; tail -n 5 "$state/$n.log" >&2; stop >/dev/null; exit 1; }
    done
    if curl -fsS "http://127.0.0.1:$gateway_port/readyz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$scheduler_port/readyz" >/dev/null 2>&1; then
      fresh="$(curl -fsS -H "Authorization: Bearer $(cat "$token")" "http://127.0.0.1:$gateway_port/v1/clusters" 2>/dev/null \
        | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin)["clusters"] if not c["stale"]))' 2>/dev/null || echo 0)"
      if [ "$fresh" = 3 ]; then
        echo "gateway on http://127.0.0.1:$gateway_port (admin token in $token), scheduler ops on :$scheduler_port, agents cloud, edge1, edge2; logs in $state/"
        return 0
      fi
    fi
    sleep 0.2
  done
  echo "the suite did not become ready in 30 s; logs in $state/" >&2
  stop >/dev/null
  exit 1
}

stop() {
  local left=()
  for n in "${names[@]}"; do
    if running "$n"; then kill -TERM "$(cat "$pids/$n.pid")" 2>/dev/null || true; left+=("$n"); fi
  done
  for _ in $(seq 1 75); do
    local still=0
    for n in "${left[@]+"${left[@]}"}"; do running "$n" && still=1; done
    [ $still = 0 ] && break
    sleep 0.2
  done
  for n in "${left[@]+"${left[@]}"}"; do running "$n" && kill -KILL "$(cat "$pids/$n.pid")" 2>/dev/null || true; done
  for n in "${names[@]}"; do rm -f "$pids/$n.pid"; done
  echo "stopped: ${left[*]:-nothing was running}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) for n in "${names[@]}"; do if running "$n"; then echo "$n: up (pid $(cat "$pids/$n.pid"))"; else echo "$n: down"; fi; done ;;
  *) refuse "scripts/run.sh start|stop|status" "${1:-}" ;;
esac
