--- The fleet: several instances of one bot share their calls through Redis,
-- so that any instance can receive any notification and no call is lost
-- when an instance dies or restarts. A client gets one with
-- `graphcall.new{ ..., store = { redis = url, instance = "bot-1" } }`.
--
-- In Redis (every key under `prefix`):
--   alive:<instance>   the instance's liveness, renewed every `heartbeat` s, expiring after `liveness_ttl`
--   instances          the set of instances that own calls
--   call:<id>          hash: owner, epoch, state, rank, etag, tenant, callback_uri, crid, checkpoint
--   owned:<instance>   the set of call ids the instance owns
--   keepalive          sorted set: call id by when its next keepAlive is due (ms, Redis' clock)
--   seen:<sha1>        a notification already handled, fleet-wide
--   inbox:<instance>   stream of notification bodies (and hand-offs) for the owner
--   throttle           set for Retry-After seconds when Graph answered 429
--   bucket             the shared token bucket of `rate`
--   pending:<crid>     a create whose answer was lost (unknown_outcome), by client-request-id
--
-- A create's callbackUri carries its client-request-id (`&gc=`): when its
-- answer is lost, the first notification about the call, wherever it lands,
-- reconciles it (the instance that sent it gets `reconciled`).
--
-- Guarantees: a notification is handled once (fleet-wide dedupe), by the
-- call's owner; a dead owner's calls are taken over atomically (the epoch
-- goes up) by whichever live instance comes first; a due keepAlive is
-- claimed atomically by one instance. With Redis unreachable, every instance
-- keeps its own calls alive locally (a duplicate keepAlive is harmless) and
-- handles what reaches it (at least once).
--
-- About 640 lines: ownership, takeover, the keepAlive schedule and the
-- inboxes share the Redis keys and the Lua scripts defined at the top.
-- @module graphcall.fleet
local core = require "graphcall.core"
local redis = require "graphcall.redis"
local options = require "graphcall.options"
local call_object = require "graphcall.call"
local control = require "graphcall.control"
local cjson = require("cjson.safe").new()

local M = {}

--- Options of `store`, with defaults.
M.DEFAULTS = {
  redis = "redis://127.0.0.1:6379/0", -- redis:// URL or unix:///path.sock
  instance = false,        -- required: this instance's name, stable across restarts (e.g. "bot-1")
  prefix = "gc:",          -- of every key
  heartbeat = 1,           -- seconds between liveness renewals, keepAlive claims and checks for dead peers
  liveness_ttl = 3,        -- seconds after which a silent instance counts as dead
  seen_ttl = 3600,         -- seconds a handled notification is remembered
  hint = "gi",             -- query parameter of the callbackUri naming the instance, for the load balancer
  rate = false,            -- requests/s the whole fleet may send (a shared token bucket); false: no limit
}

---@class graphcall.Fleet
local Fleet = {}
Fleet.__index = Fleet

-- KEYS[1] keepalive zset; ARGV: interval ms, batch. Due ids, each moved one
-- interval ahead: whoever claims one sends it.
local CLAIM = [[
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id) end
return due]]

-- KEYS[1] keepalive zset; ARGV: interval ms, id. Schedule unless scheduled.
local SCHEDULE = [[
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[1]), ARGV[2])]]

-- KEYS[1] call hash; ARGV: prefix, id, me, target (nil: take over only from
-- a dead owner; set: hand over to target). { 1, old owner, epoch } when the
-- call changed hands, { 0, owner } otherwise.
local MOVE = [[
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return { 0, false } end
local to = ARGV[4] or ARGV[3]
if owner == to then return { 0, owner } end
if not ARGV[4] and redis.call('EXISTS', ARGV[1] .. 'alive:' .. owner) == 1 then return { 0, owner } end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', to)
redis.call('SREM', ARGV[1] .. 'owned:' .. owner, ARGV[2])
redis.call('SADD', ARGV[1] .. 'owned:' .. to, ARGV[2])
redis.call('SADD', ARGV[1] .. 'instances', to)
return { 1, owner, epoch }]]

