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
--
-- It also stands in for the identity platform: a client-credentials token
-- endpoint (`POST /{tenant}/oauth2/v2.0/token`), and the OpenID
-- configuration and JWKS Graph publishes (`/v1/.well-known/OpenIdConfiguration`,
-- `/v1/keys`); its notifications carry an RS256 JWT signed like Graph's.
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
  token = false,           -- a static bearer token to accept (besides the ones it issues);
                           -- false and no client_secret: any non-empty token
  client_secret = false,   -- the secret its token endpoint wants; false: any non-empty one
  token_lifetime = 3599,   -- expires_in of the tokens it issues (seconds, on the loop's clock)
  app_id = false,          -- aud of notification tokens when the caller's app id is unknown
  tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", -- tid of notification tokens
  issuer = "https://api.botframework.com",
  sign = true,             -- false: notifications carry no Authorization header
  notify_delay = 0.005,    -- seconds between the answer and each notification
}

-- One signing key per process, unless rotated: RSA key generation is slow.
local shared_signer

local function new_kid()
  return "emulator-" .. core.uuid():sub(1, 8)
end

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
  if req.answer_with then
    status, headers, how = req.answer_with, nil, nil
    body = graph_error("ServiceUnavailable", "Injected fault after processing.", req.request_id,
      req.headers["client-request-id"])
  end
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
      method = "POST", url = call.callback_uri, body = record.body, urgent = true, -- Graph is not the bot's queue
      headers = {
        ["Content-Type"] = JSON,
        ["Authorization"] = self.sign and ("Bearer " .. self:notification_token(call.app_id)) or nil,
        ["User-Agent"] = "Microsoft-Skype/3.0,(Calling/1.0)",
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
  local src = type(body.source) == "table" and type(body.source.identity) == "table" and body.source.identity or {}
  local src_app = type(src.application) == "table" and src.application.id or type(src.user) == "table" and src.user.id
  local call = {
    id = id, callback_uri = body.callbackUri, state = "establishing", etag = 0,
    data = body, my_participant_id = core.uuid(), outbox = {},
    app_id = req.app_id or self.app_id or src_app,
  }
  self.created = self.created + 1
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

--- A token like the ones Graph puts on its notifications: RS256, kid,
-- iss, aud = the bot's app id, tid, a lifetime of 300 s. Reused until a
-- minute before it expires, as Graph does.
function Emulator:notification_token(app_id)
  local now = os.time()
  local cached = self.notify_tokens[app_id or ""]
  if cached and cached.exp - 60 > now then return cached.token end
  local token = self:sign_claims { iss = self.issuer, aud = app_id, tid = self.tenant,
    iat = now, nbf = now, exp = now + 300, appid = "26a18ebc-cdf7-4a6a-91cb-beb352805e81" }
  self.notify_tokens[app_id or ""] = { token = token, exp = now + 300 }
  return token
end

--- Sign `claims` (a table) with the emulator's key, as Graph would: for
-- specs that need a token of their own (expired, wrong audience, ...).
function Emulator:sign_claims(claims, header)
  header = header or {}
  header.kid = header.kid or self.kid
  header.typ = header.typ or "JWT"
  return self.signer:sign(cjson.encode(claims), header)
end

--- Replace the signing key (a new kid); the old one is no longer published.
function Emulator:rotate_keys()
  self.signer = core.jwt_signer()
  self.kid = new_kid()
  self.notify_tokens = {}
end

--- Make every token the emulator issued expire now (Graph then answers 401).
function Emulator:expire_tokens()
  for _, t in pairs(self.issued) do t.expires_at = -math.huge end
end

-- A fault queued by fail_next, applied to the next request.
function Emulator:inject(req, fault)
  if fault.processed then
    -- Graph acts on the request, then a gateway fails the answer
    req.answer_with = fault.status
    return self:route(req)
  end
  if fault.status then
    local headers = { ["content-type"] = JSON }
    if fault.retry_after then headers["retry-after"] = tostring(fault.retry_after) end
    local code = ({ [429] = "TooManyRequests", [503] = "ServiceUnavailable", [504] = "GatewayTimeout" })
      [fault.status] or "UnknownError"
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
    local padding = ("x"):rep(fault.size or 8 * 1024 * 1024)
    return self:respond(req, req.path:find("^/v1/") and 200 or 201, '{"padding":"' .. padding .. '"}')
  elseif fault.mode == "html" then
    return self:respond(req, 200, "<html><body>Service unavailable</body></html>", { ["content-type"] = "text/html" })
  end
  error("emulator: unknown fault")
end

-- The first queued fault for this request: a fault with a `path` pattern
-- applies to matching paths; one without, to Graph's calls API only (so key
-- and token fetches in between do not eat it).
function Emulator:take_fault(req)
  for i, f in ipairs(self.faults) do
    if (f.path and req.path:find(f.path)) or (not f.path and split_path(req.path)) then
      return table.remove(self.faults, i)
    end
  end
end

