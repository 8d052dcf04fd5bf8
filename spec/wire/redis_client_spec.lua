-- graphcall.redis, the connection on the event loop, against a real
-- redis-server: options, SELECT from the URL, callbacks and blocking calls
-- (also inside loop tasks), timeouts, scripts with the EVAL fallback,
-- pipelining, and a Redis restart mid-run (down, fail fast, reconnect).
local redis = require "graphcall.redis"
local event_loop = require "graphcall.loop"
local socket = require "socket"
local scratch = require "support.scratch"
local redis_server = require "support.redis_server"
local memcheck = require "support.memcheck"

describe("graphcall.redis (on the loop)", function()
  local srv, loop, errors, conns

  local function open(opts)
    local c = redis.new(loop, opts)
    conns[#conns + 1] = c
    return c
  end

  local function unix_url(db)
    return "unix://" .. srv.path .. (db and ("?db=" .. db) or "")
  end

  local start_redis, stop_redis = redis_server.fixture(function(s) srv = s end)
  setup(start_redis)
  teardown(stop_redis)

  before_each(function()
    errors, conns = {}, {}
    loop = event_loop.new { on_error = function(e) errors[#errors + 1] = e end }
  end)

  after_each(function()
    for _, c in ipairs(conns) do c:close() end
    loop:close()
  end)

  it("checks its options and parses URLs", function()
    assert.has_error(function() redis.new(loop, { url = unix_url(), colour = 1 }) end,
      "graphcall.redis.new: unknown option 'colour'")
    assert.has_error(function() redis.new(loop, { url = "http://x" }) end)
    assert.has_error(function() redis.new(loop, { url = unix_url(), timeout = 0 }) end)
    assert.has_error(function() redis.new(loop, { url = "unix:///x?dbx=1" }) end)
    assert.has_error(function() redis.new({}, {}) end)
    local p = redis.parse_url
    assert.same({ { host = "h", port = 6379 }, 0 }, { p "redis://h" })
    assert.same({ { host = "10.0.0.1", port = 7000 }, 3 }, { p "redis://10.0.0.1:7000/3" })
    assert.same({ { host = "::1", port = 7000 }, 2, "u", "p@ss" }, { p "redis://u:p%40ss@[::1]:7000/2" })
    assert.same({ { host = "h", port = 6379 }, 0, nil, "pw" }, { p "redis://:pw@h" })
    assert.same({ { path = "/run/r.sock" }, 5 }, { p "unix:///run/r.sock?db=5" })
    assert.equal(2, redis.DEFAULTS.timeout)
  end)

  it("selects the URL's database, over the unix socket and TCP", function()
    local c3 = open { url = unix_url(3) }
    assert.is_true(c3:wait_up())
    assert.equal("up", c3:status())
    assert.same({ ok = "OK" }, c3:call { "SET", "where", "db3" })
    local t0 = open { url = ("redis://127.0.0.1:%d/0"):format(srv.port) }
    assert.is_false(t0:call { "GET", "where" })
    local t3 = open { url = ("redis://127.0.0.1:%d/3"):format(srv.port) }
    assert.equal("db3", t3:call { "GET", "where" }) -- queued while connecting, sent after SELECT
    local bad = open { url = unix_url(99), reconnect = false }
    local ok, err = bad:wait_up(1)
    assert.is_nil(ok)
    assert.equal("redis_down", err.kind)
    assert.matches("SELECT", err.message)
  end)

  it("runs each callback once under the loop's protection; errors are nil, err", function()
    local c = open { url = unix_url() }
    local got = {}
    assert.is_true(c:command({ "SET", "k", "v" }, function(r, e) got[#got + 1] = { r, e } end))
    assert.is_true(c:command({ "GET", "k" }, function() error("handler bug") end))
    assert.is_true(c:command({ "GET", "k" }, function(r, e) got[#got + 1] = { r, e } end))
    assert.is_true(loop:run_until(function() return #got == 2 end, 2))
    assert.same({ { { ok = "OK" } }, { "v" } }, got)
    assert.equal(1, #errors)
    assert.matches("handler bug", tostring(errors[1]))
    assert.equal(0, c:pending())
    assert.is_false(c:call { "GET", "nothing" })
    assert.is_nil(c:call { "LPUSH", "k", "x" })
    local _, err = c:call { "LPUSH", "k", "x" }
    assert.equal("redis", err.kind)
    assert.equal("WRONGTYPE", err.code)
    assert.has_error(function() c:call { "GET", {} } end)
  end)

  it("blocking calls inside loop tasks wait side by side", function()
    local c = open { url = unix_url() }
    c:call { "DEL", "q" }
    local order = {}
    loop:spawn(function()
      order[#order + 1] = "waiting"
      local v = c:call({ "BLPOP", "q", 2 }, 3)
      order[#order + 1] = v[2]
    end)
    loop:spawn(function()
      order[#order + 1] = "pushing"
      local c2 = open { url = unix_url() }
      c2:call { "RPUSH", "q", "from task 2" }
    end)
    assert.is_true(loop:run_until(function() return #order == 3 end, 3))
    assert.same({ "waiting", "pushing", "from task 2" }, order)
  end)

  it("times a command out with the loop's timers, and ignores its late reply", function()
    local c = open { url = unix_url(), timeout = 0.1 }
    local calls, err = 0, nil
    -- the server answers nil after 0.3 s, too late
    assert.is_true(c:command({ "BLPOP", "never", 0.3 }, function(_, e) calls, err = calls + 1, e end))
    assert.is_true(loop:run_until(function() return calls == 1 end, 1))
    assert.equal("timeout", err.kind) -- not the server's nil: that comes at 0.3 s
    assert.equal(0, c:pending())
    assert.same({ ok = "PONG" }, c:call({ "PING" }, 1)) -- behind the BLPOP, answered after it
    assert.equal(1, calls)
    assert.equal("up", c:status())
  end)

  it("gives up a connect that gets no answer within connect_timeout", function()
    local mute = assert(socket.bind("127.0.0.1", 0)) -- accepts in the kernel, never answers
    local _, port = mute:getsockname()
    local states = {}
    local c = open { url = ("redis://127.0.0.1:%d"):format(port), connect_timeout = 0.2, backoff = 5,
                     on_state = function(_, s) states[#states + 1] = s end }
    assert.equal("connecting", c:status())
    assert.is_true(c:command({ "PING" }, function() end)) -- queued behind the handshake
    assert.is_true(loop:run_until(function() return c:status() == "down" end, 2))
    local state, err = c:status()
    assert.equal("down", state)
    assert.matches("within 0.2 s", err.message)
    assert.same({ "down" }, states)
    assert.equal(0, c:pending())
    mute:close()
  end)

  it("runs scripts as EVALSHA, falling back to EVAL when Redis does not know them", function()
    local c = open { url = unix_url() }
    c:call { "SCRIPT", "FLUSH" }
    c:call { "CONFIG", "RESETSTAT" }
    local s = c:script "return redis.call('INCRBY', KEYS[1], ARGV[1])"
    c:call { "DEL", "sc" }
    assert.equal(2, s:call({ "sc" }, { 2 }))
    assert.equal(5, s:call({ "sc" }, { 3 }))
    local got
    assert.is_true(s:eval({ "sc" }, { 1 }, function(r, e) got = { r, e } end))
    assert.is_true(loop:run_until(function() return got end, 2))
    assert.same({ 6 }, got)
    local stats = c:call { "INFO", "commandstats" }
    assert.equal("1", stats:match("cmdstat_eval:calls=(%d+)"))
    assert.equal("3", stats:match("cmdstat_evalsha:calls=(%d+)"))
    local _, err = c:script("return redis.call('NOPE')"):call()
    assert.equal("redis", err.kind)
  end)

  -- Correctness only: every command answered, in order. The time is not
  -- asserted (performance is measured in bench/, not in make test); the
  -- deadlines are hang guards, generous under valgrind and ASan.
  it("pipelines 10,000 commands through the loop, answered in order", function()
    local c = open { url = unix_url(), timeout = memcheck.deadline(10) }
    assert.is_true(c:wait_up())
    c:call { "DEL", "ctr" }
    local n, got = 10000, {}
    for i = 1, n do
      assert.is_true(c:command({ "INCR", "ctr" }, function(r) got[#got + 1] = r == i end))
    end
    assert.equal(n, c:pending())
    assert.is_true(loop:run_until(function() return #got == n end, memcheck.deadline(10)),
      #got .. " of " .. n .. " answered")
    for i = 1, n do assert.is_true(got[i], i) end
    assert.equal(0, c:pending())
  end)

  it("survives a Redis restart: down and failing fast, then back with its scripts", function()
    local states = {}
    local c = open { url = unix_url(2), backoff = 0.02, max_backoff = 0.1,
                     on_state = function(_, s, e) states[#states + 1] = { s, e and e.kind } end }
    local s = c:script "return redis.call('INCR', KEYS[1])"
    c:call { "DEL", "r" }
    assert.equal(1, s:call { "r" })
    local in_flight
    assert.is_true(c:command({ "BLPOP", "never", 0 }, function(r, e) in_flight = { r, e } end, 10))

    srv:stop()
    assert.is_true(loop:run_until(function() return in_flight ~= nil end, 3))
    assert.is_nil(in_flight[1])
    assert.equal("redis_down", in_flight[2].kind)
    assert.is_true(in_flight[2].in_flight)
    assert.equal("down", c:status())
    local ok, err = c:command({ "PING" }, function() error("never called") end)
    assert.is_nil(ok)
    assert.equal("redis_down", err.kind)
    ok, err = s:call { "r" }
    assert.is_nil(ok)
    assert.equal("redis_down", err.kind)
    loop:run_until(nil, 0.2) -- retries fail while it is away
    assert.equal("down", c:status())
    assert.has_error(function() c:command({ "GET", k = 1 }, function() end) end) -- misuse raises, even now

    srv:start() -- same socket, empty: no keys, no scripts
    assert.is_true(c:wait_up(3))
    assert.equal(1, s:call { "r" }) -- NOSCRIPT, then EVAL
    assert.equal(2, s:call { "r" })
    assert.equal("2", c:call { "GET", "r" })
    assert.same({ { "up" }, { "down", "redis_down" }, { "up" } }, states)
    assert.same({}, errors)
  end)

  it("starts while Redis is away and connects when it comes", function()
    local dir = srv.dir .. "/later"
    assert(os.execute("mkdir -p " .. scratch.q(dir)))
    local later = redis_server.new(dir)
    local states = {}
    local c = open { url = "unix://" .. later.path, backoff = 0.02, max_backoff = 0.05,
                     on_state = function(_, s) states[#states + 1] = s end }
    local ok, err = c:call { "PING" }
    assert.is_nil(ok)
    assert.equal("redis_down", err.kind)
    assert.matches("No such file", err.message)
    loop:run_until(nil, 0.1) -- a few retries: "down" once, not once per retry
    later:start()
    local up = c:wait_up(3)
    local pong = c:call { "PING" }
    c:close()
    later:stop()
    assert.is_true(up)
    assert.same({ ok = "PONG" }, pong)
    assert.same({ "down", "up" }, states)
  end)

  it("closes idempotently, failing what is pending, and never reconnects", function()
    local c = open { url = unix_url(), backoff = 0.01 }
    local got
    assert.is_true(c:command({ "BLPOP", "never", 0 }, function(r, e) got = { r, e } end))
    loop:run_until(nil, 0.05)
    c:close()
    c:close()
    assert.equal("closed", got[2].kind)
    assert.equal("closed", c:status())
    assert.has_error(function() c:command({ "PING" }, function() end) end, "graphcall.redis: used after close")
    loop:run_until(nil, 0.05)
    assert.equal("closed", c:status())
    assert.same({}, errors)
  end)
end)