-- KEYS[1] call hash; ARGV: state, rank, etag (or ""). The state never goes back.
local STATE = [[
local rank = tonumber(redis.call('HGET', KEYS[1], 'rank') or '-1')
if tonumber(ARGV[2]) < rank then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'rank', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'etag', ARGV[3]) end
return 1]]

-- KEYS[1] bucket hash; ARGV: rate per second. 0 when a token was taken,
-- else the milliseconds until one is due. The bucket holds one second's
-- worth at most (a burst of `rate`).
local TAKE = [[
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local rate = tonumber(ARGV[1])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[1])
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
tokens = math.min(rate, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return wait]]

-- KEYS[1] pending:<crid>, KEYS[2] call:<id>; ARGV: prefix, id, me, crid.
-- The call of a create with an unknown outcome: recorded, owned by the
-- instance that sent the create when it is alive (else by me), once.
-- Returns the owner, or false when the crid is not pending.
local RECONCILE = [[
local creator = redis.call('GET', KEYS[1])
if not creator then return false end
redis.call('DEL', KEYS[1])
local owner = creator
if redis.call('EXISTS', ARGV[1] .. 'alive:' .. creator) == 0 then owner = ARGV[3] end
if redis.call('HSETNX', KEYS[2], 'owner', owner) == 0 then return redis.call('HGET', KEYS[2], 'owner') end
redis.call('HSET', KEYS[2], 'epoch', '1', 'id', ARGV[2], 'crid', ARGV[4], 'reconciled', '1')
redis.call('SADD', ARGV[1] .. 'owned:' .. owner, ARGV[2])
redis.call('SADD', ARGV[1] .. 'instances', owner)
return owner]]

--- Make the fleet member of `client`. Raises on bad options.
---@param client graphcall.Client
---@param opts table see `DEFAULTS`
---@return graphcall.Fleet
function M.new(client, opts)
  if type(opts) ~= "table" then error("graphcall.new: store: expected an options table", 3) end
  local o = options.read("graphcall.new: store", opts, M.DEFAULTS, 3)
  if type(o.instance) ~= "string" or not o.instance:match("^[%w%-_.]+$") then
    error("graphcall.new: store: instance must be a name of letters, digits, '-', '_' or '.'", 3)
  end
  if type(o.heartbeat) ~= "number" or o.heartbeat <= 0 or type(o.liveness_ttl) ~= "number"
      or o.liveness_ttl <= o.heartbeat then
    error("graphcall.new: store: liveness_ttl must be longer than heartbeat (seconds)", 3)
  end
  if o.rate and (type(o.rate) ~= "number" or o.rate <= 0) then
    error("graphcall.new: store: rate must be a number of requests per second", 3)
  end
  local loop = client.loop
  local self = setmetatable({
    client = client, loop = loop, me = o.instance, prefix = o.prefix, heartbeat = o.heartbeat,
    ttl_ms = math.floor(o.liveness_ttl * 1000), seen_ttl = o.seen_ttl, hint = o.hint, rate = o.rate,
    up = false, forwarded = 0, adopted = 0, handled = 0, throttled_until = 0,
    dead_since = {},  -- peer -> the heartbeat round it was first seen dead
    round = 0,
  }, Fleet)
  self.conn = redis.new(loop, { url = o.redis, on_state = function(_, state) self:on_state(state) end })
  -- a blocking XREADGROUP holds its connection: the inbox has one of its own
  self.inbox_conn = redis.new(loop, { url = o.redis })
  self.claim = self.conn:script(CLAIM)
  self.schedule_script = self.conn:script(SCHEDULE)
  self.move = self.conn:script(MOVE)
  self.state_script = self.conn:script(STATE)
  self.take = self.conn:script(TAKE)
  self.reconcile = self.conn:script(RECONCILE)
  return self
end

--- A key of the fleet: the prefix and the parts joined by ":".
---@param ... string
---@return string
function Fleet:key(...)
  return self.prefix .. table.concat({ ... }, ":")
end

