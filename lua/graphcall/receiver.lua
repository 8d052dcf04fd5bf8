--- The receiver: the HTTP endpoint behind the bot's callbackUri. It accepts
-- POSTs of notifications on one path, verifies the Bearer JWT Graph signs
-- them with (401 when it fails, before the body is even parsed), parses
-- them, hands valid batches to the handler and answers 202; a malformed
-- body gets 400 and never reaches the handler; a handler error gets 500
-- and the receiver keeps serving.
-- Wrong paths (404), methods (405), content types (415) and bodies over the
-- limit (413) are refused by the C server before any Lua runs.
-- @module graphcall.receiver
local core = require "graphcall.core"
local options = require "graphcall.options"
local signing_keys = require "graphcall.keys"
local cjson = require("cjson.safe").new()

local M = {}

--- Options of `client:receiver`, with defaults.
M.DEFAULTS = {
  host = "127.0.0.1",
  port = 0,                  -- 0 picks a free port; see rx:port()
  path = "/api/calls",
  handler = false,           -- function(batch, request): batch is graphcall.notifications
  max_body = 262144,         -- bytes; larger bodies get 413
  max_connections = 64,
  max_per_ip = 16,
  idle_timeout = 10,         -- seconds without a byte before a connection is closed
  request_timeout = 30,      -- seconds for a whole request
  tls_cert = false,          -- PEM: serve HTTPS directly (usually a proxy terminates TLS)
  tls_key = false,
  -- verification of the Bearer JWT on every notification
  verify = true,             -- false: accept unsigned notifications (local development only; warns once)
  openid_url = signing_keys.OPENID_URL, -- where Graph publishes its signing keys
  keys = false,              -- a JWKS document (JSON) to pin instead of fetching
  issuers = false,           -- default {"https://api.botframework.com", "https://graph.microsoft.com"}
  tenants = false,           -- allowed tenant ids (tid); default any
  skew = 300,                -- seconds of clock leeway for exp/nbf
  key_ttl = 86400,           -- seconds fetched keys are used without a successful refresh
  min_refresh_interval = 300, -- seconds between key fetches (an unknown kid triggers at most one)
}

local warned = false

---@class graphcall.Receiver
local Receiver = {}
Receiver.__index = Receiver
Receiver.__name = "graphcall.receiver"

local JSON = { ["content-type"] = "application/json" }

local function error_body(code, message)
  return cjson.encode { error = { code = code, message = message } }
end

-- The "notification_refused" event: why, never the token.
local function refused(self, req, status, reason)
  local lg = self.log
  if lg.warn then
    lg:log("warn", "notification_refused", { status = status, reason = reason, path = self.path,
      remote = req.remote })
  end
end

