#!/usr/bin/env bash
# Test fixture: a PostgreSQL server of its own, to stop and start under a running scheduler.
#   scratch_postgres.sh DIR PORT start|stop
# Runs as the postgres user when started as root (PostgreSQL refuses root). Superuser gedge,
# trust auth, loopback only.
set -euo pipefail
dir="$1" port="$2" action="$3"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_pg() { if [ "$(id -u)" = 0 ]; then su -s /bin/bash postgres -c "$(printf '%q ' "$@")"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then mkdir -p "$dir" && chown postgres "$dir"; else mkdir -p "$dir"; fi
case "$action" in
  start)
    [ -f "$dir/data/PG_VERSION" ] || as_pg "$bin/initdb" -D "$dir/data" -U gedge --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
esac
