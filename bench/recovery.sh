#!/usr/bin/env bash
# bench/recovery.sh: how fast do survivors resume the sagas of a coordinator
# killed with kill -9, and what does an in-flight saga cost in memory?
#
# Issue 16 targets: "100,000 in-flight sagas after kill -9 of their
# coordinator are all resumed by three survivors within 30 s" and "memory per
# in-flight saga measured and reported". Everything runs on this machine, on
# loopback, in a throw-away directory:
#
#   PostgreSQL 15  initdb'd here, fsync=on, synchronous_commit=on; the one log
#                  every coordinator shares (schema by `treatyd migrate`)
#   nginx          the participants: one worker; POST /s2/action answers
#                  503, every other URL 200 `{}`
#   treatyd        coordinator A, then the survivors S1..Sn, all on that log
#                  (a copy of the binary taken at the start, so that a
#                  rebuild meanwhile cannot mix versions)
#
# How sagas are kept in flight: each saga has three steps (like
# bench/saga.lua); s1 succeeds, s2's action gets a 503 (transient: retried)
# and s3 stays PENDING. s2 has retry {max_attempts 1000, initial_backoff_ms =
# max_backoff_ms = --backoff-ms, default 3,600,000}: after its first 503 the
# next attempt is planned 30-60 minutes later and logged (branches.
# next_attempt_at_ms), so the saga stays RUNNING with one timer and no
# traffic. A backoff of a few seconds would keep 100,000 sagas retrying at
# tens of thousands of calls and log writes per second, on 2 cores a load
# test of its own that would hide what is measured here; a participant that
# never answers would hold 100,000 open connections (file descriptors, nginx
# and treatyd memory) and still end in a time-out and a retry. On take-over a
# planned attempt is not sent at once: the new owner logs a `recovery` event
# ("resumed by coordinator X in state RUNNING", plus the step's "was planned,
# not sent; sending it in N ms") and arms the timer again (docs/schema.md
# "Attempts and retries"), which is exactly the work of adoption.
#
# Steps:
#   1. coordinator A starts; its RSS is read (idle).
#   2. N sagas are submitted to A without "wait" by wrk (64 connections, a
#      Lua script written into the work directory: each thread sends its
#      share of N POSTs, gtids rec-THREAD-K, then stops). The script waits
#      until all N are RUNNING, owned by A, with s2's retry planned (SQL on
#      transactions and branches): A is then idle with N sagas in memory.
#   3. Memory per in-flight saga: A's VmRSS, RssAnon (/proc/PID/status) and
#      Pss (smaps_rollup), (with N - idle) / N; and the log's size per saga
#      (pg_total_relation_size of transactions, branches, events / N).
#   4. The survivors start (other ports), join (GET /v1/cluster shows every
#      coordinator alive) and heartbeat for a lease and two heartbeats more
#      (a coordinator judges peers only after a whole lease of its own
#      heartbeats).
#   5. kill -9 of A. Measured from the kill: (a) when a survivor declared A
#      dead (its log line "coordinator A missed its lease: dead"; the
#      coordinators table is polled too), (b) when the sagas left A
#      (survivors' log lines "adopting K unfinished transactions", summed,
#      and a poll of SQL count(owner = A)), (c) when each saga was resumed
#      by its new owner (events of type `recovery` on the transaction,
#      written after the kill: the first per gtid, at_ms, read once at the
#      end; while waiting, the survivors' "resuming saga" log lines are
#      counted instead, so that no poll scans the events table on the
#      database being measured). Timeline at 10 %,
#      50 %, 90 % and 100 %, adoption rate per second, per survivor: sagas
#      adopted, CPU seconds, RSS before/after; PostgreSQL's CPU; CPU used by
#      other processes on the machine meanwhile. Half-way through, EXPLAIN
#      ANALYZE of the claim query's SELECT for A's transactions (as in
#      PgLogStore::ClaimOrphans, run without FOR UPDATE so that it locks
#      nothing) shows what one claim costs at that point.
#
# Usage:
#   bench/recovery.sh [--sagas N] [--survivors N] [--backoff-ms MS]
#                     [--timeout SECONDS] [--out FILE] [--keep]
#
#   --sagas N        in-flight sagas to create on A (default 100000)
#   --survivors N    coordinators that take over (default 3)
#   --backoff-ms MS  s2's initial and maximum backoff (default 3600000, the
#                    largest accepted: no retry during the run)
#   --timeout S      give up waiting for the take-over after S seconds
#                    (default 900); what was reached is still reported
#   --out FILE       also write the report there
#   --keep           keep the work directory (logs, data)
#
# Environment: TREATYD (the binary; default BUILD_DIR/coordinator/treatyd,
# BUILD_DIR default ./build; nothing is built), TREATYD_ARGS (more treatyd
# options, every coordinator), HEARTBEAT_MS, LEASE_MS, CLAIM_BATCH (given to
# every coordinator as --heartbeat-ms, --lease-ms, --claim-batch; defaults
# treatyd's own: 1000, 5000, 100), WRK_THREADS (default 2), PG_BIN (default
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

