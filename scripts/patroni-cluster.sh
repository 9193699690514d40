#!/usr/bin/env bash
# patroni-cluster.sh: automatic fail-over of Treaty's PostgreSQL log on
# loopback: one etcd and two PostgreSQL 15 nodes managed by Patroni in
# synchronous mode (see docs/operations.md, "Automatic fail-over with
# Patroni").
#
#   scripts/patroni-cluster.sh start DIR [PG_PORT1 PG_PORT2]
#       start etcd and Patroni node1 (it bootstraps the primary), then node2
#       (a streaming replica that becomes the synchronous standby); create
#       role and database `treaty`; print the multi-host conninfo for
#       treatyd --store (also written to DIR/conninfo). Ports not given
#       (here or as PG_PORT1, PG_PORT2, API_PORT1, API_PORT2,
#       ETCD_CLIENT_PORT, ETCD_PEER_PORT in the environment) are picked free.
#       Everything lives in DIR: DIR/cluster.env records ports and
#       passwords for the other commands, DIR/etcd.pid and
#       DIR/nodeN/patroni.pid the processes.
#   scripts/patroni-cluster.sh status DIR   members, roles, lag (patronictl list)
#   scripts/patroni-cluster.sh rejoin DIR N start node N's Patroni again after it died; it
#       rejoins as a replica of the current leader (pg_rewind if needed)
#   scripts/patroni-cluster.sh stop DIR     stop Patroni (it stops PostgreSQL) and etcd; data kept
#
# Settings: ttl 5 s, loop_wait 1 s, retry_timeout 2 s (a dead primary is
# replaced about 5 s after its last leader-lease renewal), synchronous_mode
# on, synchronous_mode_strict off (why: docs/operations.md). PG_FSYNC=off in
# the environment turns fsync off (tests; never in production).
#
# As root, etcd, Patroni and PostgreSQL run as the `postgres` user
# (PostgreSQL refuses root) and DIR is given to it. Binaries from $PG_BIN
# (default /usr/lib/postgresql/15/bin).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
[[ -n "$cmd" && -n "$dir" ]] || { sed -n '2,29p' "$0"; exit 2; }

# Runs "$@" as the user the cluster runs as; exec'ing, so $! of a
# backgrounded call is the program's own pid.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    exec setpriv --reuid=postgres --regid=postgres --clear-groups env HOME="$dir" "$@"
  else
    exec env HOME="$dir" "$@"
  fi
}

# Six loopback ports free right now (all bound at once, so distinct).
free_ports() {
  python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'
}

random_password() { openssl rand -hex 16; }

