--- The graphcall client: configuration shared by every request a bot makes.
-- @module graphcall.client
local core = require "graphcall.core"
local call_object = require "graphcall.call"
local control = require "graphcall.control"
local event_loop = require "graphcall.loop"
local options = require "graphcall.options"
local transport = require "graphcall.transport"
local receiver = require "graphcall.receiver"
local token_source = require "graphcall.token"
local events = require "graphcall.events"
local fleet = require "graphcall.fleet"
local logging = require "graphcall.log"
local cjson = require("cjson.safe").new()

local M = {}

---@class graphcall.Client
---@field app_id string
---@field tenant string?
---@field callback_uri string?
---@field graph_url string
---@field endpoint string
---@field log graphcall.Logger where this client's events go (graphcall.log)
local Client = {}
Client.__index = Client
Client.__name = "graphcall.client"

--- Options of `graphcall.new` with their defaults (`false`: no default).
M.DEFAULTS = {
  app_id = false,          -- required: the bot's application (client) id, a GUID
  tenant = false,          -- tenant id or domain the bot gets tokens for
  client_secret = false,   -- app secret for the client-credentials flow
  token = false,           -- a bearer token string, or a function returning one
  callback_uri = false,    -- default callbackUri of every call (https)
  graph_url = "https://graph.microsoft.com",
  endpoint = "v1.0",       -- "v1.0" | "beta" | "beta/app" | "beta/applications"
  loop = false,            -- the graphcall.loop requests run on; default: graphcall.loop.default()
  login_url = "https://login.microsoftonline.com", -- the identity platform (token endpoint)
  max_retries = 3,         -- retries of a throttled or unavailable request (429, 503, 504)
  max_retry_wait = 60,     -- seconds: the longest wait before one retry (Retry-After is capped to it)
  keep_alive_interval = 900, -- seconds between automatic keepAlive requests (Graph ends a call after 2700)
  store = false,           -- a fleet: { redis =, instance =, ... } (graphcall.fleet.DEFAULTS); calls shared in Redis
  log = false,             -- function(level, event, fields) (graphcall.log); default: the loop's
                           -- (stderr, as GRAPHCALL_LOG says)
  trace = false,           -- true: trace every request in full (event "trace"); default: GRAPHCALL_TRACE=1
}

local ENDPOINTS = { ["v1.0"] = true, beta = true, ["beta/app"] = true, ["beta/applications"] = true }

-- Token sources live outside the client table so that dumping or printing
-- a client never shows a credential.
local tokens = setmetatable({}, { __mode = "k" })

local function fail(fmt, ...)
  error("graphcall.new: " .. fmt:format(...), 3)
end

local function check_type(opts, key, expected)
  local v = opts[key]
  if v ~= nil and type(v) ~= expected then
    fail("%s: expected %s, got %s", key, expected, type(v))
  end
end