sagas=100000
survivors=3
backoff_ms=3600000
timeout_s=900
out_file=""
keep=0
wrk_threads=${WRK_THREADS:-2}
wrk_connections=64
heartbeat_ms=${HEARTBEAT_MS:-1000}
lease_ms=${LEASE_MS:-5000}
claim_batch=${CLAIM_BATCH:-100}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# The pause after a full claim batch before the next claim round:
# Membership::kFullBatchPauseMs in coordinator/cluster/membership.h.
full_batch_pause_ms=10


while (($#)); do
  case $1 in
    --sagas) sagas=${2:?--sagas needs a number}; shift ;;
    --survivors) survivors=${2:?--survivors needs a number}; shift ;;
    --backoff-ms) backoff_ms=${2:?--backoff-ms needs milliseconds}; shift ;;
    --timeout) timeout_s=${2:?--timeout needs seconds}; shift ;;
    --out) out_file=${2:?--out needs a file}; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench/recovery.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for n in $sagas $survivors $backoff_ms $timeout_s $heartbeat_ms $lease_ms $claim_batch $wrk_threads; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench/recovery.sh: '$n' is not a positive integer" >&2; exit 2; }
done
((backoff_ms <= 3600000)) || { echo "bench/recovery.sh: --backoff-ms is at most 3600000" >&2; exit 2; }
((sagas >= wrk_threads)) || wrk_threads=$sagas

# ---------------------------------------------------------------- helpers --
# (log, die, free_port, commas, tree_ticks, count_compilers and the rest:
# bench/lib.sh)

now_ms() { date +%s%3N; }
# Seconds with one decimal from milliseconds, "-" for a figure not reached.
secs() { if [[ -z $1 || $1 == - ]]; then echo -; else awk -v ms="$1" 'BEGIN { printf("%.1f", ms / 1000) }'; fi; }
# KiB -> "123.4 MiB".
mib() { awk -v k="$1" 'BEGIN { printf("%.1f MiB", k / 1024) }'; }

ticks_s() { awk -v t="$1" -v hz="$clk_tck" 'BEGIN { printf("%.1f", t / hz) }'; }

# mem_kib PID: "VmRSS RssAnon Pss" in KiB.
mem_kib() {
  local rss anon pss
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")
  anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$1/status")
  pss=$(awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0)
  echo "$rss $anon ${pss:-0}"
}

require_programs
treatyd_src=$(locate_treatyd)

# ---------------------------------------------------------------- cleanup --

# child_pid (bench/lib.sh): the wrk being waited for.
declare -A tpid=() turl=()  # treatyd by name (A, S1, ...): pid, base URL

# Survivors hold no work the run still needs: KILL, not a drain of N sagas
# (treatyd_pid: one that launch_treatyd started but that was not ready).
# shellcheck disable=SC2317  # called by the EXIT trap
kill_coordinators() {
  local pid
  for pid in "${tpid[@]}" $treatyd_pid; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${tpid[@]}" $treatyd_pid; do wait "$pid" 2>/dev/null; done
}
# SIGINT to wrk: it stops and prints what it has.
install_cleanup kill_coordinators INT

# ---------------------------------------------------------------- servers --

sql() { psql_at treaty "$1"; }

# start_treatyd NAME: treatyd on a fresh loopback port, no Thrift, node name
# recovery-NAME; waits for /readyz. Sets tpid[NAME], turl[NAME].
start_treatyd() {
  local name=$1
  launch_treatyd "$name" "recovery-$name" "$store_uri" 30 --heartbeat-ms "$heartbeat_ms" \
    --lease-ms "$lease_ms" --claim-batch "$claim_batch"
  tpid[$name]=$treatyd_pid
  turl[$name]=$treaty_url
  log "treatyd $name (pid ${tpid[$name]}) on ${turl[$name]}"
}

