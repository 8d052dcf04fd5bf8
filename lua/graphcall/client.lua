--- The graphcall client: configuration shared by every request a bot makes.
-- @module graphcall.client
local core = require "graphcall.core"

local M = {}

---@class graphcall.Client
---@field app_id string
---@field tenant string?
---@field callback_uri string?
---@field graph_url string
---@field endpoint string
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
}

local ENDPOINTS = { ["v1.0"] = true, beta = true, ["beta/app"] = true, ["beta/applications"] = true }

-- Credentials live outside the client table so that dumping or printing a
-- client never shows them.
local credentials = setmetatable({}, { __mode = "k" })

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
-- @tparam table opts see `DEFAULTS`; unknown keys raise.
-- @treturn graphcall.Client
---@param opts table
---@return graphcall.Client
function M.new(opts)
  if type(opts) ~= "table" then fail("expected an options table, got %s", type(opts)) end
  for k in pairs(opts) do
    if M.DEFAULTS[k] == nil then fail("unknown option '%s'", tostring(k)) end
  end
  for _, k in ipairs { "app_id", "tenant", "client_secret", "callback_uri", "graph_url", "endpoint" } do
    check_type(opts, k, "string")
  end
  if opts.token ~= nil and type(opts.token) ~= "string" and type(opts.token) ~= "function" then
    fail("token: expected string or function, got %s", type(opts.token))
  end
  local app_id = opts.app_id
  if not app_id then fail("app_id: required") end
  if not app_id:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
    fail("app_id: expected a GUID, got '%s'", app_id)
  end
  local endpoint = opts.endpoint or M.DEFAULTS.endpoint
  if not ENDPOINTS[endpoint] then
    fail("endpoint: unknown endpoint '%s' (v1.0, beta, beta/app, beta/applications)", endpoint)
  end
  local graph_url = opts.graph_url or M.DEFAULTS.graph_url
  for key, url in pairs { graph_url = graph_url, callback_uri = opts.callback_uri } do
    local ok, err = pcall(core.check_url, url, key)
    if not ok then fail("%s", err) end
  end

  local self = setmetatable({
    app_id = app_id,
    tenant = opts.tenant,
    callback_uri = opts.callback_uri,
    graph_url = graph_url:gsub("/+$", ""),
    endpoint = endpoint,
  }, Client)
  credentials[self] = { client_secret = opts.client_secret, token = opts.token }
  return self
end

local function build(self, spec, mode)
  if getmetatable(self) ~= Client then
    error(("graphcall: prepare_%s must be called as client:prepare_%s{...}"):format(mode, mode), 3)
  end
  if type(spec) ~= "table" then
    error(("graphcall.prepare_%s: expected a spec table, got %s"):format(mode, type(spec)), 3)
  end
  local ok, req = pcall(core.build_request, self, spec, mode)
  if not ok then error(("graphcall.prepare_%s: %s"):format(mode, req), 3) end
  return req
end

--- Build (without sending) the request that places a call.
-- Raises on a bad spec, naming the field.
-- @tparam table spec targets, subject, media, modalities, source, ... (see README)
-- @treturn userdata graphcall.request with `method`, `url`, `path`, `body`
---@param spec table
---@return userdata
function Client:prepare_call(spec)
  return build(self, spec, "call")
end

--- Build (without sending) the request that joins a meeting.
-- @tparam table spec url | chat_info + organizer | meeting_id [+ passcode] | meeting_token, ...
-- @treturn userdata graphcall.request
---@param spec table
---@return userdata
function Client:prepare_join(spec)
  return build(self, spec, "join")
end

function Client:__tostring()
  return ("graphcall.client: app %s via %s/%s"):format(self.app_id, self.graph_url, self.endpoint)
end

--- The credentials given to `new` (for the HTTP layer; never printed).
function M.credentials(client)
  return credentials[client]
end

M.Client = Client
return M
