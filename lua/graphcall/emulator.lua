--- A local emulator of Graph's calling service, for the demo, the specs and
-- the specs of bots built on graphcall. It runs on a graphcall loop (in the
-- same process as the bot, or alone through bin/graphcall-emulator) and is
-- built on graphcall's own C server and HTTP client.
--
-- Like Graph it answers `POST .../calls` with 201, a server-generated id,
-- `state: establishing` and a Location header, then POSTs `establishing`
-- and `established` notifications to the call's callbackUri; `DELETE`
-- answers 204 and is followed by `terminating` and `terminated` (with
-- resultInfo). Bodies are validated the way Graph does, with Graph's error
-- codes where they are known. Every request is recorded, and faults can be
-- injected into the next responses.
-- @module graphcall.emulator
local core = require "graphcall.core"
local graphcall_loop = require "graphcall.loop"
local cjson = require("cjson.safe").new()

local M = {}

--- Options of `emulator.start`, with defaults.
M.DEFAULTS = {
  loop = false,            -- default: graphcall.loop.default()
  host = "127.0.0.1",
  port = 0,
  token = false,           -- the bearer token to require; false: any non-empty token
  notify_delay = 0.005,    -- seconds between the answer and each notification
}

---@class graphcall.Emulator
local Emulator = {}
Emulator.__index = Emulator
Emulator.__name = "graphcall.emulator"

local JSON = "application/json"

-- Graph's error body: {"error":{"code","message","innerError":{...}}}.
local function graph_error(code, message, request_id, client_request_id)
  return cjson.encode { error = { code = code, message = message, innerError = {
    ["request-id"] = request_id, date = os.date("!%Y-%m-%dT%H:%M:%S"),
    ["client-request-id"] = client_request_id,
  } } }
end

function Emulator:respond(req, status, body, headers, how)
  headers = headers or {}
  headers["request-id"] = req.request_id
  if req.headers["client-request-id"] then headers["client-request-id"] = req.headers["client-request-id"] end
  if body and body ~= "" and not headers["content-type"] then headers["content-type"] = JSON end
  self.server:respond(req.id, status, body or "", headers, how)
end

function Emulator:fail(req, status, code, message)
  self:respond(req, status, graph_error(code, message, req.request_id, req.headers["client-request-id"]))
end

-- The paths of the calls collection: v1.0 and beta, the seed's /app/calls and
-- /applications/{id}/calls. Returns the collection and the rest.
local COLLECTIONS = {
  "^/v1%.0/communications/calls", "^/beta/communications/calls", "^/beta/app/calls",
  "^/beta/applications/[%w%-]+/calls",
}
local function split_path(path)
  for _, pattern in ipairs(COLLECTIONS) do
    local s, e = path:find(pattern)
    if s then return path:sub(1, e), path:sub(e + 1) end
  end
end

-- The notification envelope Graph POSTs for one change of a call.
local function notification_body(call, change_type, data)
  data["@odata.type"] = data["@odata.type"] or "#microsoft.graph.call"
  data["@odata.id"] = "/communications/calls/" .. call.id
  call.etag = call.etag + 1
  data["@odata.etag"] = ('W/"%d"'):format(call.etag)
  return cjson.encode {
    ["@odata.type"] = "#microsoft.graph.commsNotifications",
    value = { {
      ["@odata.type"] = "#microsoft.graph.commsNotification",
      changeType = change_type,
      resource = "/app/calls/" .. call.id,          -- the legacy field Graph still sends
      resourceUrl = "/communications/calls/" .. call.id,
      callbackUri = call.callback_uri,
      resourceData = data,
    } },
  }
end

