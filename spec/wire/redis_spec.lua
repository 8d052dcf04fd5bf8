-- graphcall.redis, the C handle on hiredis's async API, against a real
-- redis-server (spec/support/redis_server.lua). The handle knows no event
-- loop: these specs drive it with luasocket's select on r:fd().
local core = require "graphcall.core"
local socket = require "socket"
local redis_server = require "support.redis_server"
local memcheck = require "support.memcheck"

-- Wait for what r:events() asks, hand it to r:handle, collect the finished
-- entries until done(got) or the connection drops; bounded by `timeout`.
local function pump(r, done, timeout)
  local got = {}
  local deadline = socket.gettime() + (timeout or 5)
  while not done(got) do
    assert(socket.gettime() < deadline, "pump: timed out")
    local fd = r:fd()
    if not fd then break end
    local ev = r:events()
    local h = { getfd = function() return fd end }
    local rd, wr = ev:find("r") and { h } or {}, ev:find("w") and { h } or {}
    local R, W = socket.select(rd, wr, 0.1)
    for _, e in ipairs(r:handle(R[h] ~= nil, W[h] ~= nil)) do got[#got + 1] = e end
  end
  return got
end

-- Send one command and wait for its answer: reply, or nil and the err.
local function run(r, args)
  local id = assert(r:command(args))
  local got = pump(r, function(g) return #g > 0 end)
  assert.equal(1, #got)
  assert.equal(id, got[1].id)
  if got[1].err then return nil, got[1].err end
  return got[1].reply
end

describe("graphcall.redis (C handle)", function()
  local srv, r

  local start_redis, stop_redis = redis_server.fixture(function(s) srv = s end)
  setup(start_redis)
  teardown(stop_redis)

  before_each(function()
    r = assert(core.redis_connect { path = srv.path })
  end)

  after_each(function()
    r:close()
  end)

  it("connects over the unix socket without blocking", function()
    assert.equal("connecting", r:status())
    assert.equal("w", r:events()) -- waits for the connect to finish
    assert.is_true(math.type(r:fd()) == "integer")
    assert.same({ ok = "PONG" }, run(r, { "PING" }))
    assert.equal("connected", r:status())
    assert.equal("r", r:events())
    assert.equal(0, r:pending())
    assert.matches("^graphcall.redis: connected$", tostring(r))
  end)

  it("connects over TCP", function()
    local t <close> = assert(core.redis_connect { host = "127.0.0.1", port = srv.port })
    assert.same({ ok = "PONG" }, run(t, { "PING" }))
    assert.equal("connected", t:status())
  end)

  it("SET and GET; nil is false; binary-safe keys and values", function()
    assert.same({ ok = "OK" }, run(r, { "SET", "k", "v" }))
    assert.equal("v", run(r, { "GET", "k" }))
    assert.is_false(run(r, { "GET", "missing" }))
    local bin = "a\0b\255\r\n$3\r\n" .. ("x"):rep(100000)
    assert.same({ ok = "OK" }, run(r, { "SET", "bin\0key", bin }))
    assert.equal(bin, run(r, { "GET", "bin\0key" }))
    assert.equal(#bin, run(r, { "STRLEN", "bin\0key" }))
    assert.same({ "v", false, bin }, run(r, { "MGET", "k", "missing", "bin\0key" }))
  end)

  it("integer, array, status and error replies; numbers as arguments", function()
    run(r, { "DEL", "n", "l", "f" })
    assert.equal(1, run(r, { "INCR", "n" }))
    assert.equal(42, run(r, { "INCRBY", "n", 41 }))
    assert.equal("42.5", run(r, { "INCRBYFLOAT", "n", 0.5 }))
    assert.equal("0.1", run(r, { "INCRBYFLOAT", "f", 0.1 })) -- the shortest exact form
    assert.equal("1.0000000000000002", run(r, { "INCRBYFLOAT", "f", 0.9000000000000002 }))
    assert.equal(3, run(r, { "RPUSH", "l", "a", "b", "c" }))
    assert.same({ "a", "b", "c" }, run(r, { "LRANGE", "l", 0, -1 }))
    assert.same({}, run(r, { "LRANGE", "nothing", 0, -1 }))
    local reply = run(r, { "INCR", "l" })
    assert.matches("^WRONGTYPE", reply.err)
    reply = run(r, { "NOSUCHCOMMAND" })
    assert.matches("^ERR unknown command", reply.err)
    assert.same({ 1, { 2, { 3, { "x", false } } }, { ok = "FINE" }, { err = "BAD" } },
      run(r, { "EVAL", "return {1, {2, {3, {'x', false}}}, {ok='FINE'}, {err='BAD'}}", 0 }))
  end)

  it("EVALSHA: NOSCRIPT as an err reply, then EVAL, then EVALSHA again", function()
    local src = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
    local sha = run(r, { "SCRIPT", "LOAD", src })
    assert.equal(sha, core.redis_sha1(src)) -- the name EVALSHA knows it by, computed here
    assert.same({ ok = "OK" }, run(r, { "SCRIPT", "FLUSH" }))
    run(r, { "DEL", "s" })
    local reply = run(r, { "EVALSHA", sha, 1, "s", 5 })
    assert.matches("^NOSCRIPT", reply.err)
    assert.equal(5, run(r, { "EVAL", src, 1, "s", 5 }))
    assert.equal(12, run(r, { "EVALSHA", sha, 1, "s", 7 }))
  end)

  it("streams: XADD, XREADGROUP and XAUTOCLAIM as nested arrays", function()
    run(r, { "DEL", "st" })
    assert.same({ ok = "OK" }, run(r, { "XGROUP", "CREATE", "st", "g", "$", "MKSTREAM" }))
    local id1 = run(r, { "XADD", "st", "*", "call", "c1", "n", 1 })
    local id2 = run(r, { "XADD", "st", "*", "call", "c2", "n", 2 })
    assert.matches("^%d+%-%d+$", id1)
    assert.same({ { "st", { { id1, { "call", "c1", "n", "1" } }, { id2, { "call", "c2", "n", "2" } } } } },
      run(r, { "XREADGROUP", "GROUP", "g", "bot-1", "COUNT", 10, "STREAMS", "st", ">" }))
    assert.is_false(run(r, { "XREADGROUP", "GROUP", "g", "bot-1", "COUNT", 10, "STREAMS", "st", ">" }))
    -- bot-2 claims what bot-1 left pending (Redis 7: a third element, deleted ids)
    assert.same({ "0-0", { { id1, { "call", "c1", "n", "1" } }, { id2, { "call", "c2", "n", "2" } } }, {} },
      run(r, { "XAUTOCLAIM", "st", "g", "bot-2", 0, "0-0", "COUNT", 10 }))
    assert.same({ { "bot-2", "2" } }, run(r, { "XPENDING", "st", "g" })[4])
  end)

  -- Correctness only: the time is measured in bench/, not asserted in make
  -- test; pump's deadline is a hang guard, generous under valgrind and ASan.
  it("answers 10,000 pipelined commands, all in order", function()
    run(r, { "DEL", "ctr" })
    local n, ids = 10000, {}
    for i = 1, n do ids[i] = assert(r:command { "INCR", "ctr" }) end
    assert.equal(n, r:pending())
    assert.equal("rw", r:events()) -- connected: reads always, writes while the buffer has data
    local got = pump(r, function(g) return #g == n end, memcheck.deadline(20))
    assert.equal(n, #got)
    for i = 1, n do
      assert.equal(ids[i], got[i].id)
      assert.equal(i, got[i].reply)
    end
    assert.equal(0, r:pending())
  end)

  it("fails every pending command when the server dies mid-flight", function()
    assert.same({ ok = "PONG" }, run(r, { "PING" }))
    local w <close> = assert(core.redis_connect { path = srv.path })
    assert.same({ ok = "PONG" }, run(w, { "PING" }))
    local ids = {}
    for i = 1, 3 do ids[i] = assert(r:command { "BLPOP", "never" .. i, 0 }) end -- answered never
    ids[4] = assert(r:command { "PING" })
    pump(r, function() return r:events() == "r" end) -- all four sent
    assert.equal(4, r:pending())
    srv:kill()
    local got = pump(r, function(g) return #g == 4 end)
    assert.equal(4, #got)
    for i, e in ipairs(got) do
      assert.equal(ids[i], e.id)
      assert.is_nil(e.reply)
      assert.is_string(e.err)
    end
    local status, why = r:status()
    assert.equal("closed", status)
    assert.is_string(why)
    assert.equal(0, r:pending())
    assert.is_nil(r:fd())
    assert.equal("", r:events())
    assert.same({}, r:handle(true, true))
    local id, err = r:command { "PING" }
    assert.is_nil(id)
    assert.equal("closed", err.kind)
    -- writing to the dead server: EPIPE, and no SIGPIPE kills the process
    local wid = assert(w:command { "SET", "big", ("x"):rep(1 << 20) })
    got = {}
    for _ = 1, 50 do
      for _, e in ipairs(w:handle(false, true)) do got[#got + 1] = e end
      if not w:fd() then break end
    end
    assert.same({ id = wid, err = got[1] and got[1].err }, got[1])
    assert.is_string(got[1].err)
    assert.equal("closed", w:status())
    srv:start() -- same socket: a new handle works again
    local again <close> = assert(core.redis_connect { path = srv.path })
    assert.same({ ok = "PONG" }, run(again, { "PING" }))
  end)

  it("refused or missing: nil, err of kind connect", function()
    local s = assert(socket.bind("127.0.0.1", 0)) -- a port nothing listens on
    local _, port = s:getsockname()
    s:close()
    local h, err = core.redis_connect { host = "127.0.0.1", port = tonumber(port) }
    assert.is_nil(h)
    assert.equal("connect", err.kind)
    assert.matches("refused", tostring(err))
    h, err = core.redis_connect { path = srv.dir .. "/nothing.sock" }
    assert.is_nil(h)
    assert.equal("connect", err.kind)
    assert.matches("No such file", err.message)
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.redis_connect { path = srv.path, colour = 1 } end,
      "graphcall.redis_connect: unknown key 'colour'")
    assert.has_error(function() core.redis_connect { path = srv.path, port = 1 } end)
    assert.has_error(function() core.redis_connect { port = 0 } end)
    assert.has_error(function() core.redis_connect { path = ("x"):rep(200) } end)
    assert.has_error(function() r:command {} end)
    assert.has_error(function() r:command "PING" end)
    assert.has_error(function() r:command { "SET", "k", true } end)
    assert.has_error(function() r:command { "GET", k = "v" } end)
    assert.equal(0, r:pending())
  end)

  it("close is idempotent, drops pending commands, and use after close raises", function()
    assert(r:command { "BLPOP", "never", 0 })
    assert.equal(1, r:pending())
    r:close()
    r:close()
    assert.equal("closed", r:status())
    assert.matches("closed", tostring(r))
    for _, m in ipairs { "fd", "events", "pending" } do
      assert.has_error(function() r[m](r) end, "graphcall.redis: used after close")
    end
    assert.has_error(function() r:command { "PING" } end, "graphcall.redis: used after close")
    assert.has_error(function() r:handle(true, false) end, "graphcall.redis: used after close")
  end)

  it("closes at the end of a <close> scope and when collected", function()
    local outer
    do
      local h <close> = assert(core.redis_connect { path = srv.path })
      assert.same({ ok = "PONG" }, run(h, { "PING" }))
      outer = h
    end
    assert.equal("closed", outer:status())
    -- collected with a command pending: __gc frees the context
    do
      local h = assert(core.redis_connect { path = srv.path })
      assert(h:command { "BLPOP", "never", 0 })
    end
    collectgarbage()
    collectgarbage()
    assert.same({ ok = "PONG" }, run(r, { "PING" }))
  end)
end)
