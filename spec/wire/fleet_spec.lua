-- The fleet, every part a real process on loopback: redis-server, the Graph
-- emulator, nginx routing notifications by the callbackUri's instance hint,
-- and three bot processes (examples/fleet/bot.lua, public API only). The
-- assertions are on what the emulator and Redis record and on the lines
-- the bots write: which instance handled which notification, and adopted
-- which call with which checkpoint.
--
-- Timing: keepAlive every 1 s, the emulator ends a call not kept alive for
-- 3 s (408), heartbeat 0.25 s, liveness 1 s. The scenarios run in order
-- on one world, as in a day of a real fleet.
local fleet_world = require "support.fleet_world"
local core = require "graphcall.core"
local socket = require "socket"

local KEEP_ALIVE, HEARTBEAT, LIVENESS = 1, 0.25, 1
-- documented in doc/fleet.md: adoption within liveness_ttl + 2 heartbeats
-- (and the resync GET); the second of slack is for a loaded 2-core machine
local TAKEOVER_BOUND = LIVENESS + 2 * HEARTBEAT + 1

local function dash(v)
  if v == nil or v == "" or type(v) == "userdata" then return "-" end -- userdata: JSON null
  return tostring(v)
end

-- A notification as both sides name it: call, change, resource, state, tone.
local function key(call_id, change_type, resource, state, tone)
  return table.concat({ dash(call_id), dash(change_type), dash(resource), dash(state), dash(tone) }, "|")
end

-- The notifications the emulator posted and a bot took (2xx), by key; a
-- redelivery has the key of its original.
local function posted(records)
  local out = {}
  for _, n in ipairs(records.notifications) do
    if type(n.status) == "number" and n.status >= 200 and n.status < 300 then
      local k = key(n.call_id, n.change_type, n.resource, n.state, n.tone)
      out[k] = (out[k] or 0) + 1
    end
  end
  return out
end

-- key -> list of the instances that handled it
local function handled(w)
  local out = {}
  for _, e in ipairs(w:events()) do
    if e.what == "handled" then
      local k = key(e[1], e[2], e[3], e[4], e[5])
      out[k] = out[k] or {}
      table.insert(out[k], e.instance)
    end
  end
  return out
end

