-- wrk script for a request mix written by targets.mjs: BENCH_REQUESTS names the Lua file
-- (a list of {method, absolute URL, headers, body}); each connection's requests cycle
-- through it in order. done() prints the same machine-readable line as wrk-report.lua.
local list = dofile(os.getenv("BENCH_REQUESTS"))
local requests = {}
local i = 0

function init(args)
  for k, r in ipairs(list) do
    requests[k] = wrk.format(r[1], r[2], r[3], r[4])
  end
  -- Threads start at different places so they do not send the same request in step.
  i = math.random(#requests) - 1
end

function request()
  i = i % #requests + 1
  return requests[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d connect_err=%d read_err=%d write_err=%d status_err=%d timeout_err=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
