# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals set for, and read from, the scripts
# bench/lib.sh: what bench/run.sh, bench/scale.sh and bench/recovery.sh share.
# Sourced, not run: source "$(dirname "${BASH_SOURCE[0]}")/lib.sh", after
# `set -euo pipefail` and `repo=` (the checkout's root). Functions read the
# script's globals when called, not when sourced: repo, PG_BIN, keep (1:
# keep the work directory), out_file, wrk_threads, treatyd (the binary) and
# TREATYD_ARGS, and the ones below that they set.
#
# Sourcing sets: used_ports, ephemeral_low, clk_tck, compiler_checks,
# compiler_busy, compiler_max (0), work, pgdata, pg_port, store_uri,
# nginx_port, nginx_pid, treatyd_pid, treaty_url, child_pid (""), and the
# associative array R (empty).
#
# Progress
#   usage                prints the script's header comment (its --help)
#   log TEXT...          a time-stamped line to stderr
#   die TEXT...          log "FAILED: TEXT", exit 1 (the EXIT trap cleans up)
#
# Formatting (echo the result)
#   commas N             1234567 -> 1,234,567 (rounded to an integer)
#   fmt_ms US            microseconds -> "42 µs", "5.3 ms", "152 ms"
#
# Ports, programs, work directory
#   free_port VAR        sets VAR to an unused loopback port below the
#                        ephemeral range, never the same twice in a run
#                        (reads/updates used_ports; not in $(...))
#   require_programs     dies unless nginx, wrk, jq, curl, PG_BIN's pg_ctl and
#                        psql are there (bench/run.sh installs them)
#   locate_treatyd       echoes $TREATYD, else BUILD_DIR's (default
#                        $repo/build) coordinator/treatyd; fails (and so
#                        exits, under set -e) if not executable; builds
#                        nothing
#   make_work_dir PREFIX raises the open-file limit, sets `work` to a new
#                        directory PREFIX.XXXXXX under BENCH_TMPDIR (default
#                        $TMPDIR or /tmp) that user postgres can reach; warns
#                        when it is on a tmpfs
#
# Cleanup
#   install_cleanup [STOP_FN [CHILD_SIGNAL]]
#                        EXIT trap: sends CHILD_SIGNAL (default TERM) to
#                        child_pid, on failure shows the tails of the
#                        treatyd, nginx and PostgreSQL logs, calls STOP_FN
#                        (default stop_treatyd) to stop the coordinators,
#                        stops nginx_pid and the PostgreSQL of pgdata, and
#                        deletes `work` unless keep is 1. INT and TERM exit
#                        130 and 143 (and so run it).
#   stop_treatyd         SIGTERM to treatyd_pid, SIGKILL after 15 s; clears it
#   run_child LOG CMD... runs CMD in the background, output to LOG, and waits
#                        for it, its pid in child_pid meanwhile: bash runs a
#                        trap at once only while waiting for a background
#                        child (and cleanup stops it). Returns CMD's status.
#
# Servers (all on 127.0.0.1)
#   as_pg CMD...         CMD, as user postgres when root (PostgreSQL refuses
#                        to run as root)
#   start_postgres MAX_WAL_SIZE MIGRATE [EXTRA_CONF]
#                        initdb of a PostgreSQL 15 in $work/pg, the durability
#                        settings written out (fsync, synchronous_commit,
#                        full_page_writes on; shared_buffers 256MB,
#                        max_connections 200, max_wal_size MAX_WAL_SIZE, then
#                        the lines of EXTRA_CONF), started, database treaty
#                        created; MIGRATE "migrate": its schema by `$treatyd
#                        migrate` (output to $work/migrate.log), "-": none.
#                        Sets pgdata, pg_port, store_uri.
#   psql_at DB SQL       one query's unaligned output
#   postmaster_pid       the PostgreSQL server's pid
#   start_nginx PROBE_PATH EXPECTED NOTE [EXTRA_LOCATIONS]
#                        nginx, one worker, answering 200 `{}` to any request
#                        (POST too), EXTRA_LOCATIONS (nginx `location` lines)
#                        first; waits until POST PROBE_PATH answers "BODY CODE"
#                        matching the glob EXPECTED, dies otherwise; logs
#                        NOTE. Sets nginx_port, nginx_pid.
#   launch_treatyd NAME NODE_NAME STORE_URI READY_S [OPTION...]
#                        $treatyd on a fresh port, --thrift off, the OPTIONs,
#                        then TREATYD_ARGS (split at spaces), output to
#                        $work/treatyd-NAME.log; waits at most READY_S seconds
#                        for /readyz. Sets treatyd_pid and treaty_url (as soon
#                        as it is started, so that cleanup stops it).
#
# wrk
#   threads_for C        wrk threads for C connections: at most wrk_threads,
#                        dividing C (wrk gives each thread C / threads)
#   read_result LOG      the RESULT line of a wrk log (key=value words, from
#                        the bench Lua scripts) into R (the caller's local
#                        R if it declared one); dies without one
#
# Report
#   publish_report       copies its standard input (the report) to stdout
#                        and $work/report.md, and to out_file if set
#
# CPU and the machine
#   tree_ticks PID       CPU clock ticks of the process tree rooted at PID
#   self_ticks           CPU ticks of this script and its reaped children
#   machine_ticks        "BUSY TOTAL" jiffies of the whole machine
#   count_compilers      counts compiler/linker processes running now:
#                        increments compiler_checks, compiler_busy when there
#                        is one, raises compiler_max
#   loadavg              the 1, 5 and 15 minute load averages
#   machine_text         "N CPUs (model), M GiB memory, OS, kernel K"
#   fs_text              file system type and device of `work`
#   source_text          the checkout's short commit, "(with uncommitted
#                        changes)" when there are some
#   postgres_text SETTING...
#                        PostgreSQL's version and "name=value" of each SETTING
#   nginx_version, wrk_version

