--- The event loop: one epoll descriptor holds every socket graphcall waits
-- on (libcurl's, through `curl_multi_socket_action`; the receivers'; Redis
-- connections), so one wait covers them all, and a wake-up costs what
-- became ready, not what is open. Timers sit in a binary heap.
--
-- graphcall can run the loop itself (`run_until`, `wait`), or be embedded
-- in another event loop: that loop waits for `loop:fd()` to be readable or
-- for `loop:timeout()` seconds, then calls `loop:step(0)` (see
-- `graphcall.adapters`).
--
-- Everything a bot does runs from here, so a handler may itself send
-- requests and wait (`client:call` inside a notification handler) without
-- deadlock: a server's handler, and a task started by `loop:spawn`, run in
-- a coroutine, and a wait inside it yields back to the loop, which resumes
-- it after every step until the wait is over; other waits run nested
-- steps. Callbacks run under `xpcall`; an error goes to the loop's error
-- hook with its traceback and never stops the loop.
-- @module graphcall.loop
local core = require "graphcall.core"
local logging = require "graphcall.log"
local options = require "graphcall.options"

local M = {}

---@class graphcall.Loop
---@field log graphcall.Logger where handler errors and the events of clients without a hook go (graphcall.log)
---@field errors table[] the last 100 errors reported without an on_error hook: `{ error =, traceback = }`
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
  on_error = false,            -- function(err, traceback); default: log it (level "error") and keep
                               -- the last 100 in loop.errors
  log = false,                 -- function(level, event, fields); default: stderr as GRAPHCALL_LOG says
  trace = false,               -- true: trace requests in full (event "trace"); default: GRAPHCALL_TRACE=1
}

