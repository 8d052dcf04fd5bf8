--- Redis on graphcall's event loop: the C handle (`core.redis_connect`,
-- hiredis's async API) waited on beside libcurl's sockets and the
-- receivers (`loop:watch`), with what the handle leaves out: per-command
-- timeouts from the loop's timers, `SELECT` (and `AUTH`) from the URL,
-- scripts sent as EVALSHA with an EVAL fallback, and reconnection with
-- backoff. While the connection is down, commands fail at once with
-- `err.kind == "redis_down"`, so a caller can fall back to local behaviour.
--
-- Every callback runs exactly once, from the loop, under its protection.
-- Errors are `nil, err` with a stable `kind`: `"redis_down"` (not
-- connected, or the connection dropped with the command in flight:
-- `err.in_flight` is then true and the command may have run), `"timeout"`,
-- `"redis"` (an error reply: `err.code` is its first word, such as
-- `"NOSCRIPT"` or `"WRONGTYPE"`) and `"closed"` (`conn:close()` with the
-- command pending).
-- @module graphcall.redis
local core = require "graphcall.core"
local options = require "graphcall.options"

local M = {}

--- Options of `redis.new`, with defaults.
M.DEFAULTS = {
  url = "redis://127.0.0.1:6379/0", -- redis://[[user]:password@]host[:port][/db] or unix:///path.sock[?db=N]
  timeout = 2,          -- seconds a command may take, unless given per command
  connect_timeout = 2,  -- seconds for connect, AUTH and SELECT
  reconnect = true,     -- reconnect after a drop or a failed connect
  backoff = 0.05,       -- seconds before the first retry; doubles each failure
  max_backoff = 2,      -- the longest wait between retries
  on_state = false,     -- function(conn, state, err), when the connection goes "up" or "down"
}

local function new_error(kind, message, extra)
  local e = extra or {}
  e.kind, e.message = kind, message
  return core.new_error(e)
end

-- url -> { path = } or { host =, port = }, db, username, password
local function parse_url(url)
  local where = "graphcall.redis.new: url"
  local path, query = url:match("^unix://(/[^?]*)%??(.*)$")
  if path then
    local db = 0
    if query ~= "" then
      db = tonumber(query:match("^db=(%d+)$"))
      if not db then error(("%s: bad query '%s' (only db=N)"):format(where, query), 3) end
    end
    return { path = path }, db
  end
  local rest = url:match("^redis://(.*)$")
  if not rest then error(("%s: expected redis:// or unix:// (got '%s')"):format(where, url), 3) end
  local user, pass
  local auth, hostpart = rest:match("^([^@/]*)@(.*)$")
  if auth then
    user, pass = auth:match("^([^:]*):(.*)$")
    if not user then user, pass = "", auth end
    user, pass = core.url_decode(user), core.url_decode(pass)
    rest = hostpart
  end
  local host, port, db = rest:match("^%[([%x:]+)%]:?(%d*)/?(%d*)$")
  if not host then host, port, db = rest:match("^([%w%.%-]+):?(%d*)/?(%d*)$") end
  if not host then error(("%s: cannot parse '%s'"):format(where, url), 3) end
  port = tonumber(port) or 6379
  if port < 1 or port > 65535 then error(("%s: port %d out of range"):format(where, port), 3) end
  return { host = host, port = port }, tonumber(db) or 0, user ~= "" and user or nil, pass
end

---@class graphcall.RedisConn
local Conn = {}
Conn.__index = Conn
Conn.__name = "graphcall.redis_conn"

local connect, went_down

local function set_state(self, state, err)
  if err then self.last_err = err end
  if self.state == state then return end
  self.state = state
  if self.on_state and (state == "up" or state == "down") then
    self.loop:protect(self.on_state, self, state, err)
  end
end

-- Finish an entry once: cancel its timer, run its callback.
local function complete(self, entry, reply, err)
  if entry.done then return end
  entry.done = true
  if not entry.internal then self.count = self.count - 1 end
  if entry.timer then self.loop:cancel_timer(entry.timer) end
  self.loop:protect(entry.cb, reply, err)
end

