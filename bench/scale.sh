#!/usr/bin/env bash
# bench/scale.sh: do treatyd's costs grow with the history in its log?
#
# Measures the same operations twice on one throw-away PostgreSQL 15 log:
# first with the log empty, then after N finished transactions have been
# generated straight into it with SQL (INSERT ... SELECT generate_series),
# and prints, per operation, p50, p99 and req/s of both and their ratio.
# Everything runs on this machine, on loopback, in a throw-away directory:
#
#   PostgreSQL 15  initdb'd here, fsync=on, synchronous_commit=on
#   nginx          the three participants (one worker, `return 200 '{}'`)
#   treatyd        on the PostgreSQL log (schema by `treatyd migrate`)
#
# Operations (wrk, fixed duration each):
#   submit         POST /v1/sagas, three no-op steps, "wait": true
#                  (bench/saga.lua), 1 and 32 clients
#   get            GET /v1/transactions/{gtid} of one finished transaction
#                  (of the generated history once there is one)
#   list           GET /v1/transactions?limit=50
#   list state     GET /v1/transactions?state=COMMITTED&limit=50
#   list prefix    GET /v1/transactions?gtid_prefix=P&limit=50, P matching
#                  thousands of transactions
#   (the GETs with 1 client and with 32 clients)
#
# The generated history looks like what treatyd writes for a three-step saga
# (checked against a real one): per transaction one `transactions` row (95 %
# COMMITTED, 5 % ABORTED, the saga spec as treatyd stores it), three
# `branches` rows and eight `events` rows (submitted, RUNNING and a result per
# step, the final state). Created and updated times spread evenly over the
# last 6 days: inside the default retention (--retention-hours 168), so
# treatyd's retention deletes none of it while measuring. Rows go in batches
# of --batch transactions, one commit each, with progress; then ANALYZE.
#
# Usage:
#   bench/scale.sh [--rows N] [--batch N] [--duration SECONDS]
#                  [--out FILE] [--keep]
#
#   --rows N        finished transactions to generate (default 10000000);
#                   0: measure the empty log only
#   --batch N       transactions per generating INSERT (default 100000)
#   --duration S    seconds per measured wrk run (default 10; env DURATION),
#                   after 1 s of warm-up
#   --out FILE      also write the report there
#   --keep          keep the work directory (logs, data)
#
# Environment: TREATYD (the binary; default BUILD_DIR/coordinator/treatyd,
# BUILD_DIR default ./build; nothing is built), TREATYD_ARGS (more treatyd
# options), WRK_THREADS (default 2), PG_BIN (default
# /usr/lib/postgresql/15/bin), BENCH_TMPDIR (where the work directory goes;
# put it on a disk, not a tmpfs). Needs nginx, wrk, jq, curl and PostgreSQL
# 15 (bench/run.sh installs them). The report (Markdown) goes to stdout,
# progress to stderr. Every process started here is stopped on exit, also on
# Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- options --

rows=10000000
batch=100000
duration=${DURATION:-10}
out_file=""
keep=0
wrk_threads=${WRK_THREADS:-2}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
history_ms=$((6 * 24 * 3600 * 1000))  # spread of generated times: 6 days


while (($#)); do
  case $1 in
    --rows) rows=${2:?--rows needs a number}; shift ;;
    --batch) batch=${2:?--batch needs a number}; shift ;;
    --duration) duration=${2:?--duration needs seconds}; shift ;;
    --out) out_file=${2:?--out needs a file}; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench/scale.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $rows =~ ^[0-9]+$ ]] || { echo "bench/scale.sh: --rows '$rows' is not an integer" >&2; exit 2; }
for n in $batch $duration; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench/scale.sh: '$n' is not a positive integer" >&2; exit 2; }
done

# ---------------------------------------------------------------- helpers --
# (log, die, free_port, commas, fmt_ms and the rest: bench/lib.sh)

# fmt_ms, or "-" for a figure not measured.
fmt_or_dash() { if [[ $1 == - ]]; then echo -; else fmt_ms "$1"; fi; }

# A / B with two decimals, "-" when B is 0 or missing.
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0 && a != "-") printf("%.2f", a / b); else print "-" }'; }

require_programs
treatyd=$(locate_treatyd)

# ---------------------------------------------------------------- cleanup --

# child_pid (bench/lib.sh): the wrk or psql being waited for.
install_cleanup stop_treatyd TERM

# ---------------------------------------------------------------- servers --

# start_treatyd NAME: treatyd (node name scale-NAME) on a fresh loopback
# port, no authentication (allowed on loopback), no Thrift, the default
# retention (168 h: the generated history is younger). Sets treaty_url.
start_treatyd() {
  launch_treatyd "$1" "scale-$1" "$store_uri" 60
  log "treatyd on $treaty_url"
}

