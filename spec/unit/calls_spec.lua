-- Call objects: the state a call is in, the events its notifications fire,
-- out of order and twice; incoming calls; the registry staying bounded.
local graphcall = require "graphcall"
local cjson = require "cjson"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"

local function client(opts)
  local loop = graphcall.new_loop(opts and opts.loop)
  return graphcall.new { app_id = APP_ID, token = "t", loop = loop, graph_url = "http://127.0.0.1:1" }, loop
end

-- A notification batch about call `id`, like Graph's.
local function batch(id, change_type, data, extra)
  local n = { changeType = change_type, resourceUrl = "/communications/calls/" .. id, resourceData = data }
  for k, v in pairs(extra or {}) do n[k] = v end
  return assert(graphcall.parse_notifications(cjson.encode { value = { n } }))
end

local function state(id, s, etag)
  return batch(id, "updated", { ["@odata.type"] = "#microsoft.graph.call", state = s, ["@odata.etag"] = etag })
end

local function tracked(c, id)
  return c:track(require("graphcall.call").new(c, { id = id, state = "establishing", direction = "outgoing" }))
end

describe("call objects", function()
  it("follow their notifications and fire an event per state, in any order, once", function()
    local c = client()
    local call = tracked(c, "c1")
    local events = {}
    for _, s in ipairs { "establishing", "established", "terminating", "terminated" } do
      call:on(s, function(_, n) events[#events + 1] = s .. ":" .. tostring(n and n.etag) end)
    end
    local changes = {}
    call:on("state", function(_, s) changes[#changes + 1] = s end)
    c:dispatch(state("c1", "established", 'W/"2"'))
    c:dispatch(state("c1", "establishing", 'W/"1"')) -- late: does not undo established
    c:dispatch(state("c1", "established", 'W/"2"'))  -- the same again: not dispatched twice
    assert.equal("established", call.state)
    c:dispatch(state("c1", "terminating", 'W/"3"'))
    c:dispatch(batch("c1", "deleted", { state = "terminated",
      resultInfo = { code = "200", subcode = "5001", message = "The conversation has ended." } }))
    assert.same({ 'established:W/"2"', 'terminating:W/"3"', "terminated:nil" }, events)
    assert.same({ "established", "terminating", "terminated" }, changes)
    assert.same({ code = 200, subcode = 5001, message = "The conversation has ended." }, call.result_info)
    assert.is_nil(c.calls.c1) -- terminated calls leave the registry
    assert.equal("terminated", call.state)
  end)

  it("a call without handlers takes notifications, and handlers added later see the next ones", function()
    local c = client()
    local call = tracked(c, "c9")
    -- its handlers, fingerprints and operations are made on first use
    assert.same({}, { rawget(call, "handlers"), rawget(call, "seen_order"), rawget(call, "operations") })
    c:dispatch(state("c9", "established", 'W/"1"'))
    c:dispatch(state("c9", "established", 'W/"1"'))
    assert.equal("established", call.state)
    assert.equal(1, #rawget(call, "seen_order")) -- the repeat was recognised
    local seen = {}
    call:on("state", function(_, s) seen[#seen + 1] = s end)
    c:dispatch(state("c9", "terminated", 'W/"2"'))
    assert.same({ "terminated" }, seen)
    assert.matches("call:on%(event, fn%)", select(2, pcall(call.on, call, 1)))
  end)

  it("keep data as the 201's text until it is read, with what notifications changed meanwhile", function()
    local c = client()
    local text = cjson.encode { id = "c7", state = "establishing", direction = "outgoing",
      callbackUri = "https://bot/cb", subject = "first", tenantId = "t-1" }
    local call = c:track(require("graphcall.call").new(c, { id = "c7", state = "establishing",
      direction = "outgoing" }, "https://graph/c7", text))
    c:dispatch(batch("c7", "updated", { ["@odata.type"] = "#microsoft.graph.call", state = "established",
      subject = "second" }))
    c:dispatch(batch("c7", "updated", { ["@odata.type"] = "#microsoft.graph.call", state = "established",
      subject = "third", ["@odata.etag"] = 'W/"3"' }))
    assert.equal("established", call.state)
    assert.is_nil(rawget(call, "data")) -- not decoded by the notifications
    assert.equal(text, rawget(call, "data_text"))
    local data = call.data
    assert.same({ id = "c7", state = "established", direction = "outgoing", callbackUri = "https://bot/cb",
      subject = "third", tenantId = "t-1", ["@odata.type"] = "#microsoft.graph.call", ["@odata.etag"] = 'W/"3"' },
      data)
    assert.is_nil(rawget(call, "data_text"))
    assert.is_nil(rawget(call, "data_updates"))
    -- once decoded, later notifications change the table itself
    c:dispatch(batch("c7", "updated", { ["@odata.type"] = "#microsoft.graph.call", subject = "fourth" }))
    assert.equal(data, call.data)
    assert.equal("fourth", data.subject)
  end)

  it("same content without an etag is a repeat too; different content is not", function()
    local c = client()
    local call = tracked(c, "c2")
    local tones = {}
    call:on("tone", function(_, t) tones[#tones + 1] = t.tone end)
    local function tone(seq, t)
      return batch("c2", "updated", { state = "established", toneInfo = { sequenceId = seq, tone = t } })
    end
    c:dispatch(tone(1, "tone1"))
    c:dispatch(tone(1, "tone1"))
    c:dispatch(tone(2, "tone5"))
    assert.same({ "tone1", "tone5" }, tones)
  end)

  it("hold and transfer are side steps: established again afterwards", function()
    local c = client()
    local call = tracked(c, "c3")
    c:dispatch(state("c3", "established", "1"))
    c:dispatch(state("c3", "hold", "2"))
    assert.equal("hold", call.state)
    c:dispatch(state("c3", "established", "3"))
    assert.equal("established", call.state)
    c:dispatch(state("c3", "transferring", "4"))
    c:dispatch(state("c3", "established", "5")) -- a failed transfer returns to established
    assert.equal("established", call.state)
  end)

  it("routes participants and legacy /app/calls resources", function()
    local c = client()
    local call = tracked(c, "C4")
    local rosters = {}
    call:on("participants", function(_, list) rosters[#rosters + 1] = #list end)
    c:dispatch(assert(graphcall.parse_notifications(cjson.encode { value = { {
      changeType = "updated", resourceUrl = "/communications/calls/C4/participants",
      resourceData = { { id = "p1" }, { id = "p2" } } } } })))
    c:dispatch(assert(graphcall.parse_notifications(cjson.encode { value = { {
      changeType = "updated", resource = "/app/calls/C4", resourceData = { state = "established" } } } })))
    assert.same({ 2 }, rosters)
    assert.equal(2, #call.roster)
    assert.equal("established", call.state)
  end)

  it("a handler error goes to the error hook with its traceback and later notifications still arrive", function()
    local errors = {}
    local c = client { loop = { on_error = function(e, tb) errors[#errors + 1] = { e, tb } end } }
    local call = tracked(c, "c5")
    local heard = {}
    call:on("established", function() error("handler bug") end)
    call:on("state", function(_, s) heard[#heard + 1] = s end)
    c:dispatch(state("c5", "established", "1"))
    c:dispatch(state("c5", "terminated", "2"))
    assert.same({ "established", "terminated" }, heard)
    assert.equal(1, #errors)
    assert.matches("handler bug", tostring(errors[1][1]))
    assert.matches("stack traceback", errors[1][2])
  end)

  it("notifications about unknown calls fire the client's unknown event", function()
    local c = client()
    local unknown = {}
    c:on("unknown", function(n) unknown[#unknown + 1] = n.call_id end)
    c:dispatch(state("nobody", "established", "1"))
    assert.same({ "nobody" }, unknown)
  end)

  it("call:wait returns when the state is reached, fails on timeout or termination", function()
    local now = 0
    local c, loop = client { loop = { clock = function() return now end } }
    local call = tracked(c, "c6")
    loop:timer(1, function() c:dispatch(state("c6", "established", "1")) end)
    now = 2
    assert.is_true(call:wait("established", 5))
    assert.is_true(call:wait("establishing", 5)) -- already past it
    local ok, err = call:wait("terminated", 0)
    assert.is_nil(ok)
    assert.equal("timeout", err.kind)
    c:dispatch(batch("c6", "deleted", { state = "terminated", resultInfo = { code = 408, subcode = 8537 } }))
    ok, err = call:wait("hold", 1)
    assert.is_nil(ok)
    assert.equal("terminated", err.kind)
    assert.same({ code = 408, subcode = 8537 }, err.result_info)
    assert.has_error(function() call:wait("ringing-ish") end, "graphcall.call:wait: unknown state 'ringing-ish'")
  end)
end)

describe("incoming calls", function()
  it("fire the incoming event at once with a registered call", function()
    local c = client()
    local got
    c:on("incoming", function(call, n) got = { call, n } end)
    local fixture = assert(io.open("spec/fixtures/notifications/incoming_call.json")):read("a")
    c:dispatch(assert(graphcall.parse_notifications(fixture)))
    local call = got[1]
    assert.equal("57DAB8B1894C409AB240BD8BEAE78896", call.id)
    assert.equal("incoming", call.state)
    assert.equal("incoming", call.direction)
    assert.equal("Test User", call.data.source.identity.user.displayName)
    assert.equal(call, c.calls["57DAB8B1894C409AB240BD8BEAE78896"])
    -- the same notification again is a repeat, not a second incoming call
    c:dispatch(assert(graphcall.parse_notifications(fixture)))
    assert.equal(call, got[1])
  end)
end)

describe("the registry", function()
  it("stays bounded over 10,000 incoming calls created and terminated", function()
    local c = client()
    local incoming = 0
    c:on("incoming", function() incoming = incoming + 1 end)
    local function round(n, base)
      for i = 1, n do
        local id = ("call-%d"):format(base + i)
        c:dispatch(batch(id, "created", { state = "incoming", direction = "incoming" }))
        c:dispatch(batch(id, "deleted", { state = "terminated", resultInfo = { code = 200, subcode = 5001 } }))
      end
    end
    round(1000, 0)
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    round(10000, 1000)
    collectgarbage()
    collectgarbage()
    assert.equal(11000, incoming)
    assert.is_nil(next(c.calls))
    assert.is_true(collectgarbage("count") - before < 256, "heap grew by " .. (collectgarbage("count") - before))
  end)
end)
