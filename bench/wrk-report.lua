-- wrk script shared by every target of the HTTP proxy benchmark.
-- BENCH_ABSOLUTE_URL set: send the request line in absolute-form (explicit proxy,
-- what an agent with HTTP_PROXY sends); otherwise origin-form BENCH_PATH.
-- The Host header is always the logical destination, so every target sees the same request.
-- done() prints one machine-readable line; latencies are wrk's, in microseconds.
local absolute = os.getenv("BENCH_ABSOLUTE_URL")
wrk.method = "GET"
wrk.path = (absolute ~= nil and absolute ~= "") and absolute or (os.getenv("BENCH_PATH") or "/v1/refunds/r-1")
wrk.headers["Host"] = os.getenv("BENCH_HOST") or "payments.internal"

-- BENCH_DELAY_MS > 0: each connection waits that long before each request (think
-- time), which paces the load to about connections / (delay + latency) requests/s
-- instead of "as fast as answers come back". Latency is timed from the actual send.
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d connect_err=%d read_err=%d write_err=%d status_err=%d timeout_err=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