# ---------------------------------------------------------------- history --

# generate_history: N finished three-step sagas, in batches of $batch, one
# commit each. Transaction i (1..N) has gtid hist-<i, 9 digits>, created
# i / N of the way from 6 days ago to now (the newest last, as a live log
# grows), finished 6 ms later; every 20th is ABORTED (step s2 failed, s1
# compensated). Texts are the ones treatyd writes (a real saga's rows).
generate_history() {
  local from to now_ms started spent
  now_ms=$(psql_at treaty "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
  # A file, not a here-document: run_child runs psql in the background,
  # where its standard input is /dev/null.
  cat >"$work/generate.sql" <<'SQL'
BEGIN;
CREATE TEMP TABLE g ON COMMIT DROP AS
  SELECT i, 'hist-' || lpad(i::text, 9, '0') AS gtid,
         :now_ms - :span_ms + (i * :span_ms::numeric / :n)::bigint - 60000 AS t0,
         i % 20 = 0 AS aborted
  FROM generate_series(:from::bigint, :to::bigint) AS i;
INSERT INTO transactions (gtid, kind, state, spec, deadline_ms, owner, attempts, version,
                          created_at_ms, updated_at_ms, last_error)
SELECT gtid, 'saga', CASE WHEN aborted THEN 'ABORTED' ELSE 'COMMITTED' END,
       '{"concurrent":false,"gtid":"' || gtid || '","steps":[' ||
       (SELECT string_agg(format(
          '{"action":"%1$s/s%2$s/action","after":[],"compensate":"%1$s/s%2$s/compensate",'
          '"name":"s%2$s","payload":{"amount":%3$s},"retry":{"initial_backoff_ms":100,'
          '"max_attempts":5,"max_backoff_ms":10000},"timeout_ms":0}', :'base', s, i % 1000 + s), ',')
        FROM generate_series(1, 3) AS s) ||
       '],"timeout_ms":0,"trace":{"flags":"01","trace_id":"' || md5(gtid) || '"}}',
       0, 'treatyd-history', 0, 3, t0, t0 + 6,
       CASE WHEN aborted THEN 's2: HTTP 500' ELSE '' END
FROM g;
INSERT INTO branches (gtid, name, idx, state, attempts, last_error, updated_at_ms)
SELECT gtid, 's' || s, s - 1,
       CASE WHEN NOT aborted THEN 'SUCCEEDED' WHEN s = 1 THEN 'COMPENSATED'
            WHEN s = 2 THEN 'FAILED' ELSE 'PENDING' END,
       CASE WHEN aborted AND s = 3 THEN 0 ELSE 1 END,
       CASE WHEN aborted AND s = 2 THEN 'HTTP 500' ELSE '' END, t0 + 2 * s
FROM g, generate_series(1, 3) AS s;
INSERT INTO events (gtid, branch, type, detail, at_ms, count, first_at_ms)
SELECT gtid, e.branch, e.type, e.detail, t0 + e.dt, 1, t0 + e.dt
FROM g, LATERAL (VALUES
  (1, '', 'state', 'RUNNING: saga submitted with 3 steps', 0),
  (2, 's1', 'step', 'RUNNING: attempt 1', 0),
  (3, 's1', 'step', 'SUCCEEDED: action ok (HTTP 200)', 2),
  (4, 's2', 'step', 'RUNNING: attempt 1', 2),
  (5, 's2', 'step', CASE WHEN aborted THEN 'FAILED: action failed (HTTP 500)'
                         ELSE 'SUCCEEDED: action ok (HTTP 200)' END, 4),
  (6, CASE WHEN aborted THEN 's1' ELSE 's3' END, 'step',
      CASE WHEN aborted THEN 'COMPENSATING: attempt 1' ELSE 'RUNNING: attempt 1' END, 4),
  (7, CASE WHEN aborted THEN 's1' ELSE 's3' END, 'step',
      CASE WHEN aborted THEN 'COMPENSATED: compensation ok (HTTP 200)'
           ELSE 'SUCCEEDED: action ok (HTTP 200)' END, 6),
  (8, '', 'state', CASE WHEN aborted THEN 'ABORTED: step s2 failed'
                        ELSE 'COMMITTED: every step succeeded' END, 6)
) AS e(k, branch, type, detail, dt)
ORDER BY g.i, e.k;
COMMIT;
SQL
  started=$(date +%s.%N)
  for ((from = 1; from <= rows; from += batch)); do
    to=$((from + batch - 1))
    ((to > rows)) && to=$rows
    run_child "$work/generate.log" "$PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d treaty \
      -Xq -v ON_ERROR_STOP=1 -v from="$from" -v to="$to" -v n="$rows" -v now_ms="$now_ms" \
      -v span_ms="$history_ms" -v base="http://127.0.0.1:$nginx_port" -f "$work/generate.sql" ||
      die "generating rows $from..$to failed: $(tail -n 5 "$work/generate.log")"
    spent=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf("%.0f", b - a) }')
    log "history: $(commas "$to") of $(commas "$rows") transactions ($spent s)"
  done
  run_child "$work/analyze.log" "$PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d treaty \
    -Xq -c "VACUUM ANALYZE" -c "CHECKPOINT" || die "VACUUM ANALYZE failed"
  # (CHECKPOINT: the generation's dirty pages are written now, not by a
  # checkpoint in the middle of the measured runs.)
  generate_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf("%.1f", b - a) }')
  log "history generated and analyzed in $generate_s s"
}

