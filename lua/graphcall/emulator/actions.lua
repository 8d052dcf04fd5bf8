--- The call actions the emulator serves (section 2 of the Graph reference):
-- their checks, statuses, commsOperations and the notifications that follow.
-- @module graphcall.emulator.actions
local core = require "graphcall.core"
local cjson = require("cjson.safe").new()
local calls = require "graphcall.emulator.calls"

local result_info, join = calls.result_info, calls.join
local M = {}
local Emulator = {}

-- The operations: the commsOperation type each action answers with.
local OPERATION_TYPES = {
  playPrompt = "playPromptOperation", recordResponse = "recordOperation",
  cancelMediaProcessing = "cancelMediaProcessingOperation", subscribeToTone = "subscribeToToneOperation",
  mute = "muteParticipantOperation", unmute = "unmuteParticipantOperation",
  invite = "inviteParticipantsOperation", updateRecordingStatus = "updateRecordingStatusOperation",
  sendDtmfTones = "sendDtmfTonesOperation", addLargeGalleryView = "addLargeGalleryViewOperation",
  muteParticipant = "muteParticipantOperation", startHoldMusic = "startHoldMusicOperation",
  stopHoldMusic = "stopHoldMusicOperation", muteAll = "commsOperation", configureMixer = "commsOperation",
}
M.OPERATION_TYPES = OPERATION_TYPES

