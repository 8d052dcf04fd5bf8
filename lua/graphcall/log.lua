--- Logging and tracing: every event graphcall reports (a request sent, its
-- answer, a retry, a token refresh, a notification accepted or refused, a
-- keepAlive, a call's state change, a handler's error) goes through one
-- hook, `function(level, event, fields)`, given as the `log` option of a
-- client or a loop.
--
-- Levels: "debug", "info", "warn", "error". `event` is a stable short name
-- ("request", "response", "retry", ...; see doc/logging.md) and `fields` a
-- table of its values. Without a hook, the default writes one line per
-- event to stderr at or above the level in the environment variable
-- `GRAPHCALL_LOG` ("debug", "info", "warn", "error"); when it is not set,
-- only errors (and the one warning that a receiver does not verify tokens).
--
-- The trace (`trace = true`, default: the environment variable
-- `GRAPHCALL_TRACE=1`) adds every request and answer in full, as `curl -v`
-- shows them, as events named "trace" at level "debug"; bearer tokens,
-- client secrets and access tokens are redacted.
--
-- A logger answers `logger.info` (and `.debug`, `.warn`, `.error`,
-- `.trace`) with a boolean, so that when logging is off nothing is built:
--
--    if lg.info then lg:log("info", "request", { method = m, url = u }) end
-- @module graphcall.log

local M = {}

--- The levels, in order.
M.LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }

--- Events the default writer shows whatever `GRAPHCALL_LOG` says.
M.ALWAYS = { verify_off = true }

--- Where the default writer's text goes: `function(text)`, by default
-- `io.stderr:write`. Specs may replace it.
M.output = function(text)
  io.stderr:write(text)
end

---@class graphcall.Logger
---@field debug boolean events at level "debug" are wanted
---@field info boolean events at level "info" are wanted
---@field warn boolean events at level "warn" are wanted
---@field error boolean always true
---@field trace boolean requests and answers are traced in full
local Logger = {}
Logger.__index = Logger
Logger.__name = "graphcall.logger"

