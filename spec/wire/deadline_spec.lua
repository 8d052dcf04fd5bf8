-- No wait outlives its deadline: an error raised by a step that runs from
-- the loop (a retry timer, a transfer's callback) reaches the caller that
-- waits for it, in the caller's frame, and every wait has a bound.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local core = require "graphcall.core"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"

local function world(token, opts)
  opts = opts or {}
  local w = {}
  w.loop = graphcall.new_loop { timeout = opts.timeout or 2 }
  w.emu = assert(emulator.start { loop = w.loop, token = "tok", notify_delay = 0 })
  w.client = graphcall.new { app_id = APP_ID, token = token, graph_url = w.emu.url, loop = w.loop,
    max_retries = opts.max_retries or 2, max_retry_wait = 0 }
  function w.close()
    w.emu:close()
    w.loop:close()
  end
  return w
end

-- a token function that answers "tok" first, then `bad` (a value or a function that raises)
local function token_then(bad)
  local n = 0
  return function()
    n = n + 1
    if n == 1 then return "tok" end
    if type(bad) == "function" then return bad() end
    return bad
  end
end

describe("a retry that raises", function()
  it("a token with a newline on the retry: get_call raises it in the caller's frame, at once", function()
    local w = world(token_then("tok\nX-Injected: 1"))
    w.emu:fail_next { status = 503 }
    local started = core.monotonic()
    local ok, err = pcall(w.client.get_call, w.client, "some-id")
    local took = core.monotonic() - started
    w.close()
    assert.is_false(ok)
    assert.matches("control character", tostring(err))
    assert.is_true(took < 2, ("took %.2f s"):format(took))
    assert.same({}, w.loop.errors) -- parked for the caller, not lost to the hook
  end)

  it("the async form gets done(nil, err) with kind 'raised', exactly once", function()
    local w = world(token_then("tok\r"))
    w.emu:fail_next { status = 429 }
    local transport = require "graphcall.transport"
    local calls, got = 0, nil
    transport.send_async({ loop = w.loop, tokens = require("graphcall.client").tokens(w.client), client = w.client,
      max_retries = 2, max_retry_wait = 0 }, { method = "GET", url = w.emu.url .. "/v1.0/communications/calls/x" },
      function(r, e) calls = calls + 1; got = { r, e } end)
    assert.is_true(w.loop:run_until(function() return calls > 0 end, 3))
    w.loop:run_until(nil, 0.05)
    w.close()
    assert.equal(1, calls)
    assert.is_nil(got[1])
    assert.equal("raised", got[2].kind)
    assert.matches("control character", got[2].message)
  end)

  it("a retry whose token function raises: the create raises, and places no second call", function()
    local w = world(token_then(function() error("vault unreachable") end))
    w.emu:fail_next { status = 429 }
    local rx = assert(w.client:receiver { verify = false })
    local ok, call, err = pcall(w.client.call, w.client, { callback_uri = rx:url(),
      targets = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } } })
    rx:close()
    local creates = 0
    for _, r in ipairs(w.emu.requests) do
      if r.method == "POST" and r.path:find("/calls$") then creates = creates + 1 end
    end
    w.close()
    -- a raising token function is a token failure (kind auth), returned
    assert.is_true(ok)
    assert.is_nil(call)
    assert.equal("auth", err.kind)
    assert.matches("vault unreachable", err.message)
    assert.equal(1, creates)
  end)
end)

describe("every wait has a deadline", function()
  it("loop:wait without a timeout raises, naming the rule", function()
    local loop = graphcall.new_loop()
    assert.has_error(function() loop:wait(function() return false end) end,
      "graphcall.loop.wait: timeout must be a number of seconds (every wait has a deadline)")
    loop:close()
  end)

  it("a wait whose timers all raise ends at its deadline, and the errors reach the hook", function()
    local seen = {}
    local loop = graphcall.new_loop { on_error = function(e) seen[#seen + 1] = e end }
    for i = 1, 3 do loop:timer(0.01 * i, function() error("timer " .. i) end) end
    local started = core.monotonic()
    assert.is_false(loop:wait(function() return false end, 0.2))
    local took = core.monotonic() - started
    loop:close()
    assert.equal(3, #seen)
    assert.matches("timer 3", tostring(seen[3]))
    assert.is_true(took >= 0.2 and took < 1, ("took %.2f s"):format(took))
  end)

  it("a request that never completes ends at the transport's deadline as a timeout", function()
    local w = world("tok", { timeout = 0.2, max_retries = 0 })
    w.emu:fail_next { delay = 5 }
    local started = core.monotonic()
    local data, err = w.client:get_call("some-id")
    local took = core.monotonic() - started
    w.close()
    assert.is_nil(data)
    assert.equal("timeout", err.kind)
    assert.is_true(took < 1.5, ("took %.2f s"):format(took))
  end)
end)
