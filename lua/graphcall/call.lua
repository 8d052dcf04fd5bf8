--- A call as the bot sees it: built from Graph's answer to a create or join
-- request (or from an incoming-call notification), registered with its
-- client, and kept up to date by the notifications the receiver accepts.
--
-- Notifications may arrive out of order and twice: the state never goes
-- backwards (an `establishing` after `established` changes nothing), and a
-- repeated notification (same etag, or same content) is not dispatched
-- again. Handlers run under the loop's protection: an error goes to the
-- loop's `on_error` hook and later notifications are still delivered.
-- @module graphcall.call
local core = require "graphcall.core"
local events = require "graphcall.events"
local control = require "graphcall.control"
local operation = require "graphcall.operation"
local participant = require "graphcall.participant"
local cjson = require("cjson.safe").new()

local M = {}

-- How far along a call is; a notification never moves a call back.
-- Hold, transfer and redirect are side steps of an established call.
local RANK = {
  incoming = 0, establishing = 1, ringing = 2, established = 3, hold = 3, transferring = 3,
  transferAccepted = 3, redirecting = 3, terminating = 4, terminated = 5,
}
M.RANK = RANK

local SEEN_MAX = 64 -- fingerprints kept per call to drop repeated notifications

---@class graphcall.Call
---@field id string Graph's call id
---@field state string "incoming", "establishing", "established", ..., "terminated"
---@field direction string? "incoming" | "outgoing"
---@field my_participant_id string?
---@field location string? the Location header of the 201
---@field data table the call resource as Graph last described it
---@field result_info table? {code, subcode, message} once Graph gives one (e.g. terminated)
---@field roster table? the last list of participants Graph sent (participant resources)
---@field etag string? the etag of the last notification about the call
---@field checkpoint table? the bot's own state of the call (`set_checkpoint`; restored on adoption)
---@field client graphcall.Client
local Call = {}
Call.__name = "graphcall.call"
for k, v in pairs(control.call) do Call[k] = v end -- the actions (graphcall.control)

-- Methods, and `data` decoded on first use when the call was made from
-- Graph's answer (most bots never read it, and decoding is most of the
-- cost of a create request).
function Call.__index(self, key)
  local method = Call[key]
  if method ~= nil or key ~= "data" then return method end
  local text = rawget(self, "data_text")
  if not text then return nil end
  local data = cjson.decode(text)
  -- what notifications changed while nobody had read it (Call:apply)
  local updates = rawget(self, "data_updates")
  if updates then
    for k, v in pairs(updates) do data[k] = v end
    rawset(self, "data_updates", nil)
  end
  rawset(self, "data", data)
  rawset(self, "data_text", nil)
  return data
end

local op_key, lower_first, table_of = operation.key, operation.lower_first, operation.table_of

