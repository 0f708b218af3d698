#!/usr/bin/env bash
# The local stack on loopback: PostgreSQL and RabbitMQ from Debian's packages, each run as
# its own user with data under .local/, and the dev Kafka endpoint (librdkafka's mock
# cluster). Idempotent: `up` starts what is not running, `down` stops what is.
#
#   scripts/stack.sh up | down | status | env
#
# Ports: GEDGE_PG_PORT (5432), GEDGE_AMQP_PORT (5672), GEDGE_AMQP_MGMT_PORT (15672),
# GEDGE_KAFKA_PORT (9092).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/args.sh"
script_help "$@"
[ $# -le 1 ] || refuse "scripts/stack.sh up|down|status|env" "$2"
state="$root/.local"
PG_PORT="${GEDGE_PG_PORT:-5432}"
AMQP_PORT="${GEDGE_AMQP_PORT:-5672}"
AMQP_MGMT_PORT="${GEDGE_AMQP_MGMT_PORT:-15672}"
KAFKA_PORT="${GEDGE_KAFKA_PORT:-9092}"
BIN_DIR="${GEDGE_BIN_DIR:-$root/.build/debug}"

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_user() { # user command...
  local user="$1"; shift
  if [ "$(id -un)" = "$user" ]; then "$@"; else su -s /bin/bash "$user" -c "$(printf '%q ' "$@")"; fi
}

pg_up() {
  local bin data; bin="$(pg_bin)"; data="$state/pg/data"
  mkdir -p "$state/pg/run"
  chown -R postgres:postgres "$state/pg" 2>/dev/null || true
  if [ ! -f "$data/PG_VERSION" ]; then
    as_user postgres "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if as_user postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "postgres: running on 127.0.0.1:$PG_PORT"
  else
    as_user postgres "$bin/pg_ctl" -D "$data" -l "$state/pg/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $state/pg/run -c fsync=off -c max_connections=200" start >/dev/null
    echo "postgres: started on 127.0.0.1:$PG_PORT"
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
  "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='gedge'" | grep -q 1 \
    || "${psql[@]}" -c "CREATE ROLE gedge LOGIN"
  for db in gedge gedge_test; do
    "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
      || "${psql[@]}" -c "CREATE DATABASE $db OWNER gedge"
  done
}

pg_down() {
  local bin; bin="$(pg_bin)"
  if [ -f "$state/pg/data/PG_VERSION" ] && as_user postgres "$bin/pg_ctl" -D "$state/pg/data" status >/dev/null 2>&1; then
    as_user postgres "$bin/pg_ctl" -D "$state/pg/data" -m fast -w stop >/dev/null
    echo "postgres: stopped"
  fi
}

rabbit_env() {
  local base="$state/rabbitmq"
  cat <<ENV
HOME=/var/lib/rabbitmq
RABBITMQ_NODENAME=gedge@localhost
RABBITMQ_MNESIA_BASE=$base/mnesia
RABBITMQ_LOG_BASE=$base/log
RABBITMQ_PID_FILE=$base/rabbitmq.pid
RABBITMQ_CONFIG_FILE=$base/rabbitmq
RABBITMQ_ADVANCED_CONFIG_FILE=$base/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$AMQP_PORT
RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000))
ERL_EPMD_ADDRESS=127.0.0.1
ENV
}

rabbit() { # runs a rabbitmq command as the rabbitmq user with the stack's environment
  local envs; envs="$(rabbit_env | tr '\n' ' ')"
  if [ "$(id -un)" = rabbitmq ]; then env $envs "$@"; else su -s /bin/bash rabbitmq -c "env $envs $(printf '%q ' "$@")"; fi
}

