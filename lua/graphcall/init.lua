--- graphcall: place and control Microsoft Graph calls (Teams calling bots) from Lua.
--
--    local graphcall = require "graphcall"
--    local client = graphcall.new { app_id = "...", callback_uri = "https://bot.example.com/api/calls" }
--    local req = client:prepare_call { targets = { graphcall.user { id = "..." } } }
--
-- Misuse (a bad spec, an unknown option) raises; runtime failures return
-- `nil, err` where `err.kind` is a stable string. See README.md.
-- @module graphcall
local core = require "graphcall.core"
local client = require "graphcall.client"
local event_loop = require "graphcall.loop"
local options = require "graphcall.options"

local M = {
  _NAME = "graphcall",
  _VERSION = core._VERSION,
  --- JSON null, for `extra` properties that must be sent as null.
  null = core.null,
}

--- Create a client. See `graphcall.client.DEFAULTS` for the options.
-- @function new
M.new = client.new

--- Create a separate event loop (most bots use the default one).
-- See `graphcall.loop.DEFAULTS` for the options.
-- @function new_loop
M.new_loop = event_loop.new

--- Run the event loop: receive notifications, finish requests, fire timers.
-- Returns true when `done()` became true or `stop()` was called, false when
-- `timeout` seconds passed first.
---@param opts? {loop?: table, timeout?: number, done?: fun(): boolean}
---@return boolean
function M.run(opts)
  opts = options.read("graphcall.run", opts, { loop = false, timeout = false, done = false })
  local loop = opts.loop or event_loop.default()
  return loop:run_until(opts.done or nil, opts.timeout or nil)
end

--- One non-blocking round of the default loop (or wait up to `timeout`
-- seconds), for scripts that drive their own loop. Returns true when
-- something ran.
---@param timeout? number
---@return boolean
function M.step(timeout)
  return event_loop.default():step(timeout or 0)
end

--- Make `graphcall.run` return.
function M.stop()
  event_loop.default():stop()
end

local function tagged(kind, t, level)
  if type(t) ~= "table" then
    error(("graphcall.%s: expected a table, got %s"):format(kind, type(t)), level)
  end
  if t.type ~= nil then
    error(("graphcall.%s: 'type' is set by the helper"):format(kind), level)
  end
  local copy = { type = kind }
  for k, v in pairs(t) do copy[k] = v end
  return copy
end

--- A Teams user: `{ id = aad_object_id, name = display_name?, tenant = tenant_id? }`.
---@param t {id: string, name?: string, tenant?: string, replaces_call_id?: string}
---@return table identity
function M.user(t) return tagged("user", t, 3) end

--- A phone number (PSTN): `{ id = "+E.164", name? }`.
---@param t {id: string, name?: string}
---@return table identity
function M.phone(t) return tagged("phone", t, 3) end

--- An application (a bot): `{ id = app_id, name?, tenant? }`.
---@param t {id: string, name?: string, tenant?: string}
---@return table identity
function M.application(t) return tagged("application", t, 3) end

--- An application instance (a bot with a phone number): `{ id = instance_id, name?, tenant? }`.
---@param t {id: string, name?: string, tenant?: string}
---@return table identity
function M.application_instance(t) return tagged("application_instance", t, 3) end

--- A guest, as the bot joins anonymously: `{ name = display_name, id = app_id? }`.
---@param t {name: string, id?: string}
---@return table identity
function M.guest(t) return tagged("guest", t, 3) end

--- Service-hosted media with prompts to prefetch: a list of `{ uri =, resource_id = }`.
---@param prompts {uri: string, resource_id?: string}[]
---@return table media
function M.prompts(prompts)
  if type(prompts) ~= "table" then
    error(("graphcall.prompts: expected a list of prompts, got %s"):format(type(prompts)), 2)
  end
  return { type = "service_hosted", prompts = prompts }
end

--- App-hosted media: `{ blob = media_session_configuration }`.
---@param t {blob: string}
---@return table media
function M.app_media(t)
  local m = tagged("app_hosted", t, 3)
  return m
end

--- Parse the body of a notification POST (a commsNotifications envelope).
-- Returns the notifications userdata (`#n`, `n[i]`, `ipairs(n)`), or nil, err
-- (`err.kind == "bad_notification"`).
---@param body string
---@param opts? {max_bytes?: integer} default `{ max_bytes = 1048576 }`
---@return userdata|nil, table?
function M.parse_notifications(body, opts)
  if type(body) ~= "string" then
    error(("graphcall.parse_notifications: expected a string body, got %s"):format(type(body)), 2)
  end
  local max_bytes
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("graphcall.parse_notifications: opts must be a table", 2)
    end
    options.check("graphcall.parse_notifications", opts, { max_bytes = true })
    max_bytes = opts.max_bytes
    if max_bytes ~= nil and (math.type(max_bytes) ~= "integer" or max_bytes <= 0) then
      error("graphcall.parse_notifications: max_bytes must be a positive integer", 2)
    end
  end
  return core.parse_notifications(body, max_bytes)
end

--- Parse a Teams join link into the spec keys `prepare_join` takes.
-- `url` is `https://teams.microsoft.com/l/meetup-join/...` or
-- `https://teams.microsoft.com/meet/<id>?p=<passcode>`. Returns
-- `{kind="meetup_join", chat_info=, organizer=, tenant=}` or `{kind="meeting_id", meeting_id=, passcode=}`;
-- or nil, err (`err.kind == "bad_join_url"`).
---@param url string a Teams join link
---@return table|nil, table?
function M.parse_join_url(url)
  if type(url) ~= "string" then
    error(("graphcall.parse_join_url: expected a string, got %s"):format(type(url)), 2)
  end
  return core.parse_join_url(url)
end

return M
