-- A client with a store, in one process against a real redis-server and
-- the in-process emulator: the options, what is recorded in Redis, the
-- checkpoint, the instance hint, the fleet-wide rate, and the client's
-- patience with notifications that beat their call's 201. The fleet of
-- processes (takeover, hand-off, a Redis restart) is spec/wire/fleet_spec.lua.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local redis = require "graphcall.redis"
local cjson = require "cjson"
local redis_server = require "support.redis_server"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local TARGET = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } }

describe("a client with a store", function()
  local srv, loop, emu, conn, clients

  local function client(store, extra)
    local opts = { app_id = APP_ID, token = "tok", graph_url = emu.url, loop = loop,
      callback_uri = "https://bot.contoso.com/api/calls",
      store = store and (function()
        local s = { redis = "unix://" .. srv.path, heartbeat = 0.2, liveness_ttl = 0.6 }
        for k, v in pairs(store) do s[k] = v end
        return s
      end)() }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local c = graphcall.new(opts)
    clients[#clients + 1] = c
    return c
  end

  local start_redis, stop_redis = redis_server.fixture(function(s) srv = s end)
  setup(start_redis)
  teardown(stop_redis)

  before_each(function()
    clients = {}
    loop = graphcall.new_loop()
    emu = assert(emulator.start { loop = loop, token = "tok", notify_delay = 0 })
    conn = redis.new(loop, { url = "unix://" .. srv.path })
    assert(conn:wait_up(5))
    conn:call { "FLUSHALL" }
  end)

  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    conn:close()
    emu:close()
    loop:close()
  end)

  it("checks the store's options, naming what is wrong", function()
    assert.has_error(function() client { instance = "bot-1", colour = "red" } end,
      "graphcall.new: store: unknown option 'colour'")
    assert.has_error(function() client { instance = "bot 1" } end,
      "graphcall.new: store: instance must be a name of letters, digits, '-', '_' or '.'")
    assert.has_error(function() client { instance = "bot-1", heartbeat = 2, liveness_ttl = 1 } end,
      "graphcall.new: store: liveness_ttl must be longer than heartbeat (seconds)")
    assert.has_error(function() client { instance = "bot-1", rate = 0 } end,
      "graphcall.new: store: rate must be a number of requests per second")
    assert.has_error(function() client(nil):set_checkpoint "x" end)
  end)

  it("records a placed call with its owner, epoch, state and checkpoint, and the hint in its callbackUri", function()
    local c = client { instance = "bot-1" }
    local req = c:prepare_call { targets = TARGET }
    -- the instance hint, and the create's client-request-id (for a reconciliation)
    assert.matches("^https://bot%.contoso%.com/api/calls%?gi=bot%-1&gc=%x+%-%x+%-%x+%-%x+%-%x+$",
      cjson.decode(req.body).callbackUri)
    local rx = assert(c:receiver { openid_url = emu.openid_url })
    local call = assert(c:call { targets = TARGET, callback_uri = rx:url() })
    assert(call:wait("established", 5))
    call:set_checkpoint { step = "greeting", n = 3 }
    assert.same({ step = "greeting", n = 3 }, call.checkpoint)
    -- the record is written without waiting: look until it is all there
    assert.is_true(loop:wait(function()
      local cp = conn:call { "HGET", "gc:call:" .. call.id, "checkpoint" }
      return type(cp) == "string" and conn:call { "HGET", "gc:call:" .. call.id, "state" } == "established"
    end, 5))
    local rec = conn:call { "HGETALL", "gc:call:" .. call.id }
    local fields = {}
    for i = 1, #rec, 2 do fields[rec[i]] = rec[i + 1] end
    assert.equal("bot-1", fields.owner)
    assert.equal("1", fields.epoch)
    assert.equal("established", fields.state)
    assert.is_string(call.etag)
    assert.equal(call.etag, fields.etag) -- the etag of the notification that established it
    assert.equal(call.client_request_id, fields.crid)
    assert.equal(rx:url() .. "?gi=bot-1&gc=" .. call.client_request_id, fields.callback_uri)
    assert.same({ step = "greeting", n = 3 }, cjson.decode(fields.checkpoint))
    assert.same({ call.id }, conn:call { "SMEMBERS", "gc:owned:bot-1" })
    assert.is_number(conn:call { "ZSCORE", "gc:keepalive", call.id } and 1)
    -- a checkpoint is small and JSON
    assert.has_error(function() call:set_checkpoint { blob = ("x"):rep(70000) } end,
      "graphcall.call:set_checkpoint: over 64 KiB as JSON")
    assert.has_error(function() call:set_checkpoint { f = function() end } end)
    -- a call that ends leaves the store
    assert(call:hangup())
    assert(call:wait("terminated", 5))
    assert.is_true(loop:wait(function() return conn:call { "EXISTS", "gc:call:" .. call.id } == 0 end, 5))
    assert.same({}, conn:call { "SMEMBERS", "gc:owned:bot-1" })
    rx:close()
  end)

  it("reconciles a create whose answer was lost, on whichever instance hears of the call", function()
    -- bot-1's create times out (the emulator answers after 1 s, the loop waits 0.4 s)
    loop:close()
    loop = graphcall.new_loop { timeout = 0.4 }
    emu:close()
    emu = assert(emulator.start { loop = loop, token = "tok", notify_delay = 0 })
    conn:close()
    conn = redis.new(loop, { url = "unix://" .. srv.path })
    assert(conn:wait_up(5))
    local a = client({ instance = "bot-1" }, { max_retries = 0 })
    local b = client({ instance = "bot-2" })
    local rx_b = assert(b:receiver { openid_url = emu.openid_url })
    local reconciled = {}
    for name, c in pairs { ["bot-1"] = a, ["bot-2"] = b } do
      c:on("reconciled", function(call, crid) reconciled[#reconciled + 1] = { call = call, crid = crid, by = name } end)
    end
    -- both instances alive before the create
    assert.is_true(loop:wait(function() return conn:call { "EXISTS", "gc:alive:bot-1" } == 1
      and conn:call { "EXISTS", "gc:alive:bot-2" } == 1 end, 5))
    emu:fail_next { delay = 1 }
    -- the notifications go to bot-2's receiver (another instance behind the balancer)
    local call, err = a:call { targets = TARGET, callback_uri = rx_b:url() }
    assert.is_nil(call)
    assert.equal("unknown_outcome", err.kind)
    assert.equal(err.client_request_id, conn:call { "GET", "gc:pending:" .. err.client_request_id } and
      err.client_request_id)
    assert.equal("bot-1", conn:call { "GET", "gc:pending:" .. err.client_request_id })
    -- Graph created it all the same: its first notification, heard by bot-2, reconciles it for bot-1
    assert.is_true(loop:wait(function() return #reconciled == 1 end, 5))
    local r = reconciled[1]
    assert.equal("bot-1", r.by)
    assert.equal(err.client_request_id, r.crid)
    assert.equal(err.client_request_id, r.call.client_request_id)
    assert.equal(a.calls[r.call.id], r.call)
    assert.equal("bot-1", conn:call { "HGET", "gc:call:" .. r.call.id, "owner" })
    assert.equal(0, conn:call { "EXISTS", "gc:pending:" .. err.client_request_id })
    assert.is_true(loop:wait(function() return r.call.state == "established" end, 5))
    assert.equal(1, #reconciled)
    rx_b:close()
  end)

  it("keeps the whole fleet under `rate` requests per second", function()
    local a = client({ instance = "bot-1", rate = 4 })
    local b = client({ instance = "bot-2", rate = 4 })
    local rx = assert(a:receiver { openid_url = emu.openid_url })
    local call = assert(a:call { targets = TARGET, callback_uri = rx:url() })
    assert(call:wait("established", 5))
    local before = #emu.requests
    local left = 16
    for i = 1, 16 do
      local c = i % 2 == 0 and a or b
      c:get_call(call.id, function(data) assert(data); left = left - 1 end)
    end
    assert.is_true(loop:wait(function() return left == 0 end, 10))
    -- the emulator's clock of each GET: no second holds more than the
    -- bucket's burst (4) plus what it refills in that second (4)
    local times = {}
    for i = before + 1, #emu.requests do
      if emu.requests[i].method == "GET" then times[#times + 1] = emu.requests[i].t end
    end
    assert.equal(16, #times)
    table.sort(times)
    for i = 1, #times do
      local n = 0
      for j = i, #times do if times[j] < times[i] + 1 then n = n + 1 end end
      assert.is_true(n <= 8, n .. " GETs within one second")
    end
    assert.is_true(times[#times] - times[1] >= 1.5, "16 requests at 4/s took " .. (times[#times] - times[1]))
    rx:close()
  end)
end)

describe("a client without a store", function()
  it("holds a notification about an unknown call while a create is in flight, then reports it", function()
    local loop = graphcall.new_loop()
    local emu = assert(emulator.start { loop = loop, token = "tok", notify_delay = 0 })
    local c = graphcall.new { app_id = APP_ID, token = "tok", graph_url = emu.url, loop = loop }
    local unknown, known = {}, {}
    c:on("unknown", function(n) unknown[#unknown + 1] = n.call_id end)
    c:on("notification", function(n) known[#known + 1] = n.call_id end)
    local batch = assert(graphcall.parse_notifications(cjson.encode { value = { {
      ["@odata.type"] = "#microsoft.graph.commsNotification", changeType = "updated",
      resourceUrl = "/communications/calls/4a1f0b00-0000-4000-8000-000000000001",
      resourceData = { ["@odata.type"] = "#microsoft.graph.call", state = "established" } } } }))
    -- the create's answer is late: the notification waits for it
    emu:fail_next { delay = 0.3 }
    local placed
    c:call({ targets = TARGET, callback_uri = "https://bot.contoso.com/api/calls" },
      function(call) placed = call end)
    c:dispatch(batch, "")
    assert.same({}, unknown)
    assert.is_true(loop:wait(function() return #unknown == 1 end, 5))
    assert.is_table(placed)
    -- reported once the create was answered, the call it announced being another
    assert.same({ "4a1f0b00-0000-4000-8000-000000000001" }, unknown)
    assert.equal(1, #known)
    emu:close()
    loop:close()
  end)
end)
