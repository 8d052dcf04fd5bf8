--- A local emulator of Graph's calling service, for the demo, the specs and
-- the specs of bots built on graphcall. It runs on a graphcall loop (in the
-- same process as the bot, or alone through bin/graphcall-emulator) and is
-- built on graphcall's own C server and HTTP client.
--
-- Like Graph it answers `POST .../calls` with 201, a server-generated id,
-- `state: establishing` and a Location header, then POSTs `establishing`
-- and `established` notifications to the call's callbackUri; `DELETE`
-- answers 204 and is followed by `terminating` and `terminated` (with
-- resultInfo). Bodies are validated the way Graph does, with Graph's error
-- codes where they are known. Every request is recorded, and faults can be
-- injected into the next responses.
--
-- It answers the other call operations too (section 2 of the Graph
-- reference): answer, reject and redirect of incoming calls (`emu:ring`
-- places one), keepAlive (a call not kept alive for 45 minutes of the loop's
-- clock is ended, 408/8537), transfer, the media operations playPrompt,
-- recordResponse, cancelMediaProcessing and subscribeToTone (`emu:press_tone`
-- sends tones), mute and unmute, participants (a roster per call) and
-- participants/invite, updateRecordingStatus. Operations are answered with a
-- commsOperation and a Location, and those Graph finishes later complete by a
-- `deleted` notification on `/communications/calls/{id}/operations/{OPID}`
-- (the id upper-cased without dashes, as Graph writes it). `emu.operations`
-- records them.
--
-- It also stands in for the identity platform: a client-credentials token
-- endpoint (`POST /{tenant}/oauth2/v2.0/token`), and the OpenID
-- configuration and JWKS Graph publishes (`/v1/.well-known/OpenIdConfiguration`,
-- `/v1/keys`); its notifications carry an RS256 JWT signed like Graph's.
-- @module graphcall.emulator
local core = setmetatable({jwt_signer = require("graphcall.testing").jwt_signer}, {__index = require "graphcall.core"})
local graphcall_loop = require "graphcall.loop"
local cjson = require("cjson.safe").new()

local M = {}

