--- The event loop: one thread waits on libcurl's transfers and the receivers'
-- sockets at once (`graphcall.http:poll` with the servers' fds), then runs
-- what became ready: finished requests, received HTTP requests, due timers.
--
-- Everything a bot does runs from here, so a handler may itself send
-- requests and wait (`client:call` inside a notification handler) without
-- deadlock: a server's handler runs in a coroutine, and a wait inside it
-- yields back to the loop, which resumes it after every step until the
-- wait is over; other waits run nested steps. Callbacks run under
-- `xpcall`; an error goes to the loop's error hook with its traceback and
-- never stops the loop.
-- @module graphcall.loop
local core = require "graphcall.core"

local M = {}

---@class graphcall.Loop
local Loop = {}
Loop.__index = Loop
Loop.__name = "graphcall.loop"

--- Options of `loop.new`, with defaults.
M.DEFAULTS = {
  clock = core.monotonic,      -- function returning seconds; specs inject their own
  connect_timeout = 10,        -- seconds, per request
  timeout = 30,                -- seconds, per request, all included
  max_response_bytes = 4 * 1024 * 1024,
  max_in_flight = 32,          -- concurrent requests; more wait their turn
  ca_file = false,             -- PEM bundle to trust instead of the system's (https is always verified)
  on_error = false,            -- function(err, traceback); default: keep the last 100 in loop.errors
}

local function check_options(name, opts, defaults)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error(("%s: expected an options table, got %s"):format(name, type(opts)), 3) end
  local out = {}
  for k, v in pairs(opts) do
    if defaults[k] == nil then error(("%s: unknown option '%s'"):format(name, tostring(k)), 3) end
    out[k] = v
  end
  for k, v in pairs(defaults) do
    if out[k] == nil and v ~= false then out[k] = v end
  end
  return out
end
M.check_options = check_options

--- Create a loop. Most bots use the default one (`loop.default()`).
---@param opts? table
---@return graphcall.Loop
function M.new(opts)
  opts = check_options("graphcall.loop.new", opts, M.DEFAULTS)
  local self = setmetatable({
    clock = opts.clock,
    http = core.http {
      connect_timeout_ms = math.floor(opts.connect_timeout * 1000),
      timeout_ms = math.floor(opts.timeout * 1000),
      max_response_bytes = opts.max_response_bytes,
      max_in_flight = opts.max_in_flight,
      ca_file = opts.ca_file or nil,
    },
    on_error = opts.on_error,
    errors = {},
    callbacks = {},      -- transfer id -> function(result)
    servers = {},        -- list of { server =, dispatch = }
    parked = {},         -- list of { co =, at = }: server handlers in a wait
    handlers = setmetatable({}, { __mode = "k" }), -- the server handlers' coroutines
    timers = {},         -- list of { at =, seq =, fn = }, unordered (few timers)
    seq = 0,             -- creation order of timers: ties fire first come, first served
    stopped = false,
  }, Loop)
  -- xpcall's message handler, made once rather than for every callback
  self.on_callback_error = function(e)
    self:report(e, debug.traceback(tostring(e), 2))
    return e
  end
  return self
end

local default
--- The process-wide loop that clients use unless given another.
---@return graphcall.Loop
function M.default()
  if not default then default = M.new() end
  return default
end

--- Report a callback error through the hook (never raises).
function Loop:report(err, traceback)
  if self.on_error then
    local ok = pcall(self.on_error, err, traceback)
    if ok then return end
  end
  local list = self.errors
  list[#list + 1] = { error = err, traceback = traceback }
  if #list > 100 then table.remove(list, 1) end
end

--- Run fn(...) under xpcall; errors go to the hook. Returns ok, results...
function Loop:protect(fn, ...)
  return xpcall(fn, self.on_callback_error, ...)
end

--- Send an HTTP request; `callback(result)` runs from the loop when it ends.
-- `req.read_headers`: the lower-case names of the only response headers the
-- result's `headers` needs (default all).
---@param req table `{ method=, url=, headers=, body=, create=, read_headers= }`
---@param callback fun(result: table)
---@return integer # the transfer id
function Loop:request(req, callback)
  local id = self.http:submit(req)
  self.callbacks[id] = callback
  return id
end

-- Run coroutine `co` (a server handler) until it ends or waits again.
local function resume(self, co, ...)
  local ok, at = coroutine.resume(co, ...)
  if not ok then
    self:report(at, debug.traceback(co, tostring(at)))
  elseif coroutine.status(co) == "suspended" then
    self.parked[#self.parked + 1] = { co = co, at = at }
  end
end

--- Serve `server`; `handler(request)` runs for each complete request and
-- must answer it (`server:respond`). A handler error answers 500.
function Loop:add_server(server, handler)
  local entry = { server = server }
  local function run(req)
    if not self:protect(handler, req) and not entry.removed then
      pcall(server.respond, server, req.id, 500, '{"error":{"code":"handlerError"}}',
        { ["content-type"] = "application/json" })
    end
  end
  -- Runs inside server:run, so that a quick answer goes out at once: an
  -- answer given later makes libmicrohttpd suspend and resume the
  -- connection (two more system calls).
  entry.dispatch = function(req)
    local co = coroutine.create(run)
    self.handlers[co] = true
    resume(self, co, req)
  end
  self.servers[#self.servers + 1] = entry
end

function Loop:remove_server(server)
  for i, s in ipairs(self.servers) do
    if s.server == server then
      s.removed = true -- a handler may remove (and close) its own server
      table.remove(self.servers, i)
      return
    end
  end
end

--- Run `fn` after `delay` seconds. Returns a handle for `cancel_timer`.
function Loop:timer(delay, fn)
  self.seq = self.seq + 1
  local t = { at = self.clock() + delay, seq = self.seq, fn = fn }
  self.timers[#self.timers + 1] = t
  return t
end

function Loop:cancel_timer(t)
  for i, x in ipairs(self.timers) do
    if x == t then
      table.remove(self.timers, i)
      return true
    end
  end
  return false
end

function Loop:stop()
  self.stopped = true
end

-- How long the next wait may last, in ms: up to `limit` seconds, less when a
-- timer or a server's own timer is due sooner.
function Loop:wait_ms(limit)
  local now, wait = self.clock(), limit
  for _, t in ipairs(self.timers) do
    wait = math.min(wait, t.at - now)
  end
  local ms = math.max(0, math.floor(wait * 1000 + 0.5))
  for _, s in ipairs(self.servers) do
    local st = s.server:timeout()
    if st >= 0 then ms = math.min(ms, st) end
  end
  for _, p in ipairs(self.parked) do
    if p.at then ms = math.min(ms, math.max(0, math.floor((p.at - now) * 1000 + 0.5))) end
  end
  local ct = self.http:timeout()
  if ct >= 0 and self.http:pending() > 0 then ms = math.min(ms, math.max(ct, 1)) end
  return ms
end

local function serve(entry)
  if entry.removed or entry.serving then return 0 end
  entry.serving = true -- a handler's own waits must not run this server
  local ok, served = pcall(entry.server.run, entry.server, 0, entry.dispatch)
  entry.serving = false
  if not ok then error(served, 0) end
  return served
end

-- The earliest due timer created before this step (seq <= limit), or nil.
local function next_due(self, now, limit)
  local best, index
  for i, t in ipairs(self.timers) do
    if t.at <= now and t.seq <= limit and (not best or t.at < best.at or (t.at == best.at and t.seq < best.seq)) then
      best, index = t, i
    end
  end
  if best then table.remove(self.timers, index) end
  return best
end

--- One round: wait up to `timeout` seconds for anything to happen, then run
-- what became ready. Returns true when something ran.
---@param timeout? number seconds (default 0: do not wait)
function Loop:step(timeout)
  local servers = self.servers
  local fds
  if #servers > 0 then
    fds = {}
    for _, s in ipairs(servers) do
      if not s.serving then fds[#fds + 1] = s.server:fd() end
    end
  end
  local results = self.http:poll(self:wait_ms(timeout or 0), fds)
  local did = #results > 0
  local callbacks = self.callbacks
  for i = 1, #results do
    local r = results[i]
    local cb = callbacks[r.id]
    callbacks[r.id] = nil
    if cb then xpcall(cb, self.on_callback_error, r) end
  end
  -- servers (a copy: a handler may add or remove one)
  if #self.servers > 0 then
    for _, entry in ipairs({ table.unpack(self.servers) }) do
      if serve(entry) > 0 then did = true end
    end
  end
  -- due timers one at a time, so one may still cancel another
  local now, limit = self.clock(), self.seq
  while true do
    local t = next_due(self, now, limit)
    if not t then break end
    did = true
    self:protect(t.fn)
  end
  -- server handlers in a wait look again (those still waiting park again)
  if #self.parked > 0 then
    local parked = self.parked
    self.parked = {}
    for _, p in ipairs(parked) do resume(self, p.co) end
  end
  return did
end

--- Step until `done()` returns true, `stop()` is called, or `timeout` seconds
-- pass. Returns true when `done()` became true (or stop() was called).
---@param done? fun(): boolean
---@param timeout? number
function Loop:run_until(done, timeout)
  local deadline = timeout and self.clock() + timeout
  self.stopped = false
  while not (done and done()) do
    if self.stopped then return true end
    local now = self.clock()
    if deadline and now >= deadline then return false end
    self:step(deadline and math.min(1, deadline - now) or 1)
  end
  return true
end

--- Step until `done()` returns true, or `timeout` seconds pass (then
-- false): the wait of a blocking request or of `call:wait`. Unlike
-- run_until it does not stop for `stop()` (which is meant for the
-- outermost run) and leaves the stop request in place for it.
function Loop:wait(done, timeout)
  local deadline = timeout and self.clock() + timeout
  -- also bounded in real time, should an injected clock stand still
  local real_deadline = timeout and core.monotonic() + timeout
  if self.handlers[coroutine.running()] and coroutine.isyieldable() then
    -- a server's handler: back to the loop, which resumes it after each step
    while not done() do
      if deadline and (self.clock() >= deadline or core.monotonic() >= real_deadline) then return false end
      coroutine.yield(deadline)
    end
    return true
  end
  while not done() do
    local now = self.clock()
    if deadline and (now >= deadline or core.monotonic() >= real_deadline) then return false end
    self:step(deadline and math.max(0, math.min(1, deadline - now, real_deadline - core.monotonic())) or 1)
  end
  return true
end

function Loop:close()
  self.http:close()
  self.servers, self.timers, self.callbacks, self.parked = {}, {}, {}, {}
end

M.Loop = Loop
return M
