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
-- It answers the other call operations too (section 2 of the Graph
-- reference): answer, reject and redirect of incoming calls (`emu:ring`
-- places one), keepAlive (a call not kept alive for 45 minutes of the loop's
-- clock is ended, 408/8537), transfer, the media operations playPrompt,
-- recordResponse, cancelMediaProcessing and subscribeToTone (`emu:press_tone`
-- sends tones), mute and unmute, participants (a roster per call) and
-- participants/invite, updateRecordingStatus. Operations are answered with a
-- commsOperation and a Location, and those Graph finishes later complete by a
-- `deleted` notification on `/communications/calls/{id}/operations/{OPID}`
-- (the id upper-cased without dashes, as Graph writes it). `emu.operations`
-- records them.
--
-- It also stands in for the identity platform: a client-credentials token
-- endpoint (`POST /{tenant}/oauth2/v2.0/token`), and the OpenID
-- configuration and JWKS Graph publishes (`/v1/.well-known/OpenIdConfiguration`,
-- `/v1/keys`); its notifications carry an RS256 JWT signed like Graph's.
-- @module graphcall.emulator
local core = require "graphcall.core"
local graphcall_loop = require "graphcall.loop"
local options = require "graphcall.options"
local graphcall = require "graphcall"
local calls = require "graphcall.emulator.calls"
local actions = require "graphcall.emulator.actions"
local resources = require "graphcall.emulator.resources"
local identity = require "graphcall.emulator.identity"
local faults = require "graphcall.emulator.faults"
local dashboard = require "graphcall.emulator.dashboard"
local records = require "graphcall.emulator.records"
local cjson = require("cjson.safe").new()

local JSON, split_path = calls.JSON, calls.split_path

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
  operation_delay = 0.005, -- seconds an operation Graph finishes later (playPrompt, ...) takes
  keep_alive_timeout = 2700, -- seconds (loop clock) without keepAlive before a call is ended
  incoming_timeout = 15,   -- seconds (loop clock) the bot has to answer, reject or redirect
}

---@class graphcall.Emulator
local Emulator = {}
Emulator.__index = Emulator
Emulator.__name = "graphcall.emulator"
-- the class is composed from its parts' method tables
for _, part in ipairs { calls, actions, resources, identity, faults } do
  for k, v in pairs(part.methods) do Emulator[k] = v end
end

-- The dashboard's records (graphcall.emulator.dashboard): every call ever
-- made (`emu.history`) with its states over time, and times on requests
-- and notifications.
local new_call, notify = Emulator.new_call, Emulator.notify
--- A new call, also recorded for the dashboard.
---@param fields table the call's fields (id, state, direction, callback_uri, ...)
---@return table # the emulator's call
function Emulator:new_call(fields)
  local call = new_call(self, fields)
  dashboard.call_created(self, call)
  return call
end
--- Queue a notification, also recorded for the dashboard.
---@param call table the emulator's call
---@param change_type string "created" | "updated" | "deleted"
---@param data table the notification's resourceData
---@param resource string? the path under the call the notification is about (default the call)
function Emulator:notify(call, change_type, data, resource)
  notify(self, call, change_type, data, resource)
  dashboard.notified(self, call, data, resource)
end

