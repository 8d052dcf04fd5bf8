--- Call control: the actions on a call and on its participants, as two
-- method tables that `graphcall.call` and `graphcall.participant` install in
-- their own classes (this module adds nothing to anyone's class). Each
-- method checks its options (unknown keys and bad values raise, naming the
-- method and the key), sends `POST .../calls/{id}/<action>` (or GET, PATCH,
-- DELETE), and returns true, an operation object for actions that answer a
-- commsOperation, a decoded resource, or nil, err.
-- @module graphcall.control
local core = require "graphcall.core"
local transport = require "graphcall.transport"
local operation = require "graphcall.operation"
local options = require "graphcall.options"

local M = { call = {}, participant = {} }
local C, P = M.call, M.participant

local function raise(name, fmt, ...)
  error(("graphcall.%s: " .. fmt):format(name, ...), 3)
end

-- An action's options: `allowed` names them (name -> true).
local function check(name, opts, allowed)
  return options.check("graphcall." .. name, opts, allowed, 3)
end

-- A string value: non-empty, at most `max` bytes, no control characters.
local function text(name, key, v, required, max)
  if v == nil then
    if required then error(("graphcall.%s: %s: required"):format(name, key), 3) end
    return nil
  end
  if type(v) ~= "string" or v == "" or #v > (max or 2048) or v:find("[%z\1-\31\127]") then
    error(("graphcall.%s: %s: expected a string of 1 to %d characters without control characters")
      :format(name, key, max or 2048), 3)
  end
  return v
end

local function boolean(name, key, v)
  if v ~= nil and type(v) ~= "boolean" then error(("graphcall.%s: %s: expected a boolean"):format(name, key), 3) end
  return v
end

local function integer(name, key, v, lo, hi)
  if v ~= nil and (math.type(v) ~= "integer" or v < lo or v > hi) then
    error(("graphcall.%s: %s: expected an integer from %d to %d"):format(name, key, lo, hi), 3)
  end
  return v
end

local function strings(name, key, v, min, max)
  if v == nil and min == 0 then return nil end
  if type(v) ~= "table" or #v < min or #v > max then
    error(("graphcall.%s: %s: expected a list of %d to %d strings"):format(name, key, min, max), 3)
  end
  for i, s in ipairs(v) do text(name, ("%s[%d]"):format(key, i), s, true) end
  return v
end

local function context(name, value)
  if value == nil then return core.uuid() end -- correlates the operation and its completion
  return text(name, "client_context", value, true, 256)
end

-- Build request parts with the C builder (identities, media, modalities),
-- raising with the action's name on a bad value.
local function parts(name, self, spec)
  local ok, p = pcall(core.build_parts, self.client.app_id, spec)
  if not ok then error(("graphcall.%s: %s"):format(name, p), 3) end
  return p
end

local ACCEPTED, OK, CREATED, NO_CONTENT = { [202] = true }, { [200] = true }, { [201] = true },
  { [200] = true, [204] = true }
local OPERATION = { [200] = true, [202] = true }

--- Log the outcome of a keepAlive of call `id` (`err` when it failed) on `lg`.
---@param lg graphcall.Logger
---@param id string
---@param err? table
---@param fleet? boolean sent from a fleet's shared schedule
function M.log_keep_alive(lg, id, err, fleet)
  if not err then
    if lg.info then lg:log("info", "keep_alive", { call_id = id, fleet = fleet }) end
  elseif lg.warn then
    lg:log("warn", "keep_alive_failed", { call_id = id, fleet = fleet, kind = err.kind, status = err.status,
      request_id = err.request_id, error = tostring(err.message or err) })
  end
end

-- Send an action about the call; true, the decoded answer, or nil, err.
local function send(call, method, suffix, body, expected, decode)
  local result, req = call.client:call_request(call.id, method, suffix, body, expected)
  if not result then return nil, req end
  if not decode then return true end
  return transport.decode(result, req)
end

-- POST an action answered with a commsOperation (200, or 202 for some):
-- an operation object, or nil, err.
local function start(call, action, body, kind)
  local data, err = send(call, "POST", "/" .. action, body, OPERATION, true)
  if not data then return nil, err end
  return operation.new(call, kind or action, data, body.clientContext)
end

local function prompt(name, key, p)
  if type(p) ~= "table" or type(p.uri) ~= "string" then
    raise(name, "%s: expected { uri = ..., resource_id = ... }", key)
  end
  for k in pairs(p) do
    if k ~= "uri" and k ~= "resource_id" then raise(name, "%s: unknown key '%s'", key, tostring(k)) end
  end
  local ok, err = pcall(core.check_url, p.uri, key .. ".uri")
  if not ok then raise(name, "%s", err) end
  return { ["@odata.type"] = "#microsoft.graph.mediaPrompt",
           mediaInfo = { uri = p.uri, resourceId = text(name, key .. ".resource_id", p.resource_id) } }
end

local function media_prompts(name, prompts, max)
  if type(prompts) ~= "table" then raise(name, "prompts: expected a list") end
  if prompts.type == "service_hosted" then prompts = prompts.prompts end -- graphcall.prompts{...}
  local list = {}
  for i, p in ipairs(prompts) do list[i] = prompt(name, ("prompts[%d]"):format(i), p) end
  if #list == 0 or #list > max then raise(name, "prompts: 1 to %d expected", max) end
  return list
end

local CALL_OPTIONS = { hide_bot_after_escalation = "hideBotAfterEscalation",
  is_content_sharing_notification_enabled = "isContentSharingNotificationEnabled",
  is_delta_roster_enabled = "isDeltaRosterEnabled", is_interactive_roster_enabled = "isInteractiveRosterEnabled" }

--- Answer an incoming call (within 15 seconds of the `incoming` event).
-- opts: `modalities` {"audio"}, `media` (default service-hosted), `callback_uri`, `participant_capacity`,
-- `call_options` { hide_bot_after_escalation, is_content_sharing_notification_enabled, is_delta_roster_enabled,
-- is_interactive_roster_enabled } (incomingCallOptions).
---@param opts table? see above
---@return true|nil, table? # true, or nil, err
function C:answer(opts)
  local name = "call:answer"
  opts = check(name, opts, { modalities = true, media = true, callback_uri = true, participant_capacity = true,
    call_options = true })
  local callback_uri = opts.callback_uri
  local fleet = self.client.fleet
  if fleet then
    -- the instance hint, so the load balancer routes the call's notifications here
    callback_uri = fleet:hinted(callback_uri or self.client.callback_uri)
  end
  local p = parts(name, self, { modalities = opts.modalities or { "audio" }, media = opts.media or
    { type = "service_hosted" }, callback_uri = callback_uri })
  local call_options
  if opts.call_options ~= nil then
    if type(opts.call_options) ~= "table" then raise(name, "call_options: expected a table") end
    call_options = { ["@odata.type"] = "#microsoft.graph.incomingCallOptions" }
    for k, v in pairs(opts.call_options) do
      if not CALL_OPTIONS[k] then raise(name, "call_options: unknown key '%s'", tostring(k)) end
      call_options[CALL_OPTIONS[k]] = boolean(name, "call_options." .. k, v)
    end
  end
  return send(self, "POST", "/answer", { callbackUri = p.callbackUri, acceptedModalities = p.requestedModalities,
    mediaConfig = p.mediaConfig, callOptions = call_options,
    participantCapacity = integer(name, "participant_capacity", opts.participant_capacity, 1, 10000) }, ACCEPTED)
end

local REASONS = { none = "none", busy = "busy", forbidden = "forbidden" }

--- Reject an incoming call. opts: `reason` "none" | "busy" | "forbidden", `callback_uri`.
---@param opts table? see above
---@return true|nil, table? # true, or nil, err
function C:reject(opts)
  opts = check("call:reject", opts, { reason = true, callback_uri = true })
  local reason = REASONS[opts.reason or "none"]
  if not reason then raise("call:reject", "reason must be none, busy or forbidden") end
  local p = parts("call:reject", self, { callback_uri = opts.callback_uri })
  return send(self, "POST", "/reject", { reason = reason, callbackUri = p.callbackUri }, ACCEPTED)
end

local ROUTING_POLICIES = { none = "none", no_missed_call = "noMissedCall", disable_forwarding_except_phone =
  "disableForwardingExceptPhone", disable_forwarding = "disableForwarding", prefer_sip = "preferSIP" }

--- Redirect an incoming call to up to 25 targets (several ring at once).
-- opts: `targets` (identities), `timeout` (15..90 s), `callback_uri`, `routing_policies`
-- (list of "none", "no_missed_call", "disable_forwarding", "disable_forwarding_except_phone", "prefer_sip").
-- To voicemail: a target user with `endpoint_type = "voicemail"` (Graph's endpointType enum).
---@param opts table options (see above)
---@return true|nil, table? # true, or nil, err
function C:redirect(opts)
  local name = "call:redirect"
  opts = check(name, opts, { targets = true, timeout = true, callback_uri = true, routing_policies = true })
  local p = parts(name, self, { targets = opts.targets, callback_uri = opts.callback_uri })
  if not p.targets or #p.targets > 25 then raise(name, "targets: 1 to 25 expected") end
  local policies
  if opts.routing_policies ~= nil then
    policies = {}
    for i, v in ipairs(strings(name, "routing_policies", opts.routing_policies, 1, 5)) do
      policies[i] = ROUTING_POLICIES[v] or raise(name, "routing_policies[%d]: unknown policy '%s'", i, v)
    end
  end
  return send(self, "POST", "/redirect", { targets = p.targets, routingPolicies = policies,
    timeout = integer(name, "timeout", opts.timeout, 15, 90), callbackUri = p.callbackUri }, ACCEPTED)
end

--- Hang up: `DELETE .../calls/{id}` (204). Returns true, or nil, err.
---@return true|nil, table? # true, or nil, err
function C:hangup()
  return self.client:hangup(self.id)
end

--- What the outcome of a keepAlive means: logged; a 404 ends the call.
---@param call graphcall.Call
---@param err table? the error, or nil when Graph answered 200
---@return true|nil, table? # true, or nil, err
local function kept_alive(call, err)
  M.log_keep_alive(call.client.log, call.id, err)
  if not err then return true end
  if err.status == 404 then call:gone { code = 404, message = "keepAlive: the call no longer exists" } end
  return nil, err
end

--- Keep the call alive: `POST .../keepAlive` (200). The client does this by
-- itself every keep_alive_interval; a 404 means the call is gone: it is
-- marked terminated and its handlers hear so. Logged: "keep_alive" (info)
-- or "keep_alive_failed" (warn).
---@return true|nil, table? # true, or nil, err
function C:keep_alive()
  local ok, err = send(self, "POST", "/keepAlive", nil, OK)
  return kept_alive(self, not ok and err or nil)
end

--- The client's automatic keepAlive: the request of `call:keep_alive()`,
-- without waiting; `done(true)` or `done(nil, err)` runs from the loop.
---@param call graphcall.Call
---@param done fun(ok: boolean|nil, err: table?)
function M.keep_alive_async(call, done)
  call.client:call_request_async(call.id, "POST", "/keepAlive", nil, OK, function(result, err)
    done(kept_alive(call, not result and err or nil))
  end)
end

--- Play prompts (service-hosted media). opts: `prompts` (list of {uri, resource_id}, or
-- graphcall.prompts{...}), `loop` (boolean), `client_context`. Returns an operation.
---@param opts table options (see above)
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:play_prompt(opts)
  opts = check("call:play_prompt", opts, { prompts = true, client_context = true, loop = true })
  return start(self, "playPrompt", { prompts = media_prompts("call:play_prompt", opts.prompts, 20),
    loop = boolean("call:play_prompt", "loop", opts.loop),
    clientContext = context("call:play_prompt", opts.client_context) })
end

--- Record a response. opts: `prompts` (at most 1), `barge_in_allowed`, `initial_silence_timeout`,
-- `max_silence_timeout`, `max_record_duration` (seconds, 1..120), `play_beep`, `stop_tones`,
-- `client_context`. Returns an operation; when it completes, `op.data.recordingLocation` and
-- `op.data.recordingAccessToken` say where to GET the recording (`op.recording_location`, ...).
---@param opts table options (see above)
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:record_response(opts)
  local name = "call:record_response"
  opts = check(name, opts, { prompts = true, barge_in_allowed = true, initial_silence_timeout = true,
    max_silence_timeout = true, max_record_duration = true, play_beep = true, stop_tones = true,
    client_context = true })
  return start(self, "recordResponse", {
    prompts = opts.prompts and media_prompts(name, opts.prompts, 1) or nil,
    bargeInAllowed = boolean(name, "barge_in_allowed", opts.barge_in_allowed),
    initialSilenceTimeoutInSeconds = integer(name, "initial_silence_timeout", opts.initial_silence_timeout, 1, 120),
    maxSilenceTimeoutInSeconds = integer(name, "max_silence_timeout", opts.max_silence_timeout, 1, 120),
    maxRecordDurationInSeconds = integer(name, "max_record_duration", opts.max_record_duration, 1, 120),
    playBeep = boolean(name, "play_beep", opts.play_beep),
    stopTones = strings(name, "stop_tones", opts.stop_tones, 0, 16),
    clientContext = context(name, opts.client_context),
  })
end

local function context_only(method, action, answer)
  local name = "call:" .. method
  return function(self, opts)
    opts = check(name, opts, { client_context = true })
    return start(self, action, { clientContext = context(name, opts.client_context) }, answer)
  end
end

--- Cancel queued and running prompts and recordings. Returns an operation.
C.cancel_media_processing = context_only("cancel_media_processing", "cancelMediaProcessing")
--- Receive DTMF tones as "tone" events. Returns an operation.
C.subscribe_to_tone = context_only("subscribe_to_tone", "subscribeToTone")
--- Mute the bot (group calls). Returns an operation.
C.mute = context_only("mute", "mute")
--- Unmute the bot (group calls). Returns an operation.
C.unmute = context_only("unmute", "unmute")
--- Add the large gallery view (a participant that sends up to 49 video streams). Returns an operation.
C.add_large_gallery_view = context_only("add_large_gallery_view", "addLargeGalleryView")

local TONES = { ["0"] = "tone0", ["1"] = "tone1", ["2"] = "tone2", ["3"] = "tone3", ["4"] = "tone4",
  ["5"] = "tone5", ["6"] = "tone6", ["7"] = "tone7", ["8"] = "tone8", ["9"] = "tone9", ["*"] = "star",
  ["#"] = "pound", A = "a", B = "b", C = "c", D = "d" }
local TONE_NAMES = { star = true, pound = true, a = true, b = true, c = true, d = true, flash = true }
for _, v in pairs(TONES) do TONE_NAMES[v] = true end

--- Send DTMF tones. opts: `tones` (a list of "tone0".."tone9", "star", "pound", "a".."d", "flash",
-- or a string of keys such as "123#"), `delay_between_tones_ms`, `client_context`. Returns an operation.
---@param opts table options (see above)
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:send_dtmf_tones(opts)
  local name = "call:send_dtmf_tones"
  opts = check(name, opts, { tones = true, delay_between_tones_ms = true, client_context = true })
  local tones = opts.tones
  if type(tones) == "string" then
    local list = {}
    for key in tones:gmatch(".") do
      list[#list + 1] = TONES[key] or raise(name, "tones: unknown key '%s' (0-9, *, #, A-D)", key)
    end
    tones = list
  end
  strings(name, "tones", tones, 1, 64)
  for i, t in ipairs(tones) do
    if not TONE_NAMES[t] then raise(name, "tones[%d]: unknown tone '%s'", i, t) end
  end
  return start(self, "sendDtmfTones", { tones = tones,
    delayBetweenTonesMs = integer(name, "delay_between_tones_ms", opts.delay_between_tones_ms, 0, 60000),
    clientContext = context(name, opts.client_context) })
end

local ROLES = { viewer = true, sharer = true }

--- Become the screen-sharing viewer or sharer: opts `role` = "viewer" | "sharer". Returns true or nil, err.
---@param opts table options (see above)
---@return true|nil, table? # true, or nil, err
function C:change_screen_sharing_role(opts)
  opts = check("call:change_screen_sharing_role", opts, { role = true })
  if not ROLES[opts.role] then raise("call:change_screen_sharing_role", "role must be viewer or sharer") end
  return send(self, "POST", "/changeScreenSharingRole", { role = opts.role }, ACCEPTED)
end

--- Transfer the call. opts: `target` (an identity; `replaces_call_id` for a consultative
-- transfer, `endpoint_type`), `language_id`, `region` (of the target), `transferee` (an
-- identity, group calls only), `transferee_participant_id`, `client_context` (not generated).
-- Returns true or nil, err; the outcome arrives as states transferring, transferAccepted, terminated.
---@param opts table options (see above)
---@return true|nil, table? # true, or nil, err
function C:transfer(opts)
  local name = "call:transfer"
  opts = check(name, opts, { target = true, transferee = true, transferee_participant_id = true,
    language_id = true, region = true, client_context = true })
  if type(opts.target) ~= "table" then raise(name, "target: required") end
  local p = parts(name, self, { targets = { opts.target, opts.transferee } })
  local target = p.targets[1]
  target.languageId = text(name, "language_id", opts.language_id)
  target.region = text(name, "region", opts.region)
  local transferee = p.targets[2] and { identity = p.targets[2].identity,
    participantId = text(name, "transferee_participant_id", opts.transferee_participant_id) }
  if opts.transferee_participant_id and not transferee then
    raise(name, "transferee_participant_id: needs transferee")
  end
  return send(self, "POST", "/transfer", { transferTarget = target, transferee = transferee,
    clientContext = opts.client_context and context(name, opts.client_context) }, ACCEPTED)
end

--- Invite participants (group calls). opts: `participants` (1 to 5 identities; `replaces_call_id`
-- moves one from a peer-to-peer call, `participant_id` names its participant there), `client_context`.
-- Returns an operation.
---@param opts table options (see above)
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:invite(opts)
  opts = check("call:invite", opts, { participants = true, client_context = true })
  local p = parts("call:invite", self, { targets = opts.participants })
  if not p.targets or #p.targets > 5 then raise("call:invite", "participants: 1 to 5 expected") end
  return start(self, "participants/invite", { participants = p.targets,
    clientContext = context("call:invite", opts.client_context) })
end

--- The participants of the call: `GET .../participants`. Returns the list of participant
-- objects (also `call.roster`), or nil, err.
---@return graphcall.Participant[]|nil, table? # the list, or nil, err
function C:participants()
  local doc, err = send(self, "GET", "/participants", nil, OK, true)
  if not doc then return nil, err end
  return self:set_roster(doc.value or {})
end

local function id_of(name, key, v)
  if type(v) ~= "string" or not v:match("^[%w%-]+$") then raise(name, "%s: expected an id", key) end
  return v
end

--- One participant: `GET .../participants/{id}`. Returns a participant object, or nil, err.
---@param id string the participant's id
---@return graphcall.Participant|nil, table? # or nil, err
function C:participant(id)
  local doc, err = send(self, "GET", "/participants/" .. id_of("call:participant", "id", id), nil, OK, true)
  if not doc then return nil, err end
  return self:adopt_participant(doc)
end

--- Mute everyone (beta): opts `participants` (participant ids; default all), `client_context`.
-- Returns an operation.
---@param opts table? see above
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:mute_all(opts)
  opts = check("call:mute_all", opts, { participants = true, client_context = true })
  return start(self, "participants/muteAll", { participants = strings("call:mute_all", "participants",
    opts.participants, 0, 1000), clientContext = context("call:mute_all", opts.client_context) }, "muteAll")
end

local DUCKING = { ramp_active = "rampActive", ramp_inactive = "rampInactive", lower_level = "lowerLevel",
  upper_level = "upperLevel" }

local function mixer_level(name, key, m)
  if type(m) ~= "table" then raise(name, "%s: expected a table", key) end
  local out = { sourceLevels = {} }
  for k, v in pairs(m) do
    if k == "participant" then out.participant = id_of(name, key .. ".participant", v)
    elseif k == "exclusive" then out.exclusive = boolean(name, key .. ".exclusive", v)
    elseif k == "ducking" then
      if type(v) ~= "table" then raise(name, "%s.ducking: expected a table", key) end
      out.ducking = {}
      for dk, dv in pairs(v) do
        local graph = DUCKING[dk] or raise(name, "%s.ducking: unknown key '%s'", key, tostring(dk))
        out.ducking[graph] = integer(name, key .. ".ducking." .. dk, dv, 0, 100)
      end
    elseif k == "source_levels" then
      for i, s in ipairs(v) do
        local where = ("%s.source_levels[%d]"):format(key, i)
        if type(s) ~= "table" then raise(name, "%s: expected a table", where) end
        for sk in pairs(s) do
          if sk ~= "participant" and sk ~= "level" and sk ~= "duck_others" then
            raise(name, "%s: unknown key '%s'", where, tostring(sk))
          end
        end
        out.sourceLevels[i] = { participant = id_of(name, where .. ".participant", s.participant),
          level = integer(name, where .. ".level", s.level, 0, 100),
          duckOthers = boolean(name, where .. ".duck_others", s.duck_others) }
      end
    else raise(name, "%s: unknown key '%s'", key, tostring(k)) end
  end
  if not out.participant then raise(name, "%s.participant: required", key) end
  if #out.sourceLevels == 0 then out.sourceLevels = nil end
  return out
end

--- Configure the audio mixer (beta): opts `participant_mixer_levels` (a list of { participant,
-- exclusive?, ducking? { ramp_active, ramp_inactive, lower_level, upper_level }, source_levels?
-- { { participant, level, duck_others } } }), `client_context`. Returns an operation.
---@param opts table options (see above)
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:configure_mixer(opts)
  local name = "call:configure_mixer"
  opts = check(name, opts, { participant_mixer_levels = true, client_context = true })
  local levels = opts.participant_mixer_levels
  if type(levels) ~= "table" or #levels == 0 then raise(name, "participant_mixer_levels: expected a list") end
  local out = {}
  for i, m in ipairs(levels) do out[i] = mixer_level(name, ("participant_mixer_levels[%d]"):format(i), m) end
  return start(self, "participants/configureMixer", { participantMixerLevels = out,
    clientContext = context(name, opts.client_context) }, "configureMixer")
end

local RECORDING = { recording = "recording", not_recording = "notRecording", failed = "failed" }

--- Tell Graph whether the bot records (required before keeping any media).
-- opts: `status` "recording" | "not_recording" | "failed", `client_context`. Returns an operation.
---@param opts table options (see above)
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:update_recording_status(opts)
  opts = check("call:update_recording_status", opts, { status = true, client_context = true })
  local status = RECORDING[opts.status]
  if not status then
    raise("call:update_recording_status", "status must be recording, not_recording or failed")
  end
  return start(self, "updateRecordingStatus", { status = status,
    clientContext = context("call:update_recording_status", opts.client_context) })
end

--- Read a commsOperation: `GET .../operations/{id}`. Returns an operation object (`op`, updated,
-- when given), or nil, err.
---@param id string the operation's id
---@param op graphcall.Operation? the operation object to update
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function C:get_operation(id, op)
  local data, err = send(self, "GET", "/operations/" .. id_of("call:get_operation", "id", id), nil, OK, true)
  if not data then return nil, err end
  if op then
    op:update(data.status, data.resultInfo, data)
    return op
  end
  return operation.new(self, (data["@odata.type"] or ""):match("(%w+)Operation$") or "operation", data)
end

local ROUTING_MODES = { one_to_one = "oneToOne", multicast = "multicast" }

local function routing_group(name, opts, create)
  local body = { id = create and text(name, "id", opts.id) or nil }
  if opts.routing_mode ~= nil or create then
    body.routingMode = ROUTING_MODES[opts.routing_mode]
      or raise(name, "routing_mode must be one_to_one or multicast")
  end
  body.sources = strings(name, "sources", opts.sources, create and 1 or 0, 1000)
  body.receivers = strings(name, "receivers", opts.receivers, create and 1 or 0, 1000)
  return body
end

--- Create an audio routing group: opts `routing_mode` ("one_to_one" | "multicast"), `sources` and
-- `receivers` (participant ids), `id`?. Returns Graph's audioRoutingGroup (201), or nil, err.
---@param opts table options (see above)
---@return table|nil, table? # the audioRoutingGroup, or nil, err
function C:create_audio_routing_group(opts)
  local name = "call:create_audio_routing_group"
  opts = check(name, opts, { id = true, routing_mode = true, sources = true, receivers = true })
  return send(self, "POST", "/audioRoutingGroups", routing_group(name, opts, true), CREATED, true)
end

--- The audio routing groups: `GET .../audioRoutingGroups`. Returns the list, or nil, err.
---@return table[]|nil, table? # the groups, or nil, err
function C:audio_routing_groups()
  local doc, err = send(self, "GET", "/audioRoutingGroups", nil, OK, true)
  if not doc then return nil, err end
  return doc.value or {}
end

--- Change an audio routing group (`PATCH`): opts as for create, all optional. Returns the group.
---@param id string the group's id
---@param opts table options (see above)
---@return table|nil, table? # the group, or nil, err
function C:update_audio_routing_group(id, opts)
  local name = "call:update_audio_routing_group"
  opts = check(name, opts, { routing_mode = true, sources = true, receivers = true })
  return send(self, "PATCH", "/audioRoutingGroups/" .. id_of(name, "id", id), routing_group(name, opts, false),
    OK, true)
end

--- Delete an audio routing group (204). Returns true, or nil, err.
---@param id string the group's id
---@return true|nil, table? # true, or nil, err
function C:delete_audio_routing_group(id)
  return send(self, "DELETE", "/audioRoutingGroups/" .. id_of("call:delete_audio_routing_group", "id", id), nil,
    NO_CONTENT)
end

--- The content sharing sessions of the call (`GET .../contentSharingSessions`): the list, or nil, err.
---@return table[]|nil, table? # the sessions, or nil, err
function C:content_sharing_sessions()
  local doc, err = send(self, "GET", "/contentSharingSessions", nil, OK, true)
  if not doc then return nil, err end
  return doc.value or {}
end

--- One content sharing session: `GET .../contentSharingSessions/{id}`. Returns it, or nil, err.
---@param id string the session's id
---@return table|nil, table? # the session, or nil, err
function C:content_sharing_session(id)
  return send(self, "GET", "/contentSharingSessions/" .. id_of("call:content_sharing_session", "id", id), nil,
    OK, true)
end

-- Participant actions: `self` is a participant object (self.call, self.id).

local function participant_path(self, action)
  return "/participants/" .. self.id .. (action and "/" .. action or "")
end

-- A participant action whose only option is client_context.
local function participant_context_only(method, action, kind)
  local name = "participant:" .. method
  return function(self, opts)
    opts = check(name, opts, { client_context = true })
    return start(self.call, participant_path(self, action):sub(2),
      { clientContext = context(name, opts.client_context) }, kind)
  end
end

--- Mute this participant. opts: `client_context`. Returns an operation.
P.mute = participant_context_only("mute", "mute", "muteParticipant")

--- Remove this participant from the call: `DELETE .../participants/{id}` (204). Returns true, or nil, err.
---@return true|nil, table? # true, or nil, err
function P:remove()
  return send(self.call, "DELETE", participant_path(self), nil, NO_CONTENT)
end

--- Put this participant on hold with music: opts `custom_prompt` ({ uri, resource_id? }; Graph's
-- music by default), `client_context`. Returns an operation.
---@param opts table? see above
---@return graphcall.Operation|nil, table? # the operation, or nil, err
function P:start_hold_music(opts)
  local name = "participant:start_hold_music"
  opts = check(name, opts, { custom_prompt = true, client_context = true })
  return start(self.call, participant_path(self, "startHoldMusic"):sub(2), {
    customPrompt = opts.custom_prompt ~= nil and prompt(name, "custom_prompt", opts.custom_prompt) or nil,
    clientContext = context(name, opts.client_context) }, "startHoldMusic")
end

--- Take this participant off hold. opts: `client_context`. Returns an operation.
P.stop_hold_music = participant_context_only("stop_hold_music", "stopHoldMusic", "stopHoldMusic")

--- Read this participant again (`GET .../participants/{id}`): the updated participant, or nil, err.
---@return graphcall.Participant|nil, table? # or nil, err
function P:get()
  return self.call:participant(self.id)
end

return M
