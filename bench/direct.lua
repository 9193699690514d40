-- direct.lua: wrk script for bench/run.sh's direct-call baseline. Each
-- connection POSTs to the three no-op participants in turn (s1, s2, s3
-- actions), each call waiting for the previous answer on the same keep-alive
-- connection, with the body a coordinator sends them
-- ({"gtid","branch","op","payload"}). So C connections are C clients each
-- making three calls in sequence, and calls/s / 3 is the rate of three-call
-- sequences, what a caller without a coordinator could reach. The latency
-- percentiles are per call; a sequence takes about three calls' time.
--
--   wrk -t T -c C -d 10s -s bench/direct.lua http://127.0.0.1:7500 -- RUN_ID
--
-- At the end `done` prints one line for run.sh:
--   RESULT calls=.. ok=.. non2xx=.. duration_us=.. p50_us=.. p99_us=.. mean_us=..
--          connect=.. read=.. write=.. timeout=..

local threads = {}  -- main Lua state only

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

-- Per-thread globals, read by done() with thread:get.
sent = 0
ok = 0
non2xx = 0

local run_id
local headers = {["Content-Type"] = "application/json"}

function init(args)
  run_id = args[1] or error("usage: -- RUN_ID")
end

function request()
  sent = sent + 1
  local step = (sent - 1) % 3 + 1
  local sequence = math.floor((sent - 1) / 3)
  local body = string.format(
      '{"gtid":"%s-%d-%d","branch":"s%d","op":"action","payload":{"amount":%d}}', run_id,
      thread_id, sequence, step, step)
  return wrk.format("POST", "/s" .. step .. "/action", headers, body)
end

function response(status)
  if status >= 200 and status <= 299 then ok = ok + 1 else non2xx = non2xx + 1 end
end

function done(summary, latency, _)
  local totals = {ok = 0, non2xx = 0}
  for _, thread in ipairs(threads) do
    for name in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
  end
  local e = summary.errors
  io.write(string.format(
      "RESULT calls=%d ok=%d non2xx=%d duration_us=%d p50_us=%.0f p99_us=%.0f mean_us=%.0f " ..
          "connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, totals.ok, totals.non2xx, summary.duration, latency:percentile(50),
      latency:percentile(99), latency.mean, e.connect, e.read, e.write, e.timeout))
end