--- Answer `answer` (200 unless given) with a new operation (and a Location to
-- it), record it in emu.operations; returns it. `extra` adds to (or
-- overrides) the body. The operation's @odata.context names the version the
-- request came by.
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param kind string the operation's kind (playPrompt, ...)
---@param body table the request's JSON body, decoded
---@param status string the operation's status (running, completed, ...)
---@param extra table? more fields for the resource
---@param answer integer? the HTTP status (default 200)
---@return table # the operation
function Emulator:operation(req, call, kind, body, status, extra, answer)
  local id = core.uuid()
  local record = { call_id = call.id, kind = kind, id = id, status = status, client_context = body.clientContext }
  self.operations[#self.operations + 1] = record
  local op = { record = record, type = OPERATION_TYPES[kind], call = call }
  local data = { ["@odata.type"] = "#microsoft.graph." .. op.type,
    ["@odata.context"] = ("%s/%s/$metadata#%s"):format(self.url, req.version or "v1.0", op.type),
    id = id, status = status, clientContext = body.clientContext, resultInfo = cjson.null }
  for k, v in pairs(extra or {}) do data[k] = v end
  self.operation_info[id] = { type = op.type, data = data } -- for GET .../operations/{id}
  self:respond(req, answer or 200, cjson.encode(data), { location = req.call_url .. "/operations/" .. id })
  return op
end

--- The operation's final notification: `deleted` on
-- /communications/calls/{id}/operations/{OPID}, with the dashed id in the body.
---@param op table the operation (its record, type, call, timer)
---@param status string "completed" or "failed"
---@param info table? resultInfo {code, subcode, message}
---@param extra table? more fields for the resource
function Emulator:complete(op, status, info, extra)
  op.record.status = status
  local data = { ["@odata.type"] = "#microsoft.graph." .. op.type, id = op.record.id, status = status,
    clientContext = op.record.client_context, resultInfo = info }
  for k, v in pairs(extra or {}) do data[k] = v end
  local kept = self.operation_info[op.record.id].data
  for k, v in pairs(data) do kept[k] = v end
  self:notify(op.call, "deleted", data, "/operations/" .. (op.record.id:gsub("-", "")):upper())
end

--- playPrompt and recordResponse run one after the other (Graph queues
-- them); each takes operation_delay, then op.finish() completes it.
---@param call table the emulator's call
function Emulator:start_media(call)
  local op = call.media_queue[1]
  if not op then return end
  op.timer = self:after(self.operation_delay, function()
    table.remove(call.media_queue, 1)
    op.finish()
    self:start_media(call)
  end)
end

--- Queue a media operation on the call (it starts when it is first).
---@param call table the emulator's call
---@param op table the operation (its record, type, call, timer)
function Emulator:enqueue_media(call, op)
  call.media_queue[#call.media_queue + 1] = op
  if #call.media_queue == 1 then self:start_media(call) end
end

--- cancelMediaProcessing (and a recordResponse barging in): every queued or
-- running media operation fails with 400/8508, in order.
---@param call table the emulator's call
function Emulator:cancel_media(call)
  local queue = call.media_queue
  call.media_queue = {}
  for _, op in ipairs(queue) do
    self:cancel(op.timer)
    self:complete(op, "failed", result_info(400, 8508, "Action failed, the operation was cancelled."),
      op.canceled)
  end
end

--- An operation Graph finishes later, outside the media queue (invite).
---@param call table the emulator's call
---@param op table the operation (its record, type, call, timer)
---@param fn function
function Emulator:later(call, op, fn)
  call.later = call.later or {}
  call.later[op.record.id] = op
  op.timer = self:after(self.operation_delay, function()
    call.later[op.record.id] = nil
    fn()
  end)
end

-- 10 ms of 16 kHz mono 16-bit silence: what a recording downloads.
local function silence_wav()
  local data = ("\0"):rep(320)
  return ("<c4I4c4c4I4I2I2I4I4I2I2c4I4"):pack("RIFF", 36 + #data, "WAVE", "fmt ", 16, 1, 1, 16000, 32000, 2, 16,
    "data", #data) .. data
end

--- GET {recordingLocation} with `Authorization: Bearer {recordingAccessToken}`.
---@param req table the server's request (path, method, headers, body)
---@return nil # (returns only to end the handler early)
function Emulator:recording(req)
  local id = req.path:match("^/recordings/([%w%-]+)$")
  local rec = id and self.recordings[id]
  if not rec then return self:fail(req, 404, "UnknownError", "No such recording.") end
  if (req.headers.authorization or "") ~= "Bearer " .. rec.token then
    return self:fail(req, 401, "InvalidAuthenticationToken", "The recording access token is missing or invalid.")
  end
  self:respond(req, 200, silence_wav(), { ["content-type"] = "application/octet-stream" })
end

-- Checks of action bodies. Each returns an error message, or nil.
local MODALITIES = { unknown = true, audio = true, video = true, videoBasedScreenSharing = true, data = true }

local is_array = calls.is_array

local function is_integer(v, lo, hi)
  return type(v) == "number" and v == math.floor(v) and v >= lo and v <= hi
end

local function check_context(body)
  local c = body.clientContext
  if c ~= nil and (type(c) ~= "string" or #c > 256) then
    return "clientContext must be a string of at most 256 characters."
  end
end

local function check_callback(body)
  local c = body.callbackUri
  if c ~= nil and (type(c) ~= "string" or c == "") then return "callbackUri must be a non-empty string." end
end

-- invitationParticipantInfo[]: min..max entries, each with an identity.
local function check_participants(list, name, min, max)
  if not is_array(list) or #list < min then
    return ("%s must be an array of at least %d invitationParticipantInfo."):format(name, min)
  end
  if #list > max then return ("%s accepts at most %d entries."):format(name, max) end
  for i, t in ipairs(list) do
    if type(t) ~= "table" or type(t.identity) ~= "table" or next(t.identity) == nil then
      return ("%s[%d] has no identity."):format(name, i)
    end
  end
end

-- mediaPrompt[]: min..max entries, each with mediaInfo.uri.
local function check_prompts(list, min, max)
  if list == nil and min == 0 then return end
  if not is_array(list) or #list < min then
    return ("prompts must be an array of at least %d mediaPrompt."):format(min)
  end
  if #list > max then return ("prompts accepts at most %d mediaPrompt."):format(max) end
  for i, p in ipairs(list) do
    if type(p) ~= "table" or type(p.mediaInfo) ~= "table" or type(p.mediaInfo.uri) ~= "string"
       or p.mediaInfo.uri == "" then
      return ("prompts[%d].mediaInfo.uri is required."):format(i)
    end
  end
end

-- Media operations need a call with service-hosted media.
local function service_hosted(call)
  local m = call.data.mediaConfig
  if type(m) ~= "table" then return false end
  local t = m["@odata.type"]
  if type(t) == "string" then return t:lower():find("servicehostedmediaconfig", 1, true) ~= nil end
  return m.blob == nil
end

--- Refuse (400) unless the call is in `state`; true when it is.
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param state string a call state
---@param action string the action's name, for the error
---@return boolean
function Emulator:in_state(req, call, state, action)
  if call.state == state then return true end
  self:fail(req, 400, "BadRequest", ("%s needs a call in state %s; the call is %s."):format(action, state, call.state))
  return false
end

--- Refuse (400) unless the call has service-hosted media; true when it has.
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param action string the action's name, for the error
---@return boolean
function Emulator:service_hosted(req, call, action)
  if service_hosted(call) then return true end
  self:fail(req, 400, "BadRequest", action .. " is supported only for calls with serviceHostedMediaConfig.")
  return false
end

-- The bot's own participant in the roster.
local function me(call)
  for _, p in ipairs(call.roster) do
    if p.id == call.my_participant_id then return p end
  end
end

local ACTIONS = {}

--- POST .../answer: an incoming call is answered, then established.
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param body table the request's JSON body, decoded
---@return nil # (returns only to end the handler early)
function ACTIONS.answer(self, req, call, body)
  local list = body.acceptedModalities
  if not is_array(list) or #list == 0 then
    return self:fail(req, 400, "BadRequest", "acceptedModalities must be a non-empty array.")
  end
  for i, m in ipairs(list) do
    if not MODALITIES[m] then
      return self:fail(req, 400, "BadRequest", ("acceptedModalities[%d] is not a modality."):format(i))
    end
  end
  if type(body.mediaConfig) ~= "table" then return self:fail(req, 400, "8523", "Missing mediaConfig information.") end
  local why = check_callback(body)
  if not why and body.callOptions ~= nil and type(body.callOptions) ~= "table" then
    why = "callOptions must be an incomingCallOptions object."
  end
  if not why and body.participantCapacity ~= nil and not is_integer(body.participantCapacity, 1, 10000) then
    why = "participantCapacity must be a positive integer."
  end
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "incoming", "answer") then return end
  self:respond(req, 202)
  self:cancel(call.incoming_timer)
  call.callback_uri = body.callbackUri or call.callback_uri
  call.data.callbackUri = call.callback_uri
  call.data.mediaConfig = body.mediaConfig
  call.data.callOptions = body.callOptions
  self:notify(call, "updated", { state = "establishing", direction = "incoming" })
  self:notify(call, "updated", { state = "established", direction = "incoming" })
  call.state = "established"
end

local REASONS = { none = true, busy = true, forbidden = true }

--- POST .../reject: an incoming call is rejected, then terminated.
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param body table the request's JSON body, decoded
---@return nil # (returns only to end the handler early)
function ACTIONS.reject(self, req, call, body)
  if body.reason ~= nil and not (type(body.reason) == "string" and REASONS[body.reason:lower()]) then
    return self:fail(req, 400, "BadRequest", "reason must be one of None, Busy, Forbidden.")
  end
  local why = check_callback(body)
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "incoming", "reject") then return end
  self:respond(req, 202)
  call.callback_uri = body.callbackUri or call.callback_uri
  -- Graph's example (call-reject.md) shows a bare `deleted` without resultInfo
  self:terminate(call, nil, { direction = "incoming" })
end

--- POST .../redirect: an incoming call goes to other targets, then is terminated.
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param body table the request's JSON body, decoded
---@return nil # (returns only to end the handler early)
function ACTIONS.redirect(self, req, call, body)
  local why = check_participants(body.targets, "targets", 1, 25) or check_callback(body)
  if not why and body.timeout ~= nil and not is_integer(body.timeout, 15, 90) then
    why = "timeout must be an integer from 15 to 90 (seconds)."
  end
  if not why and body.routingPolicies ~= nil and not is_array(body.routingPolicies) then
    why = "routingPolicies must be an array of routingPolicy values."
  end
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "incoming", "redirect") then return end
  self:respond(req, 202)
  call.callback_uri = body.callbackUri or call.callback_uri
  -- Graph's example (call-redirect.md): `deleted`, state terminated, no resultInfo
  self:terminate(call, nil, { direction = "incoming" })
end

ACTIONS.keepAlive = function(self, req, call)
  call.kept_alive_at = self.loop.clock()
  call.keep_alives = (call.keep_alives or 0) + 1
  self:respond(req, 200)
end

--- POST .../transfer: transferring, then transferAccepted and terminated.
---@param self graphcall.Emulator
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param body table the request's JSON body, decoded
---@return nil # (returns only to end the handler early)
function ACTIONS.transfer(self, req, call, body)
  local target = body.transferTarget
  if type(target) ~= "table" or type(target.identity) ~= "table" or next(target.identity) == nil then
    return self:fail(req, 400, "BadRequest", "transferTarget with an identity is required.")
  end
  if body.transferee ~= nil and type(body.transferee) ~= "table" then
    return self:fail(req, 400, "BadRequest", "transferee must be a participantInfo.")
  end
  if not self:in_state(req, call, "established", "transfer") then return end
  self:respond(req, 202)
  self:notify(call, "updated", { state = "transferring" })
  self:notify(call, "updated", { state = "transferAccepted" })
  -- call-transfer.md's notifications end a transfer with code 0, subcode 7015
  -- (call-delete.md's table lists 200/7015): the emulator follows the
  -- notification Graph's page shows, the closest record of what Graph sends.
  self:terminate(call, result_info(0, 7015, "GracefulTransferCompleted"))
end

ACTIONS.playPrompt = function(self, req, call, body)
  local why = check_prompts(body.prompts, 1, 20) or check_context(body)
  if not why and body.loop ~= nil and type(body.loop) ~= "boolean" then why = "loop must be a boolean." end
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not (self:in_state(req, call, "established", "playPrompt") and self:service_hosted(req, call, "playPrompt")) then
    return
  end
  local op = self:operation(req, call, "playPrompt", body, "running")
  op.canceled = { completionReason = "mediaOperationCanceled" }
  function op.finish()
    self:complete(op, "completed", result_info(200, 0, "Action completed successfully."),
      { completionReason = "completedSuccessfully" })
  end
  self:enqueue_media(call, op)
end

local RECORD_BOOLEANS = { "bargeInAllowed", "playBeep" }
local RECORD_SECONDS = { "initialSilenceTimeoutInSeconds", "maxSilenceTimeoutInSeconds", "maxRecordDurationInSeconds" }

ACTIONS.recordResponse = function(self, req, call, body)
  local why = check_prompts(body.prompts, 0, 1) or check_context(body)
  for _, k in ipairs(RECORD_BOOLEANS) do
    if not why and body[k] ~= nil and type(body[k]) ~= "boolean" then why = k .. " must be a boolean." end
  end
  for _, k in ipairs(RECORD_SECONDS) do
    if not why and body[k] ~= nil and not is_integer(body[k], 1, 120) then
      why = k .. " must be an integer from 1 to 120."
    end
  end
  if not why and body.stopTones ~= nil then
    if not is_array(body.stopTones) then why = "stopTones must be an array of strings." end
    for _, t in ipairs(why and {} or body.stopTones) do
      if type(t) ~= "string" then why = "stopTones must be an array of strings." end
    end
  end
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not (self:in_state(req, call, "established", "recordResponse")
          and self:service_hosted(req, call, "recordResponse")) then
    return
  end
  local op = self:operation(req, call, "recordResponse", body, "running",
    { resultInfo = cjson.null, recordingLocation = cjson.null, completionReason = cjson.null })
  op.canceled = { recordingLocation = "", recordingAccessToken = "", completionReason = "operationCanceled" }
  function op.finish()
    local token = "emu-rec." .. core.uuid()
    self.recordings[op.record.id] = { token = token }
    self:complete(op, "completed", result_info(200, 8515, "Action completed, max record duration reached."), {
      recordingLocation = self.url .. "/recordings/" .. op.record.id, recordingAccessToken = token,
      completionReason = "maxRecordDurationReached" })
  end
  if body.bargeInAllowed then self:cancel_media(call) end -- it barges into what is queued or playing
  self:enqueue_media(call, op)
end

ACTIONS.cancelMediaProcessing = function(self, req, call, body)
  local why = check_context(body)
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "established", "cancelMediaProcessing") then return end
  self:operation(req, call, "cancelMediaProcessing", body, "completed")
  self:cancel_media(call)
end

ACTIONS.subscribeToTone = function(self, req, call, body)
  local why = check_context(body)
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not (self:in_state(req, call, "established", "subscribeToTone")
          and self:service_hosted(req, call, "subscribeToTone")) then
    return
  end
  self:operation(req, call, "subscribeToTone", body, "completed")
  call.tones = true
end

-- mute and unmute answer `completed` at once (call-mute.md, call-unmute.md):
-- no operation notification follows, only the roster update.
local function mute(kind, muted)
  return function(self, req, call, body)
    local why = check_context(body)
    if why then return self:fail(req, 400, "BadRequest", why) end
    if not self:in_state(req, call, "established", kind) then return end
    self:operation(req, call, kind, body, "completed")
    me(call).isMuted = muted
    self:notify(call, "updated", call.roster, "/participants")
  end
end
ACTIONS.mute = mute("mute", true)
ACTIONS.unmute = mute("unmute", false)

ACTIONS["participants/invite"] = function(self, req, call, body)
  local why = check_participants(body.participants, "participants", 1, 5) or check_context(body)
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "established", "invite") then return end
  -- "Running", capitalised, as participant-invite.md shows it
  local op = self:operation(req, call, "invite", body, "running",
    { status = "Running", participants = body.participants, resultInfo = cjson.null })
  self:later(call, op, function()
    self:complete(op, "completed", result_info(200, 0, "Action completed successfully."),
      { participants = body.participants })
    for _, p in ipairs(body.participants) do join(call, p.identity) end
    self:notify(call, "updated", call.roster, "/participants")
  end)