coordinator_id() { sql "SELECT id FROM coordinators WHERE node_name = 'recovery-$1' AND state <> 'dead'"; }

# ------------------------------------------------------------- submission --

write_lua() {
  lua=$work/submit.lua
  cat >"$lua" <<'LUA'
-- Thread t of T sends its share of N POST /v1/sagas without "wait" (gtids
-- rec-t-k), then GET /healthz while its last answers come in, and stops once
-- every POST of it was answered. Args: BASE_URL N T BACKOFF_MS.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end
sent = 0
answered = 0
created = 0
repeated = 0
non2xx = 0
sample = ""
local limit, head, tail
local headers = {["Content-Type"] = "application/json"}
function init(args)
  local base, n, t, backoff = args[1], tonumber(args[2]), tonumber(args[3]), args[4]
  limit = math.floor(n / t) + ((thread_id <= n % t) and 1 or 0)
  local steps = {}
  for i = 1, 3 do
    local retry = ""
    if i == 2 then
      retry = string.format(',"retry":{"max_attempts":1000,"initial_backoff_ms":%s,' ..
                            '"max_backoff_ms":%s}', backoff, backoff)
    end
    steps[i] = string.format('{"name":"s%d","action":"%s/s%d/action","compensate":' ..
                             '"%s/s%d/compensate","payload":{"amount":%d}%s}',
                             i, base, i, base, i, i, retry)
  end
  head = '{"gtid":"rec-' .. thread_id .. '-'
  tail = '","steps":[' .. table.concat(steps, ",") .. ']}'
end
-- wrk calls request() of its first thread once before the run and drops
-- the request (to check the script): that thread makes one more, so that
-- every thread sends its whole share (rec-1-1 is never sent).
local calls = 0
function request()
  if calls < limit + ((thread_id == 1) and 1 or 0) then
    calls = calls + 1
    sent = sent + 1
    return wrk.format("POST", "/v1/sagas", headers, head .. calls .. tail)
  end
  return wrk.format("GET", "/healthz")
end
function response(status, _, body)
  if body and string.find(body, '"status":"ok"', 1, true) then return end  -- a /healthz
  answered = answered + 1
  if status == 201 then created = created + 1
  elseif status == 200 then repeated = repeated + 1
  else
    non2xx = non2xx + 1
    if sample == "" then sample = status .. " " .. string.sub(body or "", 1, 300) end
  end
  if answered >= limit then pcall(function() wrk.thread:stop() end) end
end
function done(summary, _, _)
  local t = {sent = 0, answered = 0, created = 0, repeated = 0, non2xx = 0}
  local first = ""
  for _, th in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + th:get(k) end
    if first == "" then first = th:get("sample") end
  end
  local e = summary.errors
  io.write(string.format("RESULT sent=%d answered=%d created=%d repeated=%d non2xx=%d " ..
                         "duration_us=%d socket=%d\n", t.sent, t.answered, t.created, t.repeated,
                         t.non2xx, summary.duration, e.connect + e.read + e.write + e.timeout))
  if first ~= "" then io.write("SAMPLE " .. first:gsub("\n", " ") .. "\n") end
end
LUA
}

# Submits N sagas to A with wrk; sets submit_s and the R array. wrk runs
# "for an hour" and gets SIGINT once the log holds N transactions (or
# nothing was added for 60 s): its threads stop by themselves, its main
# thread only sleeps.
submit() {
  local started count last=0 stalled=0
  started=$(now_ms)
  count_compilers
  wrk -t "$wrk_threads" -c "$wrk_connections" -d 3600s --timeout 60s -s "$lua" "${turl[A]}" \
    -- "http://127.0.0.1:$nginx_port" "$sagas" "$wrk_threads" "$backoff_ms" >"$work/wrk.log" 2>&1 &
  child_pid=$!
  while kill -0 "$child_pid" 2>/dev/null; do
    sleep 1
    count=$(sql "SELECT count(*) FROM transactions")
    if ((count >= sagas)); then submit_ms=$(($(now_ms) - started)); break; fi
    if ((count == last)); then stalled=$((stalled + 1)); else stalled=0; fi
    ((stalled >= 60)) && { log "WARNING: no saga created for 60 s, stopping wrk at $count"; break; }
    (((count / 10000) != (last / 10000))) && log "submitted: $(commas "$count") of $(commas "$sagas")"
    last=$count
  done
  submit_ms=${submit_ms:-$(($(now_ms) - started))}
  sleep 1  # the last answers reach wrk
  kill -INT "$child_pid" 2>/dev/null || true
  wait "$child_pid" || true
  child_pid=""
  read_result "$work/wrk.log"
}

