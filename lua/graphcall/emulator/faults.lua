--- Fault injection: `emu:fail_next{...}` queues faults that the next
-- requests get instead of (or after) their normal answer.
-- @module graphcall.emulator.faults
local core = require "graphcall.core"
local calls = require "graphcall.emulator.calls"

local JSON, graph_error, split_path = calls.JSON, calls.graph_error, calls.split_path
local M = {}
local Emulator = {}

--- A fault queued by fail_next, applied to the next request.
---@param req table the server's request (path, method, headers, body)
---@param fault table the fault: status, retry_after, mode, delay, count, processed, path
---@return nil # (returns only to end the handler early)
function Emulator:inject(req, fault)
  if fault.processed then
    -- Graph acts on the request, then a gateway fails the answer
    req.answer_with = fault.status
    return self:route(req)
  end
  if fault.status then
    local headers = { ["content-type"] = JSON }
    -- delta-seconds is a whole number (RFC 9110): 1, not the 1.0 a JSON control may give
    if fault.retry_after then headers["retry-after"] = ("%d"):format(math.ceil(fault.retry_after)) end
    local code = ({ [429] = "TooManyRequests", [503] = "ServiceUnavailable", [504] = "GatewayTimeout" })
      [fault.status] or "UnknownError"
    return self:respond(req, fault.status, graph_error(code, "Injected fault.", req.request_id,
      req.headers["client-request-id"]), headers)
  elseif fault.mode == "drop" then
    return self.server:abort(req.id)
  elseif fault.mode == "truncate" then
    return self:respond(req, 201, ('{"id":"%s","state":"establishing","padding":"%s"}')
      :format(core.uuid(), ("x"):rep(512)), nil, "truncate")
  elseif fault.mode == "body" then
    return self:respond(req, fault.answer or 201, fault.body, { ["content-type"] = JSON })
  elseif fault.mode == "not_json" then
    return self:respond(req, 201, "<html>Service Unavailable</html>", { ["content-type"] = "text/html" })
  elseif fault.mode == "oversized" then
    local padding = ("x"):rep(fault.size or 8 * 1024 * 1024)
    return self:respond(req, req.path:find("^/v1/") and 200 or 201, '{"padding":"' .. padding .. '"}')
  elseif fault.mode == "html" then
    return self:respond(req, 200, "<html><body>Service unavailable</body></html>", { ["content-type"] = "text/html" })
  elseif fault.mode == "redirect" then
    return self:respond(req, 302, "", { location = fault.location })
  elseif fault.mode == "gzip" then
    -- a compressed body the client never asked for (a gzip bomb when large)
    return self:respond(req, 201, fault.body, { ["content-encoding"] = "gzip", ["content-type"] = JSON })
  elseif fault.mode == "headers" then
    local headers = {}
    for i = 1, fault.headers or 1000 do headers["x-filler-" .. i] = "x" end
    return self:respond(req, 201, '{"id":"x"}', headers)
  end
  error("emulator: unknown fault")
end

--- The first queued fault for this request: a fault with a `path` pattern
-- applies to matching paths; one without, to Graph's calls API only (so key
-- and token fetches in between do not eat it).
---@param req table the server's request (path, method, headers, body)
---@return table|nil # the fault, taken off the queue
function Emulator:take_fault(req)
  for i, f in ipairs(self.faults) do
    if (f.path and req.path:find(f.path)) or (not f.path and split_path(req.path)) then
      return table.remove(self.faults, i)
    end
  end
end

--- Queue faults for the next requests, in order:
-- `{ status = 429|503|504, retry_after = s }`, `{ mode = "drop" | "truncate" | "not_json" | "oversized" | "html" }`,
-- `{ mode = "redirect", location = url }`, `{ mode = "gzip", body = bytes }`, `{ mode = "headers", headers = n }`,
-- `{ mode = "body", body = json, answer = status? }` (that JSON with 201 or `answer`),
-- `{ delay = s }` (then answer normally, or with the other fields); `count` repeats it;
-- `path` (a Lua pattern) aims it at other paths than Graph's calls API, e.g. "^/v1/keys";
-- `processed = true` with a status: act on the request (create the call), then answer the status.
---@param fault table the fault: status, retry_after, mode, delay, count, processed, path
function Emulator:fail_next(fault)
  if type(fault) ~= "table" then error("emulator:fail_next: expected a fault table", 2) end
  for _ = 1, fault.count or 1 do
    local f = {}
    for k, v in pairs(fault) do if k ~= "count" then f[k] = v end end
    self.faults[#self.faults + 1] = f
  end
end

M.methods = Emulator
return M
