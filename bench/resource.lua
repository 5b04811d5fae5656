-- wrk script for bench/resource.py: GET <path> with "Authorization: DPoP <token>" and one
-- pre-signed DPoP proof per request (htm GET, htu the API URL, ath of the token).
--
--   wrk -t1 -c32 -d5s -s bench/resource.lua http://127.0.0.1:8080/api/items -- /tmp/calls
--
-- Thread i reads "<path>.<i>": one request a line, "<access token> <proof>". Every request is
-- formatted in init(), before the clock starts. A proof is never sent twice: a thread that
-- runs out wraps around (the sidecar then answers 401 for the replays) and counts it, and
-- bench/resource.py rejects the run. done() prints "BENCH_RESULT {json}" as bench/dpop.lua.

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

function init(args)
   for line in io.lines(args[1] .. "." .. id) do
      local token, proof = line:match("^(%S+) (%S+)$")
      if token then
         count = count + 1
         requests[count] = wrk.format("GET", wrk.path, {
            ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof})
      end
   end
   if count == 0 then
      error("no requests in " .. args[1] .. "." .. id)
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
