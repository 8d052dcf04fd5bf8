--- The emulator's calls: Graph's answers to create, get and delete, the
-- notifications it POSTs to a call's callbackUri, the roster, incoming calls
-- (`emu:ring`), tones (`emu:press_tone`) and the keepAlive sweep.
-- @module graphcall.emulator.calls
local core = require "graphcall.core"
local cjson = require("cjson.safe").new()
local options = require "graphcall.options"

local M = {}
local Emulator = {}

local function is_array(v)
  return type(v) == "table" and (#v > 0 or next(v) == nil)
end

-- lua-cjson 2.1 writes an empty table as {}: an array Graph sends empty is
-- this marker, written as [] by encode.
local EMPTY = "\1[]"
local function encode(v)
  return (cjson.encode(v):gsub('"\\u0001%[%]"', "[]"))
end
M.EMPTY, M.encode = EMPTY, encode

local JSON = "application/json"

-- Graph's error body: {"error":{"code","message","innerError":{...}}}.
local function graph_error(code, message, request_id, client_request_id)
  return cjson.encode { error = { code = code, message = message, innerError = {
    ["request-id"] = request_id, date = os.date("!%Y-%m-%dT%H:%M:%S"),
    ["client-request-id"] = client_request_id,
  } } }
end

--- Answer a request (and record the answer); a fault queued with
-- `processed` replaces it with 503.
---@param req table the server's request (path, method, headers, body)
---@param status integer the HTTP status
---@param body string? the body
---@param headers table<string, string>? response headers
---@param how table? how the C server answers (a fault: drop, truncate, ...)
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
  local record = req.record
  if record then record.status, record.response, record.location = status, body or "", headers.location end
  self.server:respond(req.id, status, body or "", headers, how)
end

--- Answer with Graph's error body.
---@param req table the server's request (path, method, headers, body)
---@param status integer the HTTP status
---@param code string Graph's (or the identity platform's) error code
---@param message string Graph's error message
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

--- Deliver the call's queued notifications one at a time, in order, each
-- notify_delay after the previous one was answered.
---@param call table the emulator's call
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
---@param call table the emulator's call
---@param change_type string "created" | "updated" | "deleted"
---@param data table the notification's resourceData
---@param resource string? the path under the call the notification is about (default the call)
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

--- Run fn after `delay` seconds of the loop's clock, unless the emulator is
-- closed (or the timer cancelled) before.
---@param delay number seconds on the loop's clock
---@param fn function
---@return table # the timer
function Emulator:after(delay, fn)
  local t
  t = self.loop:timer(delay, function()
    self.pending[t] = nil
    fn()
  end)
  self.pending[t] = true
  return t
end

--- Cancel a timer made by `after` (nil: nothing).
---@param t table? the timer (nil: nothing)
function Emulator:cancel(t)
  if t then
    self.pending[t] = nil
    self.loop:cancel_timer(t)
  end
end