--- The callbackUri with this instance's hint, `?gi=bot-1`, and, for a
-- create, its client-request-id, `&gc=<crid>`.
---@param uri string|nil
---@param crid? string
---@return string|nil
function Fleet:hinted(uri, crid)
  if type(uri) ~= "string" then return uri end
  local sep = uri:find("?", 1, true) and "&" or "?"
  return uri .. sep .. self.hint .. "=" .. self.me .. (crid and ("&gc=" .. crid) or "")
end

--- A create whose answer never came (unknown_outcome): remembered by its
-- client-request-id for an hour, for whichever instance hears of the call.
---@param crid string
function Fleet:pending(crid)
  if not self.up then return end
  self.conn:command({ "SET", self:key("pending", crid), self.me, "EX", "3600" }, function() end)
end

--- Redis went away: every call this instance holds is kept alive by its own
-- timer (a duplicate keepAlive is harmless, a missed one ends the call).
-- Redis came back (or up the first time): the records are written again
-- (a restarted Redis has lost them) and the calls go back on the shared
-- schedule, their local timers stopped.
---@param state string "up" or "down" (the Redis connection's)
function Fleet:on_state(state)
  self.up = state == "up"
  if not self.up then
    for _, call in pairs(self.client.calls) do
      if call.state == "established" then self.client:keep_alive_start(call) end
    end
    return
  end
  self.loop:spawn(function()
    self:beat()
    -- a copy: each record waits on Redis, and calls created meanwhile
    -- would change the table under `pairs` (they are recorded by track)
    local calls = {}
    for _, call in pairs(self.client.calls) do calls[#calls + 1] = call end
    for _, call in ipairs(calls) do
      self:record(call)
      if call.state == "established" and self:keep_alive(call) then self.client:keep_alive_stop(call) end
    end
  end)
end

--- Start: liveness, the inbox reader, the heartbeat, and the calls this
-- instance owned before a restart (adopted again).
function Fleet:start()
  self.loop:spawn(function()
    self.conn:wait_up(5)
    self:beat()
    local ids = self.conn:call { "SMEMBERS", self:key("owned", self.me) }
    for _, id in ipairs(type(ids) == "table" and ids or {}) do self:adopt(id) end
  end)
  self.loop:spawn(function() self:read_inbox() end)
  local function tick()
    if self.closed then return end
    if not self.ticking then
      self.ticking = true
      self.loop:spawn(function()
        local ok, err = pcall(self.beat_and_claim, self)
        self.ticking = false
        if not ok then self.loop:report(err, "fleet heartbeat") end
      end)
    end
    self.timer = self.loop:timer(self.heartbeat, tick)
  end
  self.timer = self.loop:timer(self.heartbeat, tick)
end

--- Renew the liveness key.
function Fleet:beat()
  if self.draining then return end
  self.conn:call { "SET", self:key("alive", self.me), tostring(core.monotonic()), "PX", tostring(self.ttl_ms) }
  self.conn:call { "SADD", self:key("instances"), self.me }
end

--- One heartbeat: liveness, the shared pause, the due keepAlives, dead peers.
function Fleet:beat_and_claim()
  if not self.up then return end
  self:beat()
  -- a 429 seen by any instance pauses this one too
  local pttl = self.conn:call { "PTTL", self:key("throttle") }
  if math.type(pttl) == "integer" and pttl > 0 then
    self.throttled_until = math.max(self.throttled_until, self.loop.clock() + pttl / 1000)
  end
  -- while throttled, due keepAlives wait (they stay due, and go out after)
  if self:paused() == 0 then
    local due = self.claim:call({ self:key("keepalive") },
      { tostring(math.floor(self.client.keep_alive_interval * 1000)), "500" })
    for _, id in ipairs(type(due) == "table" and due or {}) do self:send_keep_alive(id) end
  end
  -- dead peers: take their calls over, split among the live instances
  self.round = self.round + 1
  local peers = self.conn:call { "SMEMBERS", self:key("instances") }
  local live, dead = {}, {}
  for _, peer in ipairs(type(peers) == "table" and peers or {}) do
    if peer == self.me or self.conn:call { "EXISTS", self:key("alive", peer) } == 1 then
      live[#live + 1] = peer
    else
      dead[#dead + 1] = peer
    end
  end
  table.sort(live)
  for _, peer in ipairs(dead) do self:reap(peer, live) end
end

--- Seconds this instance still waits before sending to Graph, after a 429
-- seen by any instance of the fleet (0: none).
---@return number
function Fleet:paused()
  return math.max(0, self.throttled_until - self.loop.clock())
end

--- Run `send()` when the fleet may send: after a pause for a 429, and,
-- with a `rate`, once the shared bucket gives a token. Without Redis, only
-- the local pause applies.
---@param send function
function Fleet:gate(send)
  local wait = self:paused()
  if wait > 0 then
    self.loop:timer(wait, function() self:gate(send) end)
  elseif self.rate and self.up then
    self.take:eval({ self:key("bucket") }, { tostring(self.rate) }, function(ms)
      if math.type(ms) == "integer" and ms > 0 then
        self.loop:timer(ms / 1000, function() self:gate(send) end)
      else
        send() -- granted, or Redis failed meanwhile: do not hold the request
      end
    end)
  else
    send()
  end
end

--- A 429 with Retry-After: this instance pauses that long at once, and
-- every other one from its next heartbeat.
---@param seconds number how long every instance pauses
function Fleet:throttle(seconds)
  if not seconds or seconds <= 0 then return end
  self.throttled_until = math.max(self.throttled_until, self.loop.clock() + seconds)
  if not self.up then return end
  self.conn:command({ "SET", self:key("throttle"), "1", "PX", tostring(math.floor(seconds * 1000)) },
    function() end)
end

--- Send call `id`'s keepAlive (claimed from the shared schedule).
---@param id string
function Fleet:send_keep_alive(id)
  -- without waiting: a task per keepAlive would park one coroutine per
  -- call, and every loop step resumes the parked ones
  self.client:call_request_async(id, "POST", "/keepAlive", nil, { [200] = true }, function(_, err)
    self.keep_alives = (self.keep_alives or 0) + 1
    control.log_keep_alive(self.client.log, id, err, true)
    if err and err.status == 404 then
      local call = self.client.calls[id]
      if call then call:gone(nil) else self:drop(id) end
    end
  end)
end

--- Record a call this instance owns (created, answered or adopted).
---@param call graphcall.Call
function Fleet:record(call)
  if not self.up then return end
  local key = self:key("call", call.id)
  self.conn:call { "HSETNX", key, "owner", self.me }
  self.conn:call { "HSETNX", key, "epoch", "1" }
  local fields = { "HSET", key, "id", call.id }
  if call.client_request_id then fields[#fields + 1] = "crid"; fields[#fields + 1] = call.client_request_id end
  local data = type(call.data) == "table" and call.data or {}
  local uri = call.callback_uri or data.callbackUri
  if type(uri) == "string" then fields[#fields + 1] = "callback_uri"; fields[#fields + 1] = uri end
  if type(data.tenantId) == "string" then fields[#fields + 1] = "tenant"; fields[#fields + 1] = data.tenantId end
  if call.checkpoint then fields[#fields + 1] = "checkpoint"; fields[#fields + 1] = cjson.encode(call.checkpoint) end
  self.conn:call(fields)
  self.conn:call { "SADD", self:key("owned", self.me), call.id }
  self.conn:call { "SADD", self:key("instances"), self.me }
  self:save_state(call)
end

--- Store the call's state (its rank never goes back).
---@param call graphcall.Call
function Fleet:save_state(call)
  if not self.up or not call.state then return end
  self.state_script:eval({ self:key("call", call.id) },
    { call.state, tostring(call_object.RANK[call.state] or 3), call.etag or "" }, function() end)
end

--- Put an established call on the shared keepAlive schedule.
---@param call graphcall.Call
---@return boolean # false when Redis is away (keep it alive locally)
function Fleet:keep_alive(call)
  if not self.up then return false end
  local ok = self.schedule_script:call({ self:key("keepalive") },
    { tostring(math.floor(self.client.keep_alive_interval * 1000)), call.id })
  return ok ~= nil
end

--- Store the application's checkpoint of a call (JSON `text`) with it.
---@param call graphcall.Call
---@param text string
function Fleet:checkpoint(call, text)
  if self.up then
    self.conn:command({ "HSET", self:key("call", call.id), "checkpoint", text }, function() end)
  end
end

--- A terminated call leaves the store.
---@param id string
function Fleet:drop(id)
  if not self.up then return end
  self.conn:command({ "DEL", self:key("call", id) }, function() end)
  self.conn:command({ "SREM", self:key("owned", self.me), id }, function() end)
  self.conn:command({ "ZREM", self:key("keepalive"), id }, function() end)
end

--- Adopt call `id` (owned by this instance now): a call object from its
-- record, resynced with Graph (404: it ended meanwhile), then `adopted`.
---@param id string
---@return graphcall.Call|nil
function Fleet:adopt(id)
  if self.client.calls[id] then return self.client.calls[id] end
  local rec = self.conn:call { "HGETALL", self:key("call", id) }
  if type(rec) ~= "table" or #rec == 0 then return nil end
  local fields = {}
  for i = 1, #rec, 2 do fields[rec[i]] = rec[i + 1] end
  local call = call_object.new(self.client, { id = id, state = fields.state })
  call.checkpoint = fields.checkpoint and cjson.decode(fields.checkpoint) or nil
  call.epoch = tonumber(fields.epoch)
  self.client.calls[id] = call
  local data, err = self.client:get_call(id)
  if not data and err and err.status == 404 then
    call:gone(err.result_info)
    return call
  end
  if data and data.state then call:set_state(data.state, nil) end
  if call.state == "established" then self:keep_alive(call) end
  if fields.reconciled then
    -- the call of a create whose answer was lost: the bot learns of it now
    call.client_request_id = fields.crid
    self.conn:call { "HDEL", self:key("call", id), "reconciled" }
    self.client:emit("reconciled", call, fields.crid)
  else
    self.adopted = self.adopted + 1
    self.client:emit("adopted", call, call.checkpoint)
  end
  return call
end

-- Which of the `live` instances (sorted) takes call `id` over: the same
-- answer on every instance, so a dead peer's calls split evenly.
local function heir(id, live)
  local n = tonumber(core.redis_sha1(id):sub(1, 8), 16)
  return live[n % #live + 1]
end

--- Take over the calls of a dead peer, then the notifications it had not
-- handled. In the first round a peer is seen dead, an instance takes only
-- the calls it is heir to; from the next, any call still left (its heir
-- died too, or is slow).
---@param peer string the dead instance
---@param live string[] the live instances, sorted
function Fleet:reap(peer, live)
  self.dead_since[peer] = self.dead_since[peer] or self.round
  local late = self.round > self.dead_since[peer]
  local ids = self.conn:call { "SMEMBERS", self:key("owned", peer) }
  for _, id in ipairs(type(ids) == "table" and ids or {}) do
    if late or heir(id, live) == self.me then
      local moved = self.move:call({ self:key("call", id) }, { self.prefix, id, self.me })
      if type(moved) == "table" and moved[1] == 1 then self:adopt(id) end
    end
  end
  self:drain_inbox(peer)
  local left = self.conn:call { "SCARD", self:key("owned", peer) }
  if left == 0 then
    self.conn:call { "SREM", self:key("instances"), peer }
    self.dead_since[peer] = nil
  end
end

--- Claim a notification fleet-wide: true the first time only. A delivery
-- Graph repeats carries the same body, wherever it lands: the body's hash
-- and the notification's place in it name the notification.
---@param digest string the body's SHA-1
---@param i integer the notification's place in the body
---@return boolean
function Fleet:first(digest, i)
  if not self.up then return true end
  local ok = self.conn:call { "SET", self:key("seen", digest .. ":" .. i), self.me, "NX", "EX",
    tostring(self.seen_ttl) }
  if ok == nil then return true end -- Redis went away meanwhile: handle it (at least once)
  return ok ~= false
end

--- Where a notification about call `id` goes: "local", or the live owner's
-- name, after taking over from a dead one. A call with no record yet (its
-- notification beat the owner's record of the 201) goes to the instance
-- its callbackUri's hint names, when that one is alive.
---@param id string|nil the call id
---@param hinted string|nil the instance the hint names
---@param crid string|nil the create's client-request-id the callbackUri carries
---@return string
function Fleet:route(id, hinted, crid)
  if not id or self.client.calls[id] or not self.up then return "local" end
  local owner = self.conn:call { "HGET", self:key("call", id), "owner" }
  if type(owner) ~= "string" and crid then
    -- perhaps the call of a create whose answer was lost
    owner = self.reconcile:call({ self:key("pending", crid), self:key("call", id) },
      { self.prefix, id, self.me, crid })
    if owner == self.me then self:adopt(id) end
  end
  if type(owner) ~= "string" then
    -- the instance that placed it has not recorded it yet: its inbox (read
    -- by it, or by whoever reaps it if it died meanwhile)
    if hinted and hinted ~= self.me then return hinted end
    return "local"
  end
  if owner == self.me then
    self:adopt(id)
    return "local"
  end
  if self.conn:call { "EXISTS", self:key("alive", owner) } == 1 then return owner end
  local moved = self.move:call({ self:key("call", id) }, { self.prefix, id, self.me })
  if type(moved) == "table" and moved[1] == 1 then
    self:adopt(id)
  elseif type(moved) == "table" and type(moved[2]) == "string" and moved[2] ~= self.me then
    return moved[2] -- another instance took it over first: it is the owner now
  end
  return "local"
end

--- Dispatch a verified batch: what this instance owns (or takes over) it
-- handles once; what a live peer owns goes to the peer's inbox. `handle(n)`
-- applies one notification locally; `query` is the request's query string.
---@param batch graphcall.notifications
---@param body string the raw body
---@param handle fun(n: graphcall.notification)
---@param query? string
function Fleet:dispatch(batch, body, handle, query)
  local forward, digest = {}, core.redis_sha1(body)
  local hinted = query and ("&" .. query):match("&" .. self.hint .. "=([%w%-_.]+)")
  local crid = query and ("&" .. query):match("&gc=([%x%-]+)")
  for i, n in ipairs(batch) do
    local where = self:route(n.call_id, hinted, crid)
    if where == "local" then
      if self:first(digest, i) then
        self.handled = self.handled + 1
        handle(n)
      end
    else
      forward[where] = true
    end
  end
  for owner in pairs(forward) do
    local ok, err = self.conn:call { "XADD", self:key("inbox", owner), "MAXLEN", "~", "100000", "*", "body", body }
    -- not passed on: fail the delivery (the receiver answers 500), so that it is not taken as done
    if not ok then error(("graphcall.fleet: cannot forward to %s: %s"):format(owner, tostring(err)), 0) end
    self.forwarded = self.forwarded + 1
  end
end

--- Apply the entries of a stream reply ({ { stream, { { id, { k, v, ... } } ... } } }):
-- a hand-off is adopted; a forwarded body is dispatched again (handled
-- here, or passed on when its call changed hands meanwhile).
---@param stream string
---@param entries table
---@param handle fun(n: graphcall.notification)
function Fleet:apply_entries(stream, entries, handle)
  local ids = {}
  for _, e in ipairs(entries) do
    local fields = {}
    local kv = e[2] or {}
    for i = 1, #kv, 2 do fields[kv[i]] = kv[i + 1] end
    if fields.handoff then
      self:adopt(fields.handoff)
    elseif fields.body then
      local batch = core.parse_notifications(fields.body)
      if batch then self:dispatch(batch, fields.body, handle) end
    end
    ids[#ids + 1] = e[1]
  end
  if #ids > 0 then
    local ack = { "XACK", stream, "g" }
    for _, id in ipairs(ids) do ack[#ack + 1] = id end
    self.conn:call(ack)
  end
end

--- Read this instance's inbox until closed.
function Fleet:read_inbox()
  local stream = self:key("inbox", self.me)
  local handle = function(n) self.client:handle(n) end
  while not self.closed do
    if not self.group_made then
      local r = self.inbox_conn:call { "XGROUP", "CREATE", stream, "g", "0", "MKSTREAM" }
      self.group_made = r ~= nil
    end
    local reply, err = self.inbox_conn:call({ "XREADGROUP", "GROUP", "g", self.me, "COUNT", "64", "BLOCK",
      tostring(math.floor(self.heartbeat * 500)), "STREAMS", stream, ">" }, self.heartbeat + 2)
    if type(reply) == "table" then
      for _, s in ipairs(reply) do self:apply_entries(stream, s[2] or {}, handle) end
    elseif err and err.code == "NOGROUP" then
      self.group_made = false
    elseif not reply and not self.closed then
      -- Redis away: wait a beat before the next try
      local waited = false
      self.loop:timer(self.heartbeat, function() waited = true end)
      self.loop:wait(function() return waited or self.closed end, self.heartbeat + 1)
    end
  end
end

--- What a dead peer had not handled: claim it and handle it here.
---@param peer string
function Fleet:drain_inbox(peer)
  local stream = self:key("inbox", peer)
  local reply = self.conn:call { "XAUTOCLAIM", stream, "g", self.me, "0", "0-0", "COUNT", "1000" }
  local handle = function(n) self.client:handle(n) end
  if type(reply) == "table" and type(reply[2]) == "table" then self:apply_entries(stream, reply[2], handle) end
  -- entries never delivered to the peer's group reader
  local unread = self.conn:call { "XREADGROUP", "GROUP", "g", self.me, "COUNT", "1000", "STREAMS", stream, ">" }
  if type(unread) == "table" then
    for _, s in ipairs(unread) do self:apply_entries(stream, s[2] or {}, handle) end
  end
end

--- Graceful hand-off: stop being alive, give every call to a live peer
-- (round robin). Returns the number of calls handed off, or nil, err when
-- no peer is alive (the calls stay, and a restart adopts them). The
-- connection stays open: a notification that still reaches this instance
-- is forwarded to the call's new owner until the client is closed.
---@return integer|nil, table?
function Fleet:drain()
  self.draining = true
  if self.timer then self.loop:cancel_timer(self.timer) end
  self.timer = nil
  self.conn:call { "DEL", self:key("alive", self.me) }
  local peers, live = self.conn:call { "SMEMBERS", self:key("instances") }, {}
  for _, p in ipairs(type(peers) == "table" and peers or {}) do
    if p ~= self.me and self.conn:call { "EXISTS", self:key("alive", p) } == 1 then live[#live + 1] = p end
  end
  if #live == 0 then return nil, core.new_error { kind = "no_peer", message = "no live instance to hand calls to" } end
  local n, held = 0, {}
  for id, call in pairs(self.client.calls) do held[id] = call end -- each move waits on Redis
  for id, call in pairs(held) do
    local to = live[n % #live + 1]
    local moved = self.move:call({ self:key("call", id) }, { self.prefix, id, self.me, to })
    if type(moved) == "table" and moved[1] == 1 then
      self.conn:call { "XADD", self:key("inbox", to), "*", "handoff", id }
      n = n + 1
    end
    self.client:keep_alive_stop(call)
    self.client.calls[id] = nil
  end
  -- still listed among the instances: the others see it gone (no liveness)
  -- and pass on what reaches its inbox from now on (reap)
  return n
end

--- Stop the fleet member (idempotent); the calls' records stay in Redis.
function Fleet:close()
  if self.closed then return end
  self.closed = true
  if self.timer then self.loop:cancel_timer(self.timer) end
  self.conn:close()
  self.inbox_conn:close()
end

M.Fleet = Fleet
return M
