-- wrk script: POST a JSON body from a file; optionally paced; print the figures as JSON.
-- wrk -s bench/post.lua URL -- BODY_FILE [REQUESTS_PER_SECOND_PER_THREAD]
-- Pacing: each request takes the next slot of a fixed schedule (open loop while the
-- server keeps up), so the latency at a given rate is not hidden by a slow reply.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval, next_at

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local rate = tonumber(args[2] or "0")
  if rate and rate > 0 then interval = 1000 / rate end
end

function delay()
  if not interval then return 0 end
  local now = now_ms()
  next_at = (next_at or now) + interval
  if next_at < now then next_at = now end -- behind: do not bunch up to catch up
  return next_at - now
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
