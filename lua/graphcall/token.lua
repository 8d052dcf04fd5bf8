--- App tokens: the bearer token every Graph request carries, from a static
-- string, a function, or the identity platform's client-credentials flow
-- (cached, refreshed before it expires, one refresh at a time).
--
-- The client secret is kept in this module's closure, never in a table a
-- bot can print, and never in an error.
-- @module graphcall.token
local core = require "graphcall.core"
local cjson = require("cjson.safe").new()

local M = {}

M.SCOPE = "https://graph.microsoft.com/.default"
M.REFRESH_SKEW = 300 -- seconds before expiry a cached token is renewed (at most half its life)

---@class graphcall.TokenSource
local Source = {}
Source.__index = Source

local function auth_error(fields)
  fields.kind = "auth"
  return core.new_error(fields)
end

--- A token source for a client.
---@param opts {token?: string|function, client_secret?: string, tenant?: string, app_id: string, login_url: string}
---@return graphcall.TokenSource
function M.new(opts)
  local secret = opts.client_secret
  local self = setmetatable({
    static = type(opts.token) == "string" and opts.token or nil,
    fn = type(opts.token) == "function" and opts.token or nil,
    tenant = opts.tenant, app_id = opts.app_id, login_url = opts.login_url,
    cached = nil, expires_at = 0, refreshing = false, acquired = 0,
  }, Source)
  -- the secret lives only in this closure
  if secret then
    self.form = function()
      return ("client_id=%s&scope=%s&client_secret=%s&grant_type=client_credentials"):format(
        core.url_encode(self.app_id), core.url_encode(M.SCOPE), core.url_encode(secret))
    end
  end
  return self
end

--- Whether a 401 from Graph is worth one refresh and one retry.
---@return boolean
function Source:refreshable()
  return self.form ~= nil or self.fn ~= nil
end

--- Forget the cached token (after Graph refused it).
function Source:invalidate()
  self.cached, self.expires_at = nil, 0
end

--- POST the client-credentials form to the v2 token endpoint (traced on
-- `lg` with the secret and the token redacted).
---@param loop graphcall.Loop
---@param lg graphcall.Logger the logger
---@return string|nil, table? # the token, or nil, err
function Source:fetch(loop, lg)
  local url = ("%s/%s/oauth2/v2.0/token"):format(self.login_url, self.tenant)
  local result
  loop:request({
    method = "POST", url = url, body = self.form(), urgent = true,
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded", Accept = "application/json",
                ["User-Agent"] = "graphcall/" .. core._VERSION },
  }, function(r) result = r end, lg)
  if not loop:wait(function() return result ~= nil end, loop.request_timeout + 1) then
    return nil, auth_error { message = "token endpoint: no answer in time", cause = "timeout", url = url }
  end

  if result.failure then
    return nil, auth_error { message = "token endpoint: " .. result.message, cause = result.failure, url = url }
  end
  local doc = cjson.decode(result.body)
  if result.status ~= 200 then
    local e = type(doc) == "table" and doc or {}
    return nil, auth_error {
      status = result.status, url = url,
      code = type(e.error) == "string" and e.error or nil,
      message = type(e.error_description) == "string" and e.error_description
        or ("token endpoint answered HTTP " .. tostring(result.status)),
      trace_id = type(e.trace_id) == "string" and e.trace_id or nil,
      correlation_id = type(e.correlation_id) == "string" and e.correlation_id or nil,
    }
  end
  if type(doc) ~= "table" or type(doc.access_token) ~= "string" or doc.access_token == ""
     or type(doc.expires_in) ~= "number" or doc.expires_in <= 0 then
    return nil, auth_error { status = result.status, url = url,
      message = "token endpoint: no access_token/expires_in in the answer" }
  end
  local life = doc.expires_in
  self.cached = doc.access_token
  self.expires_at = loop.clock() + life - math.min(M.REFRESH_SKEW, life / 2)
  self.acquired = self.acquired + 1
  return self.cached, nil, life
end

--- Get a new token from the token endpoint; logged on `lg` as
-- "token_refresh" (info; warn when it failed), never with the token.
---@param loop graphcall.Loop
---@param lg? graphcall.Logger
---@return string|nil, table?
function Source:acquire(loop, lg)
  lg = lg or loop.log
  local started = lg.info and loop.clock()
  local token, err, life = self:fetch(loop, lg)
  if token and lg.info then
    lg:log("info", "token_refresh", { tenant = self.tenant, expires_in = life, count = self.acquired,
      elapsed_ms = math.floor((loop.clock() - started) * 1000 + 0.5) })
  elseif err and lg.warn then
    lg:log("warn", "token_refresh", { tenant = self.tenant, failed = true, status = err.status, code = err.code,
      error = err.message })
  end
  return token, err
end

--- The token for the next request: `token | nil, err` (err.kind "auth").
---@param loop graphcall.Loop
---@param client graphcall.Client? the client asking (for errors)
---@return string|nil, table? # the token, or nil, err
function Source:get(loop, client)
  if self.static then return self.static end
  if self.fn then
    local ok, t = pcall(self.fn, client)
    if not ok or type(t) ~= "string" or t == "" then
      return nil, auth_error { message = "token function failed: " .. tostring(t) }
    end
    return t
  end
  if not self.form then
    error("graphcall: the client has no credentials (give graphcall.new{ token = ... } or "
      .. "{ tenant = ..., client_secret = ... })", 4)
  end
  if self.cached and loop.clock() < self.expires_at then return self.cached end
  if self.refreshing then
    -- one refresh at a time: wait for the one in flight
    loop:wait(function() return not self.refreshing end, loop.request_timeout + 1)
    if self.cached then return self.cached end
  end
  self.refreshing = true
  local ok, token, err = pcall(self.acquire, self, loop, client and client.log)
  self.refreshing = false
  if not ok then error(token, 0) end
  return token, err
end

function Source.__tostring()
  return "graphcall.token_source"
end

return M