# Waits up to $2 tenths of a second for the command "${@:3}" to succeed;
# $1 names what is awaited in the error message.
wait_for() {
  local what=$1 tenths=$2
  shift 2
  for _ in $(seq 1 "$tenths"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "patroni-cluster: timed out waiting for $what" >&2
  return 1
}

http_ok() { curl -sf -o /dev/null --max-time 2 "$1"; }

initialize_key_taken() {
  [[ -n $(ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$ETCD_CLIENT_PORT" get --keys-only \
    /service/treaty/initialize) ]]
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

write_node_config() {
  local n=$1 pg_port=$2 api_port=$3 no_sync=""
  # Without fsync, initdb and pg_basebackup need not flush either.
  [[ ${PG_FSYNC:-on} == off ]] && no_sync=$'\n    - no-sync'
  mkdir -p "$dir/node$n"
  cat >"$dir/node$n/patroni.yml" <<YAML
scope: treaty
name: node$n
restapi:
  listen: 127.0.0.1:$api_port
  connect_address: 127.0.0.1:$api_port
etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT_PORT
bootstrap:
  dcs:
    ttl: 5
    loop_wait: 1
    retry_timeout: 2
    # Patroni promotes only the member recorded as synchronous standby, so
    # a commit acknowledged by the primary is on the node promoted.
    synchronous_mode: true
    # Off: with two nodes, "strict" would stop every commit of the new
    # primary until a second node is back (see docs/operations.md).
    synchronous_mode_strict: false
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        synchronous_commit: "on"
        wal_level: replica
        wal_log_hints: "on"
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 200
        fsync: "${PG_FSYNC:-on}"
  initdb:
    - encoding: UTF8
    - data-checksums$no_sync
    - auth-host: scram-sha-256
    - auth-local: scram-sha-256
postgresql:
  listen: 127.0.0.1:$pg_port
  connect_address: 127.0.0.1:$pg_port
  data_dir: $dir/node$n/data
  bin_dir: $PG_BIN
  pgpass: $dir/node$n/pgpass
  basebackup:
    - checkpoint: fast$no_sync
  authentication:
    superuser:
      username: postgres
      password: $SUPERUSER_PASSWORD
    replication:
      username: replicator
      password: $REPLICATION_PASSWORD
    rewind:
      username: rewinder
      password: $REWIND_PASSWORD
  parameters:
    unix_socket_directories: $dir/node$n
  pg_hba:
    - local all all scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
YAML
}

start_patroni() {
  local n=$1
  (as_owner patroni "$dir/node$n/patroni.yml") >>"$dir/node$n/patroni.log" 2>&1 &
  echo $! >"$dir/node$n/patroni.pid"
}

psql_super() {
  PGPASSWORD=$SUPERUSER_PASSWORD "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
    -p "$1" -U postgres -d postgres -Atc "$2"
}

cmd_start() {
  [[ -e "$dir/cluster.env" ]] && { echo "patroni-cluster: $dir already holds a cluster" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local free
  read -ra free <<<"$(free_ports)"
  PG_PORT1=${3:-${PG_PORT1:-${free[0]}}}
  PG_PORT2=${4:-${PG_PORT2:-${free[1]}}}
  API_PORT1=${API_PORT1:-${free[2]}}
  API_PORT2=${API_PORT2:-${free[3]}}
  ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-${free[4]}}
  ETCD_PEER_PORT=${ETCD_PEER_PORT:-${free[5]}}
  SUPERUSER_PASSWORD=$(random_password)
  REPLICATION_PASSWORD=$(random_password)
  REWIND_PASSWORD=$(random_password)
  TREATY_PASSWORD=$(random_password)
  CONNINFO="host=127.0.0.1,127.0.0.1 port=$PG_PORT1,$PG_PORT2 dbname=treaty user=treaty"
  CONNINFO+=" password=$TREATY_PASSWORD target_session_attrs=read-write"
  (
    umask 077
    for v in PG_PORT1 PG_PORT2 API_PORT1 API_PORT2 ETCD_CLIENT_PORT ETCD_PEER_PORT \
      SUPERUSER_PASSWORD REPLICATION_PASSWORD REWIND_PASSWORD TREATY_PASSWORD; do
      echo "$v=${!v}"
    done >"$dir/cluster.env"
    echo "$CONNINFO" >"$dir/conninfo"
  )

  # etcd: one member, v3 API only (Patroni's etcd3 section speaks it through
  # etcd's gRPC gateway, so --enable-v2 is not needed).
  mkdir -p "$dir/etcd"
  chmod 700 "$dir/etcd"
  write_node_config 1 "$PG_PORT1" "$API_PORT1"
  write_node_config 2 "$PG_PORT2" "$API_PORT2"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres: "$dir"
    (as_owner test -w "$dir") || {
      echo "patroni-cluster: user postgres cannot write $dir (a parent folder closed to it?)" >&2
      exit 1
    }
  fi
  (as_owner etcd --name treaty-etcd --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "treaty-etcd=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state new) >>"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  wait_for "etcd (see $dir/etcd.log)" 200 http_ok "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

  # node1 first, so that it is the one that bootstraps (initdb) and leads;
  # node2 once node1 holds the cluster's initialize key (it then waits for
  # node1 to lead and clones it).
  start_patroni 1
  wait_for "node1 to start bootstrapping (see $dir/node1/patroni.log)" 300 \
    initialize_key_taken
  start_patroni 2
  wait_for "node1 to lead (see $dir/node1/patroni.log)" 600 \
    http_ok "http://127.0.0.1:$API_PORT1/primary"
  wait_for "node2 to become the synchronous standby (see $dir/node2/patroni.log)" 900 \
    http_ok "http://127.0.0.1:$API_PORT2/sync"
  # With a synchronous standby in place, these commits wait for it too.
  psql_super "$PG_PORT1" "CREATE ROLE treaty LOGIN PASSWORD '$TREATY_PASSWORD'"
  psql_super "$PG_PORT1" "CREATE DATABASE treaty OWNER treaty"
  echo "$CONNINFO"
}

load_env() {
  [[ -r "$dir/cluster.env" ]] || { echo "patroni-cluster: no cluster in $dir (no cluster.env)" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
}

cmd_status() {
  load_env
  patronictl -c "$dir/node1/patroni.yml" list 2>/dev/null ||
    echo "patronictl could not reach etcd on port $ETCD_CLIENT_PORT"
  for n in 1 2; do
    pid=$(cat "$dir/node$n/patroni.pid" 2>/dev/null || true)
    if alive "$pid"; then echo "node$n: Patroni running (pid $pid)"; else echo "node$n: Patroni not running"; fi
  done
}

cmd_rejoin() {
  local n=${1:-}
  [[ $n == 1 || $n == 2 ]] || { echo "patroni-cluster: rejoin needs a node number, 1 or 2" >&2; exit 2; }
  load_env
  alive "$(cat "$dir/node$n/patroni.pid" 2>/dev/null || true)" &&
    { echo "patroni-cluster: node$n's Patroni is running" >&2; exit 1; }
  # A PostgreSQL left running by a killed Patroni is adopted by the new one.
  start_patroni "$n"
  local api_port="API_PORT$n"
  wait_for "node$n to run as a replica (see $dir/node$n/patroni.log)" 900 \
    http_ok "http://127.0.0.1:${!api_port}/replica"
  echo "node$n is a replica again"
}

cmd_stop() {
  load_env
  for n in 2 1; do
    pid=$(cat "$dir/node$n/patroni.pid" 2>/dev/null || true)
    alive "$pid" && kill -TERM "$pid"  # Patroni stops its PostgreSQL, then exits
  done
  for n in 2 1; do
    pid=$(cat "$dir/node$n/patroni.pid" 2>/dev/null || true)
    wait_for "Patroni node$n to exit" 300 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
    # A PostgreSQL left without its Patroni (kill -9 of Patroni) is stopped here.
    pm=$(head -1 "$dir/node$n/data/postmaster.pid" 2>/dev/null || true)
    if alive "$pm"; then
      kill -INT "$pm"
      wait_for "PostgreSQL node$n to exit" 300 bash -c "! kill -0 $pm 2>/dev/null" || kill -KILL "$pm" 2>/dev/null || true
    fi
  done
  pid=$(cat "$dir/etcd.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill -TERM "$pid"
    wait_for "etcd to exit" 100 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
  fi
  echo "stopped (data kept in $dir)"
}

case "$cmd" in
  start) cmd_start "$@" ;;
  status) cmd_status ;;
  rejoin) cmd_rejoin "${3:-}" ;;
  stop) cmd_stop ;;
  *)
    sed -n '2,29p' "$0"
    exit 2
    ;;
esac
