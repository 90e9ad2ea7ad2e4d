-- Figure (e), the wrk side: many users at once. The bench writes this file to a temporary
-- folder with a table `E` put before it (see crowd.rs):
--   E.users         { {path = "/s/…/crowd.mkv", bearer = "<JWT>", ip = "10.0.0.1"}, … }
--   E.forged        { {path = "/s/<bad sig>/crowd.mkv", bearer = "<JWT, bad sig>"}, … }
--   E.len, E.span   file length, bytes per range request
--   E.api_share     share of a user thread's requests that are API calls
--   E.user_threads  threads 1..E.user_threads play the users, the others the strangers
--   E.stranger_ips  how many client addresses the strangers rotate through
--   E.stranger_delay_ms  pause before each stranger request (they are a trickle)
--
-- wrk tells a script nothing about connections, so a user thread takes its users (every
-- E.user_threads-th one) in turn, one per request. The server keys its limits by user,
-- playback URL and client address (X-Forwarded-For from a trusted proxy), never by
-- connection, so this is what a reverse proxy multiplexing its clients sends.
-- Responses are told apart by status and by one header: the server puts a
-- Content-Security-Policy on every /api/ answer, never on /s/ ones.
-- Every counter lives in the thread's global `counts`; done() adds them up and prints
-- `crowd <key>=<value>` lines for the bench to parse.

local threads = {}
local started = 0

function setup(thread)
   started = started + 1
   thread:set("tid", started)
   table.insert(threads, thread)
end

local mine, turn, stranger, sent

function init(args)
   stranger = tid > E.user_threads
   math.randomseed(tid * 7919 + 17)
   mine, turn, sent = {}, 0, 0
   for i, user in ipairs(E.users) do
      if (i - 1) % E.user_threads == tid - 1 then
         mine[#mine + 1] = user
      end
   end
   counts = {}
end

local function add(key)
   counts[key] = (counts[key] or 0) + 1
end

local function range(start)
   return string.format("bytes=%d-%d", start, start + E.span - 1)
end

local function stranger_request()
   sent = sent + 1
   local forged = E.forged[sent % #E.forged + 1]
   local ip = string.format("192.0.2.%d", math.floor(sent / 3) % E.stranger_ips + 1)
   local kind = sent % 3
   if kind == 0 then
      add("sent stranger forged_api")
      return wrk.format("GET", "/api/v1/streams",
         { ["Authorization"] = "Bearer " .. forged.bearer, ["X-Forwarded-For"] = ip })
   elseif kind == 1 then
      add("sent stranger forged_url")
      return wrk.format("GET", forged.path, { ["Range"] = range(0), ["X-Forwarded-For"] = ip })
   end
   add("sent stranger anonymous")
   return wrk.format("GET", "/api/v1/streams", { ["X-Forwarded-For"] = ip })
end

function request()
   if stranger then
      return stranger_request()
   end
   turn = turn % #mine + 1
   local user = mine[turn]
   if math.random() < E.api_share then
      add("sent api")
      return wrk.format("GET", "/api/v1/streams",
         { ["Authorization"] = "Bearer " .. user.bearer, ["X-Forwarded-For"] = user.ip })
   end
   add("sent content")
   local start = math.random(0, E.len - E.span)
   return wrk.format("GET", user.path, { ["Range"] = range(start), ["X-Forwarded-For"] = user.ip })
end

function delay()
   if stranger then
      return E.stranger_delay_ms
   end
   return 0
end

local function header(headers, name, title)
   return headers[name] or headers[title]
end

function response(status, headers, body)
   local class
   if stranger then
      class = "stranger"
   elseif header(headers, "content-security-policy", "Content-Security-Policy") then
      class = "api"
   else
      class = "content"
   end
   add(class .. " " .. status)
   if status == 429 and not header(headers, "retry-after", "Retry-After") then
      add("bad 429 without Retry-After")
   end
   if status >= 400 and string.sub(body, 1, 9) ~= '{"error":' then
      add("bad error body not JSON")
   end
   if class == "content" and status == 206 then
      local got = header(headers, "content-range", "Content-Range")
      if #body ~= E.span or not got then
         add("bad 206 short or no Content-Range")
      end
   end
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      for key, n in pairs(thread:get("counts") or {}) do
         total[key] = (total[key] or 0) + n
      end
   end
   local e = summary.errors
   total["requests"] = summary.requests
   total["bytes"] = summary.bytes
   total["duration_us"] = summary.duration
   total["socket connect"] = e.connect
   total["socket read"] = e.read
   total["socket write"] = e.write
   total["socket timeout"] = e.timeout
   total["latency p50_us"] = latency:percentile(50)
   total["latency p99_us"] = latency:percentile(99)
   total["latency max_us"] = latency.max
   for key, n in pairs(total) do
      io.write(string.format("crowd %s=%d\n", key, n))
   end
   -- The same for a reader (the bench's own verdict is computed from the lines above):
   -- users' successes, every 429, the strangers' 401s, and everything else.
   local expected = { content = { [206] = 1, [429] = 1 }, api = { [200] = 1, [429] = 1 },
      stranger = { [401] = 1, [429] = 1 } }
   local ok, limited, refused = total["content 206"] or 0, 0, total["stranger 401"] or 0
   ok = ok + (total["api 200"] or 0)
   local errors = e.connect + e.read + e.write + e.timeout
   for key, n in pairs(total) do
      local class, status = string.match(key, "^(%a+) (%d+)$")
      status = tonumber(status)
      if status == 429 then
         limited = limited + n
      elseif status and not expected[class][status] then
         errors = errors + n
      elseif string.match(key, "^bad ") then
         errors = errors + n
      end
   end
   io.write(string.format("summary: %d requests, %d served (206/200), %d answered 429, " ..
      "%d strangers refused (401), %d errors; latency p50 %.1f ms, p99 %.1f ms\n",
      summary.requests, ok, limited, refused, errors,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
