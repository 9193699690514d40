#!/usr/bin/env bash
# bench/run.sh: end-to-end throughput and latency of treatyd, in one command.
#
# Clients (wrk, bench/saga.lua) POST /v1/sagas with "wait": true: three
# steps whose participants are no-ops (nginx answering 200 `{}` to any
# POST), each request under a gtid never used before. Everything runs on this
# machine, on loopback, in a throw-away directory:
#
#   PostgreSQL 15  initdb'd here, fsync=on, synchronous_commit=on
#   nginx          the three participants (one worker, `return 200 '{}'`)
#   treatyd        on the PostgreSQL log, then on a SQLite log (WAL,
#                  synchronous=FULL, set by treatyd itself)
#
# For each store and each concurrency level (wrk connections = clients, each
# waiting for its answer before sending the next saga): a warm-up, then a
# measured run, then it waits until no saga is in flight. Per level it reports
# sagas/s, p50 and p99 latency (wrk's histogram), the CPU time treatyd and
# all PostgreSQL processes used per saga (/proc/PID/stat of each process
# tree, before and after), the WAL bytes written per saga
# (pg_current_wal_lsn() before and after) and the errors, and checks that the
# log's count of COMMITTED sagas (GET /v1/stats) grew by what wrk saw answered
# COMMITTED (plus at most the requests cut off when wrk stopped).
#
# Baselines, measured in the same run:
#   direct calls   wrk with bench/direct.lua against nginx at the same
#                  concurrency: each connection POSTs to the three participants
#                  in turn, so calls/s / 3 is three-call sequences/s, the rate
#                  of a client calling the participants itself, no log at all
#   PostgreSQL     pgbench (bench/insert.sql): single-row INSERTs, each its own
#                  commit, 1 and 64 clients: the raw commit rate of this disk
#   SQLite         sequential single-row INSERT commits by the sqlite3 shell,
#                  journal_mode=WAL, synchronous=FULL
#
# Usage:
#   bench/run.sh [--quick] [--store postgres|sqlite|both] [--levels "1 4 32"]
#                [--duration SECONDS] [--warmup SECONDS] [--out FILE] [--keep]
#
#   --quick        smoke run: levels 1 32, 5 s each (1 s warm-up)
#   --store        which log(s) to measure (default both); pgbench runs only
#                  when postgres is measured
#   --levels       client counts (default "1 4 32 128 512"; env LEVELS)
#   --duration     seconds per measured run (default 10; env DURATION), also
#                  per baseline
#   --warmup       seconds of warm-up before each level (default 2, 0: none;
#                  env WARMUP)
#   --out FILE     also write the report there
#   --keep         keep the work directory (logs, data) instead of deleting it
#
# Environment:
#   BUILD_DIR     an existing build directory: its coordinator/treatyd is used
#                 as is (not rebuilt). Without it, ./build is configured if
#                 needed and `cmake --build build --target treatyd` runs.
#   TREATYD       a treatyd binary to use (nothing is built)
#   TREATYD_ARGS  more treatyd options, e.g. "--log-level warn --io-threads 1"
#   WRK_THREADS   wrk threads (default 2, never more than the clients)
#   PG_BIN        PostgreSQL 15 binaries (default /usr/lib/postgresql/15/bin)
#   BENCH_TMPDIR  where the work directory goes (default $TMPDIR or /tmp);
#                 put it on the disk you want measured, not on a tmpfs
#
# Missing programs (nginx, wrk, jq, curl, sqlite3, PostgreSQL 15) are
# installed with apt-get (Debian 12; root or sudo). The report (Markdown) goes
# to stdout, progress to stderr. Every process started here is stopped on
# exit, also on Ctrl-C. Other load on the machine (a compiler, say) depresses
# every figure: the report shows the load average and whether a compiler was
# running.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- options --

levels=${LEVELS:-1 4 32 128 512}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
stores=both
out_file=""
keep=0
sqlite_inserts=2000  # commits of the SQLite baseline
wrk_threads=${WRK_THREADS:-2}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}


while (($#)); do
  case $1 in
    --quick) levels="1 32" duration=5 warmup=1 sqlite_inserts=500 ;;
    --store) stores=${2:?--store needs postgres, sqlite or both}; shift ;;
    --levels) levels=${2:?--levels needs a list}; shift ;;
    --duration) duration=${2:?--duration needs seconds}; shift ;;
    --warmup) warmup=${2:?--warmup needs seconds}; shift ;;
    --out) out_file=${2:?--out needs a file}; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $stores in
  postgres | sqlite | both) ;;
  *) echo "bench/run.sh: --store must be postgres, sqlite or both" >&2; exit 2 ;;