# ---------------------------------------------------------------- progress --

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# -------------------------------------------------------------- formatting --

commas() {
  awk -v n="$1" 'BEGIN {
    s = sprintf("%.0f", n); out = ""
    while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
    print s out }'
}

# One decimal below 100 ms.
fmt_ms() {
  awk -v us="$1" 'BEGIN {
    if (us < 1000) printf("%.0f µs", us); else printf(us < 100000 ? "%.1f ms" : "%.0f ms", us / 1000) }'
}

# ------------------------------------------- ports, programs, work directory --

# Ports come from below the kernel's ephemeral range, where no outgoing
# connection holds them.
used_ports=" "
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local candidate
  while :; do
    candidate=$((10000 + RANDOM % (ephemeral_low - 10000)))
    [[ $used_ports == *" $candidate "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      used_ports+="$candidate "
      printf -v "$1" '%s' "$candidate"
      return
    fi
  done
}

require_programs() {
  local program
  for program in nginx wrk jq curl "$PG_BIN/pg_ctl" "$PG_BIN/psql"; do
    command -v "$program" >/dev/null || [[ -x /usr/sbin/$program ]] ||
      die "$program missing (bench/run.sh installs what is missing)"
  done
}

locate_treatyd() {
  local path=${TREATYD:-${BUILD_DIR:-$repo/build}/coordinator/treatyd}
  [[ -x $path ]] || die "no treatyd at $path (set TREATYD or BUILD_DIR)"
  echo "$path"
}

make_work_dir() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 512 connections and more
  work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/$1.XXXXXX")
  chmod 755 "$work"  # PostgreSQL (user postgres) must reach its directory
  if [[ $(df -PT "$work" | awk 'NR == 2 { print $2 }') == tmpfs ]]; then
    log "WARNING: $work is on a tmpfs: fsync costs nothing there, set BENCH_TMPDIR to a disk"
  fi
}

# ----------------------------------------------------------------- cleanup --

work=""
pgdata=""
pg_port=""
store_uri=""
nginx_port=""
nginx_pid=""
treatyd_pid=""
treaty_url=""
child_pid=""

