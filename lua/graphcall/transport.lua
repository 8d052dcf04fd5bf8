--- Sending requests to Graph: the headers every request carries, and the
-- mapping of transfer results to values or errors with a stable `kind`.
--
-- Kinds: "connect" (no connection), "timeout", "tls", "network" (the
-- connection broke), "graph" (an HTTP error with a Graph error body),
-- "http" (an HTTP error without one), "bad_response" (not JSON, truncated,
-- over the size cap), "unknown_outcome" (a create request may have reached
-- Graph but no answer came: the call may exist; never resend blindly).
-- @module graphcall.transport
local core = require "graphcall.core"
local cjson = require("cjson.safe").new()

local M = {}

M.USER_AGENT = "graphcall/" .. core._VERSION
local RAW_BODY_LIMIT = 1024

local function keep_raw(body)
  if #body > RAW_BODY_LIMIT then return body:sub(1, RAW_BODY_LIMIT) end
  return body
end

local function new_error(fields)
  return core.new_error(fields)
end
M.new_error = new_error

-- The fields of a Graph error body: {"error":{"code","message","innerError":{...}}}.
local function graph_error_fields(err, body)
  local doc = cjson.decode(body)
  local e = type(doc) == "table" and doc.error
  if type(e) ~= "table" then return false end
  err.code = type(e.code) == "string" and e.code or nil
  err.message = type(e.message) == "string" and e.message or nil
  local inner = e.innerError or e.innererror
  if type(inner) == "table" then
    err.request_id = type(inner["request-id"]) == "string" and inner["request-id"] or nil
    err.client_request_id = type(inner["client-request-id"]) == "string" and inner["client-request-id"] or nil
    err.date = type(inner.date) == "string" and inner.date or nil
  end
  return err.code ~= nil
end

-- Answers that a gateway gives when it may already have passed the request on.
local GATEWAY = { [502] = true, [503] = true, [504] = true }

--- Turn a transfer result into the error it stands for, or nil when it
-- succeeded with one of `expected` statuses.
---@param r table result from `graphcall.http:poll`
---@param req table the request (`create` marks a create-call)
---@param expected table set of acceptable statuses
---@return table|nil # the error, or nil when the status is expected
function M.check(r, req, expected)
  local err
  if r.failure then
    local kind = r.failure
    if kind == "too_large" or kind == "too_many_headers" or kind == "truncated" then kind = "bad_response" end
    err = { kind = kind, message = r.message, cause = r.failure }
    -- A create request that left without a status coming back: Graph may
    -- have created the call. (With a status, it is a bad response.)
    if req.create and r.sent and not r.status and kind ~= "connect" and kind ~= "tls" then
      err.kind = "unknown_outcome"
      err.message = "no answer to a create request (" .. r.message .. "); the call may exist"
    end
  elseif not expected[r.status] then
    err = { kind = "http", status = r.status, message = "HTTP " .. tostring(r.status) }
    if graph_error_fields(err, r.body) then err.kind = "graph" end
    if req.create and GATEWAY[r.status] then
      -- a front end answered; whether Graph created the call is unknown
      err.cause = err.kind
      err.kind = "unknown_outcome"
    end
    err.message = err.message or ("HTTP " .. tostring(r.status))
    err.retry_after = tonumber(r.headers["retry-after"])
    err.body = keep_raw(r.body)
  else
    return nil
  end
  err.status = err.status or r.status
  err.request_id = err.request_id or r.headers and r.headers["request-id"]
  err.client_request_id = err.client_request_id or req.client_request_id
  err.method, err.url = req.method, req.url
  err.attempts = r.attempts
  return new_error(err)
end

local function not_an_object(r, req, msg)
  return nil, new_error {
    kind = "bad_response", status = r.status, method = req.method, url = req.url,
    message = "response is not a JSON object" .. (msg and (": " .. msg) or ""),
    body = keep_raw(r.body), request_id = r.headers["request-id"],
    client_request_id = req.client_request_id,
  }
end

--- Decode a JSON response body, or return a bad_response error keeping at
-- most 1 KB of it.
---@param r table the transfer's result {status, headers, body, failure, ...}
---@param req table the request it answers
---@return table|nil, table? # the JSON object, or nil, err
function M.decode(r, req)
  local doc, msg = cjson.decode(r.body)
  if type(doc) ~= "table" then return not_an_object(r, req, msg) end
  return doc
end

--- Check that a response body is a JSON object and read only its top-level
-- string members `...` (a table of those present), or return the error of
-- `decode`. The rest of the body stays text, for whoever needs it later.
---@param r table the transfer's result {status, headers, body, failure, ...}
---@param req table the request it answers
---@param ... string the fields to read
---@return table|nil, table? # the fields, or nil, err
function M.decode_fields(r, req, ...)
  local fields = core.json_fields(r.body, ...)
  if fields then return fields end
  -- refused by the strict pass (depth over 32, NaN): decode's verdict stands
  local doc, err = M.decode(r, req)
  if not doc then return nil, err end
  fields = {}
  for _, k in ipairs { ... } do
    if type(doc[k]) == "string" then fields[k] = doc[k] end
  end
  return fields
