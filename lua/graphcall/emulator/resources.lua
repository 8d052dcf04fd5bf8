--- The resources under a call the emulator serves: participants (list, get,
-- delete, and their actions mute, startHoldMusic, stopHoldMusic),
-- operations (GET of a commsOperation), audioRoutingGroups (create, list,
-- get, update, delete) and contentSharingSessions (list, get; a session
-- starts with `emu:share_content`).
-- @module graphcall.emulator.resources
local core = require "graphcall.core"
local cjson = require("cjson.safe").new()
local calls = require "graphcall.emulator.calls"
local actions = require "graphcall.emulator.actions"

local encode, EMPTY, is_array = calls.encode, calls.EMPTY, calls.is_array
local M = {}
local Emulator = {}

local function context(self, req, what)
  return ("%s/%s/$metadata#%s"):format(self.url, req.version or "v1.0", what)
end

local function participant(call, id)
  local key = id:lower():gsub("-", "")
  for i, p in ipairs(call.roster) do
    if p.id:lower():gsub("-", "") == key then return p, i end
  end
end

local function with(t, extra)
  local out = calls.copy(t)
  for k, v in pairs(extra) do out[k] = v end
  return out
end

-- Participant actions: fn(self, req, call, body, participant).
local PARTICIPANT = {}

--- Mute another participant: completed at once, then the roster update.
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param body table the request's JSON body, decoded
---@param p table the participant resource
function PARTICIPANT.mute(self, req, call, body, p)
  self:operation(req, call, "muteParticipant", body, "completed")
  p.isMuted = true
  self:notify(call, "updated", call.roster, "/participants")
end

--- startHoldMusic: 202 with the operation running; when it completes the
-- participant is held (emu:hold_state says so).
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param body table the request's JSON body, decoded
---@param p table the participant resource
---@return nil # (returns only to end the handler early)
function PARTICIPANT.startHoldMusic(self, req, call, body, p)
  local prompt = body.customPrompt
  if prompt ~= nil then
    local why = actions.check_prompts({ prompt }, 1, 1)
    if why then return self:fail(req, 400, "BadRequest", "customPrompt: " .. why) end
  end
  if call.held[p.id] then return self:fail(req, 400, "BadRequest", "The participant is already on hold.") end
  local op = self:operation(req, call, "startHoldMusic", body, "running", nil, 202)
  call.held[p.id] = { prompt = prompt and prompt.mediaInfo.uri or "default" }
  self:later(call, op, function() self:complete(op, "completed") end)
end

--- stopHoldMusic: 202 with the operation running (v1.0 page), then completed.
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param body table the request's JSON body, decoded
---@param p table the participant resource
---@return nil # (returns only to end the handler early)
function PARTICIPANT.stopHoldMusic(self, req, call, body, p)
  if not call.held[p.id] then return self:fail(req, 400, "BadRequest", "The participant is not on hold.") end
  local op = self:operation(req, call, "stopHoldMusic", body, "running", nil, 202)
  call.held[p.id] = nil
  self:later(call, op, function() self:complete(op, "completed") end)
end

local ROUTING_MODES = { oneToOne = true, multicast = true }

