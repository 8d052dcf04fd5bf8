--- A commsOperation as the bot sees it: returned by an action (playPrompt,
-- sendDtmfTones, a participant's mute, ...), completed or failed when Graph
-- answers it so at once or when its `deleted` notification arrives.
-- @module graphcall.operation
local core = require "graphcall.core"
local events = require "graphcall.events"

local M = {}

---@class graphcall.Operation
---@field id string
---@field kind string e.g. "playPrompt"
---@field status string "notStarted" | "running" | "completed" | "failed"
---@field client_context string
---@field result_info table?
---@field data table the commsOperation as Graph last described it
local Operation = {}
Operation.__index = Operation
Operation.__name = "graphcall.operation"

--- Operation ids as Graph writes them in URLs and bodies (upper-case without
-- dashes, or dashed) compare equal under this key.
---@param id string an operation id, with or without dashes, any case
---@return string|nil
function M.key(id)
  return type(id) == "string" and id:lower():gsub("-", "") or nil
end

-- Graph's enum values start lower-case, except a few in the docs ("Running").
local function lower_first(s)
  if type(s) ~= "string" then return nil end
  local b = s:byte(1)
  if not b or b < 65 or b > 90 then return s end
  return string.char(b + 32) .. s:sub(2)
end
M.lower_first = lower_first

-- The call's table `key`, made on first use.
local function table_of(t, key)
  local v = rawget(t, key)
  if not v then
    v = {}
    rawset(t, key, v)
  end
  return v
end
M.table_of = table_of

--- A commsOperation returned by an action on `call`; its completion arrives
-- later as a notification unless Graph answered it completed or failed.
---@param call graphcall.Call
---@param kind string the operation's kind (playPrompt, ...)
---@param data table the commsOperation, decoded
---@param client_context string? the clientContext sent
---@return graphcall.Operation
function M.new(call, kind, data, client_context)
  local op = setmetatable({
    call = call, kind = kind, id = data.id, status = lower_first(data.status) or "running",
    client_context = data.clientContext or client_context, result_info = nil, data = data, handlers = {},
  }, Operation)
  if op:done() then
    op.result_info = data.resultInfo
  elseif op.id then
    local key = M.key(op.id)
    table_of(call, "operations")[key] = op
    local early = table_of(call, "early")
    for i, e in ipairs(early) do
      if e.key == key then
        table.remove(early, i)
        op:update(e.n.status, e.n.result_info, e.n.resource_data)
        break
      end
    end
  end
  return op
end

--- True once the operation completed or failed.
---@return boolean
function Operation:done()
  return self.status == "completed" or self.status == "failed"
end

--- Apply a new status (and resultInfo, fields); the done handlers run when it ends.
---@param status string the operation's status
---@param result_info table? Graph's resultInfo {code, subcode, message}
---@param data table? more fields of the commsOperation
function Operation:update(status, result_info, data)
  if self:done() then return end
  self.status = lower_first(status) or self.status
  self.result_info = result_info or self.result_info
  if type(data) == "table" then for k, v in pairs(data) do self.data[k] = v end end
  if self:done() then
    table_of(self.call, "operations")[M.key(self.id)] = nil
    events.emit(self.call.client.loop, self.handlers, "done", self)
    self.call:emit("operation", self)
  end
end

--- `fn(operation)` when it completes or fails.
---@param fn fun(op: graphcall.Operation)
---@return graphcall.Operation
function Operation:on_done(fn)
  events.on(self.handlers, "done", fn, "operation:on_done")
  return self
end

--- Run the loop until the operation completes (true) or fails (nil, err
-- kind "operation_failed" with result_info), up to `timeout` seconds.
---@param timeout number? seconds
---@return boolean|nil, table? # true once completed; nil, err when it failed or timed out
function Operation:wait(timeout)
  if not self.call.client.loop:wait(function() return self:done() or self.call.state == "terminated" end,
    timeout or 60) then
    return nil, core.new_error { kind = "timeout", message = self.kind .. " did not complete in time" }
  end
  if self.status == "completed" then return true end
  return nil, core.new_error { kind = "operation_failed", result_info = self.result_info,
    message = ("%s %s"):format(self.kind, self:done() and "failed" or "ended with the call") }
end

--- Read the operation again: `GET .../calls/{id}/operations/{op_id}`. Updates
-- and returns the operation, or nil, err.
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function Operation:get()
  return self.call:get_operation(self.id, self)
end

function Operation:__tostring()
  return ("graphcall.operation: %s %s (%s)"):format(self.kind, tostring(self.id), self.status)
end

M.Operation = Operation
return M
