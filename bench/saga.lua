-- saga.lua: wrk script for bench/run.sh. Every request is
-- POST /v1/sagas of a three-step saga with "wait": true, whose steps point at
-- the no-op participants (nginx answering 200 `{}`), under a gtid never used
-- before: RUN_ID-THREAD-N, N counting this thread's requests.
--
--   wrk -t T -c C -d 10s -s bench/saga.lua http://127.0.0.1:7480 -- RUN_ID http://127.0.0.1:7500
--
-- RUN_ID must be unique per wrk run (bench/run.sh uses store, level, phase
-- and the start time). At the end `done` prints one line for run.sh:
--   RESULT sent=.. ok=.. non2xx=.. notcommitted=.. completed=.. duration_us=..
--          p50_us=.. p99_us=.. mean_us=.. max_us=.. connect=.. read=.. write=.. timeout=..
-- sent: requests generated; ok: answers 2xx whose state is COMMITTED;
-- non2xx: any other status; notcommitted: 2xx without COMMITTED (a 202
-- whose wait ran out, or ABORTED); latencies in microseconds, of every
-- completed request (wrk's own histogram). A line SAMPLE STATUS BODY shows the
-- first answer that was not ok, if any.

local threads = {}  -- main Lua state only: the thread objects, for done()

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

-- Per-thread globals (each wrk thread has its own Lua state); done() reads
-- them with thread:get, which sees globals only.
sent = 0
ok = 0
non2xx = 0
notcommitted = 0
sample = ""

local run_id, head, tail
local headers = {["Content-Type"] = "application/json"}

function init(args)
  run_id = args[1] or error("usage: -- RUN_ID PARTICIPANT_BASE_URL")
  local base = args[2] or error("usage: -- RUN_ID PARTICIPANT_BASE_URL")
  local steps = {}
  for i = 1, 3 do
    steps[i] = string.format(
        '{"name":"s%d","action":"%s/s%d/action","compensate":"%s/s%d/compensate",' ..
            '"payload":{"amount":%d}}', i, base, i, base, i, i)
  end
  -- The body is head .. gtid .. tail; only the gtid changes.
  head = '{"gtid":"'
  tail = '","wait":true,"steps":[' .. table.concat(steps, ",") .. ']}'
end

function request()
  sent = sent + 1
  local gtid = string.format("%s-%d-%d", run_id, thread_id, sent)
  return wrk.format("POST", "/v1/sagas", headers, head .. gtid .. tail)
end

function response(status, _, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif body and string.find(body, '"COMMITTED"', 1, true) then
    ok = ok + 1
    return
  else
    notcommitted = notcommitted + 1
  end
  if sample == "" then sample = status .. " " .. string.sub(body or "", 1, 300) end
end

function done(summary, latency, _)
  local totals = {sent = 0, ok = 0, non2xx = 0, notcommitted = 0}
  local first_sample = ""
  for _, thread in ipairs(threads) do
    for name in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
    if first_sample == "" then first_sample = thread:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
      "RESULT sent=%d ok=%d non2xx=%d notcommitted=%d completed=%d duration_us=%d " ..
          "p50_us=%.0f p99_us=%.0f mean_us=%.0f max_us=%.0f " ..
          "connect=%d read=%d write=%d timeout=%d\n",
      totals.sent, totals.ok, totals.non2xx, totals.notcommitted, summary.requests,
      summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
      latency.max, e.connect, e.read, e.write, e.timeout))
  if first_sample ~= "" then io.write("SAMPLE " .. first_sample:gsub("\n", " ") .. "\n") end
end