local function check_group(body, create)
  if create and not ROUTING_MODES[body.routingMode] then return "routingMode must be oneToOne or multicast." end
  if body.routingMode ~= nil and not ROUTING_MODES[body.routingMode] then
    return "routingMode must be oneToOne or multicast."
  end
  for _, k in ipairs { "sources", "receivers" } do
    if (create or body[k] ~= nil) and not (is_array(body[k]) and #body[k] > 0) then
      return k .. " must be a non-empty array of participant ids."
    end
  end
  if body.routingMode == "oneToOne" and body.sources and #body.sources ~= 1 then
    return "A oneToOne audio routing group has exactly one source."
  end
end

local function group_body(self, req, call, g)
  local what = ("communications/calls('%s')/audioRoutingGroups/$entity"):format(call.id)
  return with(g, { ["@odata.type"] = "#microsoft.graph.audioRoutingGroup",
    ["@odata.context"] = context(self, req, what) })
end

local function decode(self, req)
  local body = req.body ~= "" and cjson.decode(req.body) or {}
  if type(body) ~= "table" then self:fail(req, 400, "BadRequest", "The request body is not a JSON object.") end
  return type(body) == "table" and body or nil
end

--- GET, POST, PATCH, DELETE of .../audioRoutingGroups[/{id}].
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param gid string? the group's id from the path
---@return nil # (returns only to end the handler early)
function Emulator:audio_routing_groups(req, call, gid)
  if not gid then
    if req.method == "GET" then
      local list = {}
      for _, g in pairs(call.groups) do
        list[#list + 1] = with(g, { ["@odata.type"] = "#microsoft.graph.audioRoutingGroup" })
      end
      table.sort(list, function(a, b) return a.id < b.id end)
      return self:respond(req, 200, encode { ["@odata.context"] = context(self, req,
        ("communications/calls('%s')/audioRoutingGroups"):format(call.id)), value = #list > 0 and list or EMPTY })
    elseif req.method ~= "POST" then
      return self:fail(req, 405, "BadRequest", "Method not allowed.")
    end
    local body = decode(self, req)
    if not body then return end
    local why = check_group(body, true)
    if why then return self:fail(req, 400, "BadRequest", why) end
    local g = { id = type(body.id) == "string" and body.id or core.uuid(), routingMode = body.routingMode,
      sources = body.sources, receivers = body.receivers }
    if call.groups[g.id] then return self:fail(req, 409, "Conflict", "An audio routing group with this id exists.") end
    call.groups[g.id] = g
    return self:respond(req, 201, encode(group_body(self, req, call, g)),
      { location = req.call_url .. "/audioRoutingGroups/" .. g.id })
  end
  local g = call.groups[gid]
  if not g then return self:fail(req, 404, "NotFound", "Audio routing group not found.") end
  if req.method == "GET" then return self:respond(req, 200, encode(group_body(self, req, call, g))) end
  if req.method == "DELETE" then
    call.groups[gid] = nil
    return self:respond(req, 204)
  end
  if req.method ~= "PATCH" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
  local body = decode(self, req)
  if not body then return end
  local why = check_group(body, false)
  if why then return self:fail(req, 400, "BadRequest", why) end
  for _, k in ipairs { "routingMode", "sources", "receivers" } do
    if body[k] ~= nil then g[k] = body[k] end
  end
  self:respond(req, 200, encode(group_body(self, req, call, g)))
end

--- Start sharing content in a call (as a Teams client would): a
-- contentSharingSession joins call.sharing and a `created` notification on
-- `.../contentsharingsessions` goes to the bot. Returns the session id.
---@param call_id string the call's id
---@return string # the session's id
function Emulator:share_content(call_id)
  local call = self:find_call(call_id)
  if not call then error("emulator:share_content: no such call: " .. tostring(call_id), 2) end
  local s = { ["@odata.type"] = "#microsoft.graph.contentSharingSession", id = core.uuid():gsub("-", ""):upper() }
  call.sharing[s.id] = s
  self:notify(call, "created", { s }, "/contentsharingsessions")
  return s.id
end

--- Stop a content sharing session: a `deleted` notification follows.
---@param call_id string the call's id
---@param session_id string? the session (default all)
function Emulator:stop_sharing(call_id, session_id)
  local call = self:find_call(call_id)
  local s = call and call.sharing[session_id]
  if not s then error("emulator:stop_sharing: no such session: " .. tostring(session_id), 2) end
  call.sharing[session_id] = nil
  self:notify(call, "deleted", { s }, "/contentsharingsessions")
end

--- The hold state of a participant: { prompt = uri | "default" } while held, or nil.
---@param call_id string the call's id
---@param participant_id string
---@return table|nil # the hold, while the participant is held
function Emulator:hold_state(call_id, participant_id)
  local call = self:find_call(call_id)
  return call and call.held[participant_id] or nil
end

--- GET .../contentSharingSessions[/{id}].
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param sid string? the session's id from the path
---@return nil # (returns only to end the handler early)
function Emulator:content_sharing(req, call, sid)
  if req.method ~= "GET" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
  local what = ("communications/calls('%s')/contentSharingSessions"):format(call.id)
  if not sid then
    local list = {}
    for _, s in pairs(call.sharing) do list[#list + 1] = s end
    return self:respond(req, 200, encode { ["@odata.context"] = context(self, req, what),
      value = #list > 0 and list or EMPTY })
  end
  local s = call.sharing[sid]
  if not s then return self:fail(req, 404, "NotFound", "Content sharing session not found.") end
  self:respond(req, 200, encode(with(s, { ["@odata.context"] = context(self, req, what .. "/$entity") })))
end

--- GET .../operations/{id}: the operation as it is now.
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param opid string the operation's id from the path
---@return nil # (returns only to end the handler early)
function Emulator:get_operation(req, call, opid)
  if req.method ~= "GET" then return self:fail(req, 404, "UnknownError", "No route for " .. req.path) end
  local key = opid:lower():gsub("-", "")
  for _, r in ipairs(self.operations) do
    if r.call_id == call.id and r.id:gsub("-", "") == key then
      local info = self.operation_info[r.id]
      local data = calls.copy(info.data)
      data.status = r.status
      data["@odata.context"] = context(self, req, info.type)
      return self:respond(req, 200, encode(data))
    end
  end
  self:fail(req, 404, "NotFound", "Operation not found.")
end

-- Call-level actions that live under /participants/.
local CALL_ACTIONS = { invite = true, muteAll = true, configureMixer = true }

--- GET or DELETE .../participants/{id}, or an action on the participant.
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param pid string the participant's id from the path
---@param action string? the action after it (mute, ...)
---@return nil # (returns only to end the handler early)
function Emulator:participant_request(req, call, pid, action)
  local p = participant(call, pid)
  if not p then return self:fail(req, 404, "NotFound", "Participant not found.") end
  if not action then
    if req.method == "GET" then
      return self:respond(req, 200, encode(with(p, { ["@odata.context"] =
        context(self, req, ("communications/calls('%s')/participants/$entity"):format(call.id)) })))
    elseif req.method == "DELETE" then
      local _, i = participant(call, pid)
      table.remove(call.roster, i)
      call.held[p.id] = nil
      self:respond(req, 204)
      return self:notify(call, "updated", call.roster, "/participants")
    end
    return self:fail(req, 405, "BadRequest", "Method not allowed.")
  end
  local handler = PARTICIPANT[action]
  if not handler then return self:fail(req, 404, "UnknownError", "No route for " .. req.path) end
  if req.method ~= "POST" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
  self:action(req, call, function(_, _, _, body)
    local why = actions.check_context(body)
    if why then return self:fail(req, 400, "BadRequest", why) end
    if not self:in_state(req, call, "established", action) then return end
    handler(self, req, call, body, p)
  end)
end

--- Serve `tail` (the path under the call) when it names one of these
-- resources; true when it did.
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param tail string the path after .../calls/{id}
---@return boolean # true when it was a resource of the call
function M.route(self, req, call, tail)
  if tail == "/participants" then
    if req.method ~= "GET" then self:fail(req, 405, "BadRequest", "Method not allowed.") return true end
    self:respond(req, 200, encode { ["@odata.context"] = context(self, req,
      ("communications/calls('%s')/participants"):format(call.id)), value = call.roster })
    return true
  end
  local pid, action = tail:match("^/participants/([%w%-]+)/?(%a*)$")
  if pid and not CALL_ACTIONS[pid] then
    self:participant_request(req, call, pid, action ~= "" and action or nil)
    return true
  end
  local opid = tail:match("^/operations/([%w%-]+)$")
  if opid then self:get_operation(req, call, opid) return true end
  local gid = tail:match("^/audioRoutingGroups/([%w%-]+)$")
  if gid or tail == "/audioRoutingGroups" then self:audio_routing_groups(req, call, gid) return true end
  local sid = tail:match("^/contentSharingSessions/([%w%-]+)$")
  if sid or tail == "/contentSharingSessions" then self:content_sharing(req, call, sid) return true end
  return false
end

M.methods = Emulator
return M