rabbit_up() {
  local base="$state/rabbitmq"
  mkdir -p "$base/mnesia" "$base/log"
  cat > "$base/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $AMQP_MGMT_PORT
heartbeat = 30
CONF
  echo "[rabbitmq_management]." > "$base/enabled_plugins"
  # Erlang distribution on loopback only.
  echo "[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}]." > "$base/advanced.config"
  chown -R rabbitmq:rabbitmq "$base"
  if rabbit rabbitmqctl -q status >/dev/null 2>&1; then
    echo "rabbitmq: running on 127.0.0.1:$AMQP_PORT"
    return
  fi
  rabbit rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    if rabbit rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1; then
      echo "rabbitmq: started on 127.0.0.1:$AMQP_PORT (management 127.0.0.1:$AMQP_MGMT_PORT)"
      return
    fi
    sleep 1
  done
  echo "rabbitmq: did not start; see $base/log" >&2
  tail -n 30 "$base"/log/*.log >&2 || true
  return 1
}

rabbit_down() {
  if rabbit rabbitmqctl -q status >/dev/null 2>&1; then
    rabbit rabbitmqctl -q stop >/dev/null 2>&1 || true
    echo "rabbitmq: stopped"
  fi
}

kafka_up() {
  local pidfile="$state/kafka-dev.pid"
  mkdir -p "$state"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "kafka (dev): running on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  if [ ! -x "$BIN_DIR/gedge-kafka-dev" ]; then
    echo "kafka (dev): $BIN_DIR/gedge-kafka-dev is not built; run 'swift build' first" >&2
    return 1
  fi
  rm -f "$state/kafka.bootstrap"
  nohup "$BIN_DIR/gedge-kafka-dev" --kafka-dev-port "$KAFKA_PORT" \
    --kafka-dev-bootstrap-file "$state/kafka.bootstrap" >"$state/kafka-dev.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 50); do
    [ -s "$state/kafka.bootstrap" ] && { echo "kafka (dev): started on 127.0.0.1:$KAFKA_PORT"; return; }
    sleep 0.2
  done
  echo "kafka (dev): did not start; see $state/kafka-dev.log" >&2
  return 1
}

kafka_down() {
  local pidfile="$state/kafka-dev.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    echo "kafka (dev): stopped"
  fi
  rm -f "$pidfile"
}

# The local gateway's first admin token: random, made once, readable by this user only.
# Never a default: the gateway registers its digest at start (gateway.admin.token.file).
admin_token() {
  if [ ! -s "$state/admin-token" ]; then
    (umask 077; openssl rand -hex 32 >"$state/admin-token")
  fi
  echo "gateway admin token: $state/admin-token (GEDGE_GATEWAY_ADMIN_TOKEN_FILE; gedgectl reads it as GEDGE_TOKEN_FILE)"
}

case "${1:-}" in
  up) pg_up; rabbit_up; kafka_up; admin_token ;;
  down)
    # A stack others share (the tests' own run of README's steps) is left up.
    if [ "${GEDGE_STACK_KEEP:-}" = 1 ]; then echo "stack kept (GEDGE_STACK_KEEP=1)"; exit 0; fi
    kafka_down; rabbit_down; pg_down ;;
  status)
    (as_user postgres "$(pg_bin)/pg_ctl" -D "$state/pg/data" status >/dev/null 2>&1 && echo "postgres: up") || echo "postgres: down"
    (rabbit rabbitmqctl -q status >/dev/null 2>&1 && echo "rabbitmq: up") || echo "rabbitmq: down"
    ([ -f "$state/kafka-dev.pid" ] && kill -0 "$(cat "$state/kafka-dev.pid")" 2>/dev/null && echo "kafka (dev): up") || echo "kafka (dev): down"
    ;;
  env)
    echo "GEDGE_GATEWAY_ADMIN_TOKEN_FILE=$state/admin-token"
    echo "GEDGE_POSTGRES_URL=postgres://gedge@127.0.0.1:$PG_PORT/gedge"
    echo "GEDGE_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
    echo "GEDGE_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
    ;;
  *) refuse "scripts/stack.sh up|down|status|env" "${1:-}" ;;
esac