--- Create a loop. Most bots use the default one (`loop.default()`).
---@param opts? table
---@return graphcall.Loop
function M.new(opts)
  opts = options.read("graphcall.loop.new", opts, M.DEFAULTS)
  logging.check("graphcall.loop.new", opts.log, opts.trace)
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    error(("graphcall.loop.new: on_error: expected a function, got %s"):format(type(opts.on_error)), 2)
  end
  local self = setmetatable({
    clock = opts.clock,
    request_timeout = opts.timeout, -- seconds: the bound of one request (waits derive theirs from it)
    max_in_flight = opts.max_in_flight,
    http = core.http {
      connect_timeout_ms = math.floor(opts.connect_timeout * 1000),
      timeout_ms = math.floor(opts.timeout * 1000),
      max_response_bytes = opts.max_response_bytes,
      max_in_flight = opts.max_in_flight,
      ca_file = opts.ca_file or nil,
    },
    on_error = opts.on_error,
    errors = {},
    log = logging.new(opts.log, opts.trace), -- the graphcall.log logger of what runs on this loop
    callbacks = {},      -- transfer id -> function(result)
    servers = {},        -- list of { server =, dispatch =, watch = }
    watches = {},        -- token -> watch: the descriptors waited on besides libcurl's
    next_token = 0,
    parked = {},         -- list of { co =, at = }: server handlers and tasks in a wait
    handlers = setmetatable({}, { __mode = "k" }), -- the coroutines whose waits yield to the loop
    heap = {},           -- timers { at =, seq =, fn = }, a binary heap on (at, seq)
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

--- Report a callback error through the hook (never raises). Without an
-- `on_error` hook (or when it fails too), the error is logged (level
-- "error", event "handler_error": stderr by default) and kept in
-- `loop.errors`.
---@param err any the error
---@param traceback string? its traceback
function Loop:report(err, traceback)
  if self.on_error then
    local ok = pcall(self.on_error, err, traceback)
    if ok then return end
  end
  local list = self.errors
  list[#list + 1] = { error = err, traceback = traceback }
  if #list > 100 then table.remove(list, 1) end
  self.log:log("error", "handler_error", { error = tostring(err), traceback = traceback })
end

--- Run fn(...) under xpcall; errors go to the hook. Returns ok, results...
---@param fn function
---@param ... any fn's arguments
---@return boolean, any ... # ok, then fn's results or the error
function Loop:protect(fn, ...)
  return xpcall(fn, self.on_callback_error, ...)
end

--- Send an HTTP request; `callback(result)` runs from the loop when it ends.
-- `req.read_headers`: the lower-case names of the only response headers the
-- result's `headers` needs (default all). With `lg`, a `graphcall.log`
-- logger whose trace is on, the exchange is traced there.
---@param req table `{ method=, url=, headers=, body=, create=, read_headers= }`
---@param callback fun(result: table)
---@param lg? graphcall.Logger
---@return integer # the transfer id
function Loop:request(req, callback, lg)
  if lg and lg.trace then req, callback = logging.traced(lg, req, callback) end
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
---@param server graphcall.server the C server (graphcall.core userdata)
---@param handler fun(req: table) runs for each complete request
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
  -- While a handler of this server waits in nested steps, the server must
  -- not run (it is in the handler's frame): its descriptor is muted until
  -- the handler returns, or it would wake every nested step.
  entry.watch = self:watch(server:fd(), "r", function()
    if entry.serving then
      entry.muted = true
      entry.watch:set("")
    else
      entry.ready = true
    end
  end)
  self.servers[#self.servers + 1] = entry
end

--- Stop serving `server` (a handler may remove its own server).
---@param server graphcall.server the C server (graphcall.core userdata)
function Loop:remove_server(server)
  for i, s in ipairs(self.servers) do
    if s.server == server then
      s.removed = true -- a handler may remove (and close) its own server
      s.watch:cancel()
      table.remove(self.servers, i)
      return
    end
  end
end

--- Run `fn(...)` in a coroutine whose waits yield to the loop instead of
-- running nested steps: a blocking call inside it (`client:call`) lets the
-- loop, and the host loop driving it, go on meanwhile. Returns the
-- coroutine; an error inside goes to the error hook.
---@param fn function
---@return thread
---@param ... any fn's arguments
function Loop:spawn(fn, ...)
  if type(fn) ~= "function" then error("graphcall.loop.spawn: expected a function", 2) end
  local co = coroutine.create(function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then self:report(err, err) end
  end)
  self.handlers[co] = true
  resume(self, co, ...)
  return co
end

--- The two forms of a blocking action: without `cb`, `fn(...)` runs now
-- and its results are returned (it waits on the loop, or yields when it
-- runs in a task of `spawn` or a server handler); with `cb`, it runs as a
-- task and `cb(results...)` gets them, and nothing waits.
---@param cb function|nil
---@param fn function
---@param ... any fn's arguments
---@return any ... # fn's results (without cb), or what the coroutine's start returns
function Loop:async(cb, fn, ...)
  if cb == nil then return fn(...) end
  if type(cb) ~= "function" then error("graphcall: the callback must be a function", 3) end
  self:spawn(function(...) cb(fn(...)) end, ...)
end

--- `fn()` runs when a timer is made outside a step, so that a host event
-- loop can shorten its wait (`timeout()` changed); nil removes it. The
-- adapters set it.
---@param fn function|nil
function Loop:set_wakeup(fn)
  self.wakeup = fn
end

---@class graphcall.Watch
local Watch = {}
Watch.__index = Watch
Watch.__name = "graphcall.watch"

--- Wait on a descriptor too: `fn(readable, writable)` runs from the loop
-- when `fd` is ready for `events` ("r", "w", "rw"; "" waits for nothing).
-- Returns a watch with `set(events)` and `cancel()`; raises when the
-- kernel refuses the descriptor.
---@param fd integer
---@param events string
---@param fn fun(readable: boolean, writable: boolean)
---@return graphcall.Watch
function Loop:watch(fd, events, fn)
  if math.type(fd) ~= "integer" or fd < 0 then error("graphcall.loop.watch: fd must be a descriptor", 2) end
  if type(fn) ~= "function" then error("graphcall.loop.watch: fn must be a function", 2) end
  self.next_token = self.next_token + 1
  local w = setmetatable({ loop = self, fd = fd, fn = fn, token = self.next_token }, Watch)
  w:set(events)
  self.watches[w.token] = w
  return w
end

--- Change what the watch waits for.
---@param events string "r", "w" or "rw"
function Watch:set(events)
  if self.cancelled then error("graphcall.watch.set: the watch is cancelled", 2) end
  if events == self.events then return end
  local ok, err = self.loop.http:watch(self.fd, events, self.token)
  if not ok then error("graphcall.watch.set: " .. tostring(err.message), 2) end
  self.events = events
end

--- Stop watching (idempotent). Cancel before closing the descriptor.
function Watch:cancel()
  if self.cancelled then return end
  self.cancelled = true
  self.loop.watches[self.token] = nil
  if not self.loop.closed then self.loop.http:unwatch(self.fd) end
end

---@class graphcall.SignalWatch
local SignalWatch = {}
SignalWatch.__index = SignalWatch

--- Run `fn(name)` from the loop when the process gets one of the signals
-- `names` ("TERM", "INT", "HUP", "USR1", "USR2", "QUIT"): a descriptor
-- (signalfd) the loop waits on, so the handler is ordinary Lua, free to
-- send requests (a graceful `client:drain()` on SIGTERM). The signals are
-- blocked while watched: their default action (exit) no longer happens.
-- Returns a handle whose `cancel()` restores them.
---@param names string|string[]
---@param fn fun(name: string)
---@return graphcall.SignalWatch
function Loop:on_signal(names, fn)
  if type(names) == "string" then names = { names } end
  if type(fn) ~= "function" then error("graphcall.loop.on_signal: fn must be a function", 2) end
  local ok, signals = pcall(core.signals, names)
  if not ok then error(signals, 2) end
  local s = setmetatable({ signals = signals }, SignalWatch)
  s.watch = self:watch(signals:fd(), "r", function()
    for _, name in ipairs(signals:read()) do fn(name) end
  end)
  return s
end

--- Stop watching the signals (idempotent); they act as before again.
function SignalWatch:cancel()
  if self.cancelled then return end
  self.cancelled = true
  self.watch:cancel()
  self.signals:close()
end

--- The one descriptor a host event loop waits on, for reading.
---@return integer
function Loop:fd()
  return self.http:fd()
end

-- The heap of timers, ordered by (at, seq).
local function before(a, b)
  return a.at < b.at or (a.at == b.at and a.seq < b.seq)
end

local function heap_push(heap, t)
  local i = #heap + 1
  heap[i] = t
  while i > 1 do
    local parent = i // 2
    if not before(heap[i], heap[parent]) then break end
    heap[i], heap[parent] = heap[parent], heap[i]
    heap[i].slot, heap[parent].slot = i, parent
    i = parent
  end
  t.slot = t.slot or i
  heap[i].slot = i
end

local function heap_remove(heap, i)
  local n = #heap
  local t = heap[i]
  heap[i] = heap[n]
  heap[n] = nil
  t.slot = nil
  if i >= n then return t end
  heap[i].slot = i
  -- the moved timer goes up or down to its place
  while i > 1 and before(heap[i], heap[i // 2]) do
    local parent = i // 2
    heap[i], heap[parent] = heap[parent], heap[i]
    heap[i].slot, heap[parent].slot = i, parent
    i = parent
  end
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l < n and before(heap[l], heap[m]) then m = l end
    if r < n and before(heap[r], heap[m]) then m = r end
    if m == i then break end
    heap[i], heap[m] = heap[m], heap[i]
    heap[i].slot, heap[m].slot = i, m
    i = m
  end
  return t
end

--- Run `fn` after `delay` seconds of the loop's clock. Returns a handle
-- for `cancel_timer`. Timers due at the same time run in creation order;
-- a timer made by another timer runs at the next step at the earliest.
---@param delay number seconds
---@param fn function
---@return table timer
function Loop:timer(delay, fn)
  if type(delay) ~= "number" or delay ~= delay then error("graphcall.loop.timer: delay must be seconds", 2) end
  if type(fn) ~= "function" then error("graphcall.loop.timer: fn must be a function", 2) end
  self.seq = self.seq + 1
  local t = { at = self.clock() + delay, seq = self.seq, fn = fn }
  heap_push(self.heap, t)
  if self.wakeup and not self.stepping then self.wakeup() end
  return t
end

--- Cancel a timer: true when it was still pending.
---@param t table
---@return boolean
function Loop:cancel_timer(t)
  local i = type(t) == "table" and t.slot
  if not i or self.heap[i] ~= t then return false end
  heap_remove(self.heap, i)
  return true
end

--- Make the outermost `run_until` return.
function Loop:stop()
  self.stopped = true
end

--- How long the next wait may last, in ms: up to `limit` seconds, less when a
-- timer, a server's own timer, libcurl's, or a parked wait is due sooner.
---@param limit number seconds at most
---@return integer # milliseconds
function Loop:wait_ms(limit)
  local now, wait = self.clock(), limit
  local first = self.heap[1]
  if first then wait = math.min(wait, first.at - now) end
  local ms = math.max(0, math.floor(wait * 1000 + 0.5))
  local servers, parked = self.servers, self.parked
  for i = 1, #servers do
    local st = servers[i].server:timeout()
    if st >= 0 then ms = math.min(ms, st) end
  end
  for i = 1, #parked do
    local at = parked[i].at
    if at then ms = math.min(ms, math.max(0, math.floor((at - now) * 1000 + 0.5))) end
  end
  local ct = self.http:timeout()
  if ct >= 0 then ms = math.min(ms, ct) end
  return ms
end

--- Seconds until the loop has something to do besides what `fd()` will
-- signal (a timer, a request's timeout), or nil when only `fd()` can wake
-- it: a host loop waits that long at most, then calls `step(0)`.
---@return number|nil
function Loop:timeout()
  local none = 1e9
  local ms = self:wait_ms(none)
  if ms >= none * 1000 then return nil end
  return ms / 1000
end

local function serve(entry)
  if entry.removed or entry.serving then return 0 end
  entry.serving = true -- a handler's own waits must not run this server
  local ok, served = pcall(entry.server.run, entry.server, 0, entry.dispatch)
  entry.serving = false
  if entry.muted and not entry.removed then
    entry.muted = false
    entry.watch:set("r")
  end
  if not ok then error(served, 0) end
  return served
end

-- The earliest due timer created before this step (seq <= limit), or nil.
-- One made during the step is due no earlier than `now` (the clock does not
-- go back), so it sorts after every timer due before: the top is enough.
local function next_due(self, now, limit)
  local t = self.heap[1]
  if t and t.at <= now and t.seq <= limit then return heap_remove(self.heap, 1) end
  return nil
end

--- One round: wait up to `timeout` seconds for anything to happen, then run
-- what became ready: finished requests, ready descriptors and servers, due
-- timers, and the waits parked in coroutines. Returns true when something
-- ran. `step(0)` never blocks: a host event loop calls it when `fd()` is
-- readable or `timeout()` has passed.
---@param timeout? number seconds (default 0: do not wait)
---@return boolean
function Loop:step(timeout)
  local stepping = self.stepping
  self.stepping = true
  local ok, did = pcall(self.step_once, self, timeout)
  self.stepping = stepping
  if not ok then error(did, 0) end
  return did
end

--- One wait and what became due: transfers, servers, timers, watches, parked waits.
---@param timeout number? seconds (default 0)
---@return boolean # true when something happened
function Loop:step_once(timeout)
  local results, ready = self.http:wait(self:wait_ms(timeout or 0))
  local did = #results > 0 or ready ~= nil
  local callbacks = self.callbacks
  for i = 1, #results do
    local r = results[i]
    local cb = callbacks[r.id]
    callbacks[r.id] = nil
    if cb then xpcall(cb, self.on_callback_error, r) end
  end
  if ready then
    local watches = self.watches
    for i = 1, #ready, 2 do
      local w, mask = watches[ready[i]], ready[i + 1]
      if w then xpcall(w.fn, self.on_callback_error, mask & 1 ~= 0, mask & 2 ~= 0) end
    end
  end
  -- servers whose descriptor was ready or whose own timer is due (a copy:
  -- a handler may add or remove one)
  if #self.servers > 0 then
    for _, entry in ipairs({ table.unpack(self.servers) }) do
      if entry.ready or entry.server:timeout() == 0 then
        entry.ready = false
        if serve(entry) > 0 then did = true end
      end
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
  -- waits parked in coroutines look again (those still waiting park again)
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
---@return boolean # false on the timeout
function Loop:run_until(done, timeout)
  local deadline = timeout and self.clock() + timeout
  self.stopped = false
  while not (done and done()) do
    if self.stopped then return true end
    local now = self.clock()
    if deadline and now >= deadline then return false end
    -- as long as nothing happens (core.http waits 60 s at most): an idle
    -- loop wakes only for what is due (it woke every second)
    self:step(deadline and deadline - now or 60)
  end
  return true
end

--- Step until `done()` returns true, or `timeout` seconds pass (then
-- false): the wait of a blocking request or of `call:wait`. Unlike
-- run_until it does not stop for `stop()` (which is meant for the
-- outermost run) and leaves the stop request in place for it. Every wait
-- has a deadline: `timeout` is required.
---@param done fun(): boolean
---@param timeout number seconds (required)
---@return boolean # false on the timeout
function Loop:wait(done, timeout)
  if type(timeout) ~= "number" or timeout ~= timeout then
    error("graphcall.loop.wait: timeout must be a number of seconds (every wait has a deadline)", 2)
  end
  local deadline = self.clock() + timeout
  -- also bounded in real time, should an injected clock stand still
  local real_deadline = core.monotonic() + timeout
  if self.handlers[coroutine.running()] and coroutine.isyieldable() then
    -- a server's handler: back to the loop, which resumes it after each step
    while not done() do
      if self.clock() >= deadline or core.monotonic() >= real_deadline then return false end
      coroutine.yield(deadline)
    end
    return true
  end
  while not done() do
    local left = math.min(deadline - self.clock(), real_deadline - core.monotonic())
    if left <= 0 then return false end
    self:step(left)
  end
  return true
end

--- Close the loop: its connections and descriptor; pending requests,
-- timers and watches are dropped. Idempotent.
function Loop:close()
  self.closed = true
  self.http:close()
  self.servers, self.heap, self.callbacks, self.parked, self.watches = {}, {}, {}, {}, {}
end

M.Loop, M.Watch = Loop, Watch
return M