--- Answer 401 (and count it).
---@param req table the server's request
---@param reason string why (in the 401's message)
function Receiver:refuse(req, reason)
  if self.closed then return end
  self.unauthorized = self.unauthorized + 1
  refused(self, req, 401, reason)
  self.server:respond(req.id, 401, error_body("unauthorized", "notification token refused: " .. reason),
    { ["content-type"] = "application/json", ["www-authenticate"] = "Bearer" })
end

--- Verify req.token, refreshing the keys once when they are missing or the
-- kid is unknown (the request waits, suspended, meanwhile).
---@param req table the server's request (with its token)
---@param refreshed boolean? the keys were just refreshed
---@return nil # (returns only to end the handler early)
function Receiver:verify(req, refreshed)
  if not self.keys:usable() then
    if not refreshed and self.keys:after_refresh(function() self:verify(req, true) end) then return end
    return self:refuse(req, "no signing keys")
  end
  local claims, err = self.verifier:verify(req.token, os.time())
  if not claims then
    if err.reason == "unknown_kid" and not refreshed
      and self.keys:after_refresh(function() self:verify(req, true) end) then return end
    return self:refuse(req, err.reason)
  end
  self.keys:maintain()
  req.claims = claims
  self:accept(req)
end

--- A request on the receiver's path: verified (unless verify = false), then accepted.
---@param req table the server's request
---@return nil # (returns only to end the handler early)
function Receiver:handle(req)
  if not self.verifier then return self:accept(req) end
  -- the C server sets req.token only for "Authorization: Bearer <token>",
  -- exactly: one such header, one space, one token without white space
  if not req.token then return self:refuse(req, "no Bearer token") end
  self:verify(req, false)
end

-- The calls first (their own handlers are protected one by one), then the
-- receiver's handler; one protected call for both.
local function deliver(self, batch, req)
  if self.client then self.client:dispatch(batch, req.body, req.query) end
  if self.handler then self.handler(batch, req) end
end

--- Parse the body; hand a valid batch to the handler and answer 202 (400 or 500 otherwise).
---@param req table the server's request
function Receiver:accept(req)
  local batch, err = core.parse_notifications(req.body, self.max_body)
  if not batch then
    self.rejected = self.rejected + 1
    refused(self, req, 400, "bad_notification: " .. tostring(err.message))
    self.server:respond(req.id, 400, error_body("badRequest", err.message), JSON)
    return
  end
  self.accepted = self.accepted + 1
  local lg = self.log
  if lg.info then
    local claims = req.claims
    lg:log("info", "notification_accepted", { count = #batch, path = self.path, remote = req.remote,
      tenant = claims and claims.tid or nil, verified = claims ~= nil })
  end
  local ok = self.loop:protect(deliver, self, batch, req)
  if self.closed then return end -- the handler closed this receiver: nobody to answer
  if ok then
    self.server:respond(req.id, 202)
  else
    self.server:respond(req.id, 500, error_body("handlerError", "the bot's handler failed"), JSON)
  end
end

--- Create a receiver served by `loop`. Use `client:receiver(opts)`.
---@param loop graphcall.Loop
---@param opts table? see DEFAULTS
---@param client graphcall.Client
---@return graphcall.Receiver|nil, table? # or nil, err
function M.new(loop, opts, client)
  opts = options.read("graphcall.receiver", opts, M.DEFAULTS)
  if opts.handler and type(opts.handler) ~= "function" then
    error("graphcall.receiver: handler must be a function", 3)
  end
  if type(opts.path) ~= "string" or opts.path:sub(1, 1) ~= "/" then
    error("graphcall.receiver: path must start with '/'", 3)
  end
  local server, err = core.server {
    host = opts.host, port = opts.port, paths = { opts.path }, methods = { "POST" },
    content_types = { "application/json" }, max_body = opts.max_body,
    max_connections = opts.max_connections, max_per_ip = opts.max_per_ip,
    idle_timeout = opts.idle_timeout, request_timeout = opts.request_timeout,
    tls_cert = opts.tls_cert or nil, tls_key = opts.tls_key or nil,
  }
  if not server then return nil, err end
  local self = setmetatable({
    loop = loop, server = server, handler = opts.handler or nil, path = opts.path,
    host = opts.host, max_body = opts.max_body, tls = opts.tls_cert and true or false,
    accepted = 0, rejected = 0, unauthorized = 0, client = client,
    log = client and client.log or loop.log,
  }, Receiver)
  if opts.verify then
    local ok, verifier = pcall(core.jwt_verifier, {
      audience = client.app_id, issuers = opts.issuers or nil, tenants = opts.tenants or nil, skew = opts.skew,
    })
    if not ok then
      server:close()
      error("graphcall.receiver: " .. tostring(verifier), 3)
    end
    self.verifier = verifier
    ok, self.keys = pcall(signing_keys.new, { loop = loop, verifier = verifier, openid_url = opts.openid_url,
      keys = opts.keys or nil, key_ttl = opts.key_ttl, min_refresh_interval = opts.min_refresh_interval,
      log = self.log })
    if not ok then
      server:close()
      error(self.keys, 2)
    end
  elseif not warned then
    -- written by the default log writer whatever GRAPHCALL_LOG says (graphcall.log.ALWAYS)
    warned = true
    self.log:log("warn", "verify_off", { path = opts.path, message = "WARNING: receiver started with "
      .. "verify = false: notifications are not authenticated. Use this for local development only." })
  end
  loop:add_server(server, function(req) self:handle(req) end)
  return self
end

--- The port the receiver listens on.
---@return integer
function Receiver:port()
  return self.server:port()
end

--- The receiver's own URL, e.g. "http://127.0.0.1:40123/api/calls" (the
-- callbackUri to use with the local emulator).
---@return string
function Receiver:url()
  return ("%s://%s:%d%s"):format(self.tls and "https" or "http", self.host, self.server:port(), self.path)
end

--- Stop serving; idempotent.
function Receiver:close()
  self.closed = true
  self.loop:remove_server(self.server)
  self.server:close()
end
Receiver.__close = Receiver.close

function Receiver:__tostring()
  return ("graphcall.receiver: %s (%d accepted, %d rejected)"):format(
    self.server and tostring(self.server) or "?", self.accepted, self.rejected)
end

return M
