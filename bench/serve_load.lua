-- wrk script for bench/serve_load.sh: POSTs single-text JSON bodies to /v1/classify, taking them
-- in turn from the file named by SERVE_BODIES (one body a line), and prints one JSON line of
-- results at the end: requests, seconds, requests/s, latency p50/p90/p99/max in ms, errors
-- (connect, read, write, timeout, non-2xx).
local bodies = {}
for line in io.lines(os.getenv("SERVE_BODIES")) do
  bodies[#bodies + 1] = line
end
local next_body = 0
local headers = { ["Content-Type"] = "application/json" }

request = function()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[next_body])
end

done = function(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.2f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "errors": %d, "non2xx": %d}\n',
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout + e.status, e.status))
end