end

local RECORDING_STATUS = { notRecording = true, recording = true, failed = true }

-- Answered `completed` at once (call-updaterecordingstatus.md): no notification follows.
ACTIONS.updateRecordingStatus = function(self, req, call, body)
  if not RECORDING_STATUS[body.status] then
    return self:fail(req, 400, "BadRequest", "status must be one of notRecording, recording, failed.")
  end
  local why = check_context(body)
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "established", "updateRecordingStatus") then return end
  self:operation(req, call, "updateRecordingStatus", body, "completed")
  call.recording_status = body.status
end

local TONE_NAMES = { star = true, pound = true, a = true, b = true, c = true, d = true, flash = true }
for i = 0, 9 do TONE_NAMES["tone" .. i] = true end

-- sendDtmfTones: running, then completed after operation_delay (call-senddtmftones.md).
ACTIONS.sendDtmfTones = function(self, req, call, body)
  local why = check_context(body)
  if not why and not (is_array(body.tones) and #body.tones > 0) then why = "tones must be a non-empty array." end
  for i, t in ipairs(why and {} or body.tones) do
    if not TONE_NAMES[t] then why = ("tones[%d] is not a tone."):format(i) break end
  end
  if not why and body.delayBetweenTonesMs ~= nil and not is_integer(body.delayBetweenTonesMs, 0, 60000) then
    why = "delayBetweenTonesMs must be an integer of milliseconds."
  end
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "established", "sendDtmfTones") then return end
  local op = self:operation(req, call, "sendDtmfTones", body, "running")
  call.sent_tones = call.sent_tones or {}
  for _, t in ipairs(body.tones) do call.sent_tones[#call.sent_tones + 1] = t end
  self:later(call, op, function()
    self:complete(op, "completed", nil, { completionReason = "completedSuccessfully" })
  end)
end

-- changeScreenSharingRole: 202; the bot's roster entry then sends (sharer)
-- or receives (viewer) the screen-sharing stream.
ACTIONS.changeScreenSharingRole = function(self, req, call, body)
  if body.role ~= "viewer" and body.role ~= "sharer" then
    return self:fail(req, 400, "BadRequest", "role must be viewer or sharer.")
  end
  if not self:in_state(req, call, "established", "changeScreenSharingRole") then return end
  self:respond(req, 202)
  call.screen_sharing_role = body.role
  local bot = me(call)
  local streams = {}
  for _, m in ipairs(bot.mediaStreams) do
    if m.mediaType ~= "videoBasedScreenSharing" then streams[#streams + 1] = m end
  end
  streams[#streams + 1] = { ["@odata.type"] = "#microsoft.graph.mediaStream", mediaType = "videoBasedScreenSharing",
    label = "applicationsharing-video", sourceId = tostring(call.sources + 1),
    direction = body.role == "sharer" and "sendOnly" or "receiveOnly", serverMuted = false }
  bot.mediaStreams = streams
  self:notify(call, "updated", call.roster, "/participants")
end

-- addLargeGalleryView: 202 with the operation running; when it completes, the
-- large gallery view joins the roster (cloud-communications-identifylargegalleryview.md).
ACTIONS.addLargeGalleryView = function(self, req, call, body)
  local why = check_context(body)
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "established", "addLargeGalleryView") then return end
  local op = self:operation(req, call, "addLargeGalleryView", body, "running", nil, 202)
  self:later(call, op, function()
    self:complete(op, "completed")
    local p = join(call, { ["@odata.type"] = "#microsoft.graph.identitySet", application = {
      ["@odata.type"] = "#microsoft.graph.identity", id = core.uuid(), identityProvider = "AAD",
      ApplicationType = "LargeGallery-V2" } })
    p.info.endpointId, p.info.participantId = core.uuid(), p.id
    p.mediaStreams[1].direction, p.mediaStreams[1].label = "receiveOnly", "main-audio"
    for i = 1, 49 do
      p.mediaStreams[#p.mediaStreams + 1] = { ["@odata.type"] = "#microsoft.graph.mediaStream", mediaType = "video",
        label = "video-" .. i, sourceId = tostring(call.sources * 100 + i), direction = "sendOnly",
        serverMuted = false }
    end
    call.large_gallery = p.id
    self:notify(call, "updated", call.roster, "/participants")
  end)
end

-- participants/muteAll (beta): completed at once; everyone (or the
-- participants listed) is muted, and the roster follows.
ACTIONS["participants/muteAll"] = function(self, req, call, body)
  local why = check_context(body)
  if not why and body.participants ~= nil and not is_array(body.participants) then
    why = "participants must be an array of participant ids."
  end
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "established", "muteAll") then return end
  self:operation(req, call, "muteAll", body, "completed")
  local only = {}
  for _, id in ipairs(body.participants or {}) do if id ~= "" then only[id] = true end end
  for _, p in ipairs(call.roster) do
    if next(only) == nil or only[p.id] then p.isMuted = true end
  end
  self:notify(call, "updated", call.roster, "/participants")
