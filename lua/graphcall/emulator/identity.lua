--- The emulator's stand-in for the identity platform and for Graph's
-- signing keys: the client-credentials token endpoint, the OpenID
-- configuration and JWKS, bearer tokens it accepts, and the RS256 tokens on
-- its notifications.
-- @module graphcall.emulator.identity
local core = require "graphcall.core"
local testing = require "graphcall.testing"
local cjson = require("cjson.safe").new()

local M = {}
local Emulator = {}

-- One signing key per process, unless rotated: RSA key generation is slow.
local shared_signer

local function new_kid()
  return "emulator-" .. core.uuid():sub(1, 8)
end

--- The process's signing key: `{ signer = jwt_signer, kid = string }`.
---@return table # {signer, kid}
function M.shared_key()
  shared_signer = shared_signer or { signer = testing.jwt_signer(), kid = new_kid() }
  return shared_signer
end

--- A token like the ones Graph puts on its notifications: RS256, kid,
-- iss, aud = the bot's app id, tid, a lifetime of 300 s. Reused until a
-- minute before it expires, as Graph does.
---@param app_id string the audience (the bot's app id)
---@return string # a JWT
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
---@param claims table the JWT's claims
---@param header table? the JWT header (default RS256 with the emulator's kid)
---@return string # a JWT
function Emulator:sign_claims(claims, header)
  header = header or {}
  header.kid = header.kid or self.kid
  header.typ = header.typ or "JWT"
  return self.signer:sign(cjson.encode(claims), header)
end

--- Replace the signing key (a new kid); the old one is no longer published.
function Emulator:rotate_keys()
  self.signer = testing.jwt_signer()
  self.kid = new_kid()
  self.notify_tokens = {}
end

--- Make every token the emulator issued expire now (Graph then answers 401).
function Emulator:expire_tokens()
  for _, t in pairs(self.issued) do t.expires_at = -math.huge end
end

--- The identity platform's answers: {"error", "error_description", ...}.
---@param req table the server's request (path, method, headers, body)
---@param code string Graph's (or the identity platform's) error code
---@param aadsts integer the AADSTS number
---@param description string
function Emulator:auth_fail(req, code, aadsts, description)
  self:respond(req, 400, cjson.encode {
    error = code, error_description = ("AADSTS%d: %s"):format(aadsts, description),
    error_codes = { aadsts }, timestamp = os.date("!%Y-%m-%d %H:%M:%SZ"),
    trace_id = core.uuid(), correlation_id = core.uuid(),
  })
end

--- POST /{tenant}/oauth2/v2.0/token: client credentials, like the identity platform.
---@param req table the server's request (path, method, headers, body)
---@return nil # (returns only to end the handler early)
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

--- Whose token is this? The app id it was issued to, true for the static
-- token, or nil and why not.
---@param token string the bearer token
---@return string|true|nil, string? # the app id (true: the static token), or nil, why
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

M.methods = Emulator
return M
