--- A participant of a call, as Graph describes it (a participant resource:
-- `id`, `info`, `mediaStreams`, `isMuted`, `isInLobby`, ...), with the
-- participant actions of `graphcall.control` as methods: `mute`, `remove`,
-- `start_hold_music`, `stop_hold_music`, `get`. Entries of `call.roster` and
-- the lists `call:participants()` returns are participant objects: the
-- decoded resource itself, so Graph's properties read as they are.
-- @module graphcall.participant
local control = require "graphcall.control"

local M = {}

---@class graphcall.Participant
---@field id string
---@field call graphcall.Call the call it belongs to
---@field is_muted boolean? isMuted
---@field is_in_lobby boolean? isInLobby
local Participant = {}
Participant.__name = "graphcall.participant"
for k, v in pairs(control.participant) do Participant[k] = v end

-- The call of each participant, outside the resource table (which stays Graph's JSON).
local owners = setmetatable({}, { __mode = "k" })

local ALIASES = { is_muted = "isMuted", is_in_lobby = "isInLobby" }

function Participant.__index(self, key)
  local method = Participant[key]
  if method ~= nil then return method end
  if key == "call" then return owners[self] end
  local alias = ALIASES[key]
  return alias and rawget(self, alias) or nil
end

function Participant:__tostring()
  return ("graphcall.participant: %s"):format(tostring(rawget(self, "id")))
end

--- Make the participant resource `data` (a table, kept) a participant object of `call`.
---@param call graphcall.Call
---@param data table the participant resource
---@return graphcall.Participant
function M.adopt(call, data)
  if type(data) ~= "table" then return data end
  owners[data] = call
  return setmetatable(data, Participant)
end

M.Participant = Participant
return M