-- A value as the default writer shows it: bare when it is a plain word,
-- quoted (Lua's %q, one line) otherwise.
local function show(v)
  local t = type(v)
  if t == "number" then
    if math.type(v) == "float" then return (("%.3f"):format(v):gsub("0+$", ""):gsub("%.$", "")) end
    return tostring(v)
  end
  if t ~= "string" then v = tostring(v) end
  if v ~= "" and not v:find("[%s\"'=\\%c]") then return v end
  return (("%q"):format(v):gsub("\\\n", "\\n"))
end

--- One event as the default writer writes it: `graphcall LEVEL EVENT
-- key=value ...` (keys sorted), a newline, and the `traceback` field, if
-- any, on the lines after (without its first line when that is the error). A trace event is its `text` as it is.
---@param level string
---@param event string
---@param fields table?
---@return string
function M.format(level, event, fields)
  fields = fields or {}
  if event == "trace" then
    local text = tostring(fields.text or "")
    return text:sub(-1) == "\n" and text or text .. "\n"
  end
  local keys = {}
  for k in pairs(fields) do
    if k ~= "traceback" then keys[#keys + 1] = tostring(k) end
  end
  table.sort(keys)
  local parts = { "graphcall", level, event }
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. show(fields[k]) end
  local line = table.concat(parts, " ") .. "\n"
  local tb = fields.traceback
  if type(tb) == "string" and tb ~= fields.error then
    -- debug.traceback's first line is the message, already on the line above
    local err = fields.error
    if type(err) == "string" and tb:sub(1, #err + 1) == err .. "\n" then tb = tb:sub(#err + 2) end
    line = line .. tb:gsub("\n?$", "\n", 1)
  end
  return line
end

-- What the environment asks for: the threshold of the default writer.
local function env_level()
  return M.LEVELS[os.getenv("GRAPHCALL_LOG") or ""] or M.LEVELS.error
end

local function env_trace()
  local v = os.getenv("GRAPHCALL_TRACE")
  return v ~= nil and v ~= "" and v ~= "0"
end

--- Check a `log` and a `trace` option (raise naming `who` and the option).
---@param who string the function whose options these are, for the error
---@param fn any
---@param trace any
function M.check(who, fn, trace)
  if fn ~= nil and type(fn) ~= "function" then
    error(("%s: log: expected a function(level, event, fields), got %s"):format(who, type(fn)), 3)
  end
  if trace ~= nil and type(trace) ~= "boolean" then
    error(("%s: trace: expected a boolean, got %s"):format(who, type(trace)), 3)
  end
end

--- A logger. `fn(level, event, fields)` gets every event (it filters by
-- level itself); without it the default writer writes to `M.output` what
-- `GRAPHCALL_LOG` asks for. `trace` (default: `GRAPHCALL_TRACE=1`) adds
-- the "trace" events.
---@param fn? fun(level: string, event: string, fields: table)
---@param trace? boolean
---@return graphcall.Logger
function M.new(fn, trace)
  if trace == nil then trace = env_trace() end
  local self = setmetatable({ trace = trace, error = true }, Logger)
  if fn then
    self.fn, self.debug, self.info, self.warn = fn, true, true, true
  else
    local min = env_level()
    self.debug, self.info, self.warn = min <= 1, min <= 2, min <= 3
    self.fn = function(level, event, fields)
      if (M.LEVELS[level] or 4) >= min or event == "trace" or M.ALWAYS[event] then
        M.output(M.format(level, event, fields))
      end
    end
  end
  return self
end

--- Report an event. Cheap to skip: check `logger[level]` first when the
-- fields cost something to build. A hook that raises does not stop
-- graphcall: its error is written by the default writer.
---@param level string "debug" | "info" | "warn" | "error"
---@param event string
---@param fields? table
function Logger:log(level, event, fields)
  if not (self[level] or (event == "trace" and self.trace) or M.ALWAYS[event]) then return end
  local ok, err = pcall(self.fn, level, event, fields or {})
  if not ok then
    M.output(M.format("error", "log_failed", { error = tostring(err), event = event }))
  end
end

-- Redaction: what never reaches a log line.

local SECRET_HEADERS = { authorization = true, ["proxy-authorization"] = true, cookie = true,
  ["set-cookie"] = true }

--- A header's value as a trace shows it: credentials redacted
-- (`Authorization: Bearer [redacted]`).
---@param name string
---@param value string
---@return string
function M.redact_header(name, value)
  if not SECRET_HEADERS[name:lower()] then return value end
  local scheme = tostring(value):match("^(%a+)%s")
  return scheme and (scheme .. " [redacted]") or "[redacted]"
end

local FORM_SECRETS = { "client_secret", "client_assertion", "assertion", "refresh_token", "access_token" }
local JSON_SECRETS = { "access_token", "refresh_token", "id_token", "client_secret" }

--- A body as a trace shows it: form secrets (`client_secret=`,
-- `client_assertion=`, `assertion=`) and JSON tokens (`access_token`,
-- `refresh_token`, `id_token`, `client_secret`) redacted.
---@param body string
---@return string
function M.redact_body(body)
  for _, k in ipairs(FORM_SECRETS) do
    body = body:gsub("(%f[%w_]" .. k .. "=)[^&%s]*", "%1[redacted]")
  end
  for _, k in ipairs(JSON_SECRETS) do
    body = body:gsub('("' .. k .. '"%s*:%s*)"[^"]*"', '%1"[redacted]"')
  end
  return body
end

local function header_lines(out, mark, headers)
  local names = {}
  for name in pairs(headers or {}) do names[#names + 1] = name end
  table.sort(names, function(a, b) return a:lower() < b:lower() end)
  for _, name in ipairs(names) do
    out[#out + 1] = ("%s %s: %s"):format(mark, name, M.redact_header(name, tostring(headers[name])))
  end
end

local function body_lines(out, body)
  if body and body ~= "" then
    out[#out + 1] = ""
    out[#out + 1] = M.redact_body(body)
  end
end

--- The trace of a request as `curl -v` shows it: `> POST /path HTTP/1.1`,
-- `> Name: value`, then the body.
---@param req table `{ method, url, headers?, body? }`
---@param version? string "HTTP/1.1" (default), "HTTP/2", ...
---@return string
function M.request_text(req, version)
  local host, path = tostring(req.url):match("^%a[%w+.-]*://([^/?#]+)([^#]*)")
  local out = { ("> %s %s %s"):format(req.method, path ~= "" and path or "/", version or "HTTP/1.1") }
  if host then out[#out + 1] = "> Host: " .. host end
  header_lines(out, ">", req.headers)
  if req.body then out[#out + 1] = "> Content-Length: " .. #req.body end
  body_lines(out, req.body)
  return table.concat(out, "\n") .. "\n"
end

--- The trace of an answer (a result of `graphcall.loop:request`):
-- `< HTTP/1.1 201`, `< name: value`, then the body; or, when no answer
-- came, `< (no answer: kind: message)`.
---@param result table
---@return string
function M.response_text(result)
  if not result.status then
    return ("< (no answer: %s: %s)\n"):format(tostring(result.failure), tostring(result.message))
  end
  local out = { ("< %s %d"):format(result.http_version or "HTTP/1.1", result.status) }
  header_lines(out, "<", result.headers)
  body_lines(out, result.body)
  if result.failure then out[#out + 1] = ("< (%s: %s)"):format(result.failure, tostring(result.message)) end
  return table.concat(out, "\n") .. "\n"
end

--- Wrap `callback(result)` of a request so that the exchange is traced on
-- `lg` when it ends (the request then, with the protocol the answer came
-- in, and the answer). Returns the request to submit (all answer headers
-- read) and the callback.
---@param lg graphcall.Logger
---@param req table
---@param callback function
---@return table, function
function M.traced(lg, req, callback)
  local copy = {}
  for k, v in pairs(req) do copy[k] = v end
  copy.read_headers = nil
  return copy, function(result)
    local common = { method = req.method, url = req.url,
      client_request_id = req.headers and req.headers["client-request-id"] or nil }
    local sent = { text = M.request_text(req, result.http_version), direction = ">" }
    local got = { text = M.response_text(result), direction = "<", status = result.status }
    for k, v in pairs(common) do sent[k], got[k] = v, v end
    lg:log("debug", "trace", sent)
    lg:log("debug", "trace", got)
    return callback(result)
  end
end

M.Logger = Logger
return M
