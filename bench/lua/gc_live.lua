-- N live calls in one process, kept alive by the client (issue 16):
--   lua5.4 gc_live.lua URL N INTERVAL
-- creates N calls (call_many), marks each established (a notification
-- through client:dispatch, as the receiver would), so the client keeps each
-- alive every INTERVAL seconds (POST .../keepAlive; the stand-in answers
-- 200). Prints:
--   rss_per_call   (VmRSS after the N calls are live - before) / N, bytes
--   lua_per_call   (Lua heap after - before) / N, bytes
--   idle_wakeups_per_s  loop waits (one epoll_wait each) per second while
--                  no timer is due (from the last call made live to the
--                  first keepAlive due)
--   round_cpu_us   CPU (user+sys, os.clock) of one keepAlive round of N
--   round_cpu_us_per_call, keep_alives (answered in the round)
local graphcall = require "graphcall"
local core = require "graphcall.core"
local common = require "spec"

local url, n, interval = arg[1], assert(tonumber(arg[2])), tonumber(arg[3] or 20)
local loop = graphcall.new_loop { max_in_flight = 64 }
local client = graphcall.new { app_id = common.APP_ID, token = "x", graph_url = url,
                               callback_uri = common.CALLBACK, loop = loop,
                               keep_alive_interval = interval }
local spec = common.spec()

local function rss_bytes()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmRSS:%s*(%d+)")
    if v then return tonumber(v) * 1024 end
  end
end

local ESTABLISHED = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s",'
  .. '"resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}'

-- count the loop's waits and keepAlive answers through a proxy of its http
local real = loop.http
local waits, answered = 0, 0
loop.http = setmetatable({}, { __index = function(_, k)
  local f = real[k]
  if k == "wait" then
    return function(_, ms)
      waits = waits + 1
      local results, ready = f(real, ms)
      for i = 1, #results do
        if results[i].status == 200 then answered = answered + 1 end
      end
      return results, ready
    end
  end
  return function(_, ...) return f(real, ...) end
end })

-- warm up: one call, live, so the connection and the buffers exist
-- (in batches of 64, as calls come over time: the transient memory of one
-- batch is reused by the next, not counted N times)
local function make_live(count)
  for first = 1, count, 64 do
    local specs = {}
    for _ = first, math.min(count, first + 63) do specs[#specs + 1] = spec end
    local calls, errs = client:call_many(specs)
    for i = 1, #specs do
      local call = calls[i] or error(("create %d: %s"):format(first + i - 1, tostring(errs[i])))
      client:dispatch(assert(graphcall.parse_notifications(ESTABLISHED:format(call.id))))
      assert(call.state == "established")
    end
  end
end
make_live(1)
collectgarbage("collect")
local rss0, lua0 = rss_bytes(), collectgarbage("count") * 1024
local t_live0 = core.monotonic()
make_live(n)
local t_live = core.monotonic()
collectgarbage("collect")
local rss1, lua1 = rss_bytes(), collectgarbage("count") * 1024

-- idle: until a little before the first keepAlive of the N is due
local idle_for = interval - (core.monotonic() - t_live0) - 0.5
assert(idle_for > 1, "INTERVAL too short for N: the calls took " .. (t_live - t_live0) .. " s to make live")
waits = 0
local t0 = core.monotonic()
loop:run_until(nil, idle_for)
local idle_wakeups = waits / (core.monotonic() - t0)

-- one round: every call's keepAlive answered
answered = 0
local c0 = os.clock()
assert(loop:run_until(function() return answered >= n end, interval + 60), "keepAlive round incomplete")
local cpu = os.clock() - c0

io.write(("rss_per_call %.0f\nlua_per_call %.0f\nidle_wakeups_per_s %.2f\nround_cpu_us %.0f\n"
  .. "round_cpu_us_per_call %.1f\nkeep_alives %d\nlive_calls %d\n")
  :format((rss1 - rss0) / n, (lua1 - lua0) / n, idle_wakeups, cpu * 1e6, cpu * 1e6 / n, answered, n + 1))
