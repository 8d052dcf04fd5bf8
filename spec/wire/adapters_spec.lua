-- Another event loop drives graphcall: a full call round trip against the
-- emulator inside luv and inside cqueues, while the host loop keeps running.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local TARGET = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } }

local function world()
  local w = { loop = graphcall.new_loop() }
  w.emu = assert(emulator.start { loop = w.loop, token = "tok", notify_delay = 0 })
  w.client = graphcall.new { app_id = APP_ID, token = "tok", graph_url = w.emu.url, loop = w.loop }
  w.rx = assert(w.client:receiver { openid_url = w.emu.openid_url })
  function w.close() w.rx:close(); w.emu:close(); w.loop:close() end
  return w
end

-- the bot's task: place a call (the answer delayed 0.3 s), see it
-- established, hang up, see it terminated
local function round_trip(w, out)
  w.emu:fail_next { delay = 0.3 }
  local call, err = w.client:call { callback_uri = w.rx:url(), targets = TARGET }
  assert(call, err)
  assert(call:wait("established", 5))
  assert(call:hangup())
  assert(call:wait("terminated", 5))
  out.state = call.state
end

describe("the luv adapter", function()
  local uv = require "luv"

  it("runs a call round trip in a task while luv's own timer keeps ticking", function()
    local w = world()
    local adapter = require("graphcall.adapters.luv").attach(w.loop)
    local ticks, out = 0, {}
    local tick = uv.new_timer()
    tick:start(10, 10, function() ticks = ticks + 1 end)
    local guard = uv.new_timer()
    guard:start(5000, 0, function() out.state = "timed out"; uv.stop() end)
    w.loop:spawn(function()
      round_trip(w, out)
      tick:stop(); guard:stop(); adapter:close()
    end)
    uv.run()
    tick:close(); guard:close()
    uv.run("nowait") -- let libuv finish closing its handles while Lua still runs
    w.close()
    assert.equal("terminated", out.state)
    assert.is_true(ticks >= 15, "luv ticked " .. ticks .. " times during a 0.3 s answer")
  end)

  it("the callback form does not block luv either", function()
    local w = world()
    local adapter = require("graphcall.adapters.luv").attach(w.loop)
    local ticks, got = 0, nil
    local tick = uv.new_timer()
    tick:start(10, 10, function() ticks = ticks + 1 end)
    w.emu:fail_next { delay = 0.3 }
    local returned = w.client:call({ callback_uri = w.rx:url(), targets = TARGET }, function(call, err)
      got = { call = call, err = err }
      tick:stop(); adapter:close()
    end)
    uv.run()
    tick:close()
    uv.run("nowait")
    w.close()
    assert.is_nil(returned)
    assert.is_nil(got.err)
    assert.equal("establishing", got.call.state)
    assert.is_true(ticks >= 15, "luv ticked " .. ticks .. " times")
  end)
end)

describe("the cqueues adapter", function()
  local cqueues = require "cqueues"

  it("runs a call round trip in a task while another cqueues coroutine keeps running", function()
    local w = world()
    local cq = cqueues.new()
    local adapter = require("graphcall.adapters.cqueues").attach(cq, w.loop)
    local ticks, out, finished = 0, {}, false
    cq:wrap(function()
      while not finished do cqueues.sleep(0.01); ticks = ticks + 1 end
    end)
    w.loop:spawn(function()
      round_trip(w, out)
      finished = true
      adapter:close()
    end)
    local started = cqueues.monotime()
    while not finished and cqueues.monotime() - started < 5 do assert(cq:step(0.1)) end
    w.close()
    assert.equal("terminated", out.state)
    assert.is_true(ticks >= 15, "cqueues ticked " .. ticks .. " times")
  end)
end)

describe("loop:fd, loop:timeout, loop:step(0)", function()
  it("an idle loop with only a timer: timeout() is the timer's, and fd() is not readable", function()
    local loop = graphcall.new_loop()
    assert.is_nil(loop:timeout())
    loop:timer(30, function() end)
    local t = loop:timeout()
    assert.is_true(t > 29 and t <= 30, tostring(t))
    assert.equal("integer", math.type(loop:fd()))
    assert.is_false(loop:step(0))
    loop:close()
  end)
end)