function Emulator:handle(req)
  req.request_id = core.uuid()
  local record = { method = req.method, path = req.path, headers = req.headers, body = req.body,
    json = req.body ~= "" and cjson.decode(req.body) or nil }
  self.requests[#self.requests + 1] = record

  local fault = self:take_fault(req)
  if fault then
    if fault.delay then
      -- answer (normally, or with the rest of the fault) after the delay
      return self.loop:timer(fault.delay, function()
        fault.delay, fault.path = nil, nil
        if next(fault) then self:inject(req, fault) else self:route(req) end
      end)
    end
    return self:inject(req, fault)
  end
  self:route(req)
end

-- The identity platform's answers: {"error", "error_description", ...}.
function Emulator:auth_fail(req, code, aadsts, description)
  self:respond(req, 400, cjson.encode {
    error = code, error_description = ("AADSTS%d: %s"):format(aadsts, description),
    error_codes = { aadsts }, timestamp = os.date("!%Y-%m-%d %H:%M:%SZ"),
    trace_id = core.uuid(), correlation_id = core.uuid(),
  })
end

function Emulator:token_endpoint(req)
  local form = {}
  for k, v in req.body:gmatch("([^&=]+)=([^&]*)") do
    form[core.url_decode(k) or k] = core.url_decode(v)
  end
  if form.grant_type ~= "client_credentials" then
    return self:auth_fail(req, "unsupported_grant_type", 70003,
      "The app requested an unsupported grant type.")
  end
  if form.scope ~= "https://graph.microsoft.com/.default" then
    return self:auth_fail(req, "invalid_scope", 70011, "The provided value for scope is not valid.")
  end
  if not form.client_id or form.client_id == "" then
    return self:auth_fail(req, "invalid_request", 900144, "The request body must contain client_id.")
  end
  if not form.client_secret or form.client_secret == ""
     or (self.client_secret and form.client_secret ~= self.client_secret) then
    return self:auth_fail(req, "invalid_client", 7000215, "Invalid client secret provided.")
  end
  local token = "emu." .. core.uuid()
  self.issued[token] = { app_id = form.client_id, expires_at = self.loop.clock() + self.token_lifetime }
  self.tokens_issued = self.tokens_issued + 1
  self:respond(req, 200, cjson.encode { token_type = "Bearer", expires_in = self.token_lifetime,
    ext_expires_in = self.token_lifetime, access_token = token })
end

function Emulator:route(req)
  if req.method == "POST" and req.path:match("^/[^/]+/oauth2/v2%.0/token$") then
    return self:token_endpoint(req)
  elseif req.method == "GET" and req.path == "/v1/.well-known/OpenIdConfiguration" then
    return self:respond(req, 200, cjson.encode { issuer = self.issuer, jwks_uri = self.url .. "/v1/keys",
      id_token_signing_alg_values_supported = { "RS256" },
      token_endpoint_auth_signing_alg_values_supported = { "RS256" } })
  elseif req.method == "GET" and req.path == "/v1/keys" then
    return self:respond(req, 200, '{"keys":[' .. self.signer:jwk(self.kid) .. "]}")
  end
  self:graph(req)
end

-- Whose token is this? The app id it was issued to, true for the static
-- token, or nil and why not.
function Emulator:authenticate(token)
  local issued = self.issued[token]
  if issued then
    if self.loop.clock() >= issued.expires_at then
      return nil, "Lifetime validation failed, the token is expired."
    end
    return issued.app_id
  end
  if self.token then
    if token == self.token then return true end
  elseif not self.client_secret then
    return true -- no credentials configured: any token
  end
  return nil, "Access token is empty or invalid."
end

function Emulator:graph(req)
  local token = (req.headers.authorization or ""):match("^Bearer (.+)$")
  local who, why = self:authenticate(token or "")
  if not token or not who then
    return self:fail(req, 401, "InvalidAuthenticationToken", why or "Access token is empty or invalid.")
  end
  req.app_id = type(who) == "string" and who or nil
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
-- `{ status = 429|503|504, retry_after = s }`, `{ mode = "drop" | "truncate" | "not_json" | "oversized" | "html" }`,
-- `{ delay = s }` (then answer normally, or with the other fields); `count` repeats it;
-- `path` (a Lua pattern) aims it at other paths than Graph's calls API, e.g. "^/v1/keys";
-- `processed = true` with a status: act on the request (create the call), then answer the status.
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
  shared_signer = shared_signer or { signer = core.jwt_signer(), kid = new_kid() }
  local self = setmetatable({
    loop = loop, server = server, token = opts.token or nil, notify_delay = opts.notify_delay,
    client_secret = opts.client_secret or nil, token_lifetime = opts.token_lifetime,
    app_id = opts.app_id or nil, tenant = opts.tenant, issuer = opts.issuer, sign = opts.sign,
    signer = shared_signer.signer, kid = shared_signer.kid,
    url = ("http://%s:%d"):format(opts.host, server:port()),
    requests = {}, notifications = {}, calls = {}, faults = {}, issued = {}, notify_tokens = {},
    created = 0, tokens_issued = 0,
  }, Emulator)
  -- where a receiver finds the emulator's signing keys
  self.openid_url = self.url .. "/v1/.well-known/OpenIdConfiguration"
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
