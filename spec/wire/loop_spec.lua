-- The event loop: one loop waits on libcurl's transfers and the receivers at
-- once, runs timers, and carries the whole round trip of a call between the
-- local emulator, the client and the receiver. Every test has its own loop
-- (graphcall.step alone uses the default one) and closes what it opens.
local graphcall = require "graphcall"
local event_loop = require "graphcall.loop"
local emulator = require "graphcall.emulator"
local receiver = require "graphcall.receiver"
local core = require "graphcall.core"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"

local opened = {}

local function track(x)
  opened[#opened + 1] = x
  return x
end

-- A private loop whose errors land in env.errors, with the emulator, a client
-- and a receiver on it. The receiver's handler records every notification
-- (env.seen: { state =, call_id =, change_type = } in arrival order) and then
-- calls on_notification(n, env) for each.
local function setup_env(on_notification)
  local env = { seen = {}, errors = {} }
  env.loop = track(graphcall.new_loop {
    timeout = 5,
    on_error = function(err, traceback) env.errors[#env.errors + 1] = { err = err, traceback = traceback } end,
  })
  env.emu = track(assert(emulator.start { loop = env.loop, token = "tok" }))
  env.client = graphcall.new { app_id = APP_ID, token = "tok", graph_url = env.emu.url, loop = env.loop }
  local rx_opts = {
    handler = function(batch)
      for _, n in ipairs(batch) do
        env.seen[#env.seen + 1] = { state = n.state, call_id = n.call_id, change_type = n.change_type,
                                    result_info = n.result_info }
        if on_notification then on_notification(n, env) end
      end
    end,
  }
  -- no token verification (when the receiver has it): these specs are about the loop
  if receiver.DEFAULTS.verify ~= nil then rx_opts.verify = false end
  env.rx = track(assert(env.client:receiver(rx_opts)))
  return env
end

local function states(list)
  local out = {}
  for i, n in ipairs(list) do out[i] = n.state end
  return out
end

local function place_call(env)
  local call, err = env.client:call { callback_uri = env.rx:url(), targets = { graphcall.user { id = "u" } } }
  assert.is_nil(err)
  assert.is_table(call)
  return call
end

-- A loop on a clock the test moves by hand.
local function fake_clock_loop(opts)
  local clock = { now = 1000 }
  opts = opts or {}
  opts.clock = function() return clock.now end
  return track(graphcall.new_loop(opts)), clock
end

describe("graphcall loop", function()
  after_each(function()
    for i = #opened, 1, -1 do opened[i]:close() end
    opened = {}
  end)

  describe("a call's round trip on one loop", function()
    it("places a call and receives establishing then established, each exactly once", function()
      local env = setup_env()
      local call = place_call(env)
      assert.equal("establishing", call.state)
      assert.is_true(env.loop:run_until(function() return #env.seen >= 2 and env.emu:idle() end, 5))
      env.loop:step(0.05)  -- nothing more is on its way
      assert.same({ "establishing", "established" }, states(env.seen))
      for _, n in ipairs(env.seen) do
        assert.equal(call.id, n.call_id)
        assert.equal("updated", n.change_type)
      end
      -- the emulator sent exactly these, and the bot answered each 202
      assert.equal(2, #env.emu.notifications)
      for i, record in ipairs(env.emu.notifications) do
        assert.equal(env.seen[i].state, record.state)
        assert.equal(call.id, record.call_id)
        assert.equal(202, record.status)
        assert.is_nil(record.failure)
      end
      assert.equal(2, env.rx.accepted)
      assert.equal(0, env.rx.rejected)
      assert.same({}, env.errors)
      -- the create request carried the receiver's URL as callbackUri
      assert.equal(1, #env.emu.requests)
      assert.equal(env.rx:url(), env.emu.requests[1].json.callbackUri)
    end)

    it("lets the established handler hang up (a nested request) without deadlock", function()
      local hangups = {}
      local env = setup_env(function(n, e)
        if n.state == "established" then
          local ok, err = e.client:hangup(n.call_id)
          hangups[#hangups + 1] = { ok = ok, err = err, seen_during = #e.seen }
        end
      end)
      local call = place_call(env)
      assert.is_true(env.loop:run_until(function() return #env.seen >= 4 and env.emu:idle() end, 5))
      env.loop:step(0.05)
      assert.same({ "establishing", "established", "terminating", "terminated" }, states(env.seen))
      assert.equal(1, #hangups)
      assert.is_true(hangups[1].ok)
      assert.is_nil(hangups[1].err)
      assert.equal(2, hangups[1].seen_during)  -- nothing was delivered while the handler ran
      assert.equal("deleted", env.seen[4].change_type)
      assert.same({ code = 200, subcode = 5001, message = "The conversation has ended." }, env.seen[4].result_info)
      for _, n in ipairs(env.seen) do assert.equal(call.id, n.call_id) end
      assert.equal(4, #env.emu.notifications)
      for i, record in ipairs(env.emu.notifications) do
        assert.equal(env.seen[i].state, record.state)
        assert.equal(202, record.status)
      end
      assert.equal("DELETE", env.emu.requests[2].method)
      assert.equal(2, #env.emu.requests)
      assert.same({}, env.errors)
    end)

    it("runs many calls at once on the one loop, every notification delivered once", function()
      local env = setup_env()
      local specs = {}
      for i = 1, 5 do specs[i] = { callback_uri = env.rx:url(), targets = { graphcall.user { id = "u" .. i } } } end
      local calls, errs = env.client:call_many(specs)
      assert.same({}, errs)
      assert.is_true(env.loop:run_until(function() return #env.seen >= 10 and env.emu:idle() end, 5))
      local per_call = {}
      for _, n in ipairs(env.seen) do
        per_call[n.call_id] = per_call[n.call_id] or {}
        table.insert(per_call[n.call_id], n.state)
      end
      for i = 1, 5 do
        assert.same({ "establishing", "established" }, per_call[calls[i].id])
      end
      assert.equal(10, #env.seen)
    end)
  end)

  describe("waiting", function()
    it("a single step wakes for a finished request, long before its timeout", function()
      local env = setup_env()
      local result
      env.loop:request({ method = "GET", url = env.emu.url .. "/v1.0/communications/calls/none",
                         headers = { Authorization = "Bearer tok" } }, function(r) result = r end)
      local started = core.monotonic()
      for _ = 1, 20 do
        env.loop:step(3)
        if result then break end
      end
      assert.is_table(result)
      assert.equal(404, result.status)
      assert.is_true(core.monotonic() - started < 2.5)
    end)

    it("a step wakes for a receiver request from another process", function()
      local env = setup_env()
      local body = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/x",' ..
                   '"resourceData":{"state":"established"}}]}'
      os.execute(("curl -s -o /dev/null --max-time 4 -H 'Content-Type: application/json' --data-binary '%s' %s &")
        :format(body, env.rx:url()))
      local started = core.monotonic()
      for _ = 1, 20 do
        env.loop:step(3)
        if #env.seen > 0 then break end
      end
      assert.same({ "established" }, states(env.seen))
      assert.is_true(core.monotonic() - started < 2.5)
    end)

    it("step returns true when it served a receiver request", function()
      local env = setup_env()
      local body = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/x",' ..
                   '"resourceData":{"state":"established"}}]}'
      os.execute(("curl -s -o /dev/null --max-time 4 -H 'Content-Type: application/json' --data-binary '%s' %s &")
        :format(body, env.rx:url()))
      local returned
      for _ = 1, 200 do
        local before = #env.seen
        local did = env.loop:step(0.05)
        if #env.seen > before then
          returned = did
          break
        end
      end
      assert.same({ "established" }, states(env.seen))
      assert.is_true(returned)
    end)

    it("graphcall.step(0) returns at once when nothing is pending", function()
      local started = core.monotonic()
      assert.is_false(graphcall.step(0))
      assert.is_false(graphcall.step())
      assert.is_true(core.monotonic() - started < 0.5)
    end)

    it("step(t) returns when a timer is due, well before t", function()
      local loop = track(graphcall.new_loop {})
      local fired = false
      loop:timer(0.05, function() fired = true end)
      local started = core.monotonic()
      local did = false
      for _ = 1, 10 do
        did = loop:step(3)
        if fired then break end
      end
      assert.is_true(fired)
      assert.is_true(did)
      assert.is_true(core.monotonic() - started < 2.5)
    end)
  end)

  describe("a server handler that waits", function()
    local socket = require "socket"

    local function post(port, body)
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", port))
      c:settimeout(0)
      assert(c:send(("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"):format(#body, body)))
      return c
    end
    -- step until a handler waits (bounded)
    local function step_until_parked(loop)
      for _ = 1, 100 do
        loop:step(0.02)
        if #loop.parked > 0 then return end
      end
    end
    -- the body of the answer, once it has arrived
    local function answer(c)
      local data, _, partial = c:receive("*a")
      return (data or partial or ""):match("\r\n\r\n(.+)$")
    end

    it("gives way to the loop: the server answers others meanwhile, then the handler goes on", function()
      local loop = track(graphcall.new_loop())
      local srv = track(assert(core.server { paths = { "/x" } }))
      local released = false
      loop:add_server(srv, function(req)
        if req.body == "wait" then
          local ok = loop:wait(function() return released end, 5)
          srv:respond(req.id, 200, ok and "released" or "timed out")
        else
          released = true
          srv:respond(req.id, 200, "go")
        end
      end)
      local waiting = post(srv:port(), "wait")
      step_until_parked(loop)
      assert.equal(1, #loop.parked)
      assert.equal(1, srv:pending())
      local go = post(srv:port(), "go")
      local got = {}
      for _ = 1, 200 do
        loop:step(0.02)
        got.go, got.waiting = got.go or answer(go), got.waiting or answer(waiting)
        if got.go and got.waiting then break end
      end
      assert.same({ go = "go", waiting = "released" }, got)
      assert.equal(0, #loop.parked)
      assert.equal(0, srv:pending())
      go:close()
      waiting:close()
    end)

    it("ends its wait with false once the timeout passes on the loop's clock", function()
      local loop, clock = fake_clock_loop()
      local srv = track(assert(core.server { paths = { "/x" } }))
      loop:add_server(srv, function(req)
        local ok = loop:wait(function() return false end, 7)
        srv:respond(req.id, 200, tostring(ok))
      end)
      local c = post(srv:port(), "wait")
      step_until_parked(loop)
      assert.equal(1, #loop.parked)
      assert.equal(7000, loop:wait_ms(60)) -- the loop sleeps no longer than the wait may last
      clock.now = clock.now + 7
      local got
      for _ = 1, 100 do
        loop:step(0.02)
        got = answer(c)
        if got then break end
      end
      assert.equal("false", got)
      c:close()
    end)
  end)

  describe("timers", function()
    it("fire in order of due time on an injected clock, only once due", function()
      local loop, clock = fake_clock_loop()
      local fired = {}
      loop:timer(3, function() fired[#fired + 1] = "c" end)
      loop:timer(1, function() fired[#fired + 1] = "a" end)
      loop:timer(2, function() fired[#fired + 1] = "b" end)
      loop:timer(10, function() fired[#fired + 1] = "late" end)
      assert.is_false(loop:step(0))
      assert.same({}, fired)
      clock.now = clock.now + 1
      assert.is_true(loop:step(0))
      assert.same({ "a" }, fired)
      clock.now = clock.now + 5
      assert.is_true(loop:step(0))
      assert.same({ "a", "b", "c" }, fired)
      assert.is_false(loop:step(0))
      clock.now = clock.now + 4
      loop:step(0)
      assert.same({ "a", "b", "c", "late" }, fired)
      loop:step(0)
      assert.same({ "a", "b", "c", "late" }, fired)  -- each fires once
    end)

    it("due at the same time fire in the order they were set", function()
      local loop, clock = fake_clock_loop()
      local fired = {}
      for _, name in ipairs({ "first", "second", "third", "fourth" }) do
        loop:timer(1, function() fired[#fired + 1] = name end)
      end
      clock.now = clock.now + 1
      loop:step(0)
      assert.same({ "first", "second", "third", "fourth" }, fired)
    end)

    it("a timer set by a timer runs in a later step", function()
      local loop, clock = fake_clock_loop()
      local fired = {}
      loop:timer(1, function()
        fired[#fired + 1] = "outer"
        loop:timer(0, function() fired[#fired + 1] = "inner" end)
      end)
      clock.now = clock.now + 1
      loop:step(0)
      assert.same({ "outer" }, fired)
      loop:step(0)
      assert.same({ "outer", "inner" }, fired)
    end)

    it("cancel_timer prevents a timer", function()
      local loop, clock = fake_clock_loop()
      local fired = {}
      local t = loop:timer(1, function() fired[#fired + 1] = "cancelled" end)
      loop:timer(2, function() fired[#fired + 1] = "kept" end)
      assert.is_true(loop:cancel_timer(t))
      assert.is_false(loop:cancel_timer(t))
      clock.now = clock.now + 5
      loop:step(0)
      assert.same({ "kept" }, fired)
    end)

    it("cancel_timer from an earlier timer due in the same step prevents the later one", function()
      local loop, clock = fake_clock_loop()
      local fired, later, cancelled = {}, nil, nil
      loop:timer(1, function()
        fired[#fired + 1] = "earlier"
        cancelled = loop:cancel_timer(later)
      end)
      later = loop:timer(2, function() fired[#fired + 1] = "later" end)
      clock.now = clock.now + 5
      loop:step(0)
      assert.same({ "earlier" }, fired)
      assert.is_true(cancelled)
    end)

    it("send an error to on_error with a traceback, and later timers still run", function()
      local reported = {}
      local loop, clock = fake_clock_loop {
        on_error = function(err, traceback) reported[#reported + 1] = { err = err, traceback = traceback } end,
      }
      local fired = {}
      loop:timer(1, function() error("timer boom") end)
      loop:timer(2, function() fired[#fired + 1] = "same step" end)
      loop:timer(5, function() fired[#fired + 1] = "next step" end)
      clock.now = clock.now + 2
      assert.has_no_error(function() loop:step(0) end)
      assert.equal(1, #reported)
      assert.matches("timer boom", tostring(reported[1].err), 1, true)
      assert.is_string(reported[1].traceback)
      assert.matches("stack traceback:", reported[1].traceback, 1, true)
      assert.same({ "same step" }, fired)
      clock.now = clock.now + 3
      loop:step(0)
      assert.same({ "same step", "next step" }, fired)
      assert.same({}, loop.errors)
    end)

    it("keep errors in loop.errors and log them without an on_error hook, and an on_error that fails too", function()
      local logging = require "graphcall.log"
      local written, saved = {}, logging.output
      logging.output = function(text) written[#written + 1] = text end
      local ok, err = pcall(function()
        local loop, clock = fake_clock_loop()
        loop:timer(1, function() error("kept") end)
        clock.now = clock.now + 1
        loop:step(0)
        assert.equal(1, #loop.errors)
        assert.matches("kept", loop.errors[1].error, 1, true)
        assert.matches("stack traceback:", loop.errors[1].traceback, 1, true)

        local loop2, clock2 = fake_clock_loop { on_error = function() error("hook fails") end }
        loop2:timer(1, function() error("original") end)
        clock2.now = clock2.now + 1
        assert.has_no_error(function() loop2:step(0) end)
        assert.equal(1, #loop2.errors)
        assert.matches("original", loop2.errors[1].error, 1, true)
      end)
      logging.output = saved
      assert(ok, err)
      assert.equal(2, #written)
      assert.matches('^graphcall error handler_error error="[^"]*: kept"\nstack traceback:\n', written[1])
      assert.matches('^graphcall error handler_error error="[^"]*: original"\n', written[2])
    end)
  end)

  describe("run_until and stop", function()
    it("returns true when stop() is called from a timer", function()
      local loop = track(graphcall.new_loop {})
      local after_stop = false
      loop:timer(0.02, function() loop:stop() end)
      loop:timer(30, function() after_stop = true end)
      local started = core.monotonic()
      assert.is_true(loop:run_until(nil, 5))
      assert.is_true(core.monotonic() - started < 4)
      assert.is_false(after_stop)
    end)

    it("returns true at once when done() is already true", function()
      local loop = track(graphcall.new_loop {})
      local calls = 0
      assert.is_true(loop:run_until(function() calls = calls + 1; return true end, 5))
      assert.equal(1, calls)
    end)

    it("returns false after the timeout when done() never becomes true", function()
      local loop = track(graphcall.new_loop {})
      local checks = 0
      local started = core.monotonic()
      assert.is_false(loop:run_until(function() checks = checks + 1; return false end, 0.2))
      local elapsed = core.monotonic() - started
      assert.is_true(elapsed >= 0.15, "returned after " .. elapsed .. " s")
      assert.is_true(elapsed < 3, "returned after " .. elapsed .. " s")
      assert.is_true(checks >= 1)
    end)

    it("graphcall.run runs a given loop until done, or the default loop until graphcall.stop", function()
      local loop = track(graphcall.new_loop {})
      local fired = false
      loop:timer(0.02, function() fired = true end)
      assert.is_true(graphcall.run { loop = loop, done = function() return fired end, timeout = 5 })
      assert.is_false(graphcall.run { loop = loop, done = function() return false end, timeout = 0.05 })

      local default = event_loop.default()
      default:timer(0.02, function() graphcall.stop() end)
      assert.is_true(graphcall.run { timeout = 5 })
    end)

    it("a stop() while a client request is in flight does not break the request", function()
      local env = setup_env()
      local call = place_call(env)
      assert.is_true(env.loop:run_until(function() return #env.seen >= 2 and env.emu:idle() end, 5))
      env.emu:fail_next { delay = 0.2 }       -- the GET is answered after 0.2 s
      env.loop:timer(0.02, function() env.loop:stop() end)
      local ok, data, err = pcall(env.client.get_call, env.client, call.id)
      assert.is_true(ok, tostring(data))
      assert.is_nil(err)
      assert.is_table(data)
      assert.equal(call.id, data.id)
    end)
  end)

  describe("signals", function()
    -- the shell's parent is this Lua process: $PPID names it
    local function raise(name) os.execute("kill -" .. name .. " $PPID") end

    it("on_signal runs the handler from the loop, once per signal, until cancelled", function()
      local loop = track(graphcall.new_loop {})
      local got = {}
      local h = loop:on_signal({ "USR1", "USR2" }, function(name) got[#got + 1] = name end)
      raise("USR2")
      assert.is_true(loop:run_until(function() return #got == 1 end, 2))
      raise("USR1")
      assert.is_true(loop:run_until(function() return #got == 2 end, 2))
      assert.same({ "USR2", "USR1" }, got)
      h:cancel(); h:cancel() -- idempotent
      -- the signal is no longer watched: blocked again only while another handle holds it
      local again = loop:on_signal("USR1", function(name) got[#got + 1] = name end)
      raise("USR1")
      assert.is_true(loop:run_until(function() return #got == 3 end, 2))
      again:cancel()
    end)

    it("rejects unknown names and a missing handler", function()
      local loop = track(graphcall.new_loop {})
      assert.has_error(function() loop:on_signal("KILL", function() end) end,
        "graphcall.signals: unknown signal 'KILL' (TERM, INT, HUP, USR1, USR2, QUIT)")
      assert.has_error(function() loop:on_signal("TERM") end, "graphcall.loop.on_signal: fn must be a function")
    end)
  end)

  describe("options", function()
    it("raise for an unknown loop option, naming it", function()
      assert.has_error(function() graphcall.new_loop { tmeout = 1 } end,
        "graphcall.loop.new: unknown option 'tmeout'")
      assert.has_error(function() graphcall.new_loop "fast" end)
      assert.has_error(function() graphcall.run { loop = nil, tiemout = 1 } end,
        "graphcall.run: unknown option 'tiemout'")
    end)

    it("have documented defaults", function()
      assert.equal(core.monotonic, event_loop.DEFAULTS.clock)
      assert.equal(10, event_loop.DEFAULTS.connect_timeout)
      assert.equal(30, event_loop.DEFAULTS.timeout)
      assert.equal(32, event_loop.DEFAULTS.max_in_flight)
      assert.equal(4 * 1024 * 1024, event_loop.DEFAULTS.max_response_bytes)
    end)
  end)
end)
