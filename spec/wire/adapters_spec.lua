-- Another event loop drives graphcall: a full call round trip against the
-- emulator inside luv and inside cqueues, while the host loop keeps running.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local memcheck = require "support.memcheck"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local TARGET = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } }
-- hang guards, not timings: generous under valgrind and ASan
local WAIT = memcheck.deadline(5)      -- one state of the call
local GUARD = memcheck.deadline(15)    -- the whole round trip, both waits included

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
  assert(call:wait("established", WAIT))
  assert(call:hangup())
  assert(call:wait("terminated", WAIT))
  out.state = call.state
end

describe("the luv adapter", function()
  local uv = require "luv"

  -- A world driven by luv, torn down on every path (done, timed out, a
  -- failed assertion): the adapter and the timers closed, libuv run once
  -- to finish closing them, then the world. An adapter left open keeps its
  -- poll handle on the loop's descriptor number, which the next spec's
  -- loop gets again: libuv would refuse that spec's adapter (EEXIST).
  local function luv_world()
    local w = world()
    local handles = {}
    finally(function()
      if w.adapter then w.adapter:close() end
      for _, h in ipairs(handles) do
        if not h:is_closing() then h:close() end
      end
      uv.run("nowait") -- let libuv finish closing its handles while Lua still runs
      w.close()
      w, handles = nil, nil -- busted keeps this function: let the world go
    end)
    -- libuv times a timer from the loop's cached clock, last read when luv
    -- last ran (or was loaded): the setup above can take seconds (valgrind),
    -- and a timer started from that stale clock would be due at once
    function w.timer()
      uv.update_time()
      local t = uv.new_timer()
      handles[#handles + 1] = t
      return t
    end
    w.adapter = require("graphcall.adapters.luv").attach(w.loop)
    return w
  end

  it("runs a call round trip in a task while luv's own timer keeps ticking", function()
    local w = luv_world()
    local ticks, out = 0, {}
    local tick, guard = w.timer(), w.timer()
    tick:start(10, 10, function() ticks = ticks + 1 end)
    guard:start(GUARD * 1000, 0, function() out.state = "timed out"; uv.stop() end)
    w.loop:spawn(function()
      local ok, err = pcall(round_trip, w, out)
      if not ok then out.state = tostring(err) end
      tick:stop(); guard:stop(); w.adapter:close()
    end)
    uv.run()
    assert.equal("terminated", out.state)
    assert.is_true(ticks >= 15, "luv ticked " .. ticks .. " times during a 0.3 s answer")
  end)

  it("the callback form does not block luv either", function()
    local w = luv_world()
    local ticks, got = 0, nil
    local tick, guard = w.timer(), w.timer()
    tick:start(10, 10, function() ticks = ticks + 1 end)
    guard:start(GUARD * 1000, 0, function() uv.stop() end)
    w.emu:fail_next { delay = 0.3 }
    local returned = w.client:call({ callback_uri = w.rx:url(), targets = TARGET }, function(call, err)
      got = { call = call, err = err }
      tick:stop(); guard:stop(); w.adapter:close()
    end)
    uv.run()
    assert.is_nil(returned)
    assert.is_table(got, "the callback did not run within " .. GUARD .. " s")
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
    finally(function()
      adapter:close(); w.close()
      adapter, w = nil, nil -- busted keeps this function: let the world go
    end)
    w.loop:spawn(function()
      local ok, err = pcall(round_trip, w, out)
      if not ok then out.state = tostring(err) end
      finished = true
      adapter:close()
    end)
    local started = cqueues.monotime()
    while not finished and cqueues.monotime() - started < GUARD do assert(cq:step(0.1)) end
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