--- Options of `emulator.start`, with defaults.
M.DEFAULTS = {
  loop = false,            -- default: graphcall.loop.default()
  host = "127.0.0.1",
  port = 0,
  token = false,           -- a static bearer token to accept (besides the ones it issues);
                           -- false and no client_secret: any non-empty token
  client_secret = false,   -- the secret its token endpoint wants; false: any non-empty one
  token_lifetime = 3599,   -- expires_in of the tokens it issues (seconds, on the loop's clock)
  app_id = false,          -- aud of notification tokens when the caller's app id is unknown
  tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", -- tid of notification tokens
  issuer = "https://api.botframework.com",
  sign = true,             -- false: notifications carry no Authorization header
  notify_delay = 0.005,    -- seconds between the answer and each notification
  operation_delay = 0.005, -- seconds an operation Graph finishes later (playPrompt, ...) takes
  keep_alive_timeout = 2700, -- seconds (loop clock) without keepAlive before a call is ended
  incoming_timeout = 15,   -- seconds (loop clock) the bot has to answer, reject or redirect
}

-- One signing key per process, unless rotated: RSA key generation is slow.
local shared_signer

local function new_kid()
  return "emulator-" .. core.uuid():sub(1, 8)
end

---@class graphcall.Emulator
local Emulator = {}
Emulator.__index = Emulator
Emulator.__name = "graphcall.emulator"

local JSON = "application/json"

-- Graph's error body: {"error":{"code","message","innerError":{...}}}.
local function graph_error(code, message, request_id, client_request_id)
  return cjson.encode { error = { code = code, message = message, innerError = {
    ["request-id"] = request_id, date = os.date("!%Y-%m-%dT%H:%M:%S"),
    ["client-request-id"] = client_request_id,
  } } }
end

function Emulator:respond(req, status, body, headers, how)
  if req.answer_with then
    status, headers, how = req.answer_with, nil, nil
    body = graph_error("ServiceUnavailable", "Injected fault after processing.", req.request_id,
      req.headers["client-request-id"])
  end
  headers = headers or {}
  headers["request-id"] = req.request_id
  if req.headers["client-request-id"] then headers["client-request-id"] = req.headers["client-request-id"] end
  if body and body ~= "" and not headers["content-type"] then headers["content-type"] = JSON end
  self.server:respond(req.id, status, body or "", headers, how)
end

function Emulator:fail(req, status, code, message)
  self:respond(req, status, graph_error(code, message, req.request_id, req.headers["client-request-id"]))
end

-- The paths of the calls collection: v1.0 and beta, the seed's /app/calls and
-- /applications/{id}/calls. Returns the collection and the rest.
local COLLECTIONS = {
  "^/v1%.0/communications/calls", "^/beta/communications/calls", "^/beta/app/calls",
  "^/beta/applications/[%w%-]+/calls",
}
local function split_path(path)
  for _, pattern in ipairs(COLLECTIONS) do
    local s, e = path:find(pattern)
    if s then return path:sub(1, e), path:sub(e + 1) end
  end
end

-- The notification envelope Graph POSTs for one change of a call, or of a
-- resource under it (`resource`: "/participants", "/operations/{OPID}").
-- A collection (the roster: an array) is sent as it is.
local function notification_body(call, change_type, data, resource)
  local path = call.id .. (resource or "")
  if #data == 0 then
    data["@odata.type"] = data["@odata.type"] or "#microsoft.graph.call"
    data["@odata.id"] = "/communications/calls/" .. path
    call.etag = call.etag + 1
    data["@odata.etag"] = ('W/"%d"'):format(call.etag)
  end
  return cjson.encode {
    ["@odata.type"] = "#microsoft.graph.commsNotifications",
    value = { {
      ["@odata.type"] = "#microsoft.graph.commsNotification",
      changeType = change_type,
      resource = "/app/calls/" .. path,             -- the legacy field Graph still sends
      resourceUrl = "/communications/calls/" .. path,
      callbackUri = call.callback_uri,
      resourceData = data,
    } },
  }
end

-- Deliver the call's queued notifications one at a time, in order, each
-- notify_delay after the previous one was answered.
function Emulator:deliver(call)
  local record = call.outbox[1]
  if not record or call.sending then return end
  call.sending = true
  self.loop:timer(self.notify_delay, function()
    self.loop:request({
      method = "POST", url = call.callback_uri, body = record.body, urgent = true, -- Graph is not the bot's queue
      headers = {
        ["Content-Type"] = JSON,
        ["Authorization"] = self.sign and ("Bearer " .. self:notification_token(call.app_id)) or nil,
        ["User-Agent"] = "Microsoft-Skype/3.0,(Calling/1.0)",
      },
    }, function(r)
      record.status, record.failure = r.status, r.failure
      table.remove(call.outbox, 1)
      call.sending = false
      self:deliver(call)
    end)
  end)
end

--- Queue a notification for the call's callbackUri. `resource` (optional)
-- is the path under the call it is about: "/participants" (data is then
-- the array of participants) or "/operations/{OPID}".
function Emulator:notify(call, change_type, data, resource)
  local body = notification_body(call, change_type, data, resource)
  local record = { call_id = call.id, change_type = change_type, state = data.state, body = body,
    resource = resource }
  self.notifications[#self.notifications + 1] = record
  call.outbox[#call.outbox + 1] = record
  self:deliver(call)
end

local function result_info(code, subcode, message)
  return { ["@odata.type"] = "#microsoft.graph.resultInfo", code = code, subcode = subcode, message = message }
end

-- A copy of a table, one level deep.
local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- Run fn after `delay` seconds of the loop's clock, unless the emulator is
-- closed (or the timer cancelled) before.
function Emulator:after(delay, fn)
  local t
  t = self.loop:timer(delay, function()
    self.pending[t] = nil
    fn()
  end)
  self.pending[t] = true
  return t
end

function Emulator:cancel(t)
  if t then
    self.pending[t] = nil
    self.loop:cancel_timer(t)
  end
end

-- A call the emulator knows: fields given, plus the state every call keeps.
function Emulator:new_call(fields)
  local call = { etag = 0, outbox = {}, my_participant_id = core.uuid(), roster = {}, sources = 0,
    media_queue = {}, tone_sequence = 0, kept_alive_at = self.loop.clock() }
  for k, v in pairs(fields) do call[k] = v end
  self.calls[call.id] = call
  return call
end

-- Add a participant (an identitySet) to the call's roster; returns it.
local function join(call, identity, id)
  call.sources = call.sources + 1
  local p = {
    ["@odata.type"] = "#microsoft.graph.participant", id = id or core.uuid(),
    info = { ["@odata.type"] = "#microsoft.graph.participantInfo", identity = identity, endpointType = "default" },
    mediaStreams = { { ["@odata.type"] = "#microsoft.graph.mediaStream", mediaType = "audio",
      sourceId = tostring(call.sources), direction = "sendReceive", serverMuted = false } },
    isMuted = false, isInLobby = false,
  }
  call.roster[#call.roster + 1] = p
  return p
end

-- End the call: it leaves `emu.calls` (later requests get 404 8522), its
-- timers stop, and operations still pending are dropped (recorded as
-- failed, without a notification); then `deleted` with state terminated
-- and resultInfo (none when nil), plus `extra` fields.
function Emulator:terminate(call, info, extra)
  self.calls[call.id] = nil
  call.state = "terminated"
  self:cancel(call.incoming_timer)
  for _, op in ipairs(call.media_queue) do
    self:cancel(op.timer)
    op.record.status = "failed"
  end
  call.media_queue = {}
  for _, op in pairs(call.later or {}) do
    self:cancel(op.timer)
    op.record.status = "failed"
  end
  call.later = nil
  local data = { state = "terminated", resultInfo = info }
  for k, v in pairs(extra or {}) do data[k] = v end
  self:notify(call, "deleted", data)
end

-- Graph's checks on a create body, with its codes where known (8523 is
-- Graph's; the others use OData's generic BadRequest).
local function validate(body)
  if type(body) ~= "table" then return "BadRequest", "The request body is not a JSON object." end
  if type(body.callbackUri) ~= "string" or body.callbackUri == "" then
    return "BadRequest", "callbackUri is required."
  end
  if type(body.mediaConfig) ~= "table" then return "8523", "Missing mediaConfig information." end
  local targets = body.targets
  if targets ~= nil and (type(targets) ~= "table" or #targets == 0) then
    return "BadRequest", "targets must be a non-empty array."
  end
  for i, t in ipairs(type(targets) == "table" and targets or {}) do
    if type(t) ~= "table" or type(t.identity) ~= "table" or next(t.identity) == nil then
      return "BadRequest", ("targets[%d] has no identity."):format(i)
    end
  end
  if targets == nil and type(body.meetingInfo) ~= "table" then
    return "BadRequest", "Either targets or meetingInfo is required."
  end
end

function Emulator:create(req, collection)
  local body = cjson.decode(req.body)
  local code, message = validate(body)
  if code then return self:fail(req, 400, code, message) end
  local id = core.uuid()
  local src = type(body.source) == "table" and type(body.source.identity) == "table" and body.source.identity or {}
  local src_app = type(src.application) == "table" and src.application.id or type(src.user) == "table" and src.user.id
  local call = self:new_call {
    id = id, callback_uri = body.callbackUri, state = "establishing", direction = "outgoing",
    data = body, app_id = req.app_id or self.app_id or src_app,
  }
  -- the roster: the bot (its source) and the targets it called
  join(call, next(src) and src or { application = { id = call.app_id } }, call.my_participant_id)
  for _, t in ipairs(body.targets or {}) do join(call, t.identity) end
  self.created = self.created + 1
  body.id = id
  body.state = "establishing"
  body.direction = "outgoing"
  body.myParticipantId = call.my_participant_id
  body["@odata.type"] = "#microsoft.graph.call"
  body["@odata.context"] = self.url .. "/v1.0/$metadata#app/calls/$entity"
  self:respond(req, 201, cjson.encode(body), { location = self.url .. collection .. "/" .. id })
  self:notify(call, "updated", { state = "establishing", direction = "outgoing" })
  self:notify(call, "updated", { state = "established", direction = "outgoing" })
  call.state = "established"
end

function Emulator:delete(req, call)
  self:respond(req, 204)
  self:notify(call, "updated", { state = "terminating" })
  self:terminate(call, result_info(200, 5001, "The conversation has ended."))
end

-- The operations: the commsOperation type each action answers with.
local OPERATION_TYPES = {
  playPrompt = "playPromptOperation", recordResponse = "recordOperation",
  cancelMediaProcessing = "cancelMediaProcessingOperation", subscribeToTone = "subscribeToToneOperation",
  mute = "muteParticipantOperation", unmute = "unmuteParticipantOperation",
  invite = "inviteParticipantsOperation", updateRecordingStatus = "updateRecordingStatusOperation",
}

-- Answer 200 with a new operation (and a Location to it), record it in
-- emu.operations; returns it. `extra` adds to (or overrides) the body.
function Emulator:operation(req, call, kind, body, status, extra)
  local id = core.uuid()
  local record = { call_id = call.id, kind = kind, id = id, status = status, client_context = body.clientContext }
  self.operations[#self.operations + 1] = record
  local op = { record = record, type = OPERATION_TYPES[kind], call = call }
  local data = { ["@odata.type"] = "#microsoft.graph." .. op.type,
    ["@odata.context"] = self.url .. "/v1.0/$metadata#" .. op.type,
    id = id, status = status, clientContext = body.clientContext }
  for k, v in pairs(extra or {}) do data[k] = v end
  self:respond(req, 200, cjson.encode(data), { location = req.call_url .. "/operations/" .. id })
  return op
end

-- The operation's final notification: `deleted` on
-- /communications/calls/{id}/operations/{OPID}, with the dashed id in the body.
function Emulator:complete(op, status, info, extra)
  op.record.status = status
  local data = { ["@odata.type"] = "#microsoft.graph." .. op.type, id = op.record.id, status = status,
    clientContext = op.record.client_context, resultInfo = info }
  for k, v in pairs(extra or {}) do data[k] = v end
  self:notify(op.call, "deleted", data, "/operations/" .. (op.record.id:gsub("-", "")):upper())
end

-- playPrompt and recordResponse run one after the other (Graph queues
-- them); each takes operation_delay, then op.finish() completes it.
function Emulator:start_media(call)
  local op = call.media_queue[1]
  if not op then return end
  op.timer = self:after(self.operation_delay, function()
    table.remove(call.media_queue, 1)
    op.finish()
    self:start_media(call)
  end)
end

function Emulator:enqueue_media(call, op)
  call.media_queue[#call.media_queue + 1] = op
  if #call.media_queue == 1 then self:start_media(call) end
end

-- cancelMediaProcessing (and a recordResponse barging in): every queued or
-- running media operation fails with 400/8508, in order.
function Emulator:cancel_media(call)
  local queue = call.media_queue
  call.media_queue = {}
  for _, op in ipairs(queue) do
    self:cancel(op.timer)
    self:complete(op, "failed", result_info(400, 8508, "Action failed, the operation was cancelled."),
      op.canceled)
  end
end

-- An operation Graph finishes later, outside the media queue (invite).
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

-- GET {recordingLocation} with `Authorization: Bearer {recordingAccessToken}`.
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

local function is_array(v)
  return type(v) == "table" and (#v > 0 or next(v) == nil)
end

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

-- Refuse (400) unless the call is in `state`; true when it is.
function Emulator:in_state(req, call, state, action)
  if call.state == state then return true end
  self:fail(req, 400, "BadRequest", ("%s needs a call in state %s; the call is %s."):format(action, state, call.state))
  return false
end

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
  if why then return self:fail(req, 400, "BadRequest", why) end
  if not self:in_state(req, call, "incoming", "answer") then return end
  self:respond(req, 202)
  self:cancel(call.incoming_timer)
  call.callback_uri = body.callbackUri or call.callback_uri
  call.data.callbackUri = call.callback_uri
  call.data.mediaConfig = body.mediaConfig
  self:notify(call, "updated", { state = "establishing", direction = "incoming" })
  self:notify(call, "updated", { state = "established", direction = "incoming" })
  call.state = "established"
end

local REASONS = { none = true, busy = true, forbidden = true }

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

function ACTIONS.redirect(self, req, call, body)
  local why = check_participants(body.targets, "targets", 1, 25) or check_callback(body)
  if not why and body.timeout ~= nil and not is_integer(body.timeout, 15, 90) then
    why = "timeout must be an integer from 15 to 90 (seconds)."
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
  -- call-delete.md lists 200/7015; call-transfer.md's example writes code 0
  self:terminate(call, result_info(200, 7015, "GracefulTransferCompleted"))
end

ACTIONS.playPrompt = function(self, req, call, body)
  local why = check_prompts(body.prompts, 1, 20) or check_context(body)
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
    { resultInfo = cjson.null, recordingLocation = cjson.null })
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

-- GET .../participants: the roster.
function Emulator:participants(req, call)
  self:respond(req, 200, cjson.encode {
    ["@odata.context"] = ("%s/v1.0/$metadata#communications/calls('%s')/participants"):format(self.url, call.id),
    value = call.roster,
  })
end

-- POST .../{action}: the body (an object, or empty), then the action.
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

--- Place an incoming call to the bot: POSTs a `created` notification (state
-- incoming) to `opts.callback_uri` and returns the call's id. The bot then
-- has `incoming_timeout` seconds to answer, reject or redirect it.
-- opts: `callback_uri` (required), `from` (an identitySet; default a user
-- "Test User"), `app_id` (the bot's; default the `app_id` option),
-- `modalities` (default {"audio"}).
function Emulator:ring(opts)
  opts = graphcall_loop.check_options("emulator:ring", opts,
    { callback_uri = false, from = false, app_id = false, modalities = false })
  if type(opts.callback_uri) ~= "string" or opts.callback_uri == "" then
    error("emulator:ring: callback_uri is required", 2)
  end
  local app_id = opts.app_id or self.app_id
  if type(app_id) ~= "string" then error("emulator:ring: app_id is required (or the emulator's app_id option)", 2) end
  if opts.from ~= nil and type(opts.from) ~= "table" then error("emulator:ring: from must be an identitySet", 2) end
  if opts.modalities ~= nil and not (is_array(opts.modalities) and #opts.modalities > 0) then
    error("emulator:ring: modalities must be a non-empty array", 2)
  end
  local from = opts.from or { user = { id = core.uuid(), displayName = "Test User" } }
  local bot = { application = { id = app_id } }
  local id = core.uuid()
  local call = self:new_call { id = id, callback_uri = opts.callback_uri, state = "incoming", direction = "incoming",
    app_id = app_id }
  call.data = {
    ["@odata.type"] = "#microsoft.graph.call", id = id, state = "incoming", direction = "incoming",
    callbackUri = opts.callback_uri,
    source = { ["@odata.type"] = "#microsoft.graph.participantInfo", identity = from, region = "amer",
      languageId = "en-US" },
    targets = { { ["@odata.type"] = "#microsoft.graph.invitationParticipantInfo", identity = bot } },
    requestedModalities = opts.modalities or { "audio" },
    myParticipantId = call.my_participant_id, tenantId = self.tenant,
  }
  join(call, bot, call.my_participant_id)
  join(call, from)
  self:notify(call, "created", copy(call.data))
  call.incoming_timer = self:after(self.incoming_timeout, function()
    if call.state ~= "incoming" then return end
    -- Graph's list (call-delete.md) has no entry for "the bot never answered";
    -- 408/10057, no signaling from the callee (the bot), is the closest.
    self:terminate(call, result_info(408, 10057, "Call timed out due to no signaling from callee endpoints."),
      { direction = "incoming" })
  end)
  return id
end

local TONES = { ["*"] = "star", ["#"] = "pound", A = "a", B = "b", C = "c", D = "d" }

--- The caller presses a key: an `updated` notification with toneInfo
-- {sequenceId, tone}. `tone`: "tone0".."tone9", "star", "pound", "a".."d",
-- "flash", or "0".."9", "*", "#". Returns false (and sends nothing, as Graph
-- does) when the bot has not called subscribeToTone.
function Emulator:press_tone(call_id, tone)
  local call = self.calls[call_id]
  if not call then error("emulator:press_tone: no such call: " .. tostring(call_id), 2) end
  if type(tone) ~= "string" then error("emulator:press_tone: tone must be a string", 2) end
  tone = tone:match("^%d$") and "tone" .. tone or TONES[tone] or tone
  if not (tone:match("^tone%d$") or tone:match("^[abcd]$") or tone == "star" or tone == "pound"
          or tone == "flash") then
    error("emulator:press_tone: unknown tone " .. tone, 2)
  end
  if not call.tones then return false end
  call.tone_sequence = call.tone_sequence + 1
  self:notify(call, "updated", { state = call.state, toneInfo = { ["@odata.type"] = "#microsoft.graph.toneInfo",
    sequenceId = call.tone_sequence, tone = tone } })
  return true
end

-- Every SWEEP seconds of the loop's clock: end the calls not kept alive for
-- keep_alive_timeout seconds (incoming calls have their own timeout).
local SWEEP = 60

function Emulator:sweep()
  local now, expired = self.loop.clock(), {}
  for _, call in pairs(self.calls) do
    if call.state ~= "incoming" and now - call.kept_alive_at >= self.keep_alive_timeout then
      expired[#expired + 1] = call
    end
  end
  table.sort(expired, function(a, b) return a.kept_alive_at < b.kept_alive_at end)
  for _, call in ipairs(expired) do
    self:terminate(call, result_info(408, 8537, "Keep Alive timeout, cleaned up inactive call."))
  end
  self:after(SWEEP, function() self:sweep() end)
end

--- A token like the ones Graph puts on its notifications: RS256, kid,
-- iss, aud = the bot's app id, tid, a lifetime of 300 s. Reused until a
-- minute before it expires, as Graph does.
function Emulator:notification_token(app_id)
  local now = os.time()
  local cached = self.notify_tokens[app_id or ""]
  if cached and cached.exp - 60 > now then return cached.token end
  local token = self:sign_claims { iss = self.issuer, aud = app_id, tid = self.tenant,
    iat = now, nbf = now, exp = now + 300, appid = "26a18ebc-cdf7-4a6a-91cb-beb352805e81" }
  self.notify_tokens[app_id or ""] = { token = token, exp = now + 300 }
  return token
end

--- Sign `claims` (a table) with the emulator's key, as Graph would: for
-- specs that need a token of their own (expired, wrong audience, ...).
function Emulator:sign_claims(claims, header)
  header = header or {}
  header.kid = header.kid or self.kid
  header.typ = header.typ or "JWT"
  return self.signer:sign(cjson.encode(claims), header)
end

--- Replace the signing key (a new kid); the old one is no longer published.
function Emulator:rotate_keys()
  self.signer = core.jwt_signer()
  self.kid = new_kid()
  self.notify_tokens = {}
end

--- Make every token the emulator issued expire now (Graph then answers 401).
function Emulator:expire_tokens()
  for _, t in pairs(self.issued) do t.expires_at = -math.huge end
end

-- A fault queued by fail_next, applied to the next request.
function Emulator:inject(req, fault)
  if fault.processed then
    -- Graph acts on the request, then a gateway fails the answer
    req.answer_with = fault.status
    return self:route(req)
  end
  if fault.status then
    local headers = { ["content-type"] = JSON }
    if fault.retry_after then headers["retry-after"] = tostring(fault.retry_after) end
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

-- The first queued fault for this request: a fault with a `path` pattern
-- applies to matching paths; one without, to Graph's calls API only (so key
-- and token fetches in between do not eat it).
function Emulator:take_fault(req)
  for i, f in ipairs(self.faults) do
    if (f.path and req.path:find(f.path)) or (not f.path and split_path(req.path)) then
      return table.remove(self.faults, i)
    end
  end
end

function Emulator:handle(req)
  req.request_id = core.uuid()
  local record = { method = req.method, path = req.path, headers = req.headers, body = req.body,
    json = req.body ~= "" and cjson.decode(req.body) or nil }
  self.requests[#self.requests + 1] = record

  local fault = self:take_fault(req)
  if fault then
    if fault.delay then
      -- answer (normally, or with the rest of the fault) after the delay
      return self.loop:timer(fault.delay, function()
        fault.delay, fault.path = nil, nil
        if next(fault) then self:inject(req, fault) else self:route(req) end
      end)
    end
    return self:inject(req, fault)
  end
  self:route(req)
end

-- The identity platform's answers: {"error", "error_description", ...}.
function Emulator:auth_fail(req, code, aadsts, description)
  self:respond(req, 400, cjson.encode {
    error = code, error_description = ("AADSTS%d: %s"):format(aadsts, description),
    error_codes = { aadsts }, timestamp = os.date("!%Y-%m-%d %H:%M:%SZ"),
    trace_id = core.uuid(), correlation_id = core.uuid(),
  })
end

function Emulator:token_endpoint(req)
  local form = {}
  for k, v in req.body:gmatch("([^&=]+)=([^&]*)") do
    form[core.url_decode(k) or k] = core.url_decode(v)
  end
  if form.grant_type ~= "client_credentials" then
    return self:auth_fail(req, "unsupported_grant_type", 70003,
      "The app requested an unsupported grant type.")
  end
  if form.scope ~= "https://graph.microsoft.com/.default" then
    return self:auth_fail(req, "invalid_scope", 70011, "The provided value for scope is not valid.")
  end
  if not form.client_id or form.client_id == "" then
    return self:auth_fail(req, "invalid_request", 900144, "The request body must contain client_id.")
  end
  if not form.client_secret or form.client_secret == ""
     or (self.client_secret and form.client_secret ~= self.client_secret) then
    return self:auth_fail(req, "invalid_client", 7000215, "Invalid client secret provided.")
  end
  local token = "emu." .. core.uuid()
  self.issued[token] = { app_id = form.client_id, expires_at = self.loop.clock() + self.token_lifetime }
  self.tokens_issued = self.tokens_issued + 1
  self:respond(req, 200, cjson.encode { token_type = "Bearer", expires_in = self.token_lifetime,
    ext_expires_in = self.token_lifetime, access_token = token })
end

function Emulator:route(req)
  if req.method == "POST" and req.path:match("^/[^/]+/oauth2/v2%.0/token$") then
    return self:token_endpoint(req)
  elseif req.method == "GET" and req.path == "/v1/.well-known/OpenIdConfiguration" then
    return self:respond(req, 200, cjson.encode { issuer = self.issuer, jwks_uri = self.url .. "/v1/keys",
      id_token_signing_alg_values_supported = { "RS256" },
      token_endpoint_auth_signing_alg_values_supported = { "RS256" } })
  elseif req.method == "GET" and req.path == "/v1/keys" then
    return self:respond(req, 200, '{"keys":[' .. self.signer:jwk(self.kid) .. "]}")
  elseif req.method == "GET" and req.path:find("^/recordings/") then
    return self:recording(req)
  elseif req.method == "POST" and req.path == "/_emulator/ring" then
    -- a test control, so a bot can be rung in an emulator running elsewhere
    local body = cjson.decode(req.body)
    local ok, id = pcall(self.ring, self, type(body) == "table" and body or {})
    if not ok then return self:fail(req, 400, "BadRequest", tostring(id)) end
    return self:respond(req, 200, cjson.encode { id = id })
  end
  self:graph(req)
end

-- Whose token is this? The app id it was issued to, true for the static
-- token, or nil and why not.
function Emulator:authenticate(token)
  local issued = self.issued[token]
  if issued then
    if self.loop.clock() >= issued.expires_at then
      return nil, "Lifetime validation failed, the token is expired."
    end
    return issued.app_id
  end
  if self.token then
    if token == self.token then return true end
  elseif not self.client_secret then
    return true -- no credentials configured: any token
  end
  return nil, "Access token is empty or invalid."
end

function Emulator:graph(req)
  local token = (req.headers.authorization or ""):match("^Bearer (.+)$")
  local who, why = self:authenticate(token or "")
  if not token or not who then
    return self:fail(req, 401, "InvalidAuthenticationToken", why or "Access token is empty or invalid.")
  end
  req.app_id = type(who) == "string" and who or nil
  local collection, rest = split_path(req.path)
  if not collection then
    return self:fail(req, 404, "UnknownError", "No route for " .. req.path)
  end
  if rest == "" then
    if req.method ~= "POST" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
    return self:create(req, collection)
  end
  local id, tail = rest:match("^/([%w%-]+)(.*)$")
  local call = id and self.calls[id]
  if not call then return self:fail(req, 404, "8522", "Call not found.") end
  req.call_url = self.url .. collection .. "/" .. id
  if tail == "" then
    if req.method == "GET" then
      local data = copy(call.data)
      data.state = call.state
      return self:respond(req, 200, cjson.encode(data))
    elseif req.method == "DELETE" then
      return self:delete(req, call)
    end
    return self:fail(req, 405, "BadRequest", "Method not allowed.")
  elseif tail == "/participants" then
    if req.method ~= "GET" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
    return self:participants(req, call)
  end
  local handler = ACTIONS[tail:match("^/(%a+)$") or tail:match("^/(participants/invite)$") or ""]
  if not handler then return self:fail(req, 404, "UnknownError", "No route for " .. req.path) end
  if req.method ~= "POST" then return self:fail(req, 405, "BadRequest", "Method not allowed.") end
  self:action(req, call, handler)
end

--- Queue faults for the next requests, in order:
-- `{ status = 429|503|504, retry_after = s }`, `{ mode = "drop" | "truncate" | "not_json" | "oversized" | "html" }`,
-- `{ mode = "redirect", location = url }`, `{ mode = "gzip", body = bytes }`, `{ mode = "headers", headers = n }`,
-- `{ mode = "body", body = json, answer = status? }` (that JSON with 201 or `answer`),
-- `{ delay = s }` (then answer normally, or with the other fields); `count` repeats it;
-- `path` (a Lua pattern) aims it at other paths than Graph's calls API, e.g. "^/v1/keys";
-- `processed = true` with a status: act on the request (create the call), then answer the status.
function Emulator:fail_next(fault)
  if type(fault) ~= "table" then error("emulator:fail_next: expected a fault table", 2) end
  for _ = 1, fault.count or 1 do
    local f = {}
    for k, v in pairs(fault) do if k ~= "count" then f[k] = v end end
    self.faults[#self.faults + 1] = f
  end
end

--- Start an emulator. Returns it (`emu.url` is its base URL), or nil, err.
---@param opts? table see `DEFAULTS`
function M.start(opts)
  opts = graphcall_loop.check_options("graphcall.emulator.start", opts, M.DEFAULTS)
  local loop = opts.loop or graphcall_loop.default()
  local server, err = core.server { host = opts.host, port = opts.port, max_body = 1024 * 1024 }
  if not server then return nil, err end
  shared_signer = shared_signer or { signer = core.jwt_signer(), kid = new_kid() }
  local self = setmetatable({
    loop = loop, server = server, token = opts.token or nil, notify_delay = opts.notify_delay,
    client_secret = opts.client_secret or nil, token_lifetime = opts.token_lifetime,
    app_id = opts.app_id or nil, tenant = opts.tenant, issuer = opts.issuer, sign = opts.sign,
    signer = shared_signer.signer, kid = shared_signer.kid,
    url = ("http://%s:%d"):format(opts.host, server:port()),
    requests = {}, notifications = {}, calls = {}, faults = {}, issued = {}, notify_tokens = {},
    created = 0, tokens_issued = 0,
    operation_delay = opts.operation_delay, keep_alive_timeout = opts.keep_alive_timeout,
    incoming_timeout = opts.incoming_timeout,
    operations = {}, recordings = {}, pending = {},
  }, Emulator)
  -- where a receiver finds the emulator's signing keys
  self.openid_url = self.url .. "/v1/.well-known/OpenIdConfiguration"
  loop:add_server(server, function(req) self:handle(req) end)
  self:after(SWEEP, function() self:sweep() end)
  return self
end

--- True when every notification queued so far has been answered.
function Emulator:idle()
  for _, n in ipairs(self.notifications) do
    if n.status == nil and n.failure == nil then return false end
  end
  return true
end

--- Stop the emulator (and its timers); idempotent.
function Emulator:close()
  for t in pairs(self.pending) do self.loop:cancel_timer(t) end
  self.pending = {}
  self.loop:remove_server(self.server)
  self.server:close()
end
Emulator.__close = Emulator.close

--- A bot's session against the emulator, for examples and quick scripts:
-- the emulator named by the GRAPH_URL environment variable (as
-- bin/graphcall-run sets it), or else one started in this process; a client
-- (`opts.app_id`, `opts.endpoint`, the token in GRAPHCALL_TOKEN) and its
-- receiver, verifying notifications with the emulator's keys.
-- Returns `{ client, receiver, emulator (when in-process), url, ring(), close() }`.
function M.session(opts)
  opts = graphcall_loop.check_options("graphcall.emulator.session", opts,
    { app_id = os.getenv("GRAPHCALL_APP_ID") or "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", endpoint = "v1.0" })
  local graphcall = require "graphcall"
  local token = os.getenv("GRAPHCALL_TOKEN") or "demo-token"
  local url, emu = os.getenv("GRAPH_URL"), nil
  if not url or url == "" then
    emu = assert(M.start { token = token, app_id = opts.app_id })
    url = emu.url
  end
  local client = graphcall.new { app_id = opts.app_id, token = token, graph_url = url, endpoint = opts.endpoint }
  local rx = assert(client:receiver { openid_url = url .. "/v1/.well-known/OpenIdConfiguration" })
  local session = { client = client, receiver = rx, emulator = emu, url = url }
  --- Have the emulator call the bot, as a Teams user would: returns the call id.
  function session.ring()
    local result
    client.loop:request({ method = "POST", url = url .. "/_emulator/ring", headers = { ["Content-Type"] = JSON },
      body = cjson.encode { callback_uri = rx:url(), app_id = opts.app_id } }, function(r) result = r end)
    client.loop:wait(function() return result ~= nil end, 10)
    local doc = result and result.status == 200 and cjson.decode(result.body)
    return doc and doc.id
  end
  function session.close()
    rx:close()
    if emu then emu:close() end
  end
  return session
end

return M