esac
for n in $levels $duration; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: '$n' is not a positive integer" >&2; exit 2; }
done
[[ $warmup =~ ^[0-9]+$ ]] || { echo "bench/run.sh: --warmup '$warmup' is not an integer" >&2; exit 2; }
measure_pg() { [[ $stores != sqlite ]]; }
measure_sqlite() { [[ $stores != postgres ]]; }

# ---------------------------------------------------------------- helpers --
# (log, die, free_port, commas, fmt_ms, tree_ticks, count_compilers and the
# rest: bench/lib.sh)

SUDO=""
if (($(id -u) != 0)); then SUDO="sudo"; fi

# "1 client", "32 clients".
clients_text() { if (($1 == 1)); then echo "1 client"; else echo "$1 clients"; fi; }

# count_compilers runs before each wrk and pgbench run.
others_max=0  # most CPU cores other processes used during a measured run

# --------------------------------------------------------------- programs --

install_missing() {
  local need=()
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
  command -v wrk >/dev/null || need+=(wrk)
  command -v jq >/dev/null || need+=(jq)
  command -v curl >/dev/null || need+=(curl)
  command -v sqlite3 >/dev/null || need+=(sqlite3)
  # pgbench ships in postgresql-15 on Debian 12 (postgresql-contrib is empty).
  [[ -x $PG_BIN/pg_ctl && -x $PG_BIN/pgbench && -x $PG_BIN/psql ]] ||
    need+=(postgresql-15 postgresql-client-15)
  ((${#need[@]} == 0)) && return
  # On a systemd machine Debian's nginx package also enables its own service
  # on port 80; this script runs its own nginx and needs none.
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >&2
}

# Sets `treatyd`: $TREATYD, else BUILD_DIR's binary as is, else ./build's,
# configured (installing the build dependencies if CMake cannot) and built.
find_treatyd() {
  if [[ -n ${TREATYD:-} ]]; then
    treatyd=$TREATYD
  elif [[ -n ${BUILD_DIR:-} && -x $BUILD_DIR/coordinator/treatyd ]]; then
    treatyd=$BUILD_DIR/coordinator/treatyd
    log "using $treatyd as built (BUILD_DIR set: not rebuilt)"
  else
    local dir=${BUILD_DIR:-$repo/build}
    if [[ ! -f $dir/CMakeCache.txt ]]; then
      if ! command -v cmake >/dev/null || ! cmake -S "$repo" -B "$dir" >&2; then
        log "configuring failed or cmake missing: installing the build dependencies"
        "$repo/scripts/install-deps.sh" >&2
        cmake -S "$repo" -B "$dir" >&2
      fi
    fi
    log "building treatyd in $dir"
    cmake --build "$dir" -j2 --target treatyd >&2
    treatyd=$dir/coordinator/treatyd
  fi
  [[ -x $treatyd ]] || die "no treatyd at $treatyd"
}

# ---------------------------------------------------------------- cleanup --

# child_pid (bench/lib.sh): the wrk or pgbench being waited for.
install_cleanup stop_treatyd TERM

# ---------------------------------------------------------------- servers --

# PostgreSQL (bench/lib.sh) with a database `bench` for pgbench beside the
# log's.
start_postgres_with_bench() {
  start_postgres 4GB -
  psql_at postgres "CREATE DATABASE bench" >/dev/null
}

wal_lsn() { psql_at postgres "SELECT pg_current_wal_lsn()"; }
wal_bytes() { psql_at postgres "SELECT pg_wal_lsn_diff('$2', '$1')::bigint"; }

# start_treatyd NAME STORE_URI: treatyd (node name bench-NAME) on a fresh
# loopback port, no authentication, no Thrift. Sets treaty_url.
start_treatyd() {
  launch_treatyd "$1" "bench-$1" "$2" 30
  log "treatyd on $treaty_url, store $2"
}

# Sets log_committed, log_aborted and log_in_flight: the log's counts of
# COMMITTED and ABORTED transactions and of unfinished ones (GET /v1/stats).
read_counts() {
  local answer
  answer=$(curl -sf "$treaty_url/v1/stats") || die "GET /v1/stats failed"
  read -r log_committed log_aborted log_in_flight <<<"$(jq -r \
    '"\(.by_state.COMMITTED // 0) \(.by_state.ABORTED // 0) \(.in_flight)"' <<<"$answer")"
  [[ $log_in_flight =~ ^[0-9]+$ ]] || die "GET /v1/stats answered $answer"
}

# Waits until the log holds no unfinished transaction (requests wrk cut off
# at its end still run to their end), at most 120 s.
wait_idle() {
  sleep 0.3  # the tail usually ends by then: one count query, not several
  for _ in $(seq 1 600); do
    read_counts
    ((log_in_flight == 0)) && return 0
    sleep 0.2
  done
  log "WARNING: $log_in_flight transactions still in flight after 120 s"
}

# -------------------------------------------------------------------- wrk --

# run_wrk LOG CLIENTS SECONDS URL SCRIPT ARGS...: one wrk run; ARGS go to
# the script.
run_wrk() {
  local log_file=$1 clients=$2 seconds=$3 url=$4 script=$5
  shift 5
  count_compilers
  run_child "$log_file" wrk -t "$(threads_for "$clients")" -c "$clients" -d "${seconds}s" \
    --timeout 60s -s "$script" "$url" -- "$@" || die "wrk failed: $(tail -n 5 "$log_file")"
  grep -q '^RESULT ' "$log_file" || die "wrk printed no RESULT line: $(tail -n 5 "$log_file")"
}

# -------------------------------------------------------------- baselines --

direct_rows=()
direct_baseline() {
  local clients log_file errors
  for clients in $levels; do
    log "direct calls to nginx, $(clients_text "$clients"), ${duration} s"
    log_file=$work/direct-$clients.log
    run_wrk "$log_file" "$clients" "$duration" "http://127.0.0.1:$nginx_port" \
      "$repo/bench/direct.lua" "direct-$run_id-c$clients"
    read_result "$log_file"
    errors=$((R[non2xx] + R[connect] + R[read] + R[write] + R[timeout]))
    direct_rows+=("| $clients | $(commas "$(awk -v n="${R[ok]}" -v us="${R[duration_us]}" \
      'BEGIN { print n * 1e6 / us }')") | $(commas "$(awk -v n="${R[ok]}" -v us="${R[duration_us]}" \
      'BEGIN { print n * 1e6 / us / 3 }')") | $(fmt_ms "${R[p50_us]}") | $(fmt_ms "${R[p99_us]}") | $errors |")
  done
}

# pgbench_run CLIENTS: single-row INSERT commits into database `bench`.
pgbench_rows=()
pgbench_run() {
  local clients=$1 log_file=$work/pgbench-$1.log lsn0 lsn1 pg0 pg1 tps lat n
  log "pgbench: single-row INSERT commits, $(clients_text "$clients"), ${duration} s"
  lsn0=$(wal_lsn)
  pg0=$(tree_ticks "$(postmaster_pid)")
  count_compilers
  run_child "$log_file" "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$pg_port" -U postgres -M prepared \
    -c "$clients" -j "$(threads_for "$clients")" -T "$duration" -f "$repo/bench/insert.sql" bench ||
    die "pgbench failed: $(tail -n 5 "$log_file")"
  # pgbench's backends exit when it does; once the postmaster has reaped
  # them their CPU is in its cutime. Read before that, a backend reaped
  # between the two reads of tree_ticks would be missed.
  sleep 1
  pg1=$(tree_ticks "$(postmaster_pid)")
  lsn1=$(wal_lsn)
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log_file")
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$log_file")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$log_file")
  pgbench_rows+=("| $clients | $(commas "$tps") | $lat ms | $(awk -v t=$((pg1 - pg0)) -v n="$n" \
    -v hz="$clk_tck" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }') | $(awk -v b="$(wal_bytes "$lsn0" "$lsn1")" \
    -v n="$n" 'BEGIN { printf "%.0f", b / n }') |")
}

pgbench_baseline() {
  psql_at bench "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, k text NOT NULL, v text NOT NULL)"
  pgbench_run 1
  pgbench_run 64
}

# Sequential single-row INSERT commits by the sqlite3 shell (one writer, as
# in treatyd), WAL mode, synchronous=FULL: a sync of the WAL per commit.
sqlite_baseline_line=""
sqlite_baseline() {
  local dir=$work/sqlite-baseline start end i
  mkdir -p "$dir"
  log "sqlite3: $sqlite_inserts single-row INSERT commits"
  sqlite3 "$dir/base.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE bench_insert (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL);" >/dev/null
  {
    echo "PRAGMA synchronous=FULL;"
    for ((i = 1; i <= sqlite_inserts; i++)); do
      echo "INSERT INTO bench_insert (k, v) VALUES ('c$i', '{\"name\":\"s1\",\"state\":\"RUNNING\"}');"
    done
  } >"$dir/inserts.sql"
  start=$(date +%s%N)
  sqlite3 "$dir/base.db" <"$dir/inserts.sql"
  end=$(date +%s%N)
  sqlite_baseline_line=$(awk -v n="$sqlite_inserts" -v ns=$((end - start)) \
    'BEGIN { printf "%d commits in %.2f s: %.0f commits/s, %.2f ms each", n, ns / 1e9, n * 1e9 / ns, ns / 1e6 / n }')
}

# ------------------------------------------------------------ saga levels --

# run_level STORE CLIENTS: warm-up, measured run, checks; appends a table
# row to rows_STORE and a detail line to details_STORE.
declare -a rows_postgres=() rows_sqlite=() details_postgres=() details_sqlite=()
problems=()
run_level() {
  local store=$1 clients=$2 log_file c0 a0 c1 a1 t0 t1 p0=0 p1=0 lsn0 lsn1 wal="–" pg_us="–"
  local m0 m1 n0 n1 s0 s1 tm pm=0 others
  local committed aborted errors error_text tr_us sagas_s cores machine check
  if ((warmup > 0)); then
    log "$store: $(clients_text "$clients"), warm-up ${warmup} s"
    run_wrk "$work/wrk-$store-$clients-warmup.log" "$clients" "$warmup" "$treaty_url" \
      "$repo/bench/saga.lua" "$run_id-$store-c$clients-w" "http://127.0.0.1:$nginx_port"
  fi
  wait_idle  # also reads the counts
  c0=$log_committed a0=$log_aborted
  t0=$(tree_ticks "$treatyd_pid")
  if [[ $store == postgres ]]; then p0=$(tree_ticks "$(postmaster_pid)"); lsn0=$(wal_lsn); fi
  n0=$(tree_ticks "$nginx_pid")
  s0=$(self_ticks)
  read -r m0 _ <<<"$(machine_ticks)"

  log "$store: $(clients_text "$clients"), ${duration} s"
  log_file=$work/wrk-$store-$clients.log
  run_wrk "$log_file" "$clients" "$duration" "$treaty_url" "$repo/bench/saga.lua" \
    "$run_id-$store-c$clients" "http://127.0.0.1:$nginx_port"
  # The wrk window alone: the whole machine's busy time, and what of it
  # was not treatyd, PostgreSQL, nginx or wrk (and this script): others.
  read -r m1 _ <<<"$(machine_ticks)"
  tm=$(tree_ticks "$treatyd_pid")
  [[ $store == postgres ]] && pm=$(tree_ticks "$(postmaster_pid)")
  n1=$(tree_ticks "$nginx_pid")
  s1=$(self_ticks)
  wait_idle
  c1=$log_committed a1=$log_aborted
  t1=$(tree_ticks "$treatyd_pid")
  if [[ $store == postgres ]]; then p1=$(tree_ticks "$(postmaster_pid)"); lsn1=$(wal_lsn); fi
  read_result "$log_file"

  committed=$((c1 - c0))
  aborted=$((a1 - a0))
  ((committed > 0)) || die "$store, $(clients_text "$clients"): no saga committed ($(grep -m1 '^SAMPLE' "$log_file" || true))"
  # Errors: non-2xx answers, 2xx not COMMITTED (a wait that ran out, an
  # abort), and socket errors (connect, read, write, time-out).
  errors=$((R[non2xx] + R[notcommitted] + R[connect] + R[read] + R[write] + R[timeout]))
  error_text=$errors
  if ((errors > 0)); then
    error_text="$errors (non-2xx ${R[non2xx]}, not committed ${R[notcommitted]}, socket $((R[connect] + R[read] + R[write] + R[timeout])))"
    problems+=("$store, $(clients_text "$clients"): $error_text; first: $(grep -m1 '^SAMPLE' "$log_file" | cut -c8- || true)")
  fi
  # Every saga answered COMMITTED is COMMITTED in the log, and nothing else
  # committed but requests wrk sent and stopped waiting for when its time
  # was up: ok <= committed <= sent. No saga may abort.
  check="ok"
  if ((committed < R[ok] || committed > R[sent] || aborted != 0)); then
    check="MISMATCH"
    problems+=("$store, $(clients_text "$clients"): log counts $committed committed, $aborted aborted; wrk saw ${R[ok]} COMMITTED answers of ${R[sent]} sent")
  fi

  sagas_s=$(awk -v n="${R[ok]}" -v us="${R[duration_us]}" 'BEGIN { print n * 1e6 / us }')
  tr_us=$(awk -v t=$((t1 - t0)) -v n="$committed" -v hz="$clk_tck" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }')
  cores=$(awk -v t=$((t1 - t0)) -v hz="$clk_tck" -v s="$duration" 'BEGIN { printf "%.2f", t / hz / s }')
  if [[ $store == postgres ]]; then
    pg_us=$(awk -v t=$((p1 - p0)) -v n="$committed" -v hz="$clk_tck" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }')
    wal=$(commas "$(awk -v b="$(wal_bytes "$lsn0" "$lsn1")" -v n="$committed" 'BEGIN { print b / n }')")
    cores+=", postgres $(awk -v t=$((p1 - p0)) -v hz="$clk_tck" -v s="$duration" 'BEGIN { printf "%.2f", t / hz / s }')"
  fi
  machine=$(awk -v b=$((m1 - m0)) -v hz="$clk_tck" -v s="$duration" -v n="$(nproc)" \
    'BEGIN { printf "%.0f%%", 100 * b / hz / s / n }')
  others=$(awk -v t=$((m1 - m0 - (tm - t0) - (pm - p0) - (n1 - n0) - (s1 - s0))) -v hz="$clk_tck" \
    -v s="$duration" 'BEGIN { o = t / hz / s; printf "%.2f", o < 0 ? 0 : o }')
  others_max=$(awk -v a="$others_max" -v b="$others" 'BEGIN { print (b > a ? b : a) }')

  local row detail who
  who=$(clients_text "$clients")
  [[ $pg_us == – ]] || pg_us=$(commas "$pg_us")
  row="| $clients | $(commas "$sagas_s") | $(fmt_ms "${R[p50_us]}") | $(fmt_ms "${R[p99_us]}") | $(commas "$tr_us") | $pg_us | $wal | $error_text |"
  detail="- $who: ${R[ok]} answered COMMITTED of ${R[sent]} sent, log +$committed COMMITTED +$aborted ABORTED: $check; CPU cores used: treatyd $cores, other processes $others; machine busy $machine; mean $(fmt_ms "${R[mean_us]}"), max $(fmt_ms "${R[max_us]}")"
  if [[ $store == postgres ]]; then rows_postgres+=("$row"); details_postgres+=("$detail")
  else rows_sqlite+=("$row"); details_sqlite+=("$detail"); fi
  log "$store, $who: $(commas "$sagas_s") sagas/s, p50 $(fmt_ms "${R[p50_us]}"), p99 $(fmt_ms "${R[p99_us]}"), errors $error_text, counts $check"
}

run_store() {
  local store=$1 uri=$2 clients
  start_treatyd "$store" "$uri"
  for clients in $levels; do run_level "$store" "$clients"; done
  stop_treatyd
}

# ------------------------------------------------------------- conditions --

conditions() {
  local build_type sqlite_pragmas
  build_type=$("$treatyd" --version 2>/dev/null || echo "treatyd (version unknown)")
  sqlite_pragmas=$(grep -ho 'PRAGMA \(journal_mode\|synchronous\|locking_mode\)=[A-Za-z]*' \
    "$repo"/coordinator/store/sqlite_statement.cc 2>/dev/null | sed 's/PRAGMA //' | paste -sd, - || true)
  echo "## Conditions"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), source $(source_text), $build_type"
  echo "- machine: $(machine_text)"
  echo "- data directory: $(fs_text) ($work)"
  echo "- load average at start: $load_at_start; at end: $(loadavg)"
  echo "- CPU used by processes other than the benchmark's during the measured runs: at most $others_max cores (machine busy time minus that of treatyd, PostgreSQL, nginx and wrk; network work the kernel charged to no process counts too)"
  if ((compiler_busy > 0)); then
    echo "- **a build ran beside the benchmark**: compiler/linker processes found before $compiler_busy of $compiler_checks wrk/pgbench runs (up to $compiler_max at once): the figures of those runs are depressed (\"other processes\" under each table says by how much CPU)"
  else
    echo "- no compiler/linker process found before any of the $compiler_checks wrk/pgbench runs"
  fi
  echo "- load: wrk $(wrk_version), $wrk_threads threads at most, \`--timeout 60s\`; each level: ${warmup} s warm-up, ${duration} s measured; clients = connections, each waiting for its answer"
  echo "- saga: 3 steps, \"wait\": true, sequential, payload {\"amount\":N}; participants: $(nginx_version), 1 worker, \`return 200 '{}'\`"
  echo "- treatyd: default options but \`--thrift off\`${TREATYD_ARGS:+ and \`$TREATYD_ARGS\`} (defaults: 2 io threads, log level info = one line per finished transaction, to a file)"
  if measure_pg; then
    echo "- PostgreSQL: $(postgres_text fsync synchronous_commit wal_sync_method full_page_writes \
      shared_buffers max_wal_size commit_delay wal_level)"
  fi
  measure_sqlite && echo "- SQLite log: $(sqlite3 --version | cut -d' ' -f1), treatyd sets ${sqlite_pragmas:-?} on its connection"
  echo "- CPU per saga: utime+stime from /proc of treatyd, and of the postmaster and every child (reaped ones included), before and after each level, divided by the sagas the log committed in it (the tail of sagas still running when wrk stopped included, and the GET /v1/stats count query that waits for it); WAL: pg_current_wal_lsn() difference, divided likewise (treatyd's heartbeats included)"
  return 0
}

# ------------------------------------------------------------------- main --

install_missing
find_treatyd
make_work_dir treaty-bench
run_id=b$(date +%s)
load_at_start=$(loadavg)
count_compilers
((compiler_busy > 0)) && log "WARNING: compilers/linkers are running: figures will be depressed"

measure_pg && start_postgres_with_bench
start_nginx /s1/action "{} 200" "POST answers 200 {}"

direct_baseline
if measure_pg; then pgbench_baseline; fi
if measure_sqlite; then sqlite_baseline; fi
if measure_pg; then run_store postgres "$store_uri"; fi
if measure_sqlite; then run_store sqlite "sqlite:$work/sqlite/treaty.db"; fi

# ----------------------------------------------------------------- report --

header="| clients | sagas/s | p50 | p99 | treatyd µs/saga | postgres µs/saga | WAL bytes/saga | errors |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
report() {
  echo "# treatyd end-to-end benchmark (bench/run.sh)"
  echo
  echo "Three-step sagas, \"wait\": true, no-op participants (nginx); latency as the client sees it."
  echo
  if measure_pg; then
    echo "## PostgreSQL log (fsync=on, synchronous_commit=on)"
    echo
    echo "$header"
    printf '%s\n' "${rows_postgres[@]}"
    echo
    printf '%s\n' "${details_postgres[@]}"
    echo
  fi
  if measure_sqlite; then
    echo "## SQLite log (journal_mode=WAL, synchronous=FULL)"
    echo
    echo "$header"
    printf '%s\n' "${rows_sqlite[@]}"
    echo
    printf '%s\n' "${details_sqlite[@]}"
    echo
  fi
  echo "## Baselines"
  echo
  echo "Direct calls: wrk against nginx, each connection POSTing to the three participants in turn (calls/s ÷ 3 = three-call sequences/s; latency per call)."
  echo
  echo "| clients | calls/s | three-call sequences/s | call p50 | call p99 | errors |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${direct_rows[@]}"
  echo
  if measure_pg; then
    echo "PostgreSQL commit rate: pgbench, one single-row INSERT per transaction (bench/insert.sql), ${duration} s."
    echo
    echo "| clients | commits/s | latency avg | postgres µs/commit | WAL bytes/commit |"
    echo "| ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${pgbench_rows[@]}"
    echo
  fi
  if measure_sqlite; then
    echo "SQLite commit rate: sqlite3 shell, WAL, synchronous=FULL, sequential single-row INSERTs: $sqlite_baseline_line."
    echo
  fi
  if ((${#problems[@]})); then
    echo "## Problems"
    echo
    printf -- '- %s\n' "${problems[@]}"
  else
    echo "Checks: every answer was 2xx COMMITTED, no socket error, and the log's COMMITTED count grew by what wrk saw (plus at most the requests cut off at the end of each run)."
  fi
  echo
  conditions
}
report | publish_report
((${#problems[@]} == 0)) || exit 1