# Waits (at most 10 minutes) until every saga is RUNNING with s2's retry
# planned: A is idle. Sets settled (that count) and settle_ms (how long
# the wait took).
wait_settled() {
  local started last=-1
  started=$(now_ms)
  for _ in $(seq 1 600); do
    settled=$(sql "SELECT count(*) FROM branches b JOIN transactions t USING (gtid)
                   WHERE b.name = 's2' AND b.next_attempt_at_ms > 0 AND t.state = 'RUNNING'")
    ((settled >= sagas)) && break
    ((settled != last)) && log "in flight with s2's retry planned: $(commas "$settled") of $(commas "$sagas")"
    last=$settled
    sleep 2
  done
  settle_ms=$(($(now_ms) - started))
}

# ----------------------------------------------------------------- survey --

# Milliseconds (epoch) of the first log line of FILE matching PATTERN, from
# treatyd's text format "YYYY-MM-DD HH:MM:SS.mmm LEVEL ..." (local time).
first_line_ms() {
  local line stamp
  line=$(grep -m1 -- "$2" "$1" 2>/dev/null) || return 0
  stamp=$(sed -n 's/^\([0-9-]* [0-9:.]*\) .*/\1/p' <<<"$line")
  [[ -n $stamp ]] || return 0
  date -d "$stamp" +%s%3N 2>/dev/null || true
}

# Every survivor's "adopting K unfinished transactions" lines after the
# kill, as "MS K" sorted by time (into $work/adoptions.txt).
collect_adoptions() {
  local name
  for name in "${survivor_names[@]}"; do
    sed -n 's/^\([0-9-]* [0-9:.]*\) .*adopting \([0-9]*\) unfinished transactions.*/\1|\2/p' \
      "$work/treatyd-$name.log" | while IFS='|' read -r stamp k; do
        echo "$(date -d "$stamp" +%s%3N) $k $name"
      done
  done | sort -n >"$work/adoptions.txt"
}

# ms after the kill at which the cumulative adopted count (from the log
# lines) reached each fraction: "p10 p50 p90 p100".
adoption_timeline() {
  awk -v n="$sagas" -v kill="$kill_ms" '
    BEGIN { split("0.1 0.5 0.9 1.0", f, " "); for (i = 1; i <= 4; i++) at[i] = "-" }
    $1 >= kill - 1000 { sum += $2
      for (i = 1; i <= 4; i++) if (at[i] == "-" && sum >= f[i] * n) at[i] = $1 - kill }
    END { print at[1], at[2], at[3], at[4] }' "$work/adoptions.txt"
}

# ms after the kill at which each fraction of the N sagas had a `recovery`
# event written after the kill (the first per gtid): "p10 p50 p90 p100 count".
resumed_timeline() {
  sql "WITH r AS (SELECT gtid, min(at_ms) AS at FROM events
                  WHERE type = 'recovery' AND branch = '' AND at_ms >= $kill_ms GROUP BY gtid),
            k AS (SELECT at - $kill_ms AS ms, row_number() OVER (ORDER BY at) AS i FROM r)
       SELECT coalesce(max(ms) FILTER (WHERE i = ceil(0.1 * $sagas)), -1),
              coalesce(max(ms) FILTER (WHERE i = ceil(0.5 * $sagas)), -1),
              coalesce(max(ms) FILTER (WHERE i = ceil(0.9 * $sagas)), -1),
              coalesce(max(ms) FILTER (WHERE i = $sagas), -1), count(*) FROM k" |
    tr '|' ' ' | sed 's/-1/-/g'
}

# The claim query's SELECT as PgLogStore::ClaimOrphans runs it for A's
# transactions (without FOR UPDATE SKIP LOCKED: it locks nothing, so the
# survivors are not disturbed): along transactions_owner_unfinished, so its
# cost should follow the batch, not what has been claimed already.
explain_claim() {
  sql "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT t.gtid FROM transactions t
       WHERE t.owner = '$a_id' AND t.state NOT IN ('COMMITTED', 'ABORTED')
       ORDER BY t.created_at_ms LIMIT $claim_batch"
}

# ------------------------------------------------------------------- main --

