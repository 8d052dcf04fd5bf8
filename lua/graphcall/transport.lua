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

--- Turn a transfer result into the error it stands for, or nil when it
-- succeeded with one of `expected` statuses.
-- @tparam table r result from `graphcall.http:poll`
-- @tparam table req the request (`create` marks a create-call)
-- @tparam table expected set of acceptable statuses
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
  return new_error(err)
end

--- Decode a JSON response body, or return a bad_response error keeping at
-- most 1 KB of it.
function M.decode(r, req)
  local doc, msg = cjson.decode(r.body)
  if type(doc) ~= "table" then
    return nil, new_error {
      kind = "bad_response", status = r.status, method = req.method, url = req.url,
      message = "response is not a JSON object" .. (msg and (": " .. msg) or ""),
      body = keep_raw(r.body), request_id = r.headers["request-id"],
      client_request_id = req.client_request_id,
    }
  end
  return doc
end

--- The bearer token for a request: a string, or the result of the
-- client's token function.
function M.token(client, credentials)
  local token = credentials.token
  if type(token) == "function" then
    local ok, t = pcall(token, client)
    if not ok or type(t) ~= "string" or t == "" then
      return nil, new_error { kind = "auth", message = "token function failed: " .. tostring(t) }
    end
    return t
  end
  if type(token) == "string" then return token end
  error("graphcall: the client has no token (give graphcall.new{ token = ... })", 4)
end

--- Fill the headers every Graph request carries.
function M.prepare(req, token)
  req.client_request_id = core.uuid()
  req.headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Accept"] = "application/json",
    ["client-request-id"] = req.client_request_id,
    ["User-Agent"] = M.USER_AGENT,
  }
  if req.body then req.headers["Content-Type"] = "application/json" end
  return req
end

--- Submit `req` on `loop`; `done(result)` runs when it finishes.
function M.submit(loop, req, done)
  return loop:request({
    method = req.method, url = req.url, headers = req.headers, body = req.body, create = req.create,
  }, done)
end

--- Send `req` and run the loop until it finishes. Returns the result.
function M.perform(loop, req)
  local result
  M.submit(loop, req, function(r) result = r end)
  loop:run_until(function() return result ~= nil end)
  return result
end

return M