-- Hand a command to hiredis now; the loop writes it when the socket is ready.
local function send(self, args, entry)
  local id = self.r:command(args) -- raises on misuse
  if not id then return false end
  self.sent[id] = entry
  self.watch:set(self.r:events())
  return true
end

-- One finished entry of r:handle: its reply, an error reply, or a drop.
local function finish(self, e)
  local entry = self.sent[e.id]
  if not entry then return end
  self.sent[e.id] = nil
  local reply = e.reply
  if e.err then
    complete(self, entry, nil, new_error("redis_down", "redis: " .. e.err, { in_flight = true }))
  elseif type(reply) == "table" and reply.err then
    complete(self, entry, nil, new_error("redis", reply.err, { code = reply.err:match("^(%S+)") }))
  else
    complete(self, entry, reply)
  end
end

-- Let the handle go: the watch first (the descriptor may be closed already,
-- and its number must not be unwatched once reused), then the context.
local function release(self)
  if self.watch then self.watch:cancel() end
  if self.r then self.r:close() end
  self.watch, self.r = nil, nil
  if self.connect_timer then self.loop:cancel_timer(self.connect_timer) end
  self.connect_timer = nil
end

-- Fail what is sent or queued: after a drop, a failed connect, or close.
local function fail_all(self, err)
  local sent, queue = self.sent, self.queue
  self.sent, self.queue = {}, {}
  local ids = {}
  for id in pairs(sent) do ids[#ids + 1] = id end
  table.sort(ids) -- in the order they were sent
  for _, id in ipairs(ids) do complete(self, sent[id], nil, err) end
  for _, q in ipairs(queue) do complete(self, q.entry, nil, err) end
end

local function schedule(self)
  if self.closed or not self.reconnect or self.retry_timer then return end
  local delay = self.delay
  self.delay = math.min(self.delay * 2, self.max_backoff)
  self.retry_timer = self.loop:timer(delay, function()
    self.retry_timer = nil
    connect(self)
  end)
end

function went_down(self, message)
  release(self)
  local err = new_error("redis_down", message)
  set_state(self, "down", err)
  fail_all(self, err)
  schedule(self)
end

-- The socket is ready: let hiredis read and write, then deliver.
local function on_ready(self, readable, writable)
  local r = self.r
  if not r then return end
  local done = r:handle(readable, writable)
  local status, why = r:status()
  if status == "closed" then
    release(self) -- hiredis has closed the descriptor already
    set_state(self, "down", new_error("redis_down", "redis: " .. tostring(why)))
  end
  for i = 1, #done do finish(self, done[i]) end
  if status == "closed" then
    went_down(self, "redis: " .. tostring(why)) -- fails what is left, schedules a retry
  elseif self.r == r then
    self.watch:set(r:events())
  end
end

-- The handshake is answered: send what waited for it.
local function came_up(self)
  if self.connect_timer then self.loop:cancel_timer(self.connect_timer) end
  self.connect_timer = nil
  self.delay = self.backoff
  set_state(self, "up")
  local queue = self.queue
  self.queue = {}
  for _, q in ipairs(queue) do
    if not q.entry.done and not (self.r and send(self, q.args, q.entry)) then
      complete(self, q.entry, nil, new_error("redis_down", "redis: not connected"))
    end
  end
end

function connect(self)
  if self.closed then return end
  local r, err = core.redis_connect(self.target)
  if not r then return went_down(self, err.message) end
  self.r = r
  -- the state stays: "connecting" for the first connect (commands queue),
  -- "down" for a reconnect (they fail fast) until the handshake is answered
  self.watch = self.loop:watch(r:fd(), r:events(), function(rd, wr) on_ready(self, rd, wr) end)
  self.connect_timer = self.loop:timer(self.connect_timeout, function()
    self.connect_timer = nil
    if self.r == r and self.state ~= "up" then
      went_down(self, ("redis: not connected within %g s"):format(self.connect_timeout))
    end
  end)
  -- AUTH and SELECT go first; user commands wait in self.queue until then
  local steps = {}
  if self.password then
    steps[#steps + 1] = self.username and { "AUTH", self.username, self.password } or { "AUTH", self.password }
  end
  steps[#steps + 1] = { "SELECT", self.db }
  for i, args in ipairs(steps) do
    send(self, args, { internal = true, cb = function(_, e)
      if self.r ~= r then return end -- that connection is gone already
      if e then return went_down(self, "redis: " .. args[1] .. ": " .. e.message) end
      if i == #steps then came_up(self) end
    end })
  end
end

--- Connect to Redis on `loop`. Never blocks and never fails for an
-- unreachable server: the connection is then "down" and retries.
---@param loop graphcall.Loop
---@param opts? table see `redis.DEFAULTS`
---@return graphcall.RedisConn
function M.new(loop, opts)
  if type(loop) ~= "table" or not loop.watch then error("graphcall.redis.new: expected a loop", 2) end
  opts = options.read("graphcall.redis.new", opts, M.DEFAULTS)
  for _, k in ipairs { "timeout", "connect_timeout", "backoff", "max_backoff" } do
    if type(opts[k]) ~= "number" or opts[k] ~= opts[k] or opts[k] <= 0 then
      error(("graphcall.redis.new: %s must be a positive number of seconds"):format(k), 2)
    end
  end
  if type(opts.url) ~= "string" then error("graphcall.redis.new: url must be a string", 2) end
  if opts.on_state and type(opts.on_state) ~= "function" then
    error("graphcall.redis.new: on_state must be a function", 2)
  end
  local target, db, username, password = parse_url(opts.url)
  local self = setmetatable({
    loop = loop, url = opts.url, target = target, db = db, username = username, password = password,
    timeout = opts.timeout, connect_timeout = opts.connect_timeout, reconnect = opts.reconnect,
    backoff = opts.backoff, max_backoff = opts.max_backoff, delay = opts.backoff,
    on_state = opts.on_state or nil,
    state = "connecting", -- the first connect only; then "up", "down", "closed"
    sent = {},      -- hiredis id -> entry { cb =, timer =, done =, internal = (the handshake) }
    queue = {},     -- { args =, entry = } waiting for the handshake
    count = 0,      -- entries not finished
  }, Conn)
  connect(self)
  return self
end

-- What r:command would raise for, checked before a command is queued.
local function check_args(args)
  local n = type(args) == "table" and #args or 0
  for _ in pairs(type(args) == "table" and args or {}) do n = n - 1 end
  if type(args) ~= "table" or #args == 0 or n ~= 0 then
    error("graphcall.redis: expected an array of arguments", 3)
  end
  for i = 1, #args do
    local t = type(args[i])
    if t ~= "string" and t ~= "number" then
      error(("graphcall.redis: argument %d is a %s (expected string or number)"):format(i, t), 3)
    end
  end
end

--- Send a command; `callback(reply, err)` runs once, from the loop. The
-- reply is a string, an integer, false (nil), `{ ok = "OK" }` (status) or
-- an array of those; nested error replies stay `{ err = "..." }`.
-- Returns true, or nil, err (kind "redis_down") at once while down; the
-- callback then never runs.
---@param args (string|number)[]
---@param callback fun(reply: any, err: table|nil)
---@param timeout? number seconds (default: the connection's timeout)
---@return true|nil, table|nil
function Conn:command(args, callback, timeout)
  if self.closed then error("graphcall.redis: used after close", 2) end
  if type(callback) ~= "function" then error("graphcall.redis.command: callback must be a function", 2) end
  timeout = timeout or self.timeout
  if type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0 then
    error("graphcall.redis: timeout must be seconds", 2)
  end
  if self.state ~= "up" then check_args(args) end -- as r:command would: misuse raises in every state
  if self.state == "down" then
    return nil, new_error("redis_down", self.last_err and self.last_err.message or "redis: not connected")
  end
  local entry = { cb = callback }
  if self.state == "connecting" then
    -- a copy: the caller may reuse its table before the handshake ends
    self.queue[#self.queue + 1] = { args = table.move(args, 1, #args, 1, {}), entry = entry }
  elseif not send(self, args, entry) then
    return nil, new_error("redis_down", "redis: not connected")
  end
  self.count = self.count + 1
  entry.timer = self.loop:timer(timeout, function()
    entry.timer = nil
    complete(self, entry, nil, new_error("timeout", ("redis: no reply within %g s"):format(timeout)))
  end)
  return true
end

--- Send a command and wait for its reply (in a handler or task the wait
-- yields to the loop). Returns the reply (false for nil), or nil, err.
---@param args (string|number)[]
---@param timeout? number
---@return any, table? # the reply, or nil, err
function Conn:call(args, timeout)
  local finished, reply, err = false, nil, nil
  local ok, e = self:command(args, function(a, b) finished, reply, err = true, a, b end, timeout)
  if not ok then return nil, e end
  -- the command's own timer ends it; the wait's bound is a backstop
  if not self.loop:wait(function() return finished end, (timeout or self.timeout) + 1) then
    return nil, new_error("timeout", "redis: no reply")
  end
  if err then return nil, err end
  return reply
end

--- Wait until the connection is up: true, or nil, err (`timeout` seconds,
-- default connect_timeout).
---@param timeout number seconds
---@return true|nil, table? # true once up, or nil, err
function Conn:wait_up(timeout)
  timeout = timeout or self.connect_timeout
  if self.loop:wait(function() return self.state == "up" or self.closed end, timeout) and not self.closed then
    return true
  end
  return nil, new_error(self.closed and "closed" or "redis_down",
    self.last_err and self.last_err.message or ("redis: not up within %g s"):format(timeout))
end

--- "connecting" (the first connect, commands wait for it), "up", "down"
-- (also while reconnecting: commands fail fast) or "closed", and the last
-- connection error.
---@return string, table? # the state ("up", "down", ...) and the last error
function Conn:status()
  return self.state, self.last_err
end

--- Commands sent or queued that have not finished.
---@return integer
function Conn:pending()
  return self.count
end

---@class graphcall.RedisScript
local Script = {}
Script.__index = Script
Script.__name = "graphcall.redis_script"

--- A Lua script run with EVALSHA, sent whole (EVAL) only when Redis does
-- not know it (first use, or after a restart emptied its script cache).
---@param source string
---@return graphcall.RedisScript
function Conn:script(source)
  if type(source) ~= "string" or source == "" then error("graphcall.redis.script: expected the source", 2) end
  return setmetatable({ conn = self, source = source, sha = core.redis_sha1(source) }, Script)
end

--- Run the script: `callback(reply, err)` as for `conn:command`.
---@param keys? string[]
---@param args? (string|number)[]
---@param callback fun(reply: any, err: table|nil)
---@param timeout? number seconds (default: the connection's timeout)
---@return any # what conn:command returns
function Script:eval(keys, args, callback, timeout)
  keys, args = keys or {}, args or {}
  local cmd = { "EVALSHA", self.sha, #keys }
  for i = 1, #keys do cmd[#cmd + 1] = keys[i] end
  for i = 1, #args do cmd[#cmd + 1] = args[i] end
  return self.conn:command(cmd, function(reply, err)
    if err and err.code == "NOSCRIPT" then
      cmd[1], cmd[2] = "EVAL", self.source
      local ok, e = self.conn:command(cmd, callback, timeout)
      if not ok then callback(nil, e) end
      return
    end
    callback(reply, err)
  end, timeout)
end

--- Run the script and wait: reply, or nil, err.
---@param keys string[] KEYS
---@param args string[] ARGV
---@param timeout number? seconds
---@return any, table? # the reply, or nil, err
function Script:call(keys, args, timeout)
  local finished, reply, err = false, nil, nil
  local ok, e = self:eval(keys, args, function(a, b) finished, reply, err = true, a, b end, timeout)
  if not ok then return nil, e end
  -- EVALSHA then EVAL: two timeouts at most
  if not self.conn.loop:wait(function() return finished end, 2 * (timeout or self.conn.timeout) + 1) then
    return nil, new_error("timeout", "redis: no reply")
  end
  if err then return nil, err end
  return reply
end

--- Close the connection (idempotent): pending commands fail with kind
-- "closed", and it does not reconnect.
function Conn:close()
  if self.closed then return end
  self.closed = true
  if self.retry_timer then self.loop:cancel_timer(self.retry_timer) end
  self.retry_timer = nil
  release(self)
  self.state = "closed"
  fail_all(self, new_error("closed", "redis: connection closed"))
end

M.Conn, M.Script, M.parse_url = Conn, Script, parse_url
return M
