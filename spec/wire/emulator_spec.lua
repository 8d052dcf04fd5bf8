-- The emulator on its own, over raw HTTP: every call operation answered
-- like Graph (status, Location, commsOperation bodies, errors), and the
-- notifications it POSTs afterwards, as a receiver hears them. Each test
-- has its own loop, on a clock the test moves by hand.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local core = require "graphcall.core"
local cjson = require "cjson"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local CALLS = "/v1.0/communications/calls"
local PROMPT = { ["@odata.type"] = "#microsoft.graph.mediaPrompt",
  mediaInfo = { uri = "https://cdn.contoso.com/beep.wav", resourceId = "1D6DE2D4-CD51-4309-8DAA-70768651088E" } }
local HEIDI = { user = { id = "550fae72-d251-43ec-868c-373732c2704f", displayName = "Heidi Steen" } }

-- The id Graph writes in an operation's resourceUrl: upper case, no dashes.
local function graph_op_id(id) return (id:gsub("-", "")):upper() end

-- A loop on a hand-moved clock, an emulator, and a receiver that keeps what
-- it hears (signed notifications, verified with the emulator's keys).
local function world(opts)
  local w = { now = 1000, heard = {}, closers = {} }
  w.loop = graphcall.new_loop { timeout = 5, clock = function() return w.now end }
  local emu_opts = { loop = w.loop, token = "tok", app_id = APP_ID, notify_delay = 0, operation_delay = 0 }
  for k, v in pairs(opts or {}) do emu_opts[k] = v end
  w.emu = assert(emulator.start(emu_opts))
  w.client = graphcall.new { app_id = APP_ID, token = "tok", graph_url = w.emu.url, loop = w.loop }

  -- a receiver; what it hears goes to w.heard, tagged with `tag`
  function w.receiver(tag, path)
    local rx = assert(w.client:receiver { path = path, openid_url = w.emu.openid_url, handler = function(batch)
      for _, n in ipairs(batch) do w.heard[#w.heard + 1] = { n = n, at = tag } end
    end })
    table.insert(w.closers, 1, rx)
    return rx
  end
  w.rx = w.receiver("rx")

  -- step until done() (a wall-clock bound keeps a broken test from hanging)
  function w.until_(done)
    local deadline = core.monotonic() + 3
    while not done() and core.monotonic() < deadline do w.loop:step(0.01) end
    assert.is_true(done())
  end
  -- advance the clock, then run what became due and deliver what it sent
  function w.advance(s)
    w.now = w.now + s
    w.loop:step(0)
    w.until_(function() return w.emu:idle() end)
  end
  -- wait until `count` notifications were heard and every one was answered
  function w.hear(count)
    w.until_(function() return #w.heard >= count and w.emu:idle() end)
    assert.equal(count, #w.heard)
    return w.heard[count].n
  end
  -- a raw request to the emulator; the body (a table) is sent as JSON
  function w.request(method, path, body)
    local result
    w.loop:request({ method = method, url = w.emu.url .. path, body = type(body) == "table" and cjson.encode(body)
      or body, headers = { Authorization = "Bearer tok", ["Content-Type"] = "application/json" } },
      function(r) result = r end)
    w.until_(function() return result ~= nil end)
    if result.body and result.body ~= "" and (result.headers["content-type"] or ""):find("json") then
      result.json = cjson.decode(result.body)
    end
    return result
  end
  function w.post(path, body) return w.request("POST", path, body or {}) end
  -- place an outgoing call (service-hosted media unless `media` is given) and hear it established
  function w.place(media)
    local heard = #w.heard -- the notifications may arrive while the POST is answered
    local r = w.post(CALLS, { ["@odata.type"] = "#microsoft.graph.call", callbackUri = w.rx:url(),
      source = { identity = { application = { id = APP_ID } } },
      targets = { { ["@odata.type"] = "#microsoft.graph.invitationParticipantInfo", identity = HEIDI } },
      requestedModalities = { "audio" },
      mediaConfig = media or { ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig" } })
    assert.equal(201, r.status)
    w.hear(heard + 2)
    return r.json.id
  end
  -- ring the bot and hear the incoming call
  function w.ring(ring_opts)
    ring_opts = ring_opts or {}
    ring_opts.callback_uri = ring_opts.callback_uri or w.rx:url()
    local heard = #w.heard
    local id = w.emu:ring(ring_opts)
    w.hear(heard + 1)
    return id
  end
  -- the states heard, in order, from notification `from` on
  function w.states(from)
    local list = {}
    for i = from or 1, #w.heard do list[#list + 1] = w.heard[i].n.state or "-" end
    return list
  end
  function w.close()
    for _, c in ipairs(w.closers) do c:close() end
    w.emu:close()
    w.loop:close()
  end
  return w
end

-- Run fn(w) in a fresh world, closing it whatever happens.
local function with_world(opts, fn)
  if fn == nil then opts, fn = nil, opts end
  local w = world(opts)
  local ok, err = pcall(fn, w)
  w.close()
  assert(ok, err)
end

local function assert_error(r, status, code, message)
  assert.equal(status, r.status)
  assert.equal(code, r.json.error.code)
  if message then assert.matches(message, r.json.error.message, 1, true) end
end

-- The answer to an operation: 200, a Location to the operation, its body.
local function assert_operation(w, r, call_id, odata_type, status, client_context)
  assert.equal(200, r.status)
  local op = r.json
  assert.equal("#microsoft.graph." .. odata_type, op["@odata.type"])
  assert.matches(UUID, op.id)
  assert.equal(op.id:lower(), op.id)
  assert.equal(status, op.status)
  assert.equal(client_context, op.clientContext)
  assert.equal(w.emu.url .. CALLS .. "/" .. call_id .. "/operations/" .. op.id, r.headers.location)
  return op
end

-- A heard notification is the completion of operation `op` of call `call_id`.
local function assert_completion(n, call_id, op, odata_type, status)
  assert.equal("deleted", n.change_type)
  assert.equal("operation", n.kind)
  assert.equal(call_id, n.call_id)
  assert.equal(graph_op_id(op.id), n.operation_id)
  assert.equal("/communications/calls/" .. call_id .. "/operations/" .. graph_op_id(op.id), n.resource_url)
  assert.equal("#microsoft.graph." .. odata_type, n.odata_type)
  assert.equal(status, n.status)
  assert.equal(op.id, n.resource_data.id)
  assert.equal(op.clientContext, n.client_context)
end

describe("emulator: incoming calls", function()
  it("ring POSTs a created notification with the whole call; answer (202) establishes it at its callbackUri",
    function()
    with_world(function(w)
      local id = w.ring { from = { user = { id = "u-1", displayName = "Alex" } }, modalities = { "audio", "video" } }
      assert.matches(UUID, id)
      local n = w.heard[1].n
      assert.equal("created", n.change_type)
      assert.equal("incoming", n.state)
      assert.equal("incoming", n.direction)
      assert.equal(id, n.call_id)
      assert.equal("/communications/calls/" .. id, n.resource_url)
      local call = n.resource_data
      assert.equal("Alex", call.source.identity.user.displayName)
      assert.equal(APP_ID, call.targets[1].identity.application.id)
      assert.same({ "audio", "video" }, call.requestedModalities)
      assert.equal(w.rx:url(), call.callbackUri)
      assert.matches(UUID, call.myParticipantId)
      assert.equal(w.emu.tenant, call.tenantId)
      assert.equal("incoming", w.emu.calls[id].state)

      -- the answer's callbackUri overrides the call's
      local other = w.receiver("other", "/api/other")
      local r = w.post(CALLS .. "/" .. id .. "/answer", { callbackUri = other:url(), acceptedModalities = { "audio" },
        mediaConfig = { ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig" } })
      assert.equal(202, r.status)
      assert.equal("", r.body)
      w.hear(3)
      assert.same({ "incoming", "establishing", "established" }, w.states())
      assert.equal("other", w.heard[2].at)
      assert.equal("other", w.heard[3].at)
      assert.equal("incoming", w.heard[3].n.direction)
      assert.equal("established", w.request("GET", CALLS .. "/" .. id).json.state)

      -- only an incoming call can be answered
      r = w.post(CALLS .. "/" .. id .. "/answer", { acceptedModalities = { "audio" }, mediaConfig = {} })
      assert_error(r, 400, "BadRequest", "needs a call in state incoming")
    end)
  end)

  it("answer refuses a body without acceptedModalities or mediaConfig", function()
    with_world(function(w)
      local id = w.ring()
      local path = CALLS .. "/" .. id .. "/answer"
      assert_error(w.post(path, { mediaConfig = {} }), 400, "BadRequest", "acceptedModalities")
      assert_error(w.post(path, { acceptedModalities = {}, mediaConfig = {} }), 400, "BadRequest",
        "acceptedModalities must be a non-empty array")
      assert_error(w.post(path, { acceptedModalities = { "smell" }, mediaConfig = {} }), 400, "BadRequest",
        "acceptedModalities[1]")
      assert_error(w.post(path, { acceptedModalities = { "audio" } }), 400, "8523", "Missing mediaConfig")
      assert_error(w.post(path, "[1,2]"), 400, "BadRequest", "not a JSON object")
      assert_error(w.post(path, "{nope"), 400, "BadRequest", "not a JSON object")
      assert.equal("incoming", w.emu.calls[id].state) -- nothing happened
    end)
  end)

  it("reject (202, reason in any case) ends the call with a deleted notification", function()
    with_world(function(w)
      local id = w.ring()
      assert_error(w.post(CALLS .. "/" .. id .. "/reject", { reason = "later" }), 400, "BadRequest", "reason")
      local r = w.post(CALLS .. "/" .. id .. "/reject", { reason = "busy" })
      assert.equal(202, r.status)
      assert.equal("", r.body)
      local n = w.hear(2)
      assert.equal("deleted", n.change_type)
      assert.equal("terminated", n.state)
      assert.is_nil(n.result_info) -- as Graph's example: no resultInfo
      assert.is_nil(w.emu.calls[id])
      assert_error(w.request("GET", CALLS .. "/" .. id), 404, "8522", "Call not found.")
      -- reject of a call that is not incoming
      local out = w.place()
      assert_error(w.post(CALLS .. "/" .. out .. "/reject", { reason = "None" }), 400, "BadRequest", "incoming")
    end)
  end)

  it("redirect (202) checks targets and timeout, then ends the call", function()
    with_world(function(w)
      local id = w.ring()
      local path = CALLS .. "/" .. id .. "/redirect"
      local target = { identity = HEIDI }
      assert_error(w.post(path, {}), 400, "BadRequest", "targets")
      assert_error(w.post(path, { targets = { { identity = {} } } }), 400, "BadRequest", "targets[1] has no identity")
      assert_error(w.post(path, { targets = { target }, timeout = 10 }), 400, "BadRequest", "15 to 90")
      assert_error(w.post(path, { targets = { target }, timeout = 91 }), 400, "BadRequest", "15 to 90")
      assert.equal(202, w.post(path, { targets = { target }, timeout = 30, callbackUri = w.rx:url() }).status)
      local n = w.hear(2)
      assert.equal("deleted", n.change_type)
      assert.equal("terminated", n.state)
      assert.equal("incoming", n.direction)
      assert_error(w.post(path, { targets = { target } }), 404, "8522")
    end)
  end)

  it("not answered within incoming_timeout (loop clock) the call ends 408/10057", function()
    with_world(function(w)
      local id = w.ring()
      w.advance(14)
      assert.equal(1, #w.heard)
      w.advance(1)
      local n = w.hear(2)
      assert.equal("deleted", n.change_type)
      assert.equal("terminated", n.state)
      assert.same({ code = 408, subcode = 10057,
        message = "Call timed out due to no signaling from callee endpoints." }, n.result_info)
      assert_error(w.post(CALLS .. "/" .. id .. "/answer", { acceptedModalities = { "audio" }, mediaConfig = {} }),
        404, "8522", "Call not found.")
    end)
  end)

  it("an answered call does not time out; incoming_timeout is an option", function()
    with_world({ incoming_timeout = 5 }, function(w)
      local id = w.ring()
      assert.equal(202, w.post(CALLS .. "/" .. id .. "/answer", { acceptedModalities = { "audio" },
        mediaConfig = { ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig" } }).status)
      w.hear(3)
      w.advance(30)
      assert.equal(3, #w.heard)
      local late = w.ring()
      w.advance(5)
      assert.equal(408, w.hear(5).result_info.code)
      assert.is_nil(w.emu.calls[late])
    end)
  end)

  it("ring checks its options", function()
    with_world({ app_id = false }, function(w)
      assert.has_error(function() w.emu:ring { callback_uri = w.rx:url() } end,
        "emulator:ring: app_id is required (or the emulator's app_id option)")
      assert.has_error(function() w.emu:ring { app_id = APP_ID } end, "emulator:ring: callback_uri is required")
      assert.has_error(function() w.emu:ring { callback_uri = "x", app_id = APP_ID, colour = "red" } end)
      assert.has_error(function() w.emu:ring { callback_uri = "x", app_id = APP_ID, modalities = {} } end,
        "emulator:ring: modalities must be a non-empty array")
      assert.same({}, w.emu.calls)
    end)
  end)
end)

describe("emulator: keepAlive", function()
  it("answers 200; a call not kept alive for 45 minutes of the loop's clock ends 408/8537", function()
    with_world(function(w)
      local id = w.place()
      w.advance(2000)
      local r = w.post(CALLS .. "/" .. id .. "/keepAlive", "")
      assert.equal(200, r.status)
      assert.equal("", r.body)
      w.advance(2000) -- 3000 s since the call was created, 2000 since it was kept alive
      assert.equal(200, w.request("GET", CALLS .. "/" .. id).status)
      w.advance(760)  -- 2760 s since it was kept alive: the next check ends it
      local n = w.hear(3)
      assert.equal("deleted", n.change_type)
      assert.equal("terminated", n.state)
      assert.same({ code = 408, subcode = 8537, message = "Keep Alive timeout, cleaned up inactive call." },
        n.result_info)
      assert_error(w.post(CALLS .. "/" .. id .. "/keepAlive", ""), 404, "8522", "Call not found.")
    end)
  end)

  it("keep_alive_timeout is an option; every kept-alive call survives", function()
    with_world({ keep_alive_timeout = 120 }, function(w)
      local a, b = w.place(), w.place()
      w.advance(100)
      assert.equal(200, w.post(CALLS .. "/" .. b .. "/keepAlive").status)
      w.advance(60)
      local n = w.hear(5)
      assert.equal(a, n.call_id)
      assert.equal(8537, n.result_info.subcode)
      assert.is_nil(w.emu.calls[a])
      assert.is_table(w.emu.calls[b])
    end)
  end)
end)

describe("emulator: hang up, unknown calls and routes", function()
  it("DELETE answers 204, then terminating and terminated 200/5001; the call is then gone", function()
    with_world(function(w)
      local id = w.place()
      local r = w.request("DELETE", CALLS .. "/" .. id)
      assert.equal(204, r.status)
      w.hear(4)
      assert.same({ "establishing", "established", "terminating", "terminated" }, w.states())
      assert.same({ code = 200, subcode = 5001, message = "The conversation has ended." }, w.heard[4].n.result_info)
      -- every operation on a terminated call: 404 8522
      for _, action in ipairs { "keepAlive", "playPrompt", "mute", "transfer", "participants/invite" } do
        assert_error(w.post(CALLS .. "/" .. id .. "/" .. action, {}), 404, "8522", "Call not found.")
      end
      assert_error(w.request("GET", CALLS .. "/" .. id .. "/participants"), 404, "8522")
    end)
  end)

  it("unknown calls get 404 8522, unknown actions 404 UnknownError, wrong methods 405", function()
    with_world(function(w)
      for _, path in ipairs { "/nope/answer", "/nope/keepAlive", "/nope/participants", "/nope/frobnicate" } do
        assert_error(w.post(CALLS .. path, {}), 404, "8522", "Call not found.")
      end
      local id = w.place()
      assert_error(w.post(CALLS .. "/" .. id .. "/frobnicate", {}), 404, "UnknownError")
      assert_error(w.post(CALLS .. "/" .. id .. "/operations/x", {}), 404, "UnknownError")
      assert_error(w.request("GET", CALLS .. "/" .. id .. "/playPrompt"), 405, "BadRequest")
      assert_error(w.post(CALLS .. "/" .. id .. "/participants", {}), 405, "BadRequest")
      assert_error(w.request("DELETE", CALLS .. "/" .. id .. "/participants/invite"), 405, "BadRequest")
      -- the token is checked first
      local r
      w.loop:request({ method = "POST", url = w.emu.url .. CALLS .. "/" .. id .. "/keepAlive" },
        function(x) r = x end)
      w.until_(function() return r ~= nil end)
      assert.equal(401, r.status)
    end)
  end)
end)

describe("emulator: media operations", function()
  it("playPrompt answers 200 with a running operation, then completes it by a deleted notification", function()
    with_world(function(w)
      local id = w.place()
      local r = w.post(CALLS .. "/" .. id .. "/playPrompt", { prompts = { PROMPT }, clientContext = "ctx-1" })
      local op = assert_operation(w, r, id, "playPromptOperation", "running", "ctx-1")
      local n = w.hear(3)
      assert_completion(n, id, op, "playPromptOperation", "completed")
      assert.same({ code = 200, subcode = 0, message = "Action completed successfully." }, n.result_info)
      assert.same({ call_id = id, kind = "playPrompt", id = op.id, status = "completed", client_context = "ctx-1" },
        w.emu.operations[1])
      -- the other collections answer with their own Location
      r = w.post("/beta/communications/calls/" .. id .. "/playPrompt", { prompts = { PROMPT, PROMPT } })
      assert.equal(w.emu.url .. "/beta/communications/calls/" .. id .. "/operations/" .. r.json.id, r.headers.location)
      assert.equal("completed", w.hear(4).status)
    end)
  end)

  it("playPrompt checks its prompts and needs service-hosted media on an established call", function()
    with_world(function(w)
      local id = w.place()
      local path = CALLS .. "/" .. id .. "/playPrompt"
      assert_error(w.post(path, {}), 400, "BadRequest", "prompts")
      assert_error(w.post(path, { prompts = {} }), 400, "BadRequest", "at least 1")
      local many = {}
      for i = 1, 21 do many[i] = PROMPT end
      assert_error(w.post(path, { prompts = many }), 400, "BadRequest", "at most 20")
      assert_error(w.post(path, { prompts = { { mediaInfo = {} } } }), 400, "BadRequest", "prompts[1].mediaInfo.uri")
      assert_error(w.post(path, { prompts = { PROMPT }, clientContext = ("x"):rep(257) }), 400, "BadRequest",
        "clientContext")
      local app = w.place { ["@odata.type"] = "#microsoft.graph.appHostedMediaConfig", blob = "<blob>" }
      assert_error(w.post(CALLS .. "/" .. app .. "/playPrompt", { prompts = { PROMPT } }), 400, "BadRequest",
        "serviceHostedMediaConfig")
      local incoming = w.ring()
      assert_error(w.post(CALLS .. "/" .. incoming .. "/playPrompt", { prompts = { PROMPT } }), 400, "BadRequest",
        "state established")
      assert.same({}, w.emu.operations)
    end)
  end)

  it("recordResponse completes with a recording the bot can download with its token", function()
    with_world(function(w)
      local id = w.place()
      local path = CALLS .. "/" .. id .. "/recordResponse"
      assert_error(w.post(path, { prompts = { PROMPT, PROMPT } }), 400, "BadRequest", "at most 1")
      assert_error(w.post(path, { initialSilenceTimeoutInSeconds = 0 }), 400, "BadRequest", "1 to 120")
      assert_error(w.post(path, { maxRecordDurationInSeconds = 121 }), 400, "BadRequest", "1 to 120")
      assert_error(w.post(path, { playBeep = "yes" }), 400, "BadRequest", "playBeep")
      assert_error(w.post(path, { stopTones = { 1 } }), 400, "BadRequest", "stopTones")
      local r = w.post(path, { prompts = { PROMPT }, bargeInAllowed = false, initialSilenceTimeoutInSeconds = 5,
        maxSilenceTimeoutInSeconds = 2, maxRecordDurationInSeconds = 10, playBeep = true, stopTones = { "#", "1" },
        clientContext = "rec" })
      local op = assert_operation(w, r, id, "recordOperation", "running", "rec")
      local n = w.hear(3)
      assert_completion(n, id, op, "recordOperation", "completed")
      assert.same({ code = 200, subcode = 8515, message = "Action completed, max record duration reached." },
        n.result_info)
      local data = n.resource_data
      assert.equal(w.emu.url .. "/recordings/" .. op.id, data.recordingLocation)
      assert.equal("maxRecordDurationReached", data.completionReason)
      local got
      w.loop:request({ method = "GET", url = data.recordingLocation,
        headers = { Authorization = "Bearer " .. data.recordingAccessToken } }, function(x) got = x end)
      w.until_(function() return got ~= nil end)
      assert.equal(200, got.status)
      assert.equal("RIFF", got.body:sub(1, 4))
      assert.equal("WAVE", got.body:sub(9, 12))
      got = nil
      w.loop:request({ method = "GET", url = data.recordingLocation, headers = { Authorization = "Bearer tok" } },
        function(x) got = x end)
      w.until_(function() return got ~= nil end)
      assert.equal(401, got.status)
    end)
  end)

  it("cancelMediaProcessing fails the queued and running prompts and recordings with 400/8508", function()
    with_world({ operation_delay = 30 }, function(w)
      local id = w.place()
      local p1 = w.post(CALLS .. "/" .. id .. "/playPrompt", { prompts = { PROMPT }, clientContext = "p1" }).json
      local p2 = w.post(CALLS .. "/" .. id .. "/playPrompt", { prompts = { PROMPT }, clientContext = "p2" }).json
      local rec = w.post(CALLS .. "/" .. id .. "/recordResponse", { clientContext = "r" }).json
      w.advance(20) -- p1 is still playing, the others wait their turn
      assert.equal(2, #w.heard)
      local r = w.post(CALLS .. "/" .. id .. "/cancelMediaProcessing", { clientContext = "stop" })
      local cancel = assert_operation(w, r, id, "cancelMediaProcessingOperation", "completed", "stop")
      w.hear(5)
      local cancelled = { code = 400, subcode = 8508, message = "Action failed, the operation was cancelled." }
      for i, op in ipairs { p1, p2, rec } do
        local n = w.heard[2 + i].n
        assert_completion(n, id, op, i < 3 and "playPromptOperation" or "recordOperation", "failed")
        assert.same(cancelled, n.result_info)
      end
      assert.equal("mediaOperationCanceled", w.heard[3].n.resource_data.completionReason)
      assert.equal("operationCanceled", w.heard[5].n.resource_data.completionReason)
      assert.equal("", w.heard[5].n.resource_data.recordingLocation)
      -- nothing more: no completion for the cancel itself, none for the cancelled ones
      w.advance(100)
      assert.equal(5, #w.heard)
      local statuses = {}
      for _, o in ipairs(w.emu.operations) do statuses[#statuses + 1] = o.kind .. ":" .. o.status end
      assert.same({ "playPrompt:failed", "playPrompt:failed", "recordResponse:failed",
        "cancelMediaProcessing:completed" }, statuses)
      assert.equal(cancel.id, w.emu.operations[4].id)
    end)
  end)

  it("media operations run one after another; a barge-in recording cancels what is queued", function()
    with_world({ operation_delay = 10 }, function(w)
      local id = w.place()
      local p1 = w.post(CALLS .. "/" .. id .. "/playPrompt", { prompts = { PROMPT } }).json
      local p2 = w.post(CALLS .. "/" .. id .. "/playPrompt", { prompts = { PROMPT } }).json
      w.advance(10)
      assert_completion(w.hear(3), id, p1, "playPromptOperation", "completed")
      local rec = w.post(CALLS .. "/" .. id .. "/recordResponse", { bargeInAllowed = true }).json
      w.hear(4)
      assert_completion(w.heard[4].n, id, p2, "playPromptOperation", "failed")
      w.advance(10)
      assert_completion(w.hear(5), id, rec, "recordOperation", "completed")
    end)
  end)

  it("hanging up drops the operations still pending: no completion follows", function()
    with_world({ operation_delay = 30 }, function(w)
      local id = w.place()
      assert.equal(200, w.post(CALLS .. "/" .. id .. "/playPrompt", { prompts = { PROMPT } }).status)
      assert.equal(204, w.request("DELETE", CALLS .. "/" .. id).status)
      w.hear(4)
      w.advance(60)
      assert.same({ "establishing", "established", "terminating", "terminated" }, w.states())
      assert.equal("failed", w.emu.operations[1].status)
    end)
  end)

  it("subscribeToTone answers completed; press_tone then sends toneInfo notifications", function()
    with_world(function(w)
      local id = w.place()
      assert.is_false(w.emu:press_tone(id, "1")) -- not subscribed: Graph sends nothing
      local r = w.post(CALLS .. "/" .. id .. "/subscribeToTone", { clientContext = "tones" })
      assert_operation(w, r, id, "subscribeToToneOperation", "completed", "tones")
      assert.is_true(w.emu:press_tone(id, "1"))
      assert.is_true(w.emu:press_tone(id, "#"))
      assert.is_true(w.emu:press_tone(id, "tone9"))
      w.hear(5)
      local tones = {}
      for i = 3, 5 do
        local n = w.heard[i].n
        assert.equal("updated", n.change_type)
        assert.equal("call", n.kind)
        assert.equal("established", n.state)
        tones[#tones + 1] = ("%d:%s"):format(n.resource_data.toneInfo.sequenceId, n.resource_data.toneInfo.tone)
      end
      assert.same({ "1:tone1", "2:pound", "3:tone9" }, tones)
      assert.has_error(function() w.emu:press_tone(id, "11") end, "emulator:press_tone: unknown tone 11")
      assert.has_error(function() w.emu:press_tone("nope", "1") end, "emulator:press_tone: no such call: nope")
    end)
  end)
end)

describe("emulator: participants", function()
  it("GET participants lists the bot (myParticipantId) and the targets, or the caller", function()
    with_world(function(w)
      local id = w.place()
      local r = w.request("GET", CALLS .. "/" .. id .. "/participants")
      assert.equal(200, r.status)
      assert.matches("/participants$", r.json["@odata.context"])
      local list = r.json.value
      assert.equal(2, #list)
      assert.equal(w.emu.calls[id].my_participant_id, list[1].id)
      assert.equal(APP_ID, list[1].info.identity.application.id)
      assert.equal("Heidi Steen", list[2].info.identity.user.displayName)
      for _, p in ipairs(list) do
        assert.equal("#microsoft.graph.participant", p["@odata.type"])
        assert.is_false(p.isMuted)
        assert.is_false(p.isInLobby)
        assert.equal("audio", p.mediaStreams[1].mediaType)
      end
      local incoming = w.ring()
      list = w.request("GET", CALLS .. "/" .. incoming .. "/participants").json.value
      assert.equal(APP_ID, list[1].info.identity.application.id)
      assert.equal("Test User", list[2].info.identity.user.displayName)
    end)
  end)

  it("mute and unmute answer completed and update the bot's isMuted in a roster notification", function()
    with_world(function(w)
      local id = w.place()
      local r = w.post(CALLS .. "/" .. id .. "/mute", { clientContext = "m" })
      assert_operation(w, r, id, "muteParticipantOperation", "completed", "m")
      local n = w.hear(3)
      assert.equal("updated", n.change_type)
      assert.equal("participants", n.kind)
      assert.equal("/communications/calls/" .. id .. "/participants", n.resource_url)
      assert.equal("#microsoft.graph.participant", n.odata_type)
      assert.equal(2, #n.resource_data)
      assert.is_true(n.resource_data[1].isMuted)
      assert.is_false(n.resource_data[2].isMuted)
      assert.is_true(w.request("GET", CALLS .. "/" .. id .. "/participants").json.value[1].isMuted)
      r = w.post(CALLS .. "/" .. id .. "/unmute")
      assert_operation(w, r, id, "unmuteParticipantOperation", "completed", nil)
      assert.is_false(w.hear(4).resource_data[1].isMuted)
      assert.same({ "mute", "unmute" }, { w.emu.operations[1].kind, w.emu.operations[2].kind })
    end)
  end)

  it("participants/invite answers Running, then completes and adds them to the roster", function()
    with_world({ operation_delay = 5 }, function(w)
      local id = w.place()
      local path = CALLS .. "/" .. id .. "/participants/invite"
      assert_error(w.post(path, {}), 400, "BadRequest", "participants")
      local six = {}
      for i = 1, 6 do six[i] = { identity = { user = { id = "u" .. i } } } end
      assert_error(w.post(path, { participants = six }), 400, "BadRequest", "at most 5")
      local invited = { { ["@odata.type"] = "#microsoft.graph.invitationParticipantInfo",
        identity = { user = { id = "278405a3-f568-4b3e-b684-009193463064", identityProvider = "AAD" } } } }
      local r = w.post(path, { participants = invited, clientContext = "inv" })
      local op = assert_operation(w, r, id, "inviteParticipantsOperation", "Running", "inv")
      assert.equal("278405a3-f568-4b3e-b684-009193463064", op.participants[1].identity.user.id)
      assert.equal("running", w.emu.operations[1].status)
      w.advance(4)
      assert.equal(2, #w.heard)
      w.advance(1)
      w.hear(4)
      local done, roster = w.heard[3].n, w.heard[4].n
      assert_completion(done, id, op, "inviteParticipantsOperation", "completed")
      assert.equal("278405a3-f568-4b3e-b684-009193463064", done.resource_data.participants[1].identity.user.id)
      assert.equal("participants", roster.kind)
      assert.equal(3, #roster.resource_data)
      assert.equal("278405a3-f568-4b3e-b684-009193463064", roster.resource_data[3].info.identity.user.id)
      assert.equal(3, #w.request("GET", CALLS .. "/" .. id .. "/participants").json.value)
      assert.same({ call_id = id, kind = "invite", id = op.id, status = "completed", client_context = "inv" },
        w.emu.operations[1])
    end)
  end)
end)

describe("emulator: transfer and recording status", function()
  it("transfer (202): transferring, transferAccepted, then terminated 0/7015", function()
    with_world(function(w)
      local id = w.place()
      local path = CALLS .. "/" .. id .. "/transfer"
      assert_error(w.post(path, {}), 400, "BadRequest", "transferTarget")
      assert_error(w.post(path, { transferTarget = { identity = {} } }), 400, "BadRequest", "transferTarget")
      local r = w.post(path, { transferTarget = { endpointType = "default", identity = HEIDI } })
      assert.equal(202, r.status)
      assert.equal("", r.body)
      local n = w.hear(5)
      assert.same({ "establishing", "established", "transferring", "transferAccepted", "terminated" }, w.states())
      assert.equal("deleted", n.change_type)
      -- code 0, as call-transfer.md's notifications show it (call-delete.md's table says 200)
      assert.same({ code = 0, subcode = 7015, message = "GracefulTransferCompleted" }, n.result_info)
      assert_error(w.post(CALLS .. "/" .. id .. "/keepAlive"), 404, "8522")
    end)
  end)

  it("updateRecordingStatus answers completed and checks the status", function()
    with_world(function(w)
      local id = w.place()
      local path = CALLS .. "/" .. id .. "/updateRecordingStatus"
      assert_error(w.post(path, {}), 400, "BadRequest", "status")
      assert_error(w.post(path, { status = "paused" }), 400, "BadRequest", "notRecording, recording, failed")
      local r = w.post(path, { status = "recording", clientContext = "rs" })
      assert_operation(w, r, id, "updateRecordingStatusOperation", "completed", "rs")
      assert.equal("recording", w.emu.calls[id].recording_status)
      w.advance(1)
      assert.equal(2, #w.heard) -- completed at once: no notification follows
    end)
  end)
end)

describe("emulator: the notification token control", function()
  it("GET /_emulator/notification_token gives the token the emulator signs its notifications with", function()
    with_world(function(w)
      local id = w.place()
      local r = w.request("GET", "/_emulator/notification_token")
      assert.equal(200, r.status)
      assert.equal(APP_ID, r.json.app_id) -- the emulator's app_id option
      assert.equal(w.emu:notification_token(APP_ID), r.json.token) -- the same, cached
      -- a body POSTed with it passes the receiver's verification, as the emulator's own do
      local body = cjson.encode { value = { { changeType = "updated", resourceUrl = "/communications/calls/" .. id,
        resourceData = { ["@odata.type"] = "#microsoft.graph.call", state = "established",
          toneInfo = { ["@odata.type"] = "#microsoft.graph.toneInfo", sequenceId = 7, tone = "tone7" } } } } }
      local function post(token)
        local res
        w.loop:request({ method = "POST", url = w.rx:url(), body = body, headers = {
          Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" } }, function(x) res = x end)
        w.until_(function() return res ~= nil end)
        return res.status
      end
      assert.equal(202, post(r.json.token))
      assert.equal(7, w.hear(3).resource_data.toneInfo.sequenceId)
      -- another app's token (another audience) is refused
      local other = w.request("GET", "/_emulator/notification_token?app_id=11111111-2222-3333-4444-555555555555")
      assert.equal("11111111-2222-3333-4444-555555555555", other.json.app_id)
      assert.equal(401, post(other.json.token))
    end)
  end)

  it("needs an app id when the emulator has none and no app called it", function()
    with_world({ app_id = false }, function(w)
      local r = w.request("GET", "/_emulator/notification_token")
      assert.equal(400, r.status)
      assert.matches("app_id is required", r.json.error, 1, true)
    end)
  end)
end)