end

--- The headers of Graph's answers that graphcall reads (`result.headers`
-- has only these): copying every header out of libcurl was a tenth of the
-- CPU of a create request.
M.READ_HEADERS = { "location", "request-id", "retry-after" }

--- Submit `req` on `loop`; `done(result)` runs when it finishes. `lg`: the
-- logger that traces it, if its trace is on.
---@param loop graphcall.Loop
---@param req table the request
---@param done fun(result: table)
---@param lg? graphcall.Logger
---@return integer # the transfer id
function M.submit(loop, req, done, lg)
  return loop:request({
    method = req.method, url = req.url, headers = req.headers, body = req.body, create = req.create,
    read_headers = M.READ_HEADERS,
  }, done, lg)
end

--- Seconds to wait before retry number `attempt` (1-based): the
-- Retry-After header when it is usable (delta-seconds, or an HTTP date;
-- a past date is 0), capped at `max_wait`; otherwise exponential backoff
-- from 1 s with jitter, capped too. `now` is the wall clock (os.time()).
---@param header string? the Retry-After header
---@param attempt integer the attempt that failed (0 first)
---@param max_wait number seconds at most
---@param now number? the time (for an HTTP-date; default os.time())
---@return number # seconds
function M.retry_delay(header, attempt, max_wait, now)
  if type(header) == "string" then
    local v = header:match("^%s*(%d+)%s*$")
    local delay = v and tonumber(v)
    if not delay then
      local date = core.http_date(header)
      if date then delay = math.max(0, date - (now or os.time())) end
    end
    if delay then return math.min(delay, max_wait) end
  end
  local backoff = 2 ^ (attempt - 1) * (0.75 + 0.5 * math.random())
  return math.min(backoff, max_wait)
end

-- Statuses worth another attempt once Graph has had time to recover.
local RETRY_STATUS = { [429] = true, [503] = true, [504] = true }

-- May `result` be retried? A create request only when Graph cannot have
-- acted on it: no connection before sending, or 429 (throttled requests
-- are not processed). Other requests are safe to repeat.
local function retryable(result, req)
  if result.failure then
    return result.failure == "connect" and not result.sent
  end
  if req.create then return result.status == 429 end
  return RETRY_STATUS[result.status] == true
end

local function is_expired_token(result)
  if result.status ~= 401 then return false end
  local doc = cjson.decode(result.body)
  return type(doc) == "table" and type(doc.error) == "table" and doc.error.code == "InvalidAuthenticationToken"
end

--- The longest a request can take with its retries: every attempt and its
-- token fetch bounded by the loop's request timeout, every wait before a
-- retry by `max_retry_wait`. A wait for a request ends by then whatever
-- happens to its callbacks.
---@param ctx table the sending context (client settings, token source)
---@return number # seconds
function M.deadline(ctx)
  local attempts = ctx.max_retries + 1
  return attempts * 2 * ctx.loop.request_timeout + ctx.max_retries * ctx.max_retry_wait + 1
end

-- Why a result is retried, for the log: "HTTP 503", "connect", ...
local function reason(result)
  if result.failure then return result.failure end
  return "HTTP " .. tostring(result.status)
end

-- The "response" event of an answer (level info; warn for an error status
-- or no answer).
local function log_response(lg, req, result, started, clock)
  local status = result.status
  local level = (status and status < 400 and not result.failure) and "info" or "warn"
  if not lg[level] then return end
  lg:log(level, "response", {
    method = req.method, url = req.url, status = status, client_request_id = req.client_request_id,
    request_id = result.headers and result.headers["request-id"] or nil,
    elapsed_ms = started and math.floor((clock() - started) * 1000 + 0.5) or nil,
    failure = result.failure, message = result.failure and result.message or nil,
  })
end