--- Build a call object from a decoded `call` resource, or from its fields
-- (id, state, direction, myParticipantId) and `text`, the resource as JSON
-- that `call.data` decodes when it is first read.
---@param client graphcall.Client
---@param data table the call resource, or its fields
---@param location string? the Location header of the 201
---@param text string? the resource as JSON
---@return graphcall.Call
function M.new(client, data, location, text)
  return setmetatable({
    client = client,
    id = data.id,
    state = lower_first(data.state),
    direction = lower_first(data.direction),
    my_participant_id = data.myParticipantId,
    location = location,
    data = not text and data or nil,
    data_text = text,
    -- made on first use (table_of): handlers, seen_order (the
    -- notifications' fingerprints), data_updates (what notifications changed
    -- in data before it was decoded), operations (by id) and early
    -- (completions that beat the action's own answer)
  }, Call)
end

--- Listen: `call:on(event, fn)`. Events: each state name ("established",
-- "terminated", ...) as `fn(call, notification)`; "state" for every change
-- as `fn(call, state, notification)`; "participants" as `fn(call, list)`;
-- "operation" as `fn(call, operation)` when one completes or fails; "tone"
-- as `fn(call, tone_info)`; "notification" for every new notification.
-- Returns the call (calls chain).
---@param event string
---@param fn function
---@return graphcall.Call
function Call:on(event, fn)
  events.on(table_of(self, "handlers"), event, fn, "call:on")
  return self
end

--- Run the handlers of `event` with the call and the arguments.
---@param event string the event's name
---@param ... any the handlers' arguments
function Call:emit(event, ...)
  local handlers = rawget(self, "handlers")
  if handlers then events.emit(self.client.loop, handlers, event, self, ...) end
end

--- Has this notification been seen (same etag, or same content)?
---@param n graphcall.notification
---@return boolean
function Call:repeated(n)
  -- the content only when there is no etag: resourceData as Graph sent it
  local key = table.concat({ n.change_type, n.resource_url, n.etag or n.resource_json or "" }, "\0")
  -- the last SEEN_MAX, oldest first: a scan of at most 64 is cheaper in
  -- memory than a set beside the list, on every live call
  local seen = table_of(self, "seen_order")
  for i = 1, #seen do
    if seen[i] == key then return true end
  end
  seen[#seen + 1] = key
  if #seen > SEEN_MAX then table.remove(seen, 1) end
  return false
end

--- Move the call to `state` (never back) and run its handlers; keepAlive
-- starts at `established`.
---@param state string a call state
---@param n graphcall.notification? the notification that changed it
function Call:set_state(state, n)
  local old = self.state
  if state == old or (RANK[state] or 3) < (RANK[old] or 0) then return end
  self.state = state
  local fleet = self.client.fleet
  if fleet then fleet:save_state(self) end
  local lg = self.client.log
  if lg and lg.info then lg:log("info", "call_state", { call_id = self.id, from = old, to = state }) end
  if state == "established" then self.client:keep_alive_start(self) end
  self:emit(state, n)
  self:emit("state", state, n)
  if state == "terminated" then self.client:forget(self) end
end

--- Apply an accepted notification (from the receiver, through the client).
---@param n graphcall.notification a notification (graphcall.core userdata)
---@return boolean # false when it was a repeat
function Call:apply(n)
  if self:repeated(n) then return false end
  if n.etag then self.etag = n.etag end -- the last one Graph sent (a fleet keeps it with the state)
  self:emit("notification", n)
  local data = n.resource_data
  if n.kind == "call" then
    if type(data) == "table" then
      -- merged into call.data; while that is still the text of the 201
      -- (nobody read it), beside it: a live call's decoded resource was
      -- most of its memory
      local into = rawget(self, "data_text") and table_of(self, "data_updates") or self.data
      for k, v in pairs(data) do into[k] = v end
      if type(data.toneInfo) == "table" then self:emit("tone", data.toneInfo) end
    end
    if n.result_info then self.result_info = n.result_info end
    local state = n.state or (n.change_type == "deleted" and "terminated" or nil)
    if state then self:set_state(state, n) end
  elseif n.kind == "participants" then
    self:roster_change(n.change_type, type(data) == "table" and data or {})
  elseif n.kind == "content_sharing" then
    self:sharing_change(n, data)
  elseif n.kind == "operation" then
    local operations = table_of(self, "operations")
    local op = operations[op_key(n.operation_id)]
    if not op and n.client_context then
      for _, o in pairs(operations) do
        if o.client_context == n.client_context then op = o end
      end
    end
    if op then
      op:update(n.status, n.result_info, data)
    elseif n.operation_id then
      -- Graph's completion can arrive before the answer to the action that
      -- started it: keep it for the operation object about to be made.
      local early = table_of(self, "early")
      if #early >= SEEN_MAX then table.remove(early, 1) end
      early[#early + 1] = { key = op_key(n.operation_id), n = n }
    end
  end
  return true
end

--- Keep a small table of the bot's own with the call (`call.checkpoint`):
-- in a fleet it is stored with the call in Redis, and the instance that
-- adopts the call gets it back (`client:on("adopted", fn(call, checkpoint))`).
-- At most 64 KiB as JSON; raises when it cannot be encoded.
---@param tbl table
---@return graphcall.Call
function Call:set_checkpoint(tbl)
  if type(tbl) ~= "table" then error("graphcall.call:set_checkpoint: expected a table", 2) end
  local text, err = cjson.encode(tbl)
  if not text then error("graphcall.call:set_checkpoint: " .. tostring(err), 2) end
  if #text > 65536 then error("graphcall.call:set_checkpoint: over 64 KiB as JSON", 2) end
  self.checkpoint = tbl
  local fleet = self.client.fleet
  if fleet then fleet:checkpoint(self, text) end
  return self
end

--- The call ended on our side without a notification (keepAlive got 404).
---@param result_info table? Graph's resultInfo {code, subcode, message}
function Call:gone(result_info)
  self.result_info = result_info
  self:set_state("terminated", nil)
end

--- Run the event loop until the call reaches `state` (or a later one), up
-- to `timeout` seconds. Returns true, or nil, err (kind "timeout", or
-- "terminated" when the call ended first, with its result_info).
---@param state string
---@param timeout? number seconds (default 60)
---@return boolean|nil, table?
function Call:wait(state, timeout)
  if RANK[state] == nil then error(("graphcall.call:wait: unknown state '%s'"):format(tostring(state)), 2) end
  local function reached()
    return self.state == state or (RANK[self.state] or 0) > RANK[state] or self.state == "terminated"
  end
  if not self.client.loop:wait(reached, timeout or 60) then
    return nil, core.new_error { kind = "timeout", message = ("call %s did not reach %s in time (still %s)")
      :format(self.id, state, tostring(self.state)) }
  end
  if self.state == "terminated" and state ~= "terminated" then
    return nil, core.new_error { kind = "terminated", message = "the call ended", result_info = self.result_info }
  end
  return true
end

function Call:__tostring()
  return ("graphcall.call: %s (%s)"):format(tostring(self.id), tostring(self.state))
end

--- Make `list` (participant resources) the roster: participant objects of this call.
---@param list table[] participant resources
---@return table[] # the list, now participant objects
function Call:set_roster(list)
  for i, p in ipairs(list) do list[i] = participant.adopt(self, p) end
  self.roster = list
  return list
end

--- A participant resource of this call as a participant object.
---@param data table the resource, decoded
---@return graphcall.Participant
function Call:adopt_participant(data)
  return participant.adopt(self, data)
end

-- Is the roster sent as changes (callOptions.isDeltaRosterEnabled)?
local function delta(call)
  local data = call.data
  local options = type(data) == "table" and data.callOptions
  return type(options) == "table" and options.isDeltaRosterEnabled == true
end

--- A participants notification: "updated" carries the whole roster, unless
-- the call asked for delta rosters, when it carries the changed
-- participants (merged by id), like "created"; "deleted" the participants
-- that left.
---@param change_type string "created" | "updated" | "deleted"
---@param list table[] participant resources
function Call:roster_change(change_type, list)
  if change_type == "deleted" or change_type == "created" or delta(self) then
    local changed = {}
    for _, p in ipairs(list) do if type(p) == "table" and p.id then changed[p.id] = p end end
    local out = {}
    for _, p in ipairs(rawget(self, "roster") or {}) do
      local new = changed[p.id]
      if new == nil then out[#out + 1] = p elseif change_type ~= "deleted" then out[#out + 1] = new end
      changed[p.id] = nil
    end
    if change_type ~= "deleted" then
      for _, p in ipairs(list) do if changed[p.id] then out[#out + 1] = p end end
    end
    list = out
  end
  self:set_roster(list)
  self:emit("participants", list)
end

--- A contentSharingSessions notification: the sessions (an array, or one
-- session named by the resource URL), kept in call.content_sharing.
---@param n graphcall.notification a notification (graphcall.core userdata)
---@param data table? the sessions (an array) or one session
function Call:sharing_change(n, data)
  local sessions = type(data) == "table" and (#data > 0 and data or next(data) and { data }) or nil
  if not sessions then
    local id = (n.resource_url or ""):match("/contentsharingsessions/([^/]+)$")
    sessions = { id and { id = id } or nil }
  end
  local current = table_of(self, "content_sharing")
  for _, s in ipairs(sessions) do
    if s.id then current[s.id] = n.change_type ~= "deleted" and s or nil end
  end
  self:emit("content_sharing", sessions, n)
end

--- A commsOperation returned by an action (see graphcall.operation).
M.operation = operation.new

M.Call, M.Operation = Call, operation.Operation
return M