make_work_dir treaty-recovery
treatyd=$work/treatyd
cp "$treatyd_src" "$treatyd"
load_at_start=$(loadavg)
count_compilers
((compiler_busy > 0)) && log "WARNING: compilers/linkers are running: figures will be depressed"
start_postgres 8GB migrate
# s2's action answers 503: a transient failure, retried after the step's
# backoff.
start_nginx /s2/action "* 503" "/s2/action: 503, the rest: 200 {}" \
  "location = /s2/action { return 503 '{\"error\":\"held by bench/recovery.sh\"}'; }"
write_lua

# 1-3. A, N sagas in flight, memory.
start_treatyd A
a_id=$(coordinator_id A)
sleep 1
read -r a_rss0 a_anon0 a_pss0 <<<"$(mem_kib "${tpid[A]}")"
log "A is $a_id: VmRSS $(mib "$a_rss0") idle; submitting $(commas "$sagas") sagas"
submit
log "submitted in $(secs "$submit_ms") s: ${R[created]} created (201), ${R[repeated]} repeats (200), ${R[non2xx]} other answers, ${R[socket]} socket errors"
in_log=$(sql "SELECT count(*) FROM transactions")
if ((in_log != sagas)); then
  log "WARNING: the log holds $in_log sagas, not $sagas: measuring those"
  sagas=$in_log
fi
((sagas > 0)) || die "no saga was created"
wait_settled
log "$(commas "$settled") sagas in flight with s2's retry planned, $(secs "$settle_ms") s after the submission ended"
sleep 2
read -r a_rss1 a_anon1 a_pss1 <<<"$(mem_kib "${tpid[A]}")"
read -r owned_by_a running_total <<<"$(sql "SELECT count(*) FILTER (WHERE owner = '$a_id' AND state = 'RUNNING'),
                                                count(*) FILTER (WHERE state = 'RUNNING') FROM transactions" | tr '|' ' ')"
((owned_by_a == sagas)) || log "WARNING: $owned_by_a RUNNING sagas owned by A, $sagas expected"
a_active=$(curl -sf "${turl[A]}/v1/stats" | jq -r '.active_drivers // "?"' || echo "?")
per_saga() { awk -v a="$1" -v b="$2" -v n="$owned_by_a" 'BEGIN { if (n > 0) printf("%.0f", (b - a) * 1024 / n); else print "-" }'; }
rss_per=$(per_saga "$a_rss0" "$a_rss1")
anon_per=$(per_saga "$a_anon0" "$a_anon1")
pss_per=$(per_saga "$a_pss0" "$a_pss1")
read -r t_size b_size e_size <<<"$(sql "SELECT pg_total_relation_size('transactions'),
  pg_total_relation_size('branches'), pg_total_relation_size('events')" | tr '|' ' ')"
events_per=$(sql "SELECT round(count(*)::numeric / $sagas, 1) FROM events")
log "A: VmRSS $(mib "$a_rss0") -> $(mib "$a_rss1"): $rss_per bytes per in-flight saga (RssAnon $anon_per, Pss $pss_per); $a_active active drivers"

# 4. Survivors.
survivor_names=()
for ((i = 1; i <= survivors; i++)); do
  survivor_names+=("S$i")
  start_treatyd "S$i"
done
for _ in $(seq 1 100); do
  alive=$(curl -sf "${turl[A]}/v1/cluster" | jq '[.coordinators[] | select(.state == "alive")] | length')
  ((alive == survivors + 1)) && break
  sleep 0.2
done
((alive == survivors + 1)) || die "GET /v1/cluster shows $alive coordinators alive, $((survivors + 1)) expected"
join_wait_ms=$((lease_ms + 2 * heartbeat_ms))
log "$alive coordinators alive; survivors heartbeat for $(secs "$join_wait_ms") s (lease + 2 heartbeats) before the kill"
sleep "$(secs "$join_wait_ms")"
declare -A s_rss0=() s_anon0=() s_ticks0=() s_rss1=() s_anon1=() s_ticks1=() s_adopted=()
for name in "${survivor_names[@]}"; do
  read -r "s_rss0[$name]" "s_anon0[$name]" _ <<<"$(mem_kib "${tpid[$name]}")"
  s_ticks0[$name]=$(tree_ticks "${tpid[$name]}")
done