-- An error raised by a step of a request that ran from the loop (a retry
-- timer, a transfer's callback), parked for whoever waits on the request.
local function raised(e)
  return new_error { kind = "raised", error = e, message = tostring(e) }
end

-- One request being sent (send_async): its steps are functions of this
-- state, so a request costs one table and one closure per attempt.
--   ctx, req, done, lg; attempt (retries so far), refreshed (the token was),
--   finished (done ran), started (clock when the attempt was logged)

local function finish(st, a, b)
  st.finished = true
  st.done(a, b)
end

-- Run `fn(st, ...)`, a step run from the loop: what it raises goes to
-- `done`, or, once done ran (done itself raised), to the loop's error hook.
local function guarded(fn, st, ...)
  local ok, e = pcall(fn, st, ...)
  if ok then return end
  if st.finished then error(e, 0) end
  finish(st, nil, raised(e))
end

local attempt_request

local function answered(st, result)
  local ctx, req, lg, loop = st.ctx, st.req, st.lg, st.ctx.loop
  if lg.info then log_response(lg, req, result, st.started, loop.clock) end
  if is_expired_token(result) and not st.refreshed and ctx.tokens:refreshable() then
    st.refreshed = true -- one refresh and one more try; not counted as a retry
    ctx.tokens:invalidate()
    if lg.warn then
      lg:log("warn", "retry", { method = req.method, url = req.url, client_request_id = req.client_request_id,
        reason = "token_expired", attempt = st.attempt, delay = 0 })
    end
    return attempt_request(st)
  end
  local throttled = result.status == 429
  local again = retryable(result, req) and st.attempt < ctx.max_retries
  if throttled and ctx.on_throttle or again then
    local retry_after = result.headers and result.headers["retry-after"]
    local delay = M.retry_delay(retry_after, st.attempt + 1, ctx.max_retry_wait)
    if throttled and ctx.on_throttle then ctx.on_throttle(delay) end
    if again then
      st.attempt = st.attempt + 1
      if lg.warn then
        lg:log("warn", "retry", { method = req.method, url = req.url, client_request_id = req.client_request_id,
          reason = reason(result), attempt = st.attempt, delay = delay, retry_after = retry_after })
      end
      loop:timer(delay, function() guarded(attempt_request, st) end)
      return
    end
  end
  result.attempts = st.attempt + 1
  finish(st, result, req)
end

local function submit(st)
  local lg, req, loop = st.lg, st.req, st.ctx.loop
  if lg.info then
    st.started = loop.clock()
    lg:log("info", "request", { method = req.method, url = req.url, client_request_id = req.client_request_id,
      attempt = st.attempt + 1 })
  end
  M.submit(loop, req, function(result) guarded(answered, st, result) end, lg)
end

function attempt_request(st)
  local ctx, req, attempt = st.ctx, st.req, st.attempt
  local token, terr = ctx.tokens:get(ctx.loop, ctx.client)
  if not token then return finish(st, nil, terr) end
  req.headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Accept"] = "application/json",
    ["client-request-id"] = req.client_request_id,
    ["User-Agent"] = M.USER_AGENT,
    ["Retry-Attempt"] = attempt > 0 and tostring(attempt) or nil,
  }
  if req.body then req.headers["Content-Type"] = "application/json" end
  if ctx.gate then ctx.gate(function() guarded(submit, st) end) else submit(st) end
end

--- Send a Graph request with its token, retrying what may be retried;
-- `done(result, req)` runs from the loop with the final result (or
-- `done(nil, err)` when no token could be had, or when a later step raised:
-- err.kind "raised", err.error the value raised). `done` runs exactly once.
-- `req`: `{ method, url, body?, create?, client_request_id? }` (a new one
-- unless given); `ctx`: `{ loop, tokens, client,
-- max_retries, max_retry_wait, gate?, on_throttle? }`: `gate(send)` calls
-- `send()` when the request may go (a fleet's shared pause and rate), and
-- `on_throttle(seconds)` hears of every 429. Every attempt carries the same
-- client-request-id, and retries a `Retry-Attempt` header. The first
-- attempt runs in the caller's frame, so its errors raise there.
---@param ctx table the sending context (client settings, token source)
---@param req table {method, url, headers, body, create}
---@param done fun(result: table?, req_or_err: table) runs once
function M.send_async(ctx, req, done)
  req.client_request_id = req.client_request_id or core.uuid()
  attempt_request { ctx = ctx, req = req, done = done, lg = ctx.log or ctx.loop.log, attempt = 0,
    refreshed = false, finished = false }
end

--- `send_async`, waiting on the loop for the outcome: result, req | nil, err.
-- An error a retry raised is raised here, in the caller's frame; a request
-- with no outcome by `M.deadline` is a timeout (an unknown outcome for a
-- create request).
---@param ctx table the sending context (client settings, token source)
---@param req table {method, url, headers, body, create}
---@return table|nil, table # the result and the request, or nil, err
function M.send(ctx, req)
  local first, second, finished
  M.send_async(ctx, req, function(a, b) first, second, finished = a, b, true end)
  if not ctx.loop:wait(function() return finished end, M.deadline(ctx)) then
    return nil, new_error { kind = req.create and "unknown_outcome" or "timeout", method = req.method,
      url = req.url, client_request_id = req.client_request_id,
      message = ("no outcome within %g s"):format(M.deadline(ctx)) }
  end
  if first == nil and getmetatable(second) and second.kind == "raised" then error(second.error, 0) end
  return first, second
end

return M
