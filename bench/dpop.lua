-- wrk script for bench/run.py: POST /token, optionally with one pre-signed DPoP proof per
-- request.
--
--   wrk -t1 -c32 -d10s -s bench/dpop.lua http://127.0.0.1:8080/token -- -
--   wrk -t1 -c32 -d10s -s bench/dpop.lua http://127.0.0.1:8080/token -- /tmp/proofs
--
-- With "-" every request is the same (no DPoP header). With a path, thread i reads
-- "<path>.<i>" (one proof a line, written by bench/signer.py) and formats every request
-- in init(), before the clock starts, so request() only hands out the next string. A proof
-- is never sent twice: when a thread runs out it wraps around (the sidecar then answers
-- 400 for the replays) and counts it, and bench/run.py rejects the run.
-- done() prints one line "BENCH_RESULT {json}" that bench/run.py parses.
--
-- A second argument, a number of milliseconds, makes every connection wait that long after
-- each answer before its next request (wrk's delay()): N connections then send about
-- N / (delay + latency) requests per second, a fixed rate below saturation (bench/run.py's
-- latency row; wrk2 is not packaged in Debian).

local BODY = "grant_type=client_credentials&client_id=bench-client"
local FORM = "application/x-www-form-urlencoded"

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local count = 0
local position = 1
exhausted = 0

local pause_ms = nil

function init(args)
   local path = args[1] or "-"
   pause_ms = tonumber(args[2] or "")
   if pause_ms ~= nil then
      delay = function() return pause_ms end
   end
   local path_of_url = wrk.path
   if path == "-" then
      wrk.method = "POST"
      wrk.body = BODY
      wrk.headers["Content-Type"] = FORM
      request = nil -- a static request: wrk formats it once
      return
   end
   for line in io.lines(path .. "." .. id) do
      if #line > 0 then
         count = count + 1
         requests[count] = wrk.format("POST", path_of_url,
                                      {["Content-Type"] = FORM, ["DPoP"] = line}, BODY)
      end
   end
   if count == 0 then
      error("no proofs in " .. path .. "." .. id)
   end
end

function request()
   if position > count then
      exhausted = exhausted + 1
      position = 1
   end
   local r = requests[position]
   position = position + 1
   return r
end

function done(summary, latency, requests)
   local wrapped = 0
   for _, thread in ipairs(threads) do
      wrapped = wrapped + (thread:get("exhausted") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"exhausted":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, wrapped))
end