-- Deliver the call's queued notifications one at a time, in order, each
-- notify_delay after the previous one was answered.
function Emulator:deliver(call)
  local record = call.outbox[1]
  if not record or call.sending then return end
  call.sending = true
  self.loop:timer(self.notify_delay, function()
    self.loop:request({
      method = "POST", url = call.callback_uri, body = record.body,
      headers = {
        ["Content-Type"] = JSON,
        -- Replaced by an RS256 token signed like Graph's when verification lands.
        ["Authorization"] = "Bearer emulator-unsigned",
        ["User-Agent"] = "graphcall-emulator/" .. core._VERSION,
      },
    }, function(r)
      record.status, record.failure = r.status, r.failure
      table.remove(call.outbox, 1)
      call.sending = false
      self:deliver(call)
    end)
  end)
end

--- Queue a notification for the call's callbackUri.
function Emulator:notify(call, change_type, data)
  local body = notification_body(call, change_type, data)
  local record = { call_id = call.id, change_type = change_type, state = data.state, body = body }
  self.notifications[#self.notifications + 1] = record
  call.outbox[#call.outbox + 1] = record
  self:deliver(call)
end

-- Graph's checks on a create body, with its codes where known (8523 is
-- Graph's; the others use OData's generic BadRequest).
local function validate(body)
  if type(body) ~= "table" then return "BadRequest", "The request body is not a JSON object." end
  if type(body.callbackUri) ~= "string" or body.callbackUri == "" then
    return "BadRequest", "callbackUri is required."
  end
  if type(body.mediaConfig) ~= "table" then return "8523", "Missing mediaConfig information." end
  local targets = body.targets
  if targets ~= nil and (type(targets) ~= "table" or #targets == 0) then
    return "BadRequest", "targets must be a non-empty array."
  end
  for i, t in ipairs(type(targets) == "table" and targets or {}) do
    if type(t) ~= "table" or type(t.identity) ~= "table" or next(t.identity) == nil then
      return "BadRequest", ("targets[%d] has no identity."):format(i)
    end
  end
  if targets == nil and type(body.meetingInfo) ~= "table" then
    return "BadRequest", "Either targets or meetingInfo is required."
  end
end

function Emulator:create(req, collection)
  local body = cjson.decode(req.body)
  local code, message = validate(body)
  if code then return self:fail(req, 400, code, message) end
  local id = core.uuid()
  local call = {
    id = id, callback_uri = body.callbackUri, state = "establishing", etag = 0,
    data = body, my_participant_id = core.uuid(), outbox = {},
  }
  self.calls[id] = call
  body.id = id
  body.state = "establishing"
  body.direction = "outgoing"
  body.myParticipantId = call.my_participant_id
  body["@odata.type"] = "#microsoft.graph.call"
  body["@odata.context"] = self.url .. "/v1.0/$metadata#app/calls/$entity"
  self:respond(req, 201, cjson.encode(body), { location = self.url .. collection .. "/" .. id })
  self:notify(call, "updated", { state = "establishing", direction = "outgoing" })
  self:notify(call, "updated", { state = "established", direction = "outgoing" })
  call.state = "established"
end

function Emulator:delete(req, call)
  self.calls[call.id] = nil
  self:respond(req, 204)
  self:notify(call, "updated", { state = "terminating" })
  self:notify(call, "deleted", { state = "terminated", resultInfo = {
    ["@odata.type"] = "#microsoft.graph.resultInfo", code = 200, subcode = 5001,
    message = "The conversation has ended.",
  } })
  call.state = "terminated"
end

-- A fault queued by fail_next, applied to the next request.
function Emulator:inject(req, fault)
  if fault.status then
    local headers = { ["content-type"] = JSON }
    if fault.retry_after then headers["retry-after"] = tostring(fault.retry_after) end
    local code = fault.status == 429 and "TooManyRequests" or "ServiceUnavailable"
    return self:respond(req, fault.status, graph_error(code, "Injected fault.", req.request_id,
      req.headers["client-request-id"]), headers)
  elseif fault.mode == "drop" then
    return self.server:abort(req.id)
  elseif fault.mode == "truncate" then
    return self:respond(req, 201, ('{"id":"%s","state":"establishing","padding":"%s"}')
      :format(core.uuid(), ("x"):rep(512)), nil, "truncate")
  elseif fault.mode == "not_json" then
    return self:respond(req, 201, "<html>Service Unavailable</html>", { ["content-type"] = "text/html" })
  elseif fault.mode == "oversized" then
    return self:respond(req, 201, '{"padding":"' .. ("x"):rep(fault.size or 8 * 1024 * 1024) .. '"}')
  end
  error("emulator: unknown fault")
end

function Emulator:handle(req)
  req.request_id = core.uuid()
  local record = { method = req.method, path = req.path, headers = req.headers, body = req.body,
    json = req.body ~= "" and cjson.decode(req.body) or nil }
  self.requests[#self.requests + 1] = record

  local fault = table.remove(self.faults, 1)
  if fault then
    if fault.delay then
      -- answer (normally, or with the rest of the fault) after the delay
      return self.loop:timer(fault.delay, function()
        fault.delay = nil
        if next(fault) then self:inject(req, fault) else self:route(req) end
      end)
    end
    return self:inject(req, fault)
  end
  self:route(req)
end

function Emulator:route(req)
  local auth = req.headers.authorization or ""
  local token = auth:match("^Bearer (.+)$")
  if not token or (self.token and token ~= self.token) then
    return self:fail(req, 401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
  end
  local collection, rest = split_path(req.path)
  if not collection then
    return self:fail(req, 404, "UnknownError", "No route for " .. req.path)
  end
  if rest == "" then
    if req.method ~= "POST" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
    return self:create(req, collection)
  end
  local id = rest:match("^/([%w%-]+)$")
  local call = id and self.calls[id]
  if not call then return self:fail(req, 404, "8522", "Call not found.") end
  if req.method == "GET" then
    local data = {}
    for k, v in pairs(call.data) do data[k] = v end
    data.state = call.state
    return self:respond(req, 200, cjson.encode(data))
  elseif req.method == "DELETE" then
    return self:delete(req, call)
  end
  self:fail(req, 405, "BadRequest", "Method not allowed.")
end

--- Queue faults for the next requests, in order:
-- `{ status = 429|503, retry_after = s }`, `{ mode = "drop" | "truncate" | "not_json" | "oversized" }`,
-- `{ delay = s }` (then answer normally, or with the other fields); `count` repeats it.
function Emulator:fail_next(fault)
  if type(fault) ~= "table" then error("emulator:fail_next: expected a fault table", 2) end
  for _ = 1, fault.count or 1 do
    local f = {}
    for k, v in pairs(fault) do if k ~= "count" then f[k] = v end end
    self.faults[#self.faults + 1] = f
  end
end

--- Start an emulator. Returns it (`emu.url` is its base URL), or nil, err.
---@param opts? table see `DEFAULTS`
function M.start(opts)
  opts = graphcall_loop.check_options("graphcall.emulator.start", opts, M.DEFAULTS)
  local loop = opts.loop or graphcall_loop.default()
  local server, err = core.server { host = opts.host, port = opts.port, max_body = 1024 * 1024 }
  if not server then return nil, err end
  local self = setmetatable({
    loop = loop, server = server, token = opts.token or nil, notify_delay = opts.notify_delay,
    url = ("http://%s:%d"):format(opts.host, server:port()),
    requests = {}, notifications = {}, calls = {}, faults = {},
  }, Emulator)
  loop:add_server(server, function(req) self:handle(req) end)
  return self
end

--- True when every notification queued so far has been answered.
function Emulator:idle()
  for _, n in ipairs(self.notifications) do
    if n.status == nil and n.failure == nil then return false end
  end
  return true
end

--- Stop the emulator; idempotent.
function Emulator:close()
  self.loop:remove_server(self.server)
  self.server:close()
end
Emulator.__close = Emulator.close

return M