end

-- participants/configureMixer (beta): running, then completed.
ACTIONS["participants/configureMixer"] = function(self, req, call, body)
  local why = check_context(body)
  if not why and not (is_array(body.participantMixerLevels) and #body.participantMixerLevels > 0) then
    why = "participantMixerLevels must be a non-empty array."
  end
  for i, m in ipairs(why and {} or body.participantMixerLevels) do
    if type(m) ~= "table" or type(m.participant) ~= "string" then
      why = ("participantMixerLevels[%d].participant is required."):format(i)
      break
    end
  end
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "established", "configureMixer") then return end
  local op = self:operation(req, call, "configureMixer", body, "running")
  call.mixer = body.participantMixerLevels
  self:later(call, op, function() self:complete(op, "completed") end)
end

M.me, M.check_context, M.check_prompts = me, check_context, check_prompts

--- POST .../{action}: the body (an object, or empty), then the action.
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
---@param handler fun(emu, req, call, body) the action (one of ACTIONS)
---@return nil # (returns only to end the handler early)
function Emulator:action(req, call, handler)
  local body = {}
  if req.body ~= "" then
    body = cjson.decode(req.body)
    if type(body) ~= "table" or (#body > 0) then
      return self:fail(req, 400, "BadRequest", "The request body is not a JSON object.")
    end
    for k, v in pairs(body) do
      if v == cjson.null then body[k] = nil end -- null is absent
    end
  end
  handler(self, req, call, body)
end

M.ACTIONS = ACTIONS
M.methods = Emulator
return M
