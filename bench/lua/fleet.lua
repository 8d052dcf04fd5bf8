-- The fleet benchmark (issue 13): a fleet of bot processes behind nginx,
-- sharing calls through Redis, measured for
--   1. notifications per second through the load balancer with 1 instance
--      and with 3, both by the instance hint (/api/calls?gi=bot-N) and by
--      round robin (/rr/api/calls: 2 of 3 forwarded through Redis Streams),
--      with the bots' CPU per 1,000 notifications;
--   2. takeover time after kill -9: the time from the kill to the last
--      `adopted` event of the dead instance's calls, for heartbeat 1 s /
--      liveness_ttl 3 s (the defaults) and 0.25 s / 1 s.
--
--   bench/run fleet [--quick] [--only=throughput|--only=takeover]
--   (or, from the repository root after make: lua5.4 bench/lua/fleet.lua ...)
--
-- Prints the results as Markdown on stdout (the "Fleet" section of
-- bench/RESULTS.md; --write=FILE also puts it into FILE, in place of the
-- one there or at the end), progress on stderr. Nothing is asserted but the
-- correctness of what is measured: no non-2xx answer, every notification
-- handled, every call adopted once.
--
-- The world (redis-server, bin/graphcall-emulator, nginx with
-- examples/fleet/nginx.conf.in, instances of examples/fleet/bot.lua) is the
-- fleet spec's own, spec/support/fleet_world.lua, loaded through
-- package.path (./spec/?.lua) rather than copied.
package.path = "./spec/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local fleet_world = require "support.fleet_world"
local core = require "graphcall.core"
local cjson = require "cjson"

local QUICK, ONLY, WRITE = false, nil, nil
for _, a in ipairs(arg) do
  if a == "--quick" then QUICK = true
  elseif a == "--only=throughput" or a == "--only=takeover" then ONLY = a:match("=(%a+)")
  elseif a:match("^%-%-write=.") then WRITE = a:match("=(.*)$")
  else
    io.stderr:write("usage: lua5.4 bench/lua/fleet.lua [--quick] [--only=throughput|--only=takeover] [--write=FILE]\n")
    os.exit(2)
  end
end

local CFG = {
  runs = QUICK and 1 or 3,
  wrk_seconds = QUICK and 2 or 3,
  wrk_connections = { 8, 1 }, -- 8: the bots busy; 1: one notification at a time, latency-bound
  calls = 12,               -- calls of the throughput worlds: all on bot-1, or 4 on each
  takeover_calls = 30,      -- calls on the instance killed
  takeover = { { heartbeat = 1, liveness_ttl = 3 }, { heartbeat = 0.25, liveness_ttl = 1 } },
}

local function log(fmt, ...)
  io.stderr:write(("[fleet %6.1f] " .. fmt .. "\n"):format(core.monotonic() % 100000, ...))
end

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end

local TICK = tonumber(sh("getconf CLK_TCK"):match("%d+")) or 100 -- /proc/PID/stat's unit

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local function minmax(list)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(list) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end