--- Every request the emulator's server receives: recorded, faulted when a
-- fault is queued, then routed.
---@param req table the server's request (path, method, headers, body)
---@return nil # (returns only to end the handler early)
function Emulator:handle(req)
  req.request_id = core.uuid()
  -- the dashboard, its controls and the records are not the bot's requests:
  -- not recorded, never faulted
  if req.path == "/_emulator" or req.path:find("^/_emulator/") then
    req.headers = req.headers or {}
    return records.route(self, req) or dashboard.route(self, req)
  end
  local record = { method = req.method, path = req.path, headers = req.headers, body = req.body,
    json = req.body ~= "" and cjson.decode(req.body) or nil }
  self.requests[#self.requests + 1] = record
  dashboard.requested(self, record)
  req.record = record -- respond adds the answer: status, response (the body), location

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

--- Route a request: identity platform, recordings, dashboard, or Graph.
---@param req table the server's request (path, method, headers, body)
---@return nil # (returns only to end the handler early)
function Emulator:route(req)
  if req.method == "POST" and req.path:match("^/[^/]+/oauth2/v2%.0/token$") then
    return self:token_endpoint(req)
  elseif req.method == "GET" and req.path == "/v1/.well-known/OpenIdConfiguration" then
    return self:respond(req, 200, cjson.encode { issuer = self.issuer, jwks_uri = self.url .. "/v1/keys",
      id_token_signing_alg_values_supported = { "RS256" },
      token_endpoint_auth_signing_alg_values_supported = { "RS256" } })
  elseif req.method == "GET" and req.path == "/v1/keys" then
    return self:respond(req, 200, '{"keys":[' .. self.signer:jwk(self.kid) .. "]}")
  elseif req.method == "GET" and req.path:find("^/recordings/") then
    return self:recording(req)
  end
  self:graph(req)
end

--- Graph's calls API: the bearer token, then the collection, call and action.
---@param req table the server's request (path, method, headers, body)
---@return nil # (returns only to end the handler early)
function Emulator:graph(req)
  local token = (req.headers.authorization or ""):match("^Bearer (.+)$")
  local who, why = self:authenticate(token or "")
  if not token or not who then
    return self:fail(req, 401, "InvalidAuthenticationToken", why or "Access token is empty or invalid.")
  end
  req.app_id = type(who) == "string" and who or nil
  if req.app_id then self.last_app_id = req.app_id end
  local collection, rest = split_path(req.path)
  if not collection then
    return self:fail(req, 404, "UnknownError", "No route for " .. req.path)
  end
  req.version = collection:match("^/([^/]+)")
  if rest == "" then
    if req.method ~= "POST" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
    return self:create(req, collection)
  end
  local id, tail = rest:match("^/([%w%-]+)(.*)$")
  local call = id and self:find_call(id)
  if not call then return self:fail(req, 404, "8522", "Call not found.") end
  req.call_url = self.url .. collection .. "/" .. id
  -- Graph also takes actions by their qualified names (POST .../microsoft.graph.sendDtmfTones)
  tail = tail:gsub("/microsoft%.graph%.(%a+)$", "/%1")
  if tail == "" then
    if req.method == "GET" then return self:get(req, call)
    elseif req.method == "DELETE" then return self:delete(req, call) end
    return self:fail(req, 405, "BadRequest", "Method not allowed.")
  end
  if resources.route(self, req, call, tail) then return end
  local handler = actions.ACTIONS[tail:match("^/(%a+)$") or tail:match("^/(participants/%a+)$") or ""]
  if not handler then return self:fail(req, 404, "UnknownError", "No route for " .. req.path) end
  if req.method ~= "POST" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
  self:action(req, call, handler)
end

--- Start an emulator. Returns it (`emu.url` is its base URL), or nil, err.
---@param opts? table see `DEFAULTS`
---@return graphcall.Emulator|nil, table? # or nil, err
function M.start(opts)
  opts = options.read("graphcall.emulator.start", opts, M.DEFAULTS)
  local loop = opts.loop or graphcall_loop.default()
  -- Graph takes as many connections as a fleet of bots opens, all from one
  -- address here: no per-address limit, unlike a bot's receiver
  local server, err = core.server { host = opts.host, port = opts.port, max_body = 1024 * 1024,
    max_connections = 4096, max_per_ip = 0 }
  if not server then return nil, err end
  local key = identity.shared_key()
  local self = setmetatable({
    loop = loop, server = server, token = opts.token or nil, notify_delay = opts.notify_delay,
    client_secret = opts.client_secret or nil, token_lifetime = opts.token_lifetime,
    app_id = opts.app_id or nil, tenant = opts.tenant, issuer = opts.issuer, sign = opts.sign,
    signer = key.signer, kid = key.kid,
    url = ("http://%s:%d"):format(opts.host, server:port()),
    requests = {}, notifications = {}, calls = {}, faults = {}, issued = {}, notify_tokens = {},
    created = 0, tokens_issued = 0,
    operation_delay = opts.operation_delay, keep_alive_timeout = opts.keep_alive_timeout,
    incoming_timeout = opts.incoming_timeout,
    operations = {}, operation_info = {}, recordings = {}, pending = {},
    history = {}, started_at = loop.clock(),
  }, Emulator)
  -- where a receiver finds the emulator's signing keys
  self.openid_url = self.url .. "/v1/.well-known/OpenIdConfiguration"
  loop:add_server(server, function(req) self:handle(req) end)
  self:after(math.min(calls.SWEEP, self.keep_alive_timeout / 4), function() self:sweep() end)
  return self
end

--- True when every notification queued so far has been answered.
---@return boolean
function Emulator:idle()
  for _, n in ipairs(self.notifications) do
    if n.status == nil and n.failure == nil then return false end
  end
  return true
end

--- Stop the emulator (and its timers); idempotent.
function Emulator:close()
  for t in pairs(self.pending) do self.loop:cancel_timer(t) end
  self.pending = {}
  self.loop:remove_server(self.server)
  self.server:close()
end
Emulator.__close = Emulator.close

--- A bot's session against the emulator, for examples and quick scripts:
-- the emulator named by the GRAPH_URL environment variable (as
-- bin/graphcall-run sets it), or else one started in this process; a client
-- (`opts.app_id`, `opts.endpoint`, the token in GRAPHCALL_TOKEN) and its
-- receiver, verifying notifications with the emulator's keys.
-- Returns `{ client, receiver, emulator (when in-process), url, ring(), close() }`.
---@param opts table see above
---@return table # {client, receiver, emulator, url, ring, close}
function M.session(opts)
  opts = options.read("graphcall.emulator.session", opts,
    { app_id = os.getenv("GRAPHCALL_APP_ID") or "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", endpoint = "v1.0" })
  local token = os.getenv("GRAPHCALL_TOKEN") or "demo-token"
  local url, emu = os.getenv("GRAPH_URL"), nil
  if not url or url == "" then
    emu = assert(M.start { token = token, app_id = opts.app_id })
    url = emu.url
  end
  local client = graphcall.new { app_id = opts.app_id, token = token, graph_url = url, endpoint = opts.endpoint }
  local rx = assert(client:receiver { openid_url = url .. "/v1/.well-known/OpenIdConfiguration" })
  local session = { client = client, receiver = rx, emulator = emu, url = url }
  --- Have the emulator call the bot, as a Teams user would: returns the call id.
  function session.ring()
    local result
    client.loop:request({ method = "POST", url = url .. "/_emulator/ring", headers = { ["Content-Type"] = JSON },
      body = cjson.encode { callback_uri = rx:url(), app_id = opts.app_id } }, function(r) result = r end)
    client.loop:wait(function() return result ~= nil end, 10)
    local doc = result and result.status == 200 and cjson.decode(result.body)
    return doc and doc.id
  end
  function session.close()
    rx:close()
    if emu then emu:close() end
  end
  return session
end

return M