-- Every notification posted so far is handled exactly once, whichever
-- instance the load balancer gave it to. Returns how many distinct ones.
local function assert_exactly_once(w, only)
  local r, seen, n = w:records(), nil, 0
  local want = posted(r)
  -- wait until every posted notification is handled, then a little more,
  -- so that a second handling would show
  w:wait_for(function()
    seen = handled(w)
    for k in pairs(want) do if not seen[k] then return false end end
    return true
  end, 5)
  w.loop:wait(function() return false end, 0.3)
  seen = handled(w)
  for k in pairs(want) do
    if not only or only(k) then
      n = n + 1
      assert(seen[k], "never handled: " .. k)
      assert(#seen[k] == 1, ("handled %d times (%s): %s"):format(#seen[k], table.concat(seen[k], ","), k))
    end
  end
  for k in pairs(seen) do assert(want[k], "handled but never posted: " .. k) end
  return n
end

-- Wait until the emulator has an answer for every notification it queued.
local function settle(w)
  assert(w:wait_for(function()
    for _, n in ipairs(w:records().notifications) do
      if type(n.status) ~= "number" and type(n.failure) ~= "string" then return false end
    end
    return true
  end, 10), "the emulator's notifications were not all answered")
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(type(list) == "table" and list or {}) do s[v] = true end
  return s
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- call id -> sorted times (emulator clock) of its keepAlive requests
local function keep_alives(records)
  local out = {}
  for _, q in ipairs(records.requests) do
    local id = q.path:match("/calls/([%w%-]+)/keepAlive$")
    if id and q.status == 200 then
      out[id] = out[id] or {}
      table.insert(out[id], q.t)
    end
  end
  for _, times in pairs(out) do table.sort(times) end
  return out
end

local function press(w, ids, tone)
  for id in pairs(ids) do
    local status, doc = w:control("tone", { call_id = id, tone = tone })
    assert.equal(200, status)
    assert.is_true(doc.sent)
  end
end

local function owners(w, ids)
  local out = {}
  for id in pairs(ids) do out[id] = w:redis { "HGET", "gc:call:" .. id, "owner" } end
  return out
end

describe("a fleet of three bot instances behind nginx, sharing calls through Redis", function()
  local w
  local all = {}       -- every call id placed
  local placed_n = {}  -- call id -> its number in the placing instance (its first checkpoint)

  setup(function()
    w = fleet_world.start { keep_alive = KEEP_ALIVE, heartbeat = HEARTBEAT, liveness_ttl = LIVENESS }
    -- bot-3 sits behind a load balancer that does not route by hint (round
    -- robin): its calls' notifications land anywhere and are forwarded
    w:start_bot("bot-1", { CALLS = 4 })
    w:start_bot("bot-2", { CALLS = 4 })
    w:start_bot("bot-3", { CALLS = 4, CALLBACK_URI = w.lb_url .. "/rr/api/calls" })
  end)

  teardown(function()
    if w then w:close() end
  end)

  it("1. handles every notification exactly once, whichever instance receives it", function()
    assert.is_true(w:wait_for(function()
      local n = 0
      for _, c in ipairs(w:records().calls) do if c.state == "established" then n = n + 1 end end
      for _, e in ipairs(w:events()) do
        if e.what == "placed" then all[e[1]] = true; placed_n[e[1]] = tonumber(e[2]) end
      end
      return n == 12 and count(all) == 12
    end, 10), "12 calls placed and established")
    -- every call is recorded with its placing instance as owner, and the hint in its callbackUri
    for _, c in ipairs(w:records().calls) do
      local owner = w:redis { "HGET", "gc:call:" .. c.id, "owner" }
      assert.matches("[?&]gi=" .. owner:gsub("%-", "%%-") .. "&gc=[%x%-]+$", c.callback_uri)
    end
    -- the caller presses a key on every call, and Graph delivers each last notification twice
    -- the bots listen to the keys of every call once it is established
    assert.is_true(w:wait_for(function()
      local n = 0
      for _, q in ipairs(w:records().requests) do if q.path:find("/subscribeToTone$") then n = n + 1 end end
      return n == 12
    end, 5), "every call subscribed to tones")
    press(w, all, "1")
    settle(w)
    for id in pairs(all) do assert.equal(200, (w:control("redeliver", { call_id = id }))) end
    settle(w)
    local r = w:records()
    local twice = 0
    for _, times in pairs(posted(r)) do if times == 2 then twice = twice + 1 end end
    assert.equal(12, twice) -- each call's tone notification went out twice
    assert.is_true(assert_exactly_once(w) >= 12 * 3) -- establishing, established, tone per call
    -- bot-3's notifications reached the other instances and were forwarded to it through its stream
    assert.is_true(w:redis { "XLEN", "gc:inbox:bot-3" } > 0)
    for _, tone in pairs(handled(w)) do assert.is_table(tone) end
  end)

  it("2. sends exactly one keepAlive per call per interval across the fleet, and misses none", function()
    local before = w:records()
    local from = before.requests[#before.requests].t
    w.loop:wait(function() return false end, 3.2)
    local kas = keep_alives(w:records())
    for id in pairs(all) do
      local times = {}
      for _, t in ipairs(kas[id] or {}) do if t > from then times[#times + 1] = t end end
      assert.is_true(#times >= 2 and #times <= 4, ("%d keepAlives of %s in 3.2 s"):format(#times, id))
      for i = 2, #times do
        local gap = times[i] - times[i - 1]
        assert.is_true(gap > 0.5 * KEEP_ALIVE and gap < 2 * KEEP_ALIVE,
          ("keepAlives of %s %.2f s apart"):format(id, gap))
      end
    end
  end)

  it("3. a 429 seen by one instance pauses the others for its Retry-After", function()
    assert.equal(200, (w:control("fault", { status = 429, retry_after = 1 })))
    local t429
    assert.is_true(w:wait_for(function()
      for _, q in ipairs(w:records().requests) do if q.status == 429 then t429 = q.t; return true end end
      return false
    end, 3), "a request got the 429")
    w.loop:wait(function() return false end, 1.5)
    local during, after = 0, 0
    for _, q in ipairs(w:records().requests) do
      if q.t > t429 + 0.2 and q.t < t429 + 0.9 then during = during + 1 end
      if q.t >= t429 + 0.9 then after = after + 1 end
    end
    -- 12 calls kept alive every second: about 8 requests would fall in that window
    assert.equal(0, during)
    assert.is_true(after >= 6, after .. " requests after the pause")
  end)

  it("4. after kill -9 of one instance, the others adopt its calls in time, with their checkpoints", function()
    local mine = set_of(w:redis { "SMEMBERS", "gc:owned:bot-1" })
    assert.equal(4, count(mine))
    local killed = core.monotonic()
    w:stop_bot("bot-1", "KILL")
    assert.is_true(w:wait_for(function()
      for _, owner in pairs(owners(w, mine)) do
        if owner == "bot-1" or not owner then return false end
      end
      return true
    end, 10), "bot-1's calls were not adopted")
    -- `adopted` fired once per call, by its new owner, with the checkpoint bot-1 set
    local took = 0
    assert.is_true(w:wait_for(function()
      local n = 0
      for _, e in ipairs(w:events()) do
        if e.what == "adopted" and mine[e[1]] then
          n = n + 1
          took = math.max(took, e.t - killed)
        end
      end
      return n >= 4
    end, 5))
    -- the bots' clock and this process's are the same CLOCK_MONOTONIC
    assert.is_true(took > 0 and took < TAKEOVER_BOUND, ("adopted %.2f s after the kill"):format(took))
    local now_owner, adopted = owners(w, mine), {}
    for _, e in ipairs(w:events()) do
      if e.what == "adopted" and mine[e[1]] then
        assert.is_nil(adopted[e[1]], "adopted twice: " .. e[1])
        adopted[e[1]] = true
        assert.equal(now_owner[e[1]], e.instance)
        assert.equal(placed_n[e[1]], tonumber(e[2]))
        assert.equal("established", e[3])
      end
    end
    assert.equal(4, count(adopted))
    -- later notifications of those calls (hinted to the dead bot-1) are handled once, by the new owners
    press(w, mine, "2")
    settle(w)
    assert_exactly_once(w)
    local seen = handled(w)
    for id in pairs(mine) do
      assert.same({ now_owner[id] }, seen[key(id, "updated", nil, "established", "tone2")])
    end
  end)

  it("4b. no call ended: nothing was missed while bot-1 was gone", function()
    for _, c in ipairs(w:records().calls) do
      assert.equal("established", c.state, "call " .. c.id .. " ended " .. tostring(c.code))
    end
  end)

  it("5. SIGTERM hands the instance's calls over without a missed notification or keepAlive", function()
    local mine = set_of(w:redis { "SMEMBERS", "gc:owned:bot-2" })
    assert.is_true(count(mine) >= 4)
    press(w, mine, "3") -- in flight while bot-2 hands over
    local term_at = core.monotonic()
    local took = w:stop_bot("bot-2", "TERM")
    assert.is_true(took < 5, ("bot-2 took %.2f s to exit"):format(took))
    local drained
    for _, e in ipairs(w:events()) do if e.instance == "bot-2" and e.what == "drained" then drained = e end end
    assert.equal("TERM", drained[1])
    -- bot-2 handed its calls over; one whose notification reached bot-3
    -- meanwhile may have been taken over by bot-3 itself (bot-2 was no
    -- longer alive): either way bot-3 adopted each exactly once
    local handed = tonumber(drained[2])
    assert.is_true(handed >= 1 and handed <= count(mine), handed .. " of " .. count(mine) .. " handed over")
    local adopted
    w:wait_for(function()
      adopted = {}
      for _, e in ipairs(w:events()) do
        if e.what == "adopted" and e.instance == "bot-3" and mine[e[1]] and e.t >= term_at then
          assert.is_nil(adopted[e[1]], "adopted twice: " .. e[1])
          adopted[e[1]] = true
        end
      end
      return count(adopted) == count(mine)
    end, 5)
    assert.equal(count(mine), count(adopted))
    for _, owner in pairs(owners(w, mine)) do assert.equal("bot-3", owner) end
    press(w, mine, "4")
    settle(w)
    assert_exactly_once(w)
    local seen = handled(w)
    for id in pairs(mine) do
      assert.same({ "bot-3" }, seen[key(id, "updated", nil, "established", "tone4")])
    end
    for _, c in ipairs(w:records().calls) do assert.equal("established", c.state) end
  end)

  it("6. with Redis restarted mid-run, keepAlive goes on locally and the shared state comes back", function()
    w:start_bot("bot-1")
    w:start_bot("bot-2")
    w:redis_down()
    local down_at = socket.gettime()
    -- longer than the emulator's keepAlive timeout: only local keepAlives keep the calls
    w.loop:wait(function() return false end, 3.5)
    w:redis_up()
    assert.is_true(w.conn:wait_up(5))
    -- every call is recorded again, owned, and back on the shared schedule
    assert.is_true(w:wait_for(function()
      for id in pairs(all) do
        if not w:redis { "HGET", "gc:call:" .. id, "owner" } then return false end
        if not w:redis { "ZSCORE", "gc:keepalive", id } then return false end
      end
      return true
    end, 6), "the calls were not recorded again")
    for _, c in ipairs(w:records().calls) do
      assert.equal("established", c.state, "call " .. c.id .. " ended " .. tostring(c.code))
    end
    -- back on the shared schedule: one keepAlive per interval again, no local duplicates
    local back = w:records()
    local from = back.requests[#back.requests].t
    w.loop:wait(function() return false end, 2.2)
    local kas = keep_alives(w:records())
    for id in pairs(all) do
      local times = {}
      for _, t in ipairs(kas[id] or {}) do if t > from then times[#times + 1] = t end end
      assert.is_true(#times >= 1 and #times <= 3, ("%d keepAlives of %s in 2.2 s"):format(#times, id))
      for i = 2, #times do assert.is_true(times[i] - times[i - 1] > 0.5 * KEEP_ALIVE) end
    end
    assert.is_true(socket.gettime() - down_at < 20)
  end)

  it("7. a single instance killed and restarted with the same name resumes its calls", function()
    w:stop_bot("bot-1", "TERM")
    w:stop_bot("bot-2", "TERM")
    local mine = set_of(w:redis { "SMEMBERS", "gc:owned:bot-3" })
    assert.equal(12, count(mine))
    local adopted_before = 0
    for _, e in ipairs(w:events()) do if e.what == "adopted" and e.instance == "bot-3" then
      adopted_before = adopted_before + 1 end end
    w:stop_bot("bot-3", "KILL")
    w:start_bot("bot-3", { CALLBACK_URI = w.lb_url .. "/rr/api/calls" })
    assert.is_true(w:wait_for(function()
      local n = 0
      for _, e in ipairs(w:events()) do if e.what == "adopted" and e.instance == "bot-3" then n = n + 1 end end
      return n - adopted_before == 12
    end, 5), "bot-3 did not resume its 12 calls")
    press(w, mine, "6")
    settle(w)
    assert_exactly_once(w)
    local seen = handled(w)
    for id in pairs(mine) do
      assert.same({ "bot-3" }, seen[key(id, "updated", nil, "established", "tone6")])
    end
    for _, c in ipairs(w:records().calls) do assert.equal("established", c.state) end
  end)

  it("kept every call alive all along: no keepAlive gap reached the emulator's timeout", function()
    local kas = keep_alives(w:records())
    for id in pairs(all) do
      local times = kas[id]
      for i = 2, #times do
        assert.is_true(times[i] - times[i - 1] < 2.5, ("a %.2f s gap in %s's keepAlives, at %.2f s"):format(
          times[i] - times[i - 1], id, times[i - 1]))
      end
    end
  end)
end)
