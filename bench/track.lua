-- wrk script: GET the signed tracking URLs listed in PATHS_FILE (one per line), each once,
-- spread over the threads, then stop (the same quota / tail / done-file scheme as send.lua).
--
--   wrk -t T -c C -d MAX_SECONDS --latency -s track.lua http://127.0.0.1:PORT -- PATHS_FILE T DONE_DIR
--
-- A thread's connections send GET /bench-done (404) once its paths are all answered, until
-- the thread stops and drops a file in DONE_DIR; the harness then sends wrk SIGINT. done()
-- prints one "BENCH {...}" JSON line: issued, answered (200 pixel / 302 click), other statuses,
-- wrk's latency percentiles (all requests, the few tails included).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[2])
  paths = {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id then table.insert(paths, line) end
    i = i + 1
  end
  quota = #paths
  tail_req = wrk.format("GET", "/bench-done", {["Host"] = "127.0.0.1"})
  issued, answered, pixels, clicks, tails, other = 0, 0, 0, 0, 0, 0
  done_file = args[3] .. "/thread-" .. id
  stopped = false
  verified = false
  if quota == 0 then finish() end
end

function finish()
  if stopped then return end
  stopped = true
  local f = io.open(done_file, "w")
  if f then f:write(answered, "\n"); f:close() end
  wrk.thread:stop()
end

local agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"

function request()
  if id == 0 and not verified then  -- wrk's check of the request: nothing is sent
    verified = true
    return tail_req
  end
  if issued < quota then
    issued = issued + 1
    return wrk.format("GET", paths[issued], {["Host"] = "127.0.0.1", ["User-Agent"] = agent})
  end
  return tail_req
end

function response(status, headers, body)
  if status == 404 and issued >= quota then
    tails = tails + 1
  else
    answered = answered + 1
    if status == 200 then pixels = pixels + 1 elseif status == 302 then clicks = clicks + 1 else other = other + 1 end
  end
  -- Give up on missing answers after 15 s of tails (by time: see bench/send.lua).
  if tails == 1 and not tails_since then tails_since = os.time() end
  if answered >= quota or (issued >= quota and tails_since and os.time() - tails_since > 15) then
    finish()
  end
end

function done(summary, latency, requests)
  local iss, ans, px, cl, tl, ot = 0, 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    iss = iss + t:get("issued"); ans = ans + t:get("answered"); px = px + t:get("pixels")
    cl = cl + t:get("clicks"); tl = tl + t:get("tails"); ot = ot + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"issued":%d,"answered":%d,"pixels":%d,"clicks":%d,"other":%d,"tails":%d,' ..
    '"duration_s":%.6f,"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f}}\n',
    iss, ans, px, cl, ot, tl, summary.duration / 1e6, summary.requests,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