--- Create a client.
---@param opts table see `DEFAULTS`; unknown keys raise.
---@return graphcall.Client
function M.new(opts)
  if type(opts) ~= "table" then fail("expected an options table, got %s", type(opts)) end
  options.check("graphcall.new", opts, M.DEFAULTS)
  for _, k in ipairs { "app_id", "tenant", "client_secret", "callback_uri", "graph_url", "endpoint", "login_url" } do
    check_type(opts, k, "string")
  end
  for _, k in ipairs { "max_retries", "max_retry_wait" } do
    if opts[k] ~= nil and (math.type(opts[k]) ~= "integer" or opts[k] < 0) then
      fail("%s: expected a non-negative integer", k)
    end
  end
  local kai = opts.keep_alive_interval
  if kai ~= nil and (type(kai) ~= "number" or kai <= 0 or kai > 2700) then
    fail("keep_alive_interval: expected seconds in (0, 2700]: Graph ends a call not kept alive for 45 minutes")
  end
  if opts.client_secret and not opts.tenant then fail("client_secret: needs tenant (the tenant id or domain)") end
  if opts.client_secret and opts.token then fail("token: give either token or client_secret") end
  if opts.loop ~= nil and getmetatable(opts.loop) ~= event_loop.Loop then
    fail("loop: expected a graphcall.loop, got %s", type(opts.loop))
  end
  if opts.token ~= nil and type(opts.token) ~= "string" and type(opts.token) ~= "function" then
    fail("token: expected string or function, got %s", type(opts.token))
  end
  logging.check("graphcall.new", opts.log, opts.trace)
  local app_id = opts.app_id
  if not app_id then fail("app_id: required") end
  local ok, err = pcall(core.check_guid, app_id, "app_id")
  if not ok then fail("%s", err) end
  local endpoint = opts.endpoint or M.DEFAULTS.endpoint
  if not ENDPOINTS[endpoint] then
    fail("endpoint: unknown endpoint '%s' (v1.0, beta, beta/app, beta/applications)", endpoint)
  end
  local graph_url = opts.graph_url or M.DEFAULTS.graph_url
  local login_url = opts.login_url or M.DEFAULTS.login_url
  for key, url in pairs { graph_url = graph_url, callback_uri = opts.callback_uri, login_url = login_url } do
    ok, err = pcall(core.check_url, url, key)
    if not ok then fail("%s", err) end
  end

  local loop = opts.loop or event_loop.default()
  local self = setmetatable({
    app_id = app_id,
    tenant = opts.tenant,
    callback_uri = opts.callback_uri,
    graph_url = graph_url:gsub("/+$", ""),
    endpoint = endpoint,
    loop = loop,
    -- the graphcall.log logger of this client's requests, calls and receivers
    log = (opts.log ~= nil or opts.trace ~= nil) and logging.new(opts.log, opts.trace) or loop.log,
    max_retries = opts.max_retries or M.DEFAULTS.max_retries,
    max_retry_wait = opts.max_retry_wait or M.DEFAULTS.max_retry_wait,
    keep_alive_interval = kai or M.DEFAULTS.keep_alive_interval,
    calls = {},          -- the registry: call id -> call object, until terminated
    keep_alives = {},    -- call -> its keepAlive timer (the client's: keep_alive_start/stop)
    handlers = {},       -- client events ("incoming", "notification", "unknown")
    creating = 0,        -- create requests in flight
    early = {},          -- notifications that beat their call's 201 (see Client:handle)
  }, Client)
  if opts.store ~= nil then
    self.fleet = fleet.new(self, opts.store)
    self.fleet:start()
  end
  tokens[self] = token_source.new {
    token = opts.token, client_secret = opts.client_secret, tenant = opts.tenant, app_id = app_id,
    login_url = login_url:gsub("/+$", ""),
  }
  return self
end

local function build(self, spec, mode)
  if getmetatable(self) ~= Client then
    error(("graphcall: prepare_%s must be called as client:prepare_%s{...}"):format(mode, mode), 3)
  end
  if type(spec) ~= "table" then
    error(("graphcall.prepare_%s: expected a spec table, got %s"):format(mode, type(spec)), 3)
  end
  local callback_uri, crid = self.callback_uri, nil
  if self.fleet then
    -- the instance hint, so the load balancer routes the call's notifications
    -- here, and the client-request-id, so any instance can tell which create
    -- a call came from when its answer was lost (fleet:reconcile)
    crid = core.uuid()
    callback_uri = self.fleet:hinted(spec.callback_uri or callback_uri, crid)
    if spec.callback_uri then
      local copy = {}
      for k, v in pairs(spec) do copy[k] = v end
      copy.callback_uri = callback_uri
      spec = copy
    end
  end
  local ok, req = pcall(core.build_request, self.app_id, spec, mode, callback_uri, self.graph_url, self.endpoint)
  if not ok then error(("graphcall.prepare_%s: %s"):format(mode, req), 3) end
  return req, crid
end

--- Build (without sending) the request that places a call.
-- Raises on a bad spec, naming the field.
---@param spec table targets, subject, media, modalities, source, ... (see doc/calls.md)
---@return userdata # graphcall.request with `method`, `url`, `path`, `body`
function Client:prepare_call(spec)
  return (build(self, spec, "call"))
end

--- Build (without sending) the request that joins a meeting.
---@param spec table url | chat_info + organizer | meeting_id [+ passcode] | meeting_token, ...
---@return userdata # graphcall.request
function Client:prepare_join(spec)
  return (build(self, spec, "join"))
end

-- What transport.send needs from a client: one table per client, its
-- settings read again for every request (a client may be changed).
local contexts = setmetatable({}, { __mode = "k" })
local function context(self)
  local ctx = contexts[self]
  if not ctx then
    ctx = { tokens = tokens[self], client = self }
    local fleet_member = self.fleet
    if fleet_member then
      -- a 429 seen here pauses the whole fleet; the fleet's pause and rate hold every request
      ctx.gate = function(send) fleet_member:gate(send) end
      ctx.on_throttle = function(seconds) fleet_member:throttle(seconds) end
    end
    contexts[self] = ctx
  end
  ctx.loop, ctx.max_retries, ctx.max_retry_wait, ctx.log = self.loop, self.max_retries, self.max_retry_wait, self.log
  return ctx
end

local CREATED = { [200] = true, [201] = true }

-- The call object for a create request's result, or nil, err.
local function created(self, result, req)
  local err = transport.check(result, req, CREATED)
  if err then return nil, err end
  -- the call object needs four members; call.data decodes the rest if read
  local fields, derr = transport.decode_fields(result, req, "id", "state", "direction", "myParticipantId")
  if not fields then return nil, derr end
  if not fields.id or fields.id == "" then
    return nil, transport.new_error { kind = "bad_response", status = result.status,
      message = "the created call has no id", request_id = result.headers["request-id"] }
  end
  local call = call_object.new(self, fields, result.headers.location, result.body)
  call.client_request_id = req.client_request_id
  return self:track(call)
end

-- Notifications that came while creates were in flight, looked at again
-- on the next turn of the loop (after the caller of `call` has had the
-- call object and set its handlers): those whose call is known now are
-- applied; the others wait while creates are still in flight.
local function release_early(self)
  self.loop:timer(0, function()
    local early = self.early
    self.early = {}
    for _, n in ipairs(early) do self:handle(n) end
  end)
end

-- One create request ended (answered or not).
local function create_done(self)
  self.creating = self.creating - 1
  if #self.early > 0 then release_early(self) end
end

-- A create whose outcome is unknown: in a fleet, recorded by its
-- client-request-id, so that whichever instance hears of the call first
-- can reconcile it.
local function unknown_outcome(self, err)
  if self.fleet and err and err.kind == "unknown_outcome" and err.client_request_id then
    self.fleet:pending(err.client_request_id)
  end
end

-- Send a request built by prepare_call/prepare_join: call | nil, err.
-- `crid`: the client-request-id to send (a fleet's, in the callbackUri too).
local function send_create(self, built, crid)
  local result, req = transport.send(context(self),
    { method = built.method, url = built.url, body = built.body, create = true, client_request_id = crid })
  local call, err
  if result then
    call, err = created(self, result, req)
  else
    err = req
  end
  unknown_outcome(self, err)
  return call, err
end

local function create(self, built, crid)
  self.creating = self.creating + 1
  local ok, call, err = pcall(send_create, self, built, crid)
  create_done(self)
  if not ok then error(call, 0) end
  return call, err
end

--- Place a call: send what `prepare_call` builds, return the call object.
-- Raises on a bad spec; returns nil, err (err.kind) on a runtime failure.
-- Retried only when Graph cannot have acted on it (connection refused, 429).
-- With `cb`, returns at once and `cb(call, err)` runs when the answer comes
-- (a bad spec still raises here).
---@param spec table
---@param cb? fun(call: graphcall.Call|nil, err: table|nil)
---@return graphcall.Call|nil, table?
function Client:call(spec, cb)
  return self.loop:async(cb, create, self, build(self, spec, "call"))
end

--- Join a meeting: send what `prepare_join` builds, return the call object.
-- With `cb`, as `call`.
---@param spec table
---@param cb? fun(call: graphcall.Call|nil, err: table|nil)
---@return graphcall.Call|nil, table?
function Client:join(spec, cb)
  return self.loop:async(cb, create, self, build(self, spec, "join"))
end

-- Send the built create requests at once (`crids`: their
-- client-request-ids, a fleet's); calls, errs.
local function send_many(self, built, crids)
  local calls, errs, left = {}, {}, #built
  local ctx = context(self)
  self.creating = self.creating + #built
  for i, b in ipairs(built) do
    transport.send_async(ctx, { method = b.method, url = b.url, body = b.body, create = true,
      client_request_id = crids[i] }, function(result, req)
        left = left - 1
        create_done(self)
        if result then calls[i], errs[i] = created(self, result, req) else errs[i] = req end
        unknown_outcome(self, errs[i])
      end)
  end
  -- each send ends by its deadline, and max_in_flight of them run at once
  local rounds = math.ceil(#built / self.loop.max_in_flight)
  if not self.loop:wait(function() return left == 0 end, transport.deadline(ctx) * math.max(1, rounds)) then
    for i in ipairs(built) do
      if not calls[i] and not errs[i] then
        errs[i] = transport.new_error { kind = "unknown_outcome", message = "no outcome in time; the call may exist" }
      end
    end
  end
  return calls, errs
end

--- Place many calls at once over one connection pool (at most the loop's
-- max_in_flight at a time). Returns two lists indexed like `specs`: the
-- call objects and the errors (exactly one of calls[i], errs[i] is set).
-- With `cb`, returns at once and `cb(calls, errs)` runs when all are answered.
---@param specs table[]
---@param cb? fun(calls: table, errs: table)
---@return table calls, table errs
function Client:call_many(specs, cb)
  if type(specs) ~= "table" then error("graphcall.call_many: expected a list of specs", 2) end
  local built, crids = {}, {}
  for i, spec in ipairs(specs) do built[i], crids[i] = build(self, spec, "call") end
  return self.loop:async(cb, send_many, self, built, crids)
end

local function call_url(self, id)
  if type(id) ~= "string" or not id:match("^[%w%-]+$") then
    error(("graphcall: expected a call id, got %s"):format(type(id) == "string" and ("'" .. id .. "'") or type(id)), 3)
  end
  return self.graph_url .. core.calls_path(self.endpoint, self.app_id) .. "/" .. id
end

local function simple(self, method, url, expected)
  local result, req = transport.send(context(self), { method = method, url = url })
  if not result then return nil, req end
  local err = transport.check(result, req, expected)
  if err then return nil, err end
  return result, req
end

local function hangup(self, url)
  local ok, err = simple(self, "DELETE", url, { [200] = true, [202] = true, [204] = true })
  if not ok then return nil, err end
  return true
end

--- Hang up a call: `DELETE .../calls/{id}` (204). Returns true, or nil, err;
-- with `cb`, `cb(true | nil, err)` later.
---@param id string
---@param cb? fun(ok: boolean|nil, err: table|nil)
---@return boolean|nil, table?
function Client:hangup(id, cb)
  return self.loop:async(cb, hangup, self, call_url(self, id))
end

local function get_call(self, url)
  local result, r = simple(self, "GET", url, { [200] = true })
  if not result then return nil, r end
  return transport.decode(result, r)
end

--- Read a call: `GET .../calls/{id}`. Returns the decoded call resource, or
-- nil, err; with `cb`, `cb(call_resource | nil, err)` later.
---@param id string
---@param cb? fun(data: table|nil, err: table|nil)
---@return table|nil, table?
function Client:get_call(id, cb)
  return self.loop:async(cb, get_call, self, call_url(self, id))
end

--- Receive notifications: an HTTP endpoint on this client's loop.
-- See `graphcall.receiver.DEFAULTS` for the options.
-- @return graphcall.Receiver, or nil, err (err.kind "listen") when the port is taken
---@param opts table? see graphcall.receiver's DEFAULTS
---@return graphcall.Receiver|nil, table? # or nil, err (err.kind "listen")
function Client:receiver(opts)
  return receiver.new(self.loop, opts, self)
end

--- Register a call object, so notifications reach it.
---@param call graphcall.Call
---@return graphcall.Call
function Client:track(call)
  self.calls[call.id] = call
  if self.fleet then self.fleet:record(call) end
  return call
end

--- A terminated call leaves the registry (the object keeps its result_info).
---@param call graphcall.Call
function Client:forget(call)
  self:keep_alive_stop(call)
  if self.calls[call.id] == call then
    self.calls[call.id] = nil
    if self.fleet then self.fleet:drop(call.id) end
  end
end

--- Hand this instance's calls to the other live instances of the fleet
-- and stop taking notifications (a deploy, SIGTERM). Returns the number of
-- calls handed off, or nil, err (kind "no_peer", "no_store").
---@return integer|nil, table?
function Client:drain()
  if not self.fleet then return nil, transport.new_error { kind = "no_store", message = "the client has no store" } end
  return self.fleet:drain()
end

--- Close what the client holds besides its loop: the fleet's Redis
-- connections (after `drain`, once the receiver is closed). Idempotent.
function Client:close()
  if self.fleet then self.fleet:close() end
end

--- Listen for client events: "incoming" as `fn(call, notification)` for an
-- incoming call (answer, reject or redirect it within 15 seconds);
-- "notification" for every accepted notification; "unknown" for a
-- notification about a call the client does not know. With a store:
-- "adopted" as `fn(call, checkpoint)` for a call this instance took over
-- (from a dead or draining instance, or its own after a restart), and
-- "reconciled" as `fn(call, client_request_id)` for the call of a create
-- that had returned `unknown_outcome`.
---@param event string the event's name
---@param fn function
---@return graphcall.Client
function Client:on(event, fn)
  events.on(self.handlers, event, fn, "client:on")
  return self
end

--- Run the client's handlers of `event` with the arguments.
---@param event string the event's name
---@param ... any the handlers' arguments
function Client:emit(event, ...)
  events.emit(self.loop, self.handlers, event, ...)
end

--- Hand a parsed batch of notifications to the calls they are about. The
-- receiver does this for every batch it accepts (`body`: the raw body, which
-- a fleet forwards to the call's owner; `query`: the callbackUri's query,
-- whose instance hint names the owner of a call not yet recorded).
---@param batch graphcall.notifications the parsed batch (graphcall.core userdata)
---@param body string the raw body
---@param query? string the request's query string
---@return nil # (returns only to end the handler early)
function Client:dispatch(batch, body, query)
  if self.fleet then return self.fleet:dispatch(batch, body, function(n) self:handle(n) end, query) end
  for _, n in ipairs(batch) do self:handle(n) end
end

-- How many notifications may wait for their call's 201.
local EARLY_MAX = 256

--- Apply one accepted notification. Graph may post a call's first
-- notifications before its answer to the create request arrives: one
-- about an unknown call waits while creates are in flight.
---@param n graphcall.notification a notification (graphcall.core userdata)
function Client:handle(n)
  local call = n.call_id and self.calls[n.call_id]
  if not call and self.creating > 0 and n.change_type ~= "created" and #self.early < EARLY_MAX then
    self.early[#self.early + 1] = n
    return
  end
  self:emit("notification", n)
  local lg = self.log
  if lg.debug then
    lg:log("debug", "notification", { call_id = n.call_id, kind = n.kind, change_type = n.change_type,
      state = n.state, known = call ~= nil })
  end
  if call then
    call:apply(n)
  elseif n.kind == "call" and n.change_type == "created" and n.state == "incoming"
      and type(n.resource_data) == "table" then
    local data = n.resource_data
    data.id = data.id or n.call_id
    call = self:track(call_object.new(self, data))
    call:repeated(n)
    self:emit("incoming", call, n)
  else
    self:emit("unknown", n)
  end
end

local arm_keep_alive

-- One keepAlive of `call`. Nothing waits for the answer: the beats of many
-- calls due at once go out together. (Waiting in the timer nested a loop
-- step per beat, each running the next due beat inside it, until Lua's C
-- stack ran out with a few hundred calls established together; waiting in
-- a task of its own parks one coroutine per call, and every step resumes
-- them all.)
local function beat(self, call)
  self.keep_alives[call] = nil
  if call.state == "terminated" then return end
  control.keep_alive_async(call, function(ok, err)
    -- again at the next beat; a failure is logged (control), not fatal
    if (ok or (err and err.status ~= 404)) and call.state ~= "terminated" and not self.keep_alives[call] then
      arm_keep_alive(self, call)
    end
  end)
end

-- The next beat of `call`: between beats a live call holds only this timer
-- and its closure (10,000 live calls are the scale to plan for).
function arm_keep_alive(self, call)
  self.keep_alives[call] = self.loop:timer(self.keep_alive_interval, function() beat(self, call) end)
end

--- Start the automatic keepAlive of an established call.
---@param call graphcall.Call
function Client:keep_alive_start(call)
  -- a fleet keeps it alive through the shared schedule; locally only while Redis is away
  if self.fleet and self.fleet:keep_alive(call) then return end
  if self.keep_alives[call] then return end
  arm_keep_alive(self, call)
end

--- Stop the automatic keepAlive of a call (it ended, or another instance
-- of the fleet keeps it alive now).
---@param call graphcall.Call
function Client:keep_alive_stop(call)
  local timer = self.keep_alives[call]
  if timer then
    self.loop:cancel_timer(timer)
    self.keep_alives[call] = nil
  end
end

--- Send a request about one call: `method .../calls/{id}<suffix>` with an
-- optional JSON body. Returns result, req or nil, err.
---@param id string the call's id
---@param method string the HTTP method
---@param suffix string the path after .../calls/{id} ("" or "/keepAlive", ...)
---@param body table? the JSON body (a Lua table)
---@param expected table<integer, boolean> the statuses that mean success
---@return table|nil, table # the result and the request, or nil, err
function Client:call_request(id, method, suffix, body, expected)
  local encoded = body and assert(cjson.encode(body))
  local result, req = transport.send(context(self), { method = method, url = call_url(self, id) .. suffix,
    body = encoded })
  if not result then return nil, req end
  local err = transport.check(result, req, expected)
  if err then return nil, err end
  return result, req
end

--- `call_request` without waiting: `done(result, req)` or `done(nil, err)`
-- runs from the loop.
---@param id string the call's id
---@param method string the HTTP method
---@param suffix string the path after .../calls/{id}
---@param body table? the JSON body (a Lua table)
---@param expected table<integer, boolean> the statuses that mean success
---@param done fun(result: table|nil, req_or_err: table)
function Client:call_request_async(id, method, suffix, body, expected, done)
  local encoded = body and assert(cjson.encode(body))
  transport.send_async(context(self), { method = method, url = call_url(self, id) .. suffix, body = encoded },
    function(result, req)
      if not result then return done(nil, req) end
      local err = transport.check(result, req, expected)
      if err then return done(nil, err) end
      done(result, req)
    end)
end

function Client:__tostring()
  return ("graphcall.client: app %s via %s/%s"):format(self.app_id, self.graph_url, self.endpoint)
end

--- The client's token source (how many tokens it acquired, ...).
---@param client graphcall.Client
---@return graphcall.TokenSource
function M.tokens(client)
  return tokens[client]
end

M.Client = Client
return M