stop_treatyd() {
  [[ -n $treatyd_pid ]] || return 0
  # SIGTERM drains (nothing is in flight by now); KILL if it hangs.
  kill -TERM "$treatyd_pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$treatyd_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$treatyd_pid" 2>/dev/null || true
  wait "$treatyd_pid" 2>/dev/null || true
  treatyd_pid=""
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$? stop_fn=$1 child_signal=$2 f
  set +e
  trap - INT TERM
  if [[ -n $child_pid ]]; then kill "-$child_signal" "$child_pid" 2>/dev/null; wait "$child_pid" 2>/dev/null; fi
  if ((rc != 0)) && [[ -n $work ]]; then
    for f in "$work"/treatyd-*.log "$work"/nginx/error.log "$work"/pg/server.log; do
      [[ -s $f ]] && { log "last lines of $f:"; tail -n 15 "$f" >&2; }
    done
  fi
  "$stop_fn"
  if [[ -n $nginx_pid ]]; then
    kill -TERM "$nginx_pid" 2>/dev/null
    wait "$nginx_pid" 2>/dev/null
  fi
  if [[ -n $pgdata && -f $pgdata/postmaster.pid ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1
  fi
  if [[ -n $work ]]; then
    if ((keep)); then log "work directory kept: $work"; else rm -rf "$work"; fi
  fi
}

install_cleanup() {
  # shellcheck disable=SC2064  # the arguments, expanded now
  trap "cleanup ${1:-stop_treatyd} ${2:-TERM}" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

run_child() {
  local log_file=$1 rc=0
  shift
  "$@" >"$log_file" 2>&1 &
  child_pid=$!
  wait "$child_pid" || rc=$?
  child_pid=""
  return "$rc"
}

# ----------------------------------------------------------------- servers --

as_pg() {
  if (($(id -u) == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local max_wal_size=$1 migrate=$2 extra_conf=${3:-} note=""
  pgdata=$work/pg/data
  free_port pg_port
  mkdir -p "$work/pg"
  if (($(id -u) == 0)); then chown postgres: "$work/pg"; fi
  as_pg "$PG_BIN/initdb" -D "$pgdata" -A trust -U postgres -E UTF8 >"$work/pg/initdb.log"
  # The durability settings are the defaults, written out so that the run
  # says what it measured. max_wal_size keeps checkpoints out of the run
  # (they still come every 5 minutes).
  cat >>"$pgdata/postgresql.auto.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/pg'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = '256MB'
max_connections = 200
max_wal_size = '$max_wal_size'
${extra_conf}
CONF
  as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$work/pg/server.log" -w start >/dev/null
  psql_at postgres "CREATE DATABASE treaty" >/dev/null
  store_uri="postgresql://postgres@127.0.0.1:$pg_port/treaty"
  if [[ $migrate == migrate ]]; then
    "$treatyd" migrate --store "$store_uri" >"$work/migrate.log" 2>&1 ||
      die "treatyd migrate failed: $(tail -n 5 "$work/migrate.log")"
    note=", schema migrated"
  fi
  log "PostgreSQL 15 on 127.0.0.1:$pg_port ($pgdata)$note"
}
psql_at() { "$PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d "$1" -XAtqc "$2"; }
postmaster_pid() { head -1 "$pgdata/postmaster.pid"; }

start_nginx() {
  local probe_path=$1 expected=$2 note=$3 extra_locations=${4:-}
  free_port nginx_port
  local dir=$work/nginx
  mkdir -p "$dir"
  # `return` answers in the rewrite phase, before any content handler, so
  # POST gets it too (a static location would answer 405). The request body
  # is read and dropped. One worker is plenty for no-op answers and leaves
  # the CPU to treatyd and PostgreSQL.
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 10000; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$nginx_port;
    default_type application/json;
    ${extra_locations}
    location / { return 200 '{}'; }
  }
}
CONF
  local nginx_bin answer=""
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  "$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  nginx_pid=$!
  for _ in $(seq 1 50); do
    # curl prints code 000 while nothing listens yet.
    answer=$(curl -s -XPOST -H 'Content-Type: application/json' -d '{"gtid":"x"}' \
      -w ' %{http_code}' "http://127.0.0.1:$nginx_port$probe_path" || true)
    [[ $answer == *" 000" ]] || break
    kill -0 "$nginx_pid" 2>/dev/null || die "nginx exited at start"
    sleep 0.1
  done
  # shellcheck disable=SC2053  # EXPECTED is a glob
  [[ $answer == $expected ]] || die "nginx answered POST $probe_path with '$answer', not '$expected'"
  log "nginx participants on 127.0.0.1:$nginx_port ($note)"
}

# No authentication (allowed on loopback); loopback participants on other
# ports need no allow-list (docs/security.md).
launch_treatyd() {
  local name=$1 node_name=$2 uri=$3 ready_s=$4 port
  shift 4
  free_port port
  treaty_url=http://127.0.0.1:$port
  # shellcheck disable=SC2086  # TREATYD_ARGS: options, split at spaces
  "$treatyd" --store "$uri" --http "127.0.0.1:$port" --thrift off --node-name "$node_name" \
    "$@" ${TREATYD_ARGS:-} >"$work/treatyd-$name.log" 2>&1 &
  treatyd_pid=$!
  for _ in $(seq 1 $((ready_s * 10))); do
    curl -sf "$treaty_url/readyz" >/dev/null && break
    kill -0 "$treatyd_pid" 2>/dev/null || die "treatyd $name exited at start"
    sleep 0.1
  done
  curl -sf "$treaty_url/readyz" >/dev/null || die "treatyd $name not ready after $ready_s s"
}

# --------------------------------------------------------------------- wrk --

threads_for() {
  local c=$1 t=$wrk_threads
  ((t > c)) && t=$c
  while ((c % t != 0)); do t=$((t - 1)); done
  echo "$t"
}

declare -A R=()
read_result() {
  local line kv
  line=$(grep -m1 '^RESULT ' "$1") || die "wrk printed no RESULT line: $(tail -n 5 "$1")"
  R=()
  # shellcheck disable=SC2013  # one line of space-separated key=value words
  for kv in ${line#RESULT }; do R[${kv%%=*}]=${kv#*=}; done
}

# ------------------------------------------------------------------ report --

publish_report() {
  tee "$work/report.md"
  if [[ -n $out_file ]]; then cp "$work/report.md" "$out_file"; fi
}

# ------------------------------------------------------ CPU and the machine --

# CPU clock ticks used by the process tree rooted at PID: the process's own
# utime+stime (all its threads) and cutime+cstime (children it has reaped),
# plus utime+stime of each live child. Two readings around a run give the
# CPU the tree spent in it, short-lived children (PostgreSQL backends that
# came and went) included. Fields from proc(5); the comm field may hold
# spaces, so the line is cut after its closing parenthesis.
clk_tck=$(getconf CLK_TCK)
proc_fields() { local s; s=$(<"/proc/$1/stat") && echo "${s##*) }"; }
tree_ticks() {
  local root=$1 child f total
  read -ra f <<<"$(proc_fields "$root")"
  # After "state" (field 3) the array starts: utime is field 14 -> f[11].
  total=$((f[11] + f[12] + f[13] + f[14]))
  for child in $(pgrep -P "$root" || true); do
    read -ra f <<<"$(proc_fields "$child" 2>/dev/null)" || continue
    ((${#f[@]} > 12)) && total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
# This script and the children it has reaped (wrk, psql, curl, ...).
self_ticks() {
  local f
  read -ra f <<<"$(proc_fields $$)"
  echo $((f[11] + f[12] + f[13] + f[14]))
}
# /proc/stat "cpu" line; busy = everything but idle and iowait.
machine_ticks() {
  local _ user nice sys idle iowait irq softirq steal
  read -r _ user nice sys idle iowait irq softirq steal _ </proc/stat
  echo "$((user + nice + sys + irq + softirq + steal)) $((user + nice + sys + idle + iowait + irq + softirq + steal))"
}

# Compilers and linkers running beside the benchmark depress every figure.
compiler_checks=0
compiler_busy=0
compiler_max=0
count_compilers() {
  local n
  # Not pgrep: procps refuses a pattern longer than 15 characters.
  # shellcheck disable=SC2009
  n=$(ps -eo comm= | grep -cxE 'cc1plus|cc1|ld|ld\.gold|ld\.lld|lld|collect2' || true)
  compiler_checks=$((compiler_checks + 1))
  ((n > 0)) && compiler_busy=$((compiler_busy + 1))
  ((n > compiler_max)) && compiler_max=$n
  return 0
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

machine_text() {
  local cpu mem os
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  # shellcheck disable=SC1091
  os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
  echo "$(nproc) CPUs ($cpu), $mem memory, $os, kernel $(uname -r)"
}

fs_text() { df -PT "$work" | awk 'NR == 2 { print $2 " on " $1 }'; }

source_text() {
  local commit
  commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [[ -n $(git -C "$repo" status --porcelain 2>/dev/null | head -1) ]] && commit+=" (with uncommitted changes)"
  echo "$commit"
}

postgres_text() {
  local names
  names=$(printf "'%s'," "$@")
  echo "$(psql_at postgres "SELECT version()" | cut -d, -f1); $(psql_at postgres \
    "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
     WHERE name IN (${names%,})")"
}

nginx_version() { nginx -v 2>&1 | sed 's|nginx version: ||'; }
wrk_version() { wrk -v 2>&1 | head -1 | awk '{ print $2 }'; }
