--- A call as the bot sees it: built from Graph's answer to a create or join
-- request, kept up to date by the notifications the receiver accepts.
-- @module graphcall.call
local M = {}

---@class graphcall.Call
---@field id string Graph's call id
---@field state string "establishing", "established", ..., "terminated"
---@field my_participant_id string?
---@field location string? the Location header of the 201
---@field data table the call resource as Graph last described it
---@field client graphcall.Client
local Call = {}
Call.__index = Call
Call.__name = "graphcall.call"

--- Build a call object from a decoded `call` resource.
function M.new(client, data, location)
  return setmetatable({
    client = client,
    id = data.id,
    state = data.state,
    direction = data.direction,
    my_participant_id = data.myParticipantId,
    location = location,
    data = data,
  }, Call)
end

--- Hang up: `DELETE /communications/calls/{id}`. Returns true, or nil, err.
function Call:hangup()
  return self.client:hangup(self.id)
end

function Call:__tostring()
  return ("graphcall.call: %s (%s)"):format(tostring(self.id), tostring(self.state))
end

M.Call = Call
return M