# 5. kill -9 A, then watch.
count_compilers
load_at_kill=$(loadavg)
pg_ticks0=$(tree_ticks "$(postmaster_pid)")
nginx_ticks0=$(tree_ticks "$nginx_pid")
self_ticks0=$(self_ticks)
read -r machine0 _ <<<"$(machine_ticks)"
kill_ms=$(now_ms)
kill -KILL "${tpid[A]}"
wait "${tpid[A]}" 2>/dev/null || true
unset "tpid[A]"
log "kill -9 of A ($a_id) at $(date -u -d "@${kill_ms:0:-3}" +%H:%M:%S).${kill_ms: -3}"
survivor_logs=()
for name in "${survivor_names[@]}"; do survivor_logs+=("$work/treatyd-$name.log"); done
dead_poll_ms=""
empty_poll_ms=""
resumed_ms=""
explain=""
progress=()
deadline_ms=$((kill_ms + timeout_s * 1000))
while :; do
  now=$(now_ms)
  if [[ -z $dead_poll_ms && $(sql "SELECT state FROM coordinators WHERE id = '$a_id'") == dead ]]; then
    dead_poll_ms=$((now - kill_ms))
  fi
  left=$(sql "SELECT count(*) FROM transactions WHERE owner = '$a_id' AND state NOT IN ('COMMITTED', 'ABORTED')")
  # Resumed so far: the survivors' "resuming saga" lines (one per adopted
  # saga, logged as its driver starts), not a query: counting events here
  # would scan the whole events table twice a second on the database
  # being measured. The exact times come from the events afterwards.
  resumed=$(cat "${survivor_logs[@]}" | grep -c 'resuming saga' || true)
  progress+=("$(secs $((now - kill_ms))) $left $resumed")
  if [[ -z $explain ]] && ((left <= sagas / 2)); then
    explain=$(explain_claim)
    explain_at=$((sagas - left))
  fi
  ((left == 0)) && [[ -z $empty_poll_ms ]] && empty_poll_ms=$((now - kill_ms))
  ((left == 0 && resumed >= sagas)) && { resumed_ms=$((now - kill_ms)); break; }
  ((now > deadline_ms)) && { log "WARNING: gave up after $timeout_s s: $left still owned by A, $resumed resumed"; break; }
  if ((${#progress[@]} % 10 == 1)); then
    log "$(secs $((now - kill_ms))) s after the kill: A owns $(commas "$left"), resumed $(commas "$resumed")"
  fi
  sleep 0.5
done
log "take-over done as far as polled: A emptied at $(secs "$empty_poll_ms") s, all resumed by $(secs "$resumed_ms") s"
end_ms=$(now_ms)
recovery_s=$(awk -v ms=$((end_ms - kill_ms)) 'BEGIN { print ms / 1000 }')
pg_ticks1=$(tree_ticks "$(postmaster_pid)")
nginx_ticks1=$(tree_ticks "$nginx_pid")
self_ticks1=$(self_ticks)
read -r machine1 _ <<<"$(machine_ticks)"
ours=0
for name in "${survivor_names[@]}"; do
  s_ticks1[$name]=$(tree_ticks "${tpid[$name]}")
  ours=$((ours + s_ticks1[$name] - s_ticks0[$name]))
done
sleep 2  # engine strands finish the last restores
for name in "${survivor_names[@]}"; do
  read -r "s_rss1[$name]" "s_anon1[$name]" _ <<<"$(mem_kib "${tpid[$name]}")"
  id=$(coordinator_id "$name")
  s_adopted[$name]=$(sql "SELECT count(*) FROM transactions WHERE owner = '$id' AND state NOT IN ('COMMITTED', 'ABORTED')")
done
ours=$((ours + pg_ticks1 - pg_ticks0 + nginx_ticks1 - nginx_ticks0 + self_ticks1 - self_ticks0))
others_cores=$(awk -v t=$((machine1 - machine0 - ours)) -v hz="$clk_tck" -v s="$recovery_s" \
  'BEGIN { o = t / hz / s; printf("%.2f", o < 0 ? 0 : o) }')

# Exact times from the survivors' logs and the events' at_ms.
dead_ms=""
for name in "${survivor_names[@]}"; do
  m=$(first_line_ms "$work/treatyd-$name.log" "coordinator $a_id missed its lease")
  if [[ -n $m ]] && [[ -z $dead_ms || $((m - kill_ms)) -lt $dead_ms ]]; then
    dead_ms=$((m - kill_ms))
    dead_by=$name
  fi
done
collect_adoptions
read -r ad10 ad50 ad90 ad100 <<<"$(adoption_timeline)"
read -r rs10 rs50 rs90 rs100 rs_count <<<"$(resumed_timeline)"
claims=$(awk -v kill="$kill_ms" '$1 >= kill - 1000' "$work/adoptions.txt" | wc -l)
claim_sizes=$(awk -v kill="$kill_ms" '$1 >= kill - 1000 { s += $2; if ($2 > m) m = $2 } END { if (NR) printf("mean %.0f, largest %d", s / NR, m) }' "$work/adoptions.txt")
# Per survivor, the mean interval between its claims over its first and its
# last tenth of them (each interval: one round's work + the pause after a
# full batch, full_batch_pause_ms).
claim_intervals=$(awk -v kill="$kill_ms" '$1 >= kill - 1000 { t[$3, ++n[$3]] = $1 }
  END { for (s in n) { k = int(n[s] / 10); if (k < 1) continue
          a = (t[s, k + 1] - t[s, 1]) / k; b = (t[s, n[s]] - t[s, n[s] - k]) / k
          printf("%s%s %.0f → %.0f ms", sep, s, a, b); sep = ", " } }' "$work/adoptions.txt")
first_claim_ms=$(awk -v kill="$kill_ms" '$1 >= kill - 1000 { print $1 - kill; exit }' "$work/adoptions.txt")
rate() {  # sagas per second between two ms marks
  awk -v n="$sagas" -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a != "" && a != "-" && b != "" && b != "-" && b > a) printf("%.0f", n / ((b - a) / 1000)); else print "-" }'
}
log "declared dead at $(secs "$dead_ms") s; adopted 100 % at $(secs "$ad100") s; resumed 100 % at $(secs "$rs100") s"

# ----------------------------------------------------------------- report --

# Claims per second if rounds cost nothing: each survivor claims a full
# batch, pauses, claims the next.
max_adopt_rate=$((survivors * claim_batch * 1000 / full_batch_pause_ms))
target_met() {
  if [[ $rs100 != - ]] && ((rs100 <= 30000)); then echo "**met**"; else echo "**not met**"; fi
}
report() {
  local name cpu_s
  echo "# Take-over of in-flight sagas after kill -9 (bench/recovery.sh)"
  echo
  echo "$(commas "$sagas") three-step sagas in flight on coordinator A (step s2's action answered 503, next attempt planned ${backoff_ms} ms later), PostgreSQL 15 log (fsync=on, synchronous_commit=on); A killed with SIGKILL; $survivors survivors (--heartbeat-ms $heartbeat_ms, --lease-ms $lease_ms, --claim-batch $claim_batch)."
  echo
  echo "Target \"all resumed by three survivors within 30 s\": $(target_met) ($(secs "$rs100") s$( ((survivors == 3)) || echo ", with $survivors survivors"))."
  echo
  echo "## Memory per in-flight saga (coordinator A)"
  echo
  echo "| measure | idle | with $(commas "$owned_by_a") in flight | bytes per saga |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| VmRSS | $(mib "$a_rss0") | $(mib "$a_rss1") | $(commas "$rss_per") |"
  echo "| RssAnon (heap) | $(mib "$a_anon0") | $(mib "$a_anon1") | $(commas "$anon_per") |"
  echo "| Pss (smaps_rollup) | $(mib "$a_pss0") | $(mib "$a_pss1") | $(commas "$pss_per") |"
  echo
  echo "- includes what the allocator kept from the submission burst (request buffers, log batches): an upper bound of the steady cost; the survivors' growth per adopted saga below is the same cost reached without the burst"
  echo "- log (PostgreSQL) per saga: transactions $(commas "$((t_size / sagas))") B, branches $(commas "$((b_size / sagas))") B, events $(commas "$((e_size / sagas))") B (tables with indexes and TOAST; $events_per events per saga)"
  echo "- submission: $(commas "${R[created]}") created (201) in $(secs "$submit_ms") s ($(rate 0 "$submit_ms") sagas/s, wrk $wrk_connections connections), ${R[repeated]} repeats, ${R[non2xx]} other answers, ${R[socket]} socket errors$(grep -m1 '^SAMPLE' "$work/wrk.log" | sed 's/^SAMPLE/; first:/' || true); all in flight with s2's retry planned $(secs "$settle_ms") s later; A: $(commas "$owned_by_a") RUNNING owned ($(commas "$running_total") RUNNING in all), active drivers $a_active"
  echo
  echo "## Take-over timeline (seconds after kill -9)"
  echo
  echo "| event | 10 % | 50 % | 90 % | 100 % |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| A declared dead (${dead_by:-?}'s log; poll: $(secs "$dead_poll_ms") s) | | | | $(secs "$dead_ms") |"
  echo "| sagas claimed (survivors' \"adopting K\" lines, summed) | $(secs "$ad10") | $(secs "$ad50") | $(secs "$ad90") | $(secs "$ad100") |"
  echo "| sagas resumed (first \`recovery\` event per saga, at_ms) | $(secs "$rs10") | $(secs "$rs50") | $(secs "$rs90") | $(secs "$rs100") |"
  echo
  echo "- adoption rate: $(rate "$dead_ms" "$ad100") sagas/s from A's death to the last claim, $(rate "$dead_ms" "$rs100") sagas/s to the last resume; $claims claims ($claim_sizes), the first $(secs "$first_claim_ms") s after the kill"
  echo "- mean interval between one survivor's claims, first tenth → last tenth of its claims: $claim_intervals; with a $full_batch_pause_ms ms pause after each full batch, $survivors survivors and --claim-batch $claim_batch cannot adopt faster than $(commas "$max_adopt_rate") sagas/s ($(awk -v n="$sagas" -v r="$max_adopt_rate" 'BEGIN { printf("%.1f", n / r) }') s for these after A is declared dead) even if rounds cost nothing"
  echo "- polled every 0.5 s: A owned none (SQL) at $(secs "$empty_poll_ms") s, every saga's driver started (survivors' \"resuming saga\" lines) by $(secs "$resumed_ms") s; $(commas "$rs_count") of $(commas "$sagas") sagas have a \`recovery\` event written after the kill"
  if [[ -n $explain ]]; then
    echo "- the claim query's SELECT (EXPLAIN ANALYZE, without FOR UPDATE) with $(commas "$explain_at") of $(commas "$sagas") claimed: $(grep -o 'Execution Time: .*' <<<"$explain"); plan: $(grep -m3 -E 'Scan|Sort|Limit' <<<"$explain" | sed 's/^ *//; s/  */ /g; s/(actual //' | paste -sd';' -)"
  fi
  echo
  echo "| survivor | sagas adopted | CPU during take-over | VmRSS before → after | RssAnon growth per adopted saga |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for name in "${survivor_names[@]}"; do
    cpu_s=$(ticks_s $((s_ticks1[$name] - s_ticks0[$name])))
    echo "| $name | $(commas "${s_adopted[$name]}") | $cpu_s s | $(mib "${s_rss0[$name]}") → $(mib "${s_rss1[$name]}") | $(awk -v a="${s_anon0[$name]}" -v b="${s_anon1[$name]}" -v n="${s_adopted[$name]}" 'BEGIN { if (n > 0) printf("%.0f B", (b - a) * 1024 / n); else print "-" }') |"
  done
  echo
  echo "- PostgreSQL (all processes) CPU during the take-over: $(ticks_s $((pg_ticks1 - pg_ticks0))) s; window: $(secs $((end_ms - kill_ms))) s (kill to the last poll)"
  echo "- other processes on the machine used $others_cores CPU cores on average in that window (machine busy time minus survivors, PostgreSQL, nginx and this script)"
  echo
  echo "## Conditions"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), source $(source_text), $("$treatyd" --version 2>/dev/null || echo "treatyd (version unknown)") (copied from $treatyd_src)"
  echo "- machine: $(machine_text); data directory: $(fs_text)"
  echo "- load average at start: $load_at_start; at the kill: $load_at_kill; at end: $(loadavg)"
  if ((compiler_busy > 0)); then
    echo "- **a build ran beside the benchmark**: compiler/linker processes found at $compiler_busy of $compiler_checks checks (start, submission, kill)"
  else
    echo "- no compiler/linker process found at the $compiler_checks checks (start, submission, kill)"
  fi
  echo "- PostgreSQL: $(postgres_text fsync synchronous_commit wal_sync_method full_page_writes \
    shared_buffers max_wal_size max_connections)"
  echo "- treatyd: \`--thrift off --heartbeat-ms $heartbeat_ms --lease-ms $lease_ms --claim-batch $claim_batch\`${TREATYD_ARGS:+ \`$TREATYD_ARGS\`}, other options default (2 io threads, log level info)"
  echo "- participants: $(nginx_version), 1 worker; load: wrk $(wrk_version), $wrk_threads threads, $wrk_connections connections"
}
report | publish_report
exit 0