--- A call the emulator knows: fields given, plus the state every call keeps.
---@param fields table the call's fields (id, state, direction, callback_uri, ...)
---@return table # the emulator's call
function Emulator:new_call(fields)
  local call = { etag = 0, outbox = {}, my_participant_id = core.uuid(), roster = {}, sources = 0,
    chain_id = core.uuid(), groups = {}, sharing = {}, held = {},
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
    isMuted = false, isInLobby = false, metadata = cjson.null, recordingInfo = cjson.null,
    removedState = cjson.null, restrictedExperience = cjson.null, rosterSequenceNumber = call.sources,
  }
  call.roster[#call.roster + 1] = p
  return p
end

--- Add a participant to a call the emulator knows (as if someone joined):
-- `identity` an identitySet, `id` optional. Sends the roster update and
-- returns the participant resource.
---@param call_id string the call's id
---@param identity table an identitySet
---@param id string? the participant's id (default a new one)
---@return table # the participant resource
function Emulator:add_participant(call_id, identity, id)
  local call = self:find_call(call_id)
  if not call then error("emulator:add_participant: no such call: " .. tostring(call_id), 2) end
  if type(identity) ~= "table" then error("emulator:add_participant: identity must be an identitySet", 2) end
  local p = join(call, identity, id)
  self:notify(call, "updated", call.roster, "/participants")
  return p
end

--- The call with this id, as Graph matches it (case and dashes aside).
---@param id string the call's id (any case)
---@return table|nil # the emulator's call
function Emulator:find_call(id)
  if type(id) ~= "string" then return nil end
  local call = self.calls[id]
  if call then return call end
  local key = id:lower():gsub("-", "")
  for cid, c in pairs(self.calls) do
    if cid:lower():gsub("-", "") == key then return c end
  end
end

-- The call resource as Graph answers it: what the bot sent, plus the
-- properties Graph generates (null or [] until they have a value).
local SERVER_NULLS = { "subject", "ringingTimeoutInSeconds", "resultInfo", "answeredBy", "chatInfo", "meetingInfo",
  "transcription", "toneInfo", "mediaState", "terminationReason", "meetingCapability", "incomingContext" }
local SERVER_ARRAYS = { "callRoutes", "activeModalities", "routingPolicies", "targets" }

--- The call resource as Graph returns it (GET .../calls/{id}).
---@param call table the emulator's call
---@param version string? "v1.0" (default) or "beta"
---@return table
function Emulator:call_resource(call, version)
  local data = copy(call.data)
  data.state, data.id, data.myParticipantId = call.state, call.id, call.my_participant_id
  data["@odata.type"] = "#microsoft.graph.call"
  data["@odata.context"] = ("%s/%s/$metadata#communications/calls/$entity"):format(self.url, version or "v1.0")
  data.callChainId = data.callChainId or call.chain_id
  data.tenantId = data.tenantId or self.tenant
  data.requestedModalities = data.requestedModalities or { "audio" } -- Graph's default (a guess)
  if type(data.source) ~= "table" then
    data.source = { ["@odata.type"] = "#microsoft.graph.participantInfo",
      identity = { application = { id = call.app_id } } }
  end
  for _, k in ipairs { "countryCode", "endpointType", "region", "languageId" } do
    if data.source[k] == nil then data.source[k] = cjson.null end
  end
  for _, k in ipairs(SERVER_NULLS) do if data[k] == nil then data[k] = cjson.null end end
  for _, k in ipairs(SERVER_ARRAYS) do if data[k] == nil or next(data[k]) == nil then data[k] = EMPTY end end
  if call.state == "established" and data.activeModalities == EMPTY and is_array(data.requestedModalities) then
    data.activeModalities = data.requestedModalities
  end
  return data
end

--- GET .../calls/{id}
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
function Emulator:get(req, call)
  self:respond(req, 200, encode(self:call_resource(call, req.version)))
end

--- End the call: it leaves `emu.calls` (later requests get 404 8522), its
-- timers stop, and operations still pending are dropped (recorded as
-- failed, without a notification); then `deleted` with state terminated
-- and resultInfo (none when nil), plus `extra` fields.
---@param call table the emulator's call
---@param info table? resultInfo {code, subcode, message}
---@param extra table? more fields for the resource
function Emulator:terminate(call, info, extra)
  self.calls[call.id] = nil
  call.state = "terminated"
  call.result_info = info
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

--- POST .../calls: validate, answer 201, then establishing and established.
---@param req table the server's request (path, method, headers, body)
---@param collection string the calls collection's path
---@return nil # (returns only to end the handler early)
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
  body.direction = "outgoing"
  self:respond(req, 201, encode(self:call_resource(call, req.version)),
    { location = self.url .. collection .. "/" .. id })
  self:notify(call, "updated", { state = "establishing", direction = "outgoing" })
  self:notify(call, "updated", { state = "established", direction = "outgoing" })
  call.state = "established"
end

--- DELETE .../calls/{id}: 204, then terminating and terminated.
---@param req table the server's request (path, method, headers, body)
---@param call table the emulator's call
function Emulator:delete(req, call)
  self:respond(req, 204)
  self:notify(call, "updated", { state = "terminating" })
  self:terminate(call, result_info(200, 5001, "The conversation has ended."))
end

--- Place an incoming call to the bot: POSTs a `created` notification (state
-- incoming) to `opts.callback_uri` and returns the call's id. The bot then
-- has `incoming_timeout` seconds to answer, reject or redirect it.
-- opts: `callback_uri` (required), `from` (an identitySet; default a user
-- "Test User"), `app_id` (the bot's; default the `app_id` option),
-- `modalities` (default {"audio"}).
---@param opts table see above
---@return string # the call's id
function Emulator:ring(opts)
  opts = options.read("emulator:ring", opts,
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
---@param call_id string the call's id
---@param tone string "0".."9", "*", "#", "tone0".."tone9", "star", ...
---@return boolean # false when the bot did not subscribe to tones
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

--- End the calls not kept alive for keep_alive_timeout (408), and sweep again later.
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
  -- a short keep_alive_timeout (specs) is checked as often as it needs
  self:after(math.min(SWEEP, self.keep_alive_timeout / 4), function() self:sweep() end)
end

M.JSON, M.graph_error, M.split_path, M.result_info, M.copy, M.join, M.is_array =
  JSON, graph_error, split_path, result_info, copy, join, is_array
M.SWEEP = SWEEP
M.methods = Emulator
return M
