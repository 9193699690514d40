#!/usr/bin/env bash
# pg-replicated.sh: a PostgreSQL 15 primary with a synchronous streaming
# standby on loopback, for trying Treaty's fail-over by hand (see
# docs/operations.md, "Replicated log").
#
#   scripts/pg-replicated.sh start DIR [PRIMARY_PORT [STANDBY_PORT]]
#       initdb DIR/primary, start it with synchronous_standby_names =
#       'treaty_standby' and synchronous_commit = on, clone DIR/standby with
#       pg_basebackup -R (streaming, standby.signal), start it as
#       cluster_name = treaty_standby, create database `treaty`, and print
#       the multi-host conninfo for treatyd --store. Ports default to 5432/5433.
#   scripts/pg-replicated.sh status DIR    which node is primary, replication state
#   scripts/pg-replicated.sh promote DIR   pg_ctl promote the standby (after the primary died)
#   scripts/pg-replicated.sh stop DIR      stop both (fast shutdown); data is kept
#
# As root, the servers run as the `postgres` user (PostgreSQL refuses root).
# Binaries from $PG_BIN (default /usr/lib/postgresql/15/bin).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
[[ -n "$cmd" && -n "$dir" ]] || { sed -n '2,20p' "$0"; exit 2; }

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_of() { sed -n 's/^port = \([0-9]*\).*/\1/p' "$1/postgresql.auto.conf" | tail -1; }

wait_ready() {
  for _ in $(seq 1 100); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" && return 0
    sleep 0.1
  done
  echo "postgres on port $1 did not start" >&2
  return 1
}

case "$cmd" in
  start)
    p1=${3:-5432}
    p2=${4:-5433}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    as_pg "$PG_BIN/initdb" -D "$dir/primary" -A trust -U postgres -E UTF8 >"$dir/initdb.log"
    # Settings go to postgresql.auto.conf so that `pg_ctl start` finds them
    # again; the standby gets its own below (not synchronous_standby_names:
    # once promoted it would wait for a standby it does not have).
    cat >>"$dir/primary/postgresql.auto.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 10
synchronous_commit = on
CONF
    as_pg "$PG_BIN/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$dir/standby" -R \
      -X stream -c fast
    # The clone copied postgresql.auto.conf: give the standby its own port
    # and name (the WAL receiver reports cluster_name as application_name).
    cat >>"$dir/standby/postgresql.auto.conf" <<CONF
port = $p2
cluster_name = 'treaty_standby'
hot_standby = on
CONF
    as_pg "$PG_BIN/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
    # Only now make the primary's commits wait for the standby: with no
    # synchronous standby connected yet, every commit would block.
    echo "synchronous_standby_names = 'treaty_standby'" >>"$dir/primary/postgresql.auto.conf"
    as_pg "$PG_BIN/pg_ctl" -D "$dir/primary" reload >/dev/null
    for _ in $(seq 1 100); do
      state=$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$p1" -U postgres -Atc \
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'treaty_standby'")
      [[ "$state" == sync ]] && break
      sleep 0.1
    done
    [[ "$state" == sync ]] || { echo "standby did not become synchronous" >&2; exit 1; }
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$p1" -U postgres treaty
    echo "postgresql://postgres@127.0.0.1:$p1,127.0.0.1:$p2/treaty?target_session_attrs=read-write"
    ;;
  status)
    for node in primary standby; do
      p=$(port_of "$dir/$node")
      if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$p"; then
        rec=$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$p" -U postgres -Atc "SELECT pg_is_in_recovery()")
        role=$([[ "$rec" == t ]] && echo standby || echo primary)
        echo "$node (port $p): up, acting as $role"
        [[ "$role" == primary ]] && as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$p" -U postgres -Atc \
          "SELECT '  replica ' || application_name || ': ' || state || ', ' || sync_state FROM pg_stat_replication"
      else
        echo "$node (port $p): down"
      fi
    done
    ;;
  promote)
    as_pg "$PG_BIN/pg_ctl" -D "$dir/standby" -w promote
    ;;
  stop)
    for node in standby primary; do
      if [[ -f "$dir/$node/postmaster.pid" ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$dir/$node" -m fast -w stop >/dev/null || true
      fi
    done
    echo "stopped (data kept in $dir)"
    ;;
  *)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac
