--- Graph's signing keys for the receiver: fetched from the OpenID
-- configuration's `jwks_uri`, cached for `key_ttl`, refreshed at most once
-- per `min_refresh_interval` (an unknown `kid` cannot cause a fetch storm),
-- kept when the key endpoint fails until they expire, and then gone: the
-- receiver fails closed. Keys may also be pinned (given directly).
-- @module graphcall.keys
local core = require "graphcall.core"
local cjson = require("cjson.safe").new()

local M = {}

M.OPENID_URL = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"

---@class graphcall.Keys
local Keys = {}
Keys.__index = Keys

--- `opts`: `{ loop, verifier, openid_url?, keys? (JWKS JSON, pinned), key_ttl, min_refresh_interval,
-- log? (a graphcall.log logger; default the loop's) }`
---@param opts table loop, openid_url, keys, key_ttl, min_refresh_interval, verifier, log
---@return graphcall.Keys
function M.new(opts)
  local self = setmetatable({
    loop = opts.loop, log = opts.log or opts.loop.log, verifier = opts.verifier, openid_url = opts.openid_url,
    key_ttl = opts.key_ttl, min_refresh_interval = opts.min_refresh_interval,
    expires_at = nil, fetched_at = nil, last_attempt = nil, fetching = false, waiters = {},
    fetches = 0, last_error = nil,
  }, Keys)
  if opts.keys then
    local n, err = self.verifier:set_keys(opts.keys)
    if not n then error("graphcall.receiver: keys: " .. tostring(err and err.message), 3) end
    self.pinned = true
    self.expires_at = math.huge
  end
  return self
end

--- Are there keys to verify with now?
---@return boolean
function Keys:usable()
  if self.pinned then return true end -- pinned keys never expire: no clock read per notification
  return self.expires_at ~= nil and self.loop.clock() < self.expires_at
end

--- May a fetch start now (rate limit)?
---@return boolean
function Keys:may_fetch()
  if self.pinned or self.fetching or not self.openid_url then return false end
  return self.last_attempt == nil or self.loop.clock() - self.last_attempt >= self.min_refresh_interval
end

local function get(self, url, done)
  self.loop:request({ method = "GET", url = url, urgent = true, headers = { Accept = "application/json",
    ["User-Agent"] = "graphcall/" .. core._VERSION } }, function(r)
    if r.failure then return done(nil, r.failure .. ": " .. tostring(r.message)) end
    if r.status ~= 200 then return done(nil, "HTTP " .. tostring(r.status)) end
    local doc = cjson.decode(r.body)
    if type(doc) ~= "table" then return done(nil, "not a JSON object") end
    done(doc, r.body)
  end, self.log)
end

--- Fetch the OpenID configuration, then its JWKS; call every waiter when done.
function Keys:fetch()
  self.fetching = true
  self.last_attempt = self.loop.clock()
  self.fetches = self.fetches + 1
  local lg, started = self.log, self.loop.clock()
  local function finish(err, count)
    self.fetching = false
    self.last_error = err
    if err and lg.warn then
      lg:log("warn", "keys_fetch", { url = self.openid_url, failed = true, error = err })
    elseif not err and lg.info then
      lg:log("info", "keys_fetch", { url = self.openid_url, keys = count,
        elapsed_ms = math.floor((self.loop.clock() - started) * 1000 + 0.5) })
    end
    local waiters = self.waiters
    self.waiters = {}
    for _, fn in ipairs(waiters) do self.loop:protect(fn) end
  end
  get(self, self.openid_url, function(config, err)
    if not config then return finish("OpenID configuration: " .. err) end
    local jwks_uri = config.jwks_uri
    if type(jwks_uri) ~= "string" or not pcall(core.check_url, jwks_uri, "jwks_uri") then
      return finish("OpenID configuration: no usable jwks_uri")
    end
    get(self, jwks_uri, function(jwks, body)
      if not jwks then return finish("JWKS: " .. body) end
      local n, serr = self.verifier:set_keys(body)
      if not n then return finish("JWKS: " .. tostring(serr and serr.message)) end
      self.fetched_at = self.loop.clock()
      self.expires_at = self.fetched_at + self.key_ttl
      finish(nil, n)
    end)
  end)
end

--- Run `fn` once keys are (re)fetched, starting a fetch if one may start.
-- Returns false when no fetch is running or allowed (fn is not queued).
---@param fn function runs once the fetch ended
---@return boolean # false when no fetch may start (fn will not run)
function Keys:after_refresh(fn)
  if not self.fetching and not self:may_fetch() then return false end
  self.waiters[#self.waiters + 1] = fn
  if not self.fetching then self:fetch() end
  return true
end

--- Refresh in the background when half the key lifetime has passed.
function Keys:maintain()
  if self.fetched_at and self.loop.clock() - self.fetched_at > self.key_ttl / 2 and self:may_fetch() then
    self:fetch()
  end
end

return M
