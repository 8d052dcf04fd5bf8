--- The emulator's full record, for specs and benchmarks that run it in a
-- process of its own (a fleet of bots behind a load balancer): every
-- request it received and every notification it posted, with the answer,
-- and every call with how it ended. The dashboard's `/_emulator/state`
-- shows only the newest; this is all of it.
--
--   GET  /_emulator/records     {requests = [...], notifications = [...], calls = [...]}
--   POST /_emulator/redeliver   {call_id}: post the call's last notification again, the
--                               same body, as Graph does when it got no timely answer
--   GET  /_emulator/notification_token?app_id=ID
--                               {token}: the Bearer token the emulator puts on its own
--                               notifications to app ID (default: its app_id option, else
--                               the last app that called it), signed and cached the same way,
--                               for a load generator that POSTs notifications a bot verifies
-- @module graphcall.emulator.records
local cjson = require("cjson.safe").new()

local M = {}

local function tone_of(body)
  local doc = cjson.decode(body or "")
  local item = type(doc) == "table" and type(doc.value) == "table" and doc.value[1]
  local data = type(item) == "table" and item.resourceData
  local info = type(data) == "table" and data.toneInfo
  return type(info) == "table" and info.tone or nil
end

--- Everything recorded, as a table (times in seconds since the start).
---@param emu graphcall.Emulator
---@return table
function M.all(emu)
  local requests, notifications, out_calls = {}, {}, {}
  for i, r in ipairs(emu.requests) do
    requests[i] = { method = r.method, path = r.path, status = r.status or cjson.null, t = r.t or cjson.null }
  end
  for i, n in ipairs(emu.notifications) do
    notifications[i] = { call_id = n.call_id, change_type = n.change_type, state = n.state or cjson.null,
      resource = n.resource or cjson.null, tone = tone_of(n.body) or cjson.null, status = n.status or cjson.null,
      failure = n.failure or cjson.null, t = n.t or cjson.null }
  end
  for i, call in ipairs(emu.history) do
    local info = call.result_info or {}
    out_calls[i] = { id = call.id, state = call.state, callback_uri = call.callback_uri,
      code = info.code or cjson.null, subcode = info.subcode or cjson.null }
  end
  setmetatable(requests, cjson.array_mt)
  setmetatable(notifications, cjson.array_mt)
  setmetatable(out_calls, cjson.array_mt)
  return { requests = requests, notifications = notifications, calls = out_calls }
end

--- Post call `id`'s last notification again (same body). False when there
-- is no such call or it has none yet.
---@param emu graphcall.Emulator
---@param id string
---@return boolean
function M.redeliver(emu, id)
  for i = #emu.notifications, 1, -1 do
    local n = emu.notifications[i]
    if n.call_id == id then
      local call = emu.calls[id]
      for _, c in ipairs(emu.history) do if c.id == id then call = call or c end end
      if not call then return false end
      local again = { call_id = id, change_type = n.change_type, state = n.state, body = n.body,
        resource = n.resource, again = true }
      emu.notifications[#emu.notifications + 1] = again
      call.outbox[#call.outbox + 1] = again
      emu:deliver(call)
      return true
    end
  end
  return false
end

--- Serve `/_emulator/records`, `/_emulator/redeliver` and
-- `/_emulator/notification_token`: true when it was one.
---@param emu graphcall.Emulator
---@param req table the server's request
---@return boolean
function M.route(emu, req)
  local headers = { ["content-type"] = "application/json", ["cache-control"] = "no-store" }
  if req.path == "/_emulator/records" and req.method == "GET" then
    emu:respond(req, 200, cjson.encode(M.all(emu)), headers)
  elseif req.path == "/_emulator/notification_token" and req.method == "GET" then
    local app_id = ("&" .. (req.query or "")):match("&app_id=([%w%-]+)") or emu.app_id or emu.last_app_id
    if type(app_id) ~= "string" then
      emu:respond(req, 400, cjson.encode { error = "app_id is required (no app_id option, no app seen yet)" },
        headers)
    else
      emu:respond(req, 200, cjson.encode { token = emu:notification_token(app_id), app_id = app_id }, headers)
    end
  elseif req.path == "/_emulator/redeliver" and req.method == "POST" then
    local body = cjson.decode(req.body or "")
    local ok = type(body) == "table" and type(body.call_id) == "string" and M.redeliver(emu, body.call_id)
    emu:respond(req, ok and 200 or 404, cjson.encode { redelivered = ok }, headers)
  else
    return false
  end
  return true
end

return M
