-- wrk script: POST form-encoded sends to /api.php, exactly `total` of them, then stop.
--
--   wrk -t T -c C -d MAX_SECONDS -s send.lua http://127.0.0.1:PORT -- BODY_FILE TOTAL T DONE_DIR
--
-- BODY_FILE holds the url-encoded form (action=send&appid=...&appsecret=...&to=...).
-- wrk can only run for a duration, so every thread has a quota of sends; once it is used
-- up, the thread's connections send a cheap GET to /bench-done (404) until all its sends
-- are answered, and then the thread stops and drops a file in DONE_DIR. wrk's main thread
-- sleeps for the whole -d regardless, so the harness sends it SIGINT once every thread
-- is done (wrk then prints its summary). The tail requests are few (about one per
-- connection) and are told apart by their status. done() prints one JSON line starting
-- with "BENCH " that the harness parses. Rates come from the harness, not from wrk.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  local total = tonumber(args[2])
  local nthreads = tonumber(args[3])
  quota = math.floor(total / nthreads)
  if id < total % nthreads then quota = quota + 1 end
  send_req = wrk.format("POST", "/api.php",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["Host"] = "127.0.0.1"}, body)
  tail_req = wrk.format("GET", "/bench-done", {["Host"] = "127.0.0.1"})
  issued, answered, accepted, refused, tails, other = 0, 0, 0, 0, 0, 0
  first_body = ""
  done_file = args[4] .. "/thread-" .. id
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

function request()
  -- wrk calls request() once on thread 0 before the run, only to check the request
  -- (script_verify_request); that call sends nothing and must not use up the quota.
  if id == 0 and not verified then
    verified = true
    return send_req
  end
  if issued < quota then
    issued = issued + 1
    return send_req
  end
  return tail_req
end

function response(status, headers, body)
  if status == 404 then
    tails = tails + 1
  else
    answered = answered + 1
    -- DRF renders compact JSON: {"code":0,"msg":...,"id":N,"status":"queued"}
    if status == 200 and string.find(body, '"code":0,', 1, true) then
      accepted = accepted + 1
    else
      refused = refused + 1
      if first_body == "" then first_body = tostring(status) .. " " .. string.sub(body, 1, 300) end
    end
  end
  -- All sends answered, or (after socket errors) give up once the tails have gone on for
  -- 15 s: the harness reports any shortfall. (By time, not by count: a tail is answered in
  -- a millisecond, so 200 of them passed while a slow send was still on its way, and the
  -- smoke test counted it as lost.)
  if status == 404 and tails == 1 then tails_since = os.time() end
  if answered >= quota or (issued >= quota and tails_since and os.time() - tails_since > 15) then
    finish()
  end
end

local function jstr(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local acc, ans, ref, tl, iss = 0, 0, 0, 0, 0
  local sample = ""
  for _, t in ipairs(threads) do
    acc = acc + t:get("accepted")
    ans = ans + t:get("answered")
    ref = ref + t:get("refused")
    tl = tl + t:get("tails")
    iss = iss + t:get("issued")
    if sample == "" then sample = t:get("first_body") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"issued":%d,"answered":%d,"accepted":%d,"refused":%d,"tails":%d,' ..
    '"duration_s":%.6f,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f},"refused_sample":%s}\n',
    iss, ans, acc, ref, tl, summary.duration / 1e6, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, jstr(sample)))
end