# -------------------------------------------------------------------- wrk --

# A wrk script for GET of one fixed path (the argument), reporting like
# bench/saga.lua: RESULT completed=.. non2xx=.. duration_us=.. p50_us=..
# p99_us=.. errors=..
get_lua=""
write_get_lua() {
  get_lua=$work/get.lua
  cat >"$get_lua" <<'LUA'
non2xx = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
local req
function init(args) req = wrk.format("GET", args[1]) end
function request() return req end
function response(status) if status ~= 200 then non2xx = non2xx + 1 end end
function done(summary, latency, _)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format("RESULT completed=%d non2xx=%d duration_us=%d p50_us=%.0f p99_us=%.0f errors=%d\n",
    summary.requests, bad, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout))
end
LUA
}

# measure PHASE OP CLIENTS SCRIPT ARGS...: 1 s warm-up, then a measured wrk
# run; stores "p50_us p99_us req_per_s problems" in result[PHASE|OP|CLIENTS].
declare -A result
measure() {
  local phase=$1 op=$2 clients=$3 script=$4 log_file
  shift 4
  log_file=$work/wrk-$phase-${op// /_}-$clients.log
  local -A R=()
  local threads
  threads=$(threads_for "$clients")
  run_child "$log_file.warm" wrk -t "$threads" -c "$clients" -d 1s --timeout 60s -s "$script" \
    "$treaty_url" -- "${@/@RUN@/${phase}w$clients}" || die "wrk failed: $(tail -n 5 "$log_file.warm")"
  run_child "$log_file" wrk -t "$threads" -c "$clients" -d "${duration}s" --timeout 60s -s "$script" \
    "$treaty_url" -- "${@/@RUN@/${phase}m$clients}" || die "wrk failed: $(tail -n 5 "$log_file")"
  read_result "$log_file"  # into the local R
  local bad=$((${R[non2xx]:-0} + ${R[notcommitted]:-0} + ${R[errors]:-0} + ${R[connect]:-0} + \
    ${R[read]:-0} + ${R[write]:-0} + ${R[timeout]:-0}))
  local rps
  rps=$(awk -v n="${R[completed]}" -v us="${R[duration_us]}" 'BEGIN { printf("%.0f", n * 1e6 / us) }')
  if [[ ${R[completed]} == 0 ]]; then
    # Not one answer in the run: no latency to show (wrk's histogram is
    # empty), and a problem to show.
    R[p50_us]=- R[p99_us]=- bad="$bad, none answered in ${duration} s"
  fi
  result[$phase|$op|$clients]="${R[p50_us]} ${R[p99_us]} $rps $bad"
  log "$phase, $op, $clients clients: p50 $(fmt_or_dash "${R[p50_us]}"), p99 $(fmt_or_dash "${R[p99_us]}"), $(commas "$rps") req/s, bad answers: $bad"
}

# measure_all PHASE GTID PREFIX: every operation, against the running
# treatyd. Submits first, so that the empty log has a finished gtid and
# a prefix matching thousands of transactions.
operations=("submit" "get" "list" "list state" "list prefix")
measure_all() {
  local phase=$1 gtid=$2 prefix=$3 clients
  for clients in 1 32; do
    measure "$phase" submit "$clients" "$repo/bench/saga.lua" "@RUN@" "http://127.0.0.1:$nginx_port"
  done
  # The submits of the empty phase are its history.
  # (wrk calls request() once before the run and drops it: no -1-1.)
  [[ -n $gtid ]] || gtid=${phase}m1-1-5
  [[ -n $prefix ]] || prefix=${phase}m32-
  local answer
  answer=$(curl -s "$treaty_url/v1/transactions/$gtid" || true)
  jq -e '.state == "COMMITTED"' >/dev/null 2>&1 <<<"$answer" ||
    die "GET /v1/transactions/$gtid answered ${answer:0:300}, not a COMMITTED transaction"
  for clients in 1 32; do
    measure "$phase" get "$clients" "$get_lua" "/v1/transactions/$gtid"
    measure "$phase" list "$clients" "$get_lua" "/v1/transactions?limit=50"
    measure "$phase" "list state" "$clients" "$get_lua" "/v1/transactions?state=COMMITTED&limit=50"
    measure "$phase" "list prefix" "$clients" "$get_lua" "/v1/transactions?gtid_prefix=$prefix&limit=50"
  done
}

db_size() { psql_at treaty "SELECT pg_size_pretty(pg_database_size('treaty'))"; }
table_sizes() {
  psql_at treaty "SELECT string_agg(c || ' ' || pg_size_pretty(pg_total_relation_size(c)), ', ')
                  FROM unnest(ARRAY['transactions', 'branches', 'events']) AS c"
}

# ------------------------------------------------------------------- main --

make_work_dir treaty-scale
load_at_start=$(loadavg)
# max_wal_size keeps checkpoints out of the generation (it writes gigabytes).
start_postgres 8GB migrate "maintenance_work_mem = '256MB'"
start_nginx /s1/action "{} 200" "POST answers 200 {}"
write_get_lua

phases=(empty)
start_treatyd empty
measure_all empty "" ""
stop_treatyd
size_empty=$(db_size)
generate_s=0
if ((rows > 0)); then
  phases+=(full)
  generate_history
  size_full=$(db_size)
  start_treatyd full
  # A COMMITTED gtid in the middle of the history (every 20th is ABORTED);
  # the prefix hist-00000 matches the oldest 9,999 of it (all when N is
  # smaller).
  middle=$(((rows + 1) / 2))
  ((middle % 20 == 0)) && middle=$((middle - 1))
  measure_all full "hist-$(printf '%09d' "$middle")" "hist-00000"
  stop_treatyd
fi

# ----------------------------------------------------------------- report --

report() {
  local op clients e f e0 e1 e2 e3 f0 f1 f2 f3
  echo "# treatyd cost against history (bench/scale.sh)"
  echo
  echo "PostgreSQL 15 log (fsync=on, synchronous_commit=on); empty log$( ((rows == 0)) || echo " vs $(commas "$rows") generated") finished transactions; wrk ${duration} s per row after 1 s warm-up; ratio = with history / empty."
  echo
  if ((rows == 0)); then
    # The empty log only: its figures, no comparison.
    echo "| operation | clients | p50 | p99 | req/s | bad answers |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for op in "${operations[@]}"; do
      for clients in 1 32; do
        read -r e0 e1 e2 e3 <<<"${result[empty|$op|$clients]}"
        echo "| $op | $clients | $(fmt_or_dash "$e0") | $(fmt_or_dash "$e1") | $(commas "$e2") | $e3 |"
      done
    done
  else
    echo "| operation | clients | p50 empty | p50 $(commas "$rows") | p99 empty | p99 $(commas "$rows") | req/s empty | req/s $(commas "$rows") | p50 ratio | p99 ratio | req/s ratio | bad answers |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for op in "${operations[@]}"; do
      for clients in 1 32; do
        read -r e0 e1 e2 e3 <<<"${result[empty|$op|$clients]}"
        e=("$e0" "$e1" "$e2" "$e3")
        f=("-" "-" "0" "-")
        if [[ -n ${result[full|$op|$clients]:-} ]]; then
          read -r f0 f1 f2 f3 <<<"${result[full|$op|$clients]}"
          f=("$f0" "$f1" "$f2" "$f3")
        fi
        echo "| $op | $clients | $(fmt_or_dash "${e[0]}") | $(fmt_or_dash "${f[0]}") | $(fmt_or_dash "${e[1]}") | $(fmt_or_dash "${f[1]}") | $(commas "${e[2]}") | $(commas "${f[2]}") | $(ratio "${f[0]}" "${e[0]}") | $(ratio "${f[1]}" "${e[1]}") | $(ratio "${f[2]}" "${e[2]}") | ${e[3]} / ${f[3]} |"
      done
    done
  fi
  echo
  echo "- database size: empty log (after its own submits) $size_empty${size_full:+; with history $size_full ($(table_sizes))}"
  ((rows > 0)) && echo "- generation of $(commas "$rows") transactions (3 branches, 8 events each) in batches of $(commas "$batch"), with VACUUM ANALYZE and CHECKPOINT: $generate_s s ($(awk -v s="$generate_s" -v n="$rows" 'BEGIN { printf("%.0f", s * 1e6 / n) }') s per million)"
  echo "- machine: $(nproc) CPUs, load average at start $load_at_start, at end $(loadavg); work directory on $(df -PT "$work" | awk 'NR == 2 { print $2 }')"
  echo "- source $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), $("$treatyd" --version 2>/dev/null || echo treatyd)"
}
report | publish_report
exit 0