-- user+sys CPU seconds of process `pid` (/proc/PID/stat, fields 14 and 15)
local function cpu(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return 0 end
  local stat = f:read("a")
  f:close()
  local rest = stat:match("%) (.*)$") -- after the command name, which may hold spaces
  local fields = {}
  for v in rest:gmatch("%S+") do fields[#fields + 1] = v end
  -- rest starts at field 3 (state): utime is field 14, stime 15
  return (tonumber(fields[12]) + tonumber(fields[13])) / TICK
end

-- voluntary context switches of process `pid` (its waits: wake-ups)
local function switches(pid)
  local f = io.open(("/proc/%d/status"):format(pid))
  if not f then return 0 end
  local status = f:read("a")
  f:close()
  return tonumber(status:match("\nvoluntary_ctxt_switches:%s*(%d+)")) or 0
end

-- entries ever added to the instances' inboxes (XLEN: acknowledged
-- entries stay, trimmed at about 100,000), and those not acknowledged
local function inboxes(w)
  local added, pending = 0, 0
  for _, name in ipairs(fleet_world.NAMES) do
    local len = w:redis { "XLEN", "gc:inbox:" .. name }
    added = added + (type(len) == "number" and len or 0)
    local p = w:redis { "XPENDING", "gc:inbox:" .. name, "g" }
    if type(p) == "table" and type(p[1]) == "number" then pending = pending + p[1] end
  end
  return added, pending
end

-- nginx's worker: the master's child (worker_processes 1)
local function nginx_worker(w)
  local kids = sh(("cat /proc/%d/task/*/children 2>/dev/null"):format(w.nginx.pid))
  return tonumber(kids:match("%d+")) or w.nginx.pid
end

-- Start `bots` ({name = calls}) and wait until every call is placed and
-- established; returns { {id =, owner =} ... } sorted by owner, or nil and
-- how many calls have no record in Redis (owner, owned set) 5 s later.
local function populate(w, bots)
  local names, total = {}, 0
  for name, n in pairs(bots) do names[#names + 1] = name; total = total + n end
  table.sort(names)
  for _, name in ipairs(names) do w:start_bot(name, { CALLS = bots[name] }) end
  local calls
  assert(w:wait_for(function()
    calls = {}
    for _, e in ipairs(w:events()) do
      if e.what == "placed" then calls[#calls + 1] = { id = e[1], owner = e.instance } end
    end
    if #calls < total then return false end
    local up = 0
    for _, c in ipairs(w:records().calls) do if c.state == "established" then up = up + 1 end end
    return up >= total
  end, 30), "the calls were not placed and established: " .. (w:read("bot-stderr.log") or ""))
  -- and recorded in Redis with their owner
  local missing
  if not w:wait_for(function()
    missing = 0
    for _, c in ipairs(calls) do
      if w:redis { "HGET", "gc:call:" .. c.id, "owner" } ~= c.owner
        or w:redis { "SISMEMBER", "gc:owned:" .. c.owner, c.id } ~= 1 then
        missing = missing + 1
      end
    end
    return missing == 0
  end, 5) then
    return nil, missing
  end
  table.sort(calls, function(a, b) return a.owner < b.owner or (a.owner == b.owner and a.id < b.id) end)
  return calls
end

-- `handled` events in the bots' files from byte `from[name]` on: count,
-- time of the last one; and the new sizes.
local function handled_since(w, from)
  local n, last, sizes = 0, nil, {}
  for _, name in ipairs(fleet_world.NAMES) do
    local text = w:read("events-" .. name .. ".log") or ""
    sizes[name] = #text
    for t in text:sub((from[name] or 0) + 1):gmatch("[^\t\n]+\t([%d.]+)\thandled\t") do
      n = n + 1
      t = tonumber(t)
      if not last or t > last then last = t end
    end
  end
  return n, last, sizes
end

local function wrk_figures(out)
  local function num(pattern) return tonumber(out:match(pattern)) end
  local r = {
    rps = num("Requests/sec:%s+([%d.]+)"),
    requests = num("(%d+) requests in"),
    non2xx = num("Non%-2xx or 3xx responses:%s+(%d+)") or 0,
  }
  local c, rd, wr, to = out:match("Socket errors: connect (%d+), read (%d+), write (%d+), timeout (%d+)")
  r.socket_errors = c and (tonumber(c) + tonumber(rd) + tonumber(wr) + tonumber(to)) or 0
  assert(r.rps and r.requests, "wrk printed no figures:\n" .. out)
  return r
end

-- A world with `first` started ({name = calls}), then `bots`: every call
-- recorded. A call placed while the bot's Redis connection is not yet up can
-- stay without a record (its owner and owned entry: a fleet.lua race, see the
-- notes): such a world is thrown away and started again, at most 3 times,
-- and each restart is counted in RESTARTS for the report.
local RESTARTS = {}
local function world_with(opts, first, bots)
  for _ = 1, 3 do
    local w = fleet_world.start(opts)
    local ok, calls, missing = pcall(function()
      for name, n in pairs(first or {}) do w:start_bot(name, { CALLS = n }) end
      return populate(w, bots)
    end)
    if ok and calls then return w, calls end
    w:close()
    if not ok then error(calls, 0) end
    local total = 0
    for _, n in pairs(bots) do total = total + n end
    RESTARTS[#RESTARTS + 1] = ("%d of %d calls"):format(missing, total)
    log("%d calls without a record in Redis: starting the world again", missing)
  end
  error("the calls were not recorded in 3 attempts")
end

---------------------------------------------------------------------------
-- 1. Notifications per second through nginx, 1 instance vs 3
---------------------------------------------------------------------------

local THROUGHPUT_WORLDS = {
  { key = "1", label = "1 instance (bot-1, 12 calls)", bots = { ["bot-1"] = CFG.calls } },
  { key = "3", label = "3 instances (4 calls each)",
    bots = { ["bot-1"] = CFG.calls / 3, ["bot-2"] = CFG.calls / 3, ["bot-3"] = CFG.calls / 3 } },
}
local ROUTES = {}
for _, conns in ipairs(CFG.wrk_connections) do
  ROUTES[#ROUTES + 1] = { key = "hint-c" .. conns, conns = conns, path = "/api/calls?gi=%s",
    label = ("by hint (/api/calls?gi=owner), -c%d"):format(conns) }
  ROUTES[#ROUTES + 1] = { key = "rr-c" .. conns, conns = conns, path = "/rr/api/calls?gi=%s",
    label = ("round robin (/rr/api/calls?gi=owner), -c%d"):format(conns) }
end

local function throughput_run(tw, route, run)
  local w = tw.world
  local list = os.tmpname()
  local f = assert(io.open(list, "w"))
  for _, c in ipairs(tw.calls) do f:write(c.id, " ", route.path:format(c.owner), "\n") end
  f:close()
  -- a fresh token each run (the emulator's lasts 300 s and is cached as Graph's is)
  local r
  w.loop:request({ method = "GET",
    url = w.graph_url .. "/_emulator/notification_token?app_id=" .. fleet_world.APP_ID }, function(x) r = x end)
  assert(w.loop:wait(function() return r ~= nil end, 10) and r.status == 200, "no notification token")
  local doc = cjson.decode(r.body)

  local pids = {}
  for name in pairs(tw.bots) do pids[#pids + 1] = w.bots[name].pid end
  local redis_pid, nginx_pid = w.redis_srv.pid, nginx_worker(w)
  local function cpus()
    local b, sw = 0, 0
    for _, pid in ipairs(pids) do b, sw = b + cpu(pid), sw + switches(pid) end
    return b, cpu(redis_pid), cpu(nginx_pid), sw
  end
  -- the bots' CPU while idle, just before: a bot should use next to none
  local idle0 = cpus()
  w.loop:wait(function() return false end, 0.5)
  local idle = (cpus() - idle0) / 0.5
  local _, _, sizes = handled_since(w, {})
  local added0 = inboxes(w)
  local b0, r0, n0, s0 = cpus()
  local started = core.monotonic()
  local cmd = ("FLEET_CALLS=%s FLEET_TOKEN=%s FLEET_TAG=%s-%s-%d wrk -t1 -c%d -d%ds -s bench/wrk_fleet.lua %s 2>&1")
    :format(list, doc.token, tw.key, route.key, run, route.conns, CFG.wrk_seconds, w.lb_url)
  local out = sh(cmd)
  local wrk_end = core.monotonic()
  local res = wrk_figures(out)
  -- the bots go on with what was forwarded and not yet read: wait until
  -- every answered notification is handled and nothing more comes
  local n, last, prev = 0, nil, -1
  w:wait_for(function()
    n, last = handled_since(w, sizes)
    if n >= res.requests and n == prev then return true end
    prev = n
    w.loop:wait(function() return false end, 0.2)
    return false
  end, 30)
  local b1, r1, n1, s1 = cpus()
  local added1, pending = inboxes(w)
  os.remove(list)
  res.handled = n
  res.forwarded, res.pending = added1 - added0, pending
  res.wakeups = (s1 - s0) / math.max(n, 1)
  res.idle = idle * 100
  res.drained = last and math.max(0, last - wrk_end) or 0 -- how long after wrk the last one was handled
  res.handled_rate = last and n / (last - started) or 0
  local k = 1000 / math.max(n, 1)
  res.bot_ms, res.redis_ms, res.nginx_ms = (b1 - b0) * k * 1000, (r1 - r0) * k * 1000, (n1 - n0) * k * 1000
  res.cmd = cmd:gsub("FLEET_TOKEN=%S+", "FLEET_TOKEN=<token>"):gsub("FLEET_CALLS=%S+", "FLEET_CALLS=<list>")
    :gsub(" 2>&1$", "")
  log("%s %-7s run %d: %.0f req/s, %d non-2xx, %d socket errors, %d answered, %d handled (last %.2f s after wrk), "
    .. "%d forwarded, %d pending, bots %.0f ms CPU/1000, %.2f wake-ups/notification, idle before %.0f %%", tw.key,
    route.key, run, res.rps, res.non2xx, res.socket_errors, res.requests, res.handled, res.drained, res.forwarded,
    res.pending, res.bot_ms, res.wakeups, res.idle)
  return res
end

local function throughput()
  for _, tw in ipairs(THROUGHPUT_WORLDS) do
    log("throughput world: %s", tw.label)
    -- keepAlive every 10 s (the emulator allows 30 s): the calls' upkeep
    -- is not what is measured; heartbeat and liveness are the defaults
    tw.world, tw.calls = world_with({ keep_alive = 10, keep_alive_timeout = 30, heartbeat = 1, liveness_ttl = 3 },
      nil, tw.bots)
  end
  local results = {}
  for run = 1, CFG.runs do
    -- alternate the order: A B C D, then D C B A, ...
    local order = {}
    for _, tw in ipairs(THROUGHPUT_WORLDS) do
      for _, route in ipairs(ROUTES) do order[#order + 1] = { tw = tw, route = route } end
    end
    if run % 2 == 0 then
      for i = 1, #order // 2 do order[i], order[#order + 1 - i] = order[#order + 1 - i], order[i] end
    end
    for _, o in ipairs(order) do
      local key = o.tw.key .. "/" .. o.route.key
      results[key] = results[key] or { tw = o.tw, route = o.route, runs = {} }
      table.insert(results[key].runs, throughput_run(o.tw, o.route, run))
    end
  end
  for _, tw in ipairs(THROUGHPUT_WORLDS) do tw.world:close() end
  return results
end

---------------------------------------------------------------------------
-- 2. Takeover time after kill -9
---------------------------------------------------------------------------

local function takeover_run(cfg, run)
  -- keepAlive every 5 s and the emulator's timeout 30 s: no call ends
  -- while its owner is dead (the default world's 1 s / 3 s would end them)
  local w, calls = world_with({ keep_alive = 5, keep_alive_timeout = 30, heartbeat = cfg.heartbeat,
    liveness_ttl = cfg.liveness_ttl }, { ["bot-2"] = 0, ["bot-3"] = 0 }, { ["bot-1"] = CFG.takeover_calls })
  local ok, res = pcall(function()
    local mine = {}
    for _, c in ipairs(calls) do mine[c.id] = true end
    -- one full liveness period with all three up, then a part of a
    -- heartbeat that differs by run (0, 1/3, 2/3 of it with 3 runs): the
    -- kill lands at a different point of bot-1's heartbeat cycle each time,
    -- which decides how long its liveness key outlives it
    w.loop:wait(function() return false end, cfg.liveness_ttl + cfg.heartbeat * (run - 1) / CFG.runs)
    local killed = core.monotonic()
    w:stop_bot("bot-1", "KILL")
    local adopted, by
    assert(w:wait_for(function()
      adopted, by = {}, {}
      for _, e in ipairs(w:events()) do
        if e.what == "adopted" and mine[e[1]] and e.t >= killed then
          assert(not adopted[e[1]], "adopted twice: " .. e[1])
          adopted[e[1]] = e.t - killed
          by[e.instance] = (by[e.instance] or 0) + 1
        end
      end
      local n = 0
      for _ in pairs(adopted) do n = n + 1 end
      return n == #calls
    end, 30), "bot-1's calls were not all adopted")
    local times = {}
    for _, t in pairs(adopted) do times[#times + 1] = t end
    local first, last = minmax(times)
    local r = { first = first, last = last, bot2 = by["bot-2"] or 0, bot3 = by["bot-3"] or 0 }
    log("takeover heartbeat %.2f liveness %.2f run %d: first %.3f s, last %.3f s (bot-2 %d, bot-3 %d)",
      cfg.heartbeat, cfg.liveness_ttl, run, r.first, r.last, r.bot2, r.bot3)
    -- a GET of a call from the bench process, for the bound's "plus a GET"
    local t0 = core.monotonic()
    local got
    w.loop:request({ method = "GET", url = w.graph_url .. "/v1.0/communications/calls/" .. calls[1].id,
      headers = { Authorization = "Bearer " .. fleet_world.TOKEN } }, function(x) got = x end)
    w.loop:wait(function() return got ~= nil end, 5)
    r.get = core.monotonic() - t0
    return r
  end)
  w:close()
  assert(ok, res)
  return res
end

local function takeover()
  local results = {}
  for run = 1, CFG.runs do
    local first, second = 1, #CFG.takeover
    if run % 2 == 0 then first, second = second, first end
    for i = first, second, first <= second and 1 or -1 do
      local cfg = CFG.takeover[i]
      results[i] = results[i] or { cfg = cfg, runs = {} }
      table.insert(results[i].runs, takeover_run(cfg, run))
    end
  end
  return results
end

---------------------------------------------------------------------------
-- Report
---------------------------------------------------------------------------

local function pick(runs, field)
  local out = {}
  for i, r in ipairs(runs) do out[i] = r[field] end
  return out
end

local function sum(runs, field)
  local n = 0
  for _, r in ipairs(runs) do n = n + r[field] end
  return n
end

-- the last line of this benchmark's part of bench/RESULTS.md (--write replaces up to it)
local END = "<!-- end of the output of bench/lua/fleet.lua -->"

local function main()
  local started = os.time()
  local load0 = sh("cut -d' ' -f1-3 /proc/loadavg"):gsub("%s+$", "")
  local tp = ONLY ~= "takeover" and throughput() or nil
  local to = ONLY ~= "throughput" and takeover() or nil
  local load1 = sh("cut -d' ' -f1-3 /proc/loadavg"):gsub("%s+$", "")
  local out = {}
  local function p(line) out[#out + 1] = line end

  p(("## Fleet (issue 13: %s UTC)"):format(os.date("!%Y-%m-%d %H:%M", started)))
  p("")
  p(("`bench/run fleet` (or `lua5.4 bench/lua/fleet.lua` after `make`) on %d CPUs; took %d s; load average %s at the "
    .. "start, %s at the end. Every process is real and unpinned, on loopback: redis-server, "
    .. "bin/graphcall-emulator, nginx (examples/fleet/nginx.conf.in, 1 worker), the bots "
    .. "(examples/fleet/bot.lua: JWT verified on every notification, a `handled` line written for each, the "
    .. "tone handler writes a checkpoint to Redis), and wrk, all sharing the same CPUs. %d runs of each, "
    .. "alternated; median, min, max."):format(tonumber(sh("nproc")) or 0, os.time() - started, load0, load1,
    CFG.runs))
  p("")
  if tp then
    p(("### Notifications through nginx (`wrk -t1 -cN -d%ds`)"):format(CFG.wrk_seconds))
    p("")
    p("| Instances | Route | Requests/s median | Min | Max | Ratio to 1 instance | Bots' CPU ms / 1000 notifications"
      .. " | Redis CPU ms / 1000 | nginx CPU ms / 1000 | Bots' wake-ups / notification | Forwarded | Non-2xx "
      .. "| Handled / answered | Bots' CPU when idle, just before (max) |")
    p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _, route in ipairs(ROUTES) do
      local base = median(pick(tp["1/" .. route.key].runs, "rps"))
      for _, tw in ipairs(THROUGHPUT_WORLDS) do
        local r = tp[tw.key .. "/" .. route.key]
        local rps = pick(r.runs, "rps")
        local lo, hi = minmax(rps)
        p(("| %s | %s | %.0f /s | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.2f | %.0f %% | %d | %d / %d "
          .. "| %.0f %% |"):format(
          tw.label, route.label, median(rps), lo, hi, median(rps) / base, median(pick(r.runs, "bot_ms")),
          median(pick(r.runs, "redis_ms")), median(pick(r.runs, "nginx_ms")), median(pick(r.runs, "wakeups")),
          100 * sum(r.runs, "forwarded") / math.max(sum(r.runs, "handled"), 1),
          sum(r.runs, "non2xx") + sum(r.runs, "socket_errors"), sum(r.runs, "handled"), sum(r.runs, "requests"),
          select(2, minmax(pick(r.runs, "idle")))))
      end
    end
    p("")
  end
  if to then
    p("### Takeover after kill -9 (" .. CFG.takeover_calls .. " calls on bot-1, bot-2 and bot-3 alive)")
    p("")
    p("| heartbeat / liveness_ttl | Last `adopted` after the kill: median | Min | Max | First `adopted`: median | "
      .. "Documented bound (liveness_ttl + 2 × heartbeat + a GET) | Split bot-2 / bot-3 (last run) |")
    p("|---|---:|---:|---:|---:|---:|---|")
    for _, r in ipairs(to) do
      local last = pick(r.runs, "last")
      local lo, hi = minmax(last)
      local get = median(pick(r.runs, "get"))
      local bound = r.cfg.liveness_ttl + 2 * r.cfg.heartbeat
      local final = r.runs[#r.runs]
      p(("| %g s / %g s | %.2f s | %.2f | %.2f | %.2f s | %.2f s (+ %.1f ms) | %d / %d |"):format(r.cfg.heartbeat,
        r.cfg.liveness_ttl, median(last), lo, hi, median(pick(r.runs, "first")), bound, get * 1000, final.bot2,
        final.bot3))
    end
    p("")
  end
  p("Notes:")
  p("")
  p("- Load: wrk POSTs `updated` notifications with a toneInfo (the emulator's own body, 0.6 KB) for the calls "
    .. "the bots placed, a call at random each time, each body distinct (the etag and sequenceId count up) so "
    .. "that neither the fleet's dedupe nor the call's drops one, with the Bearer token the emulator signs its "
    .. "notifications with (`GET /_emulator/notification_token`). By hint, nginx sends each to the call's "
    .. "owner; round robin, to any instance, which forwards what it does not own to the owner's Redis stream "
    .. "(2 of 3 with 3 instances). With 1 instance, round robin tries the two stopped upstreams (connection "
    .. "refused) before bot-1, as the config says (max_fails=0, next upstream on error).")
  p("- Requests/s is what wrk counts (answered by a bot, 202; a forwarded one is answered once it is in the "
    .. "owner's stream). \"Handled / answered\": `handled` lines the owners wrote against the 2xx answers wrk "
    .. "counted, over all runs (a few more handled: requests in flight when wrk stopped); every run waits until "
    .. "the owners have handled what was forwarded. Non-2xx: wrk's non-2xx answers and socket errors, all runs. "
    .. "Forwarded: entries added to the owners' Redis streams, per notification handled.")
  p("- Wake-ups: the bots' voluntary context switches (/proc/PID/status) per notification handled: how often a "
    .. "bot waited (for the network or Redis) and was woken again.")
  p("- CPU per 1,000 notifications: user+sys from /proc/PID/stat (utime+stime) of the bot processes (summed), "
    .. "redis-server and nginx's worker, before and after each run, divided by the notifications handled. On 2 "
    .. "CPUs shared by wrk, nginx, Redis and the bots, wall throughput cannot scale with instances: three bots "
    .. "take turns on the same cores, so the 3-instance rows measure the cost of the fleet's routing and of "
    .. "more processes, not a scale-out; the CPU columns are the fairer comparison. CPU per notification "
    .. "also depends on how busy a bot is: a busy one (1 instance, -c8) finds many requests per wake-up, three "
    .. "sharing the load wake up for nearly every one (the wake-ups column); at -c1 every bot wakes up for each "
    .. "notification whatever the number of instances.")
  p("- Takeover: a fresh world per run; bot-2 and bot-3 start first, then bot-1 places the calls; after one "
    .. "liveness_ttl with all three up and (run − 1) / runs of a heartbeat more (so that the kill falls at a "
    .. "different point of bot-1's heartbeat cycle in each run), `kill -9` bot-1 (core.monotonic() just "
    .. "before) and wait for an `adopted` event per call (bot lines carry CLOCK_MONOTONIC times). "
    .. "keepAlive every 5 s, emulator timeout 30 s, so that no call ends meanwhile. The GET is one "
    .. "`GET /communications/calls/{id}` from the bench process to the emulator; adopting does one per call "
    .. "(and Redis commands), one call after another.")
  p("- Bots' CPU when idle: the bots' user+sys in the 0.5 s before the run, no load on them, in % of one CPU "
    .. "(summed; the highest of the runs). It should be about 0: more means a bot busy-waits.")
  p(("- Worlds started again because some calls had no record in Redis (`owner`, `owned:<instance>`) 5 s "
    .. "after they were established, so that a kill -9 would not have them adopted: %d%s.")
    :format(#RESTARTS, #RESTARTS > 0 and " (" .. table.concat(RESTARTS, "; ") .. ")" or ""))
  p("")
  p("Commands:")
  p("")
  if tp then
    for _, route in ipairs(ROUTES) do
      for _, tw in ipairs(THROUGHPUT_WORLDS) do
        p(("- %s, %s: `%s`"):format(tw.label, route.label, tp[tw.key .. "/" .. route.key].runs[1].cmd))
      end
    end
  end
  p(END)
  local text = table.concat(out, "\n") .. "\n"
  io.stdout:write(text)
  if WRITE then
    -- replace this benchmark's part of the file (from its heading to END), or append it
    local f = io.open(WRITE, "rb")
    local old = f and f:read("a") or ""
    if f then f:close() end
    local from = old:find("\n## Fleet (issue 13", 1, true)
    local upto = from and select(2, old:find(END, from, true))
    local new
    if from and upto then
      new = old:sub(1, from) .. text:gsub("\n$", "") .. old:sub(upto + 1)
    else
      new = old:gsub("\n*$", "\n\n") .. text
    end
    f = assert(io.open(WRITE, "wb"))
    f:write(new)
    f:close()
    log("written to %s", WRITE)
  end
end

main()
