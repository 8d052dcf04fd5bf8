-- Call control through call objects, against the emulator: every action,
-- its operation and the notifications that follow; keepAlive on a clock the
-- spec moves; incoming calls answered, rejected, redirected or missed.
local graphcall = require "graphcall"
local support = require "support.world"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"

local function world(opts)
  opts = opts or {}
  local w = support.new { clock = 0,
    emulator = { operation_delay = 0, keep_alive_timeout = opts.keep_alive_timeout, app_id = APP_ID },
    client = { keep_alive_interval = opts.keep_alive_interval } }
  function w.requests(suffix)
    local n = 0
    for _, r in ipairs(w.emu.requests) do if r.path:sub(-#suffix) == suffix then n = n + 1 end end
    return n
  end
  return w
end

describe("call control", function()
  local w
  before_each(function() w = world() end)
  after_each(function() w.close() end)

  it("play_prompt returns an operation that completes with its notification", function()
    local call = w.call()
    local done = {}
    call:on("operation", function(_, op) done[#done + 1] = op.kind end)
    local op = assert(call:play_prompt { prompts = { { uri = "https://cdn.contoso.com/beep.wav", resource_id = "b" } },
      client_context = "ctx-1" })
    assert.equal("playPrompt", op.kind)
    -- running, or already completed when the notification beat the answer
    assert.is_truthy(({ running = true, completed = true })[op.status])
    assert.equal("ctx-1", op.client_context)
    assert.is_true(op:wait(5))
    assert.equal("completed", op.status)
    assert.same({ code = 200, subcode = 0, message = "Action completed successfully." }, op.result_info)
    assert.same({ "playPrompt" }, done)
    local sent = w.emu.requests[#w.emu.requests]
    for _, r in ipairs(w.emu.requests) do if r.path:find("/playPrompt$") then sent = r end end
    assert.same({ { ["@odata.type"] = "#microsoft.graph.mediaPrompt",
      mediaInfo = { uri = "https://cdn.contoso.com/beep.wav", resourceId = "b" } } }, sent.json.prompts)
  end)

  it("graphcall.prompts{} works as the prompt list, and bad prompts raise", function()
    local call = w.call()
    assert.is_true(assert(call:play_prompt { prompts = graphcall.prompts { { uri = "https://cdn/x.wav" } } }):wait(5))
    assert.has_error(function() call:play_prompt { prompts = {} } end,
      "graphcall.call:play_prompt: prompts: 1 to 20 expected")
    assert.has_error(function() call:play_prompt { prompts = { { uri = "ftp://x" } } } end)
    assert.has_error(function() call:play_prompt { prompt = {} } end,
      "graphcall.call:play_prompt: unknown option 'prompt'")
  end)

  it("record_response completes with the recording's location", function()
    local call = w.call()
    local op = assert(call:record_response { max_record_duration = 10, play_beep = true, stop_tones = { "#" } })
    assert.is_true(op:wait(5))
    assert.matches("^http://127.0.0.1:%d+/", op.data.recordingLocation)
    assert.is_string(op.data.recordingAccessToken)
    assert.has_error(function() call:record_response { max_record_duration = 500 } end)
  end)

  it("cancel_media_processing fails the pending prompt with 8508", function()
    local call = w.call()
    w.emu.operation_delay = 1 -- the prompt stays running until the clock moves
    local prompt = assert(call:play_prompt { prompts = { { uri = "https://cdn/long.wav" } } })
    local cancel = assert(call:cancel_media_processing())
    assert.equal("cancelMediaProcessing", cancel.kind)
    local ok, err = prompt:wait(5)
    assert.is_nil(ok)
    assert.equal("operation_failed", err.kind)
    assert.equal(400, err.result_info.code)
    assert.equal(8508, err.result_info.subcode)
  end)

  it("subscribe_to_tone, then tones arrive as events", function()
    local call = w.call()
    local tones = {}
    call:on("tone", function(_, t) tones[#tones + 1] = t.tone end)
    local op = assert(call:subscribe_to_tone())
    assert.equal("completed", op.status) -- Graph answers it completed: no later notification
    assert.is_true(op:wait(0))
    w.emu:press_tone(call.id, "1")
    w.emu:press_tone(call.id, "#")
    w.settle()
    assert.same({ "tone1", "pound" }, tones)
  end)

  it("mute and unmute, with the roster following", function()
    local call = w.call()
    local muted = {}
    call:on("participants", function(c)
      for _, p in ipairs(c.roster) do
        if p.id == c.my_participant_id then muted[#muted + 1] = p.isMuted end
      end
    end)
    assert.is_true(assert(call:mute()):wait(5))
    w.settle()
    assert.is_true(assert(call:unmute()):wait(5))
    w.settle()
    assert.same({ true, false }, muted)
  end)

  it("invite adds participants; participants() lists them", function()
    local call = w.call()
    local op = assert(call:invite { participants = { graphcall.user { id = "bob", name = "Bob" } } })
    assert.equal("participants/invite", op.kind)
    assert.is_true(op:wait(5))
    local list = assert(call:participants())
    local names = {}
    for _, p in ipairs(list) do
      local user = p.info and p.info.identity and p.info.identity.user
      if user then names[#names + 1] = user.displayName end
    end
    assert.is_truthy(table.concat(names, ","):find("Bob", 1, true))
    assert.has_error(function() call:invite { participants = {} } end)
  end)

  it("update_recording_status", function()
    local call = w.call()
    local op = assert(call:update_recording_status { status = "recording" })
    assert.equal("completed", op.status)
    for _, r in ipairs(w.emu.requests) do
      if r.path:find("/updateRecordingStatus$") then assert.equal("recording", r.json.status) end
    end
    assert.has_error(function() call:update_recording_status { status = "maybe" } end)
  end)

  it("transfer: transferring, transferAccepted, terminated with 7015", function()
    local call = w.call()
    local states = {}
    call:on("state", function(_, s) states[#states + 1] = s end)
    assert.is_true(call:transfer { target = graphcall.user { id = "carol" } })
    assert.is_true(call:wait("terminated", 5))
    assert.same({ "transferring", "transferAccepted", "terminated" }, states)
    assert.equal(7015, call.result_info.subcode)
    assert.is_nil(w.client.calls[call.id])
    assert.has_error(function() call:transfer {} end, "graphcall.call:transfer: target: required")
  end)

  it("keep_alive by hand, and an operation on a gone call is a graph error", function()
    local call = w.call()
    assert.is_true(call:keep_alive())
    assert.is_true(call:hangup())
    assert.is_true(call:wait("terminated", 5))
    local op, err = call:play_prompt { prompts = { { uri = "https://cdn/x.wav" } } }
    assert.is_nil(op)
    assert.same({ "graph", 404, "8522" }, { err.kind, err.status, err.code })
  end)
end)

describe("incoming calls", function()
  local w
  before_each(function() w = world() end)
  after_each(function() w.close() end)

  local function ring()
    local got
    w.client:on("incoming", function(call) got = call end)
    w.emu:ring { callback_uri = w.rx:url(), app_id = APP_ID }
    w.loop:wait(function() return got ~= nil end, 5)
    return assert(got)
  end

  it("are answered within the deadline and established", function()
    local call = ring()
    assert.equal("incoming", call.state)
    assert.is_true(call:answer { modalities = { "audio" } })
    assert.is_true(call:wait("established", 5))
    w.advance(16) -- past the 15 s deadline: answered, so nothing happens
    assert.equal("established", call.state)
  end)

  it("a handler may wait for what arrives through its own receiver", function()
    w.call() -- the receiver has its signing keys: the next handler runs inside its round
    local steps = {}
    w.client:on("incoming", function(call)
      steps[#steps + 1] = call:answer { modalities = { "audio" } } and "answered" or "not answered"
      -- a second call, whose notifications come through this same receiver
      local other = assert(w.client:call { callback_uri = w.rx:url(),
        targets = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } } })
      steps[#steps + 1] = other:wait("established", 5) and "other established" or "other not established"
    end)
    w.emu:ring { callback_uri = w.rx:url(), app_id = APP_ID }
    assert.is_true(w.loop:wait(function() return #steps == 2 end, 6))
    assert.same({ "answered", "other established" }, steps)
    w.settle()
    assert.equal(0, w.rx.server:pending()) -- the incoming notification was answered too
  end)

  it("are rejected or redirected", function()
    local call = ring()
    assert.is_true(call:reject { reason = "busy" })
    assert.is_true(call:wait("terminated", 5))
    local second = ring()
    assert.is_true(second:redirect { targets = { graphcall.user { id = "dave" } }, timeout = 30 })
    assert.is_true(second:wait("terminated", 5))
    assert.has_error(function() second:reject { reason = "later" } end)
    assert.has_error(function() second:redirect { targets = { graphcall.user { id = "d" } }, timeout = 5 } end)
  end)

  it("missed, end after 15 seconds", function()
    local call = ring()
    w.advance(16)
    w.settle()
    assert.equal("terminated", call.state)
    assert.equal(408, call.result_info.code)
  end)
end)

describe("automatic keepAlive", function()
  it("keeps an established call alive past 45 minutes", function()
    local w = world { keep_alive_interval = 900 }
    local call = w.call()
    for _ = 1, 4 do
      w.advance(900)
      w.settle()
    end
    assert.equal(4, w.requests("/keepAlive"))
    assert.equal("established", call.state)
    w.advance(2000)
    w.settle()
    assert.equal("established", call.state)
    w.close()
  end)

  it("keeps hundreds of calls whose beats fall due together alive, each beat rescheduled", function()
    local w = world { keep_alive_interval = 900 }
    local calls, errors = {}, {}
    w.loop.on_callback_error = function(e) errors[#errors + 1] = tostring(e) end
    for i = 1, 250 do calls[i] = w.call() end
    local function rescheduled()
      for i = 1, 250 do
        if not w.client.keep_alives[calls[i]] then return false end
      end
      return true
    end
    for round = 1, 2 do
      w.advance(900)
      assert.is_true(w.loop:wait(function() return w.requests("/keepAlive") == 250 * round and rescheduled() end, 10))
      for i = 1, 250 do assert.equal("established", calls[i].state) end
    end
    assert.equal(500, w.requests("/keepAlive"))
    assert.same({}, errors)
    w.close()
  end)

  it("without it, the emulator ends the call after 45 minutes: 408/8537", function()
    local w = world { keep_alive_interval = 2700 }
    local call = w.call()
    w.client.keep_alive_start = function() end -- (a bot that forgot; the timer is already set)
    w.loop:cancel_timer(w.client.keep_alives[call])
    w.advance(2760)
    w.settle()
    assert.equal("terminated", call.state)
    assert.same({ 408, 8537 }, { call.result_info.code, call.result_info.subcode })
    assert.is_nil(w.client.calls[call.id])
    w.close()
  end)

  it("a 404 answer marks the call terminated and its handlers hear so", function()
    local w = world { keep_alive_interval = 600 }
    local call = w.call()
    local heard
    call:on("terminated", function(c) heard = c.result_info end)
    w.emu.calls[call.id] = nil -- Graph forgot the call
    w.advance(600)
    w.settle()
    assert.equal("terminated", call.state)
    assert.same({ code = 404, message = "keepAlive: the call no longer exists" }, heard)
    assert.is_nil(w.client.calls[call.id])
    w.close()
  end)

  it("refuses intervals Graph would not survive", function()
    assert.has_error(function() graphcall.new { app_id = APP_ID, keep_alive_interval = 2701 } end)
  end)
end)
