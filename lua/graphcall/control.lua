--- Call control: the actions on a call (section 2 of the Graph reference),
-- as methods of `graphcall.call`. Each checks its options (unknown keys and
-- bad values raise), sends `POST .../calls/{id}/<action>` (or DELETE, GET),
-- and returns true, an operation object for actions that return a
-- commsOperation, or nil, err.
-- @module graphcall.control
local core = require "graphcall.core"
local call_module = require "graphcall.call"

local Call = call_module.Call

local function check(name, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("graphcall: call:%s expects an options table"):format(name), 3) end
  for k in pairs(opts) do
    if not allowed[k] then error(("graphcall: call:%s: unknown option '%s'"):format(name, tostring(k)), 3) end
  end
  return opts
end

local function context(name, value)
  if value == nil then return core.uuid() end -- correlates the operation and its completion
  if type(value) ~= "string" or #value == 0 or #value > 256 then
    error(("graphcall: call:%s: client_context must be a string of 1 to 256 characters"):format(name), 3)
  end
  return value
end

-- Build request parts with the C builder (identities, media, modalities),
-- raising with the action's name on a bad value.
local function parts(self, name, spec)
  local ok, p = pcall(core.build_parts, self.client.app_id, spec)
  if not ok then error(("graphcall: call:%s: %s"):format(name, p), 3) end
  return p
end

local ACCEPTED, OK = { [202] = true }, { [200] = true }

-- POST an action that answers 202 with no body.
local function accepted(self, action, body)
  local result, err = self.client:call_request(self.id, "POST", "/" .. action, body, ACCEPTED)
  if not result then return nil, err end
  return true
end

-- POST an action that answers 200 with a commsOperation.
local function operation(self, action, body)
  local result, req = self.client:call_request(self.id, "POST", "/" .. action, body, OK)
  if not result then return nil, req end
  local data, err = require("graphcall.transport").decode(result, req)
  if not data then return nil, err end
  return call_module.operation(self, action, data, body.clientContext)
end

--- Answer an incoming call (within 15 seconds of the `incoming` event).
-- opts: `modalities` {"audio"}, `media` (default service-hosted), `callback_uri`, `participant_capacity`.
function Call:answer(opts)
  opts = check("answer", opts, { modalities = true, media = true, callback_uri = true, participant_capacity = true })
  local p = parts(self, "answer", { modalities = opts.modalities or { "audio" }, media = opts.media or
    { type = "service_hosted" }, callback_uri = opts.callback_uri })
  if opts.participant_capacity ~= nil and math.type(opts.participant_capacity) ~= "integer" then
    error("graphcall: call:answer: participant_capacity must be an integer", 2)
  end
  return accepted(self, "answer", { callbackUri = p.callbackUri, acceptedModalities = p.requestedModalities,
    mediaConfig = p.mediaConfig, participantCapacity = opts.participant_capacity })
end

local REASONS = { none = "none", busy = "busy", forbidden = "forbidden" }

--- Reject an incoming call. opts: `reason` "none" | "busy" | "forbidden", `callback_uri`.
function Call:reject(opts)
  opts = check("reject", opts, { reason = true, callback_uri = true })
  local reason = REASONS[opts.reason or "none"]
  if not reason then error("graphcall: call:reject: reason must be none, busy or forbidden", 2) end
  local p = parts(self, "reject", { callback_uri = opts.callback_uri })
  return accepted(self, "reject", { reason = reason, callbackUri = p.callbackUri })
end

--- Redirect an incoming call. opts: `targets` (identities), `timeout` (15..90 s), `callback_uri`.
function Call:redirect(opts)
  opts = check("redirect", opts, { targets = true, timeout = true, callback_uri = true })
  if opts.timeout ~= nil and (math.type(opts.timeout) ~= "integer" or opts.timeout < 15 or opts.timeout > 90) then
    error("graphcall: call:redirect: timeout must be an integer from 15 to 90", 2)
  end
  local p = parts(self, "redirect", { targets = opts.targets, callback_uri = opts.callback_uri })
  if not p.targets then error("graphcall: call:redirect: targets: required", 2) end
  return accepted(self, "redirect", { targets = p.targets, timeout = opts.timeout, callbackUri = p.callbackUri })
end

--- Hang up: `DELETE .../calls/{id}` (204). Returns true, or nil, err.
function Call:hangup()
  return self.client:hangup(self.id)
end

--- Keep the call alive: `POST .../keepAlive` (200). The client does this by
-- itself every keep_alive_interval; a 404 means the call is gone: it is
-- marked terminated and its handlers hear so.
function Call:keep_alive()
  local result, err = self.client:call_request(self.id, "POST", "/keepAlive", nil, OK)
  if result then return true end
  if err.status == 404 then
    self:gone { code = 404, message = "keepAlive: the call no longer exists" }
  end
  return nil, err
end

local function media_prompts(name, prompts, max)
  if type(prompts) ~= "table" then error(("graphcall: call:%s: prompts: expected a list"):format(name), 3) end
  if prompts.type == "service_hosted" then prompts = prompts.prompts end -- graphcall.prompts{...}
  local list = {}
  for i, p in ipairs(prompts) do
    if type(p) ~= "table" or type(p.uri) ~= "string" then
      error(("graphcall: call:%s: prompts[%d]: expected { uri = ..., resource_id = ... }"):format(name, i), 3)
    end
    local ok, err = pcall(core.check_url, p.uri, ("prompts[%d].uri"):format(i))
    if not ok then error(("graphcall: call:%s: %s"):format(name, err), 3) end
    list[i] = { ["@odata.type"] = "#microsoft.graph.mediaPrompt",
                mediaInfo = { uri = p.uri, resourceId = p.resource_id } }
  end
  if #list == 0 or #list > max then
    error(("graphcall: call:%s: prompts: 1 to %d expected"):format(name, max), 3)
  end
  return list
end

--- Play prompts (service-hosted media). opts: `prompts` (list of {uri, resource_id}, or
-- graphcall.prompts{...}), `client_context`. Returns an operation.
function Call:play_prompt(opts)
  opts = check("play_prompt", opts, { prompts = true, client_context = true })
  return operation(self, "playPrompt", { prompts = media_prompts("play_prompt", opts.prompts, 20),
    clientContext = context("play_prompt", opts.client_context) })
end

local function seconds(name, key, v)
  if v ~= nil and (math.type(v) ~= "integer" or v < 1 or v > 120) then
    error(("graphcall: call:%s: %s must be an integer from 1 to 120"):format(name, key), 3)
  end
  return v
end

--- Record a response. opts: `prompts` (at most 1), `barge_in_allowed`, `initial_silence_timeout`,
-- `max_silence_timeout`, `max_record_duration` (seconds, 1..120), `play_beep`, `stop_tones`,
-- `client_context`. Returns an operation; its data carries recordingLocation when done.
function Call:record_response(opts)
  opts = check("record_response", opts, { prompts = true, barge_in_allowed = true, initial_silence_timeout = true,
    max_silence_timeout = true, max_record_duration = true, play_beep = true, stop_tones = true,
    client_context = true })
  return operation(self, "recordResponse", {
    prompts = opts.prompts and media_prompts("record_response", opts.prompts, 1) or nil,
    bargeInAllowed = opts.barge_in_allowed,
    initialSilenceTimeoutInSeconds =
      seconds("record_response", "initial_silence_timeout", opts.initial_silence_timeout),
    maxSilenceTimeoutInSeconds = seconds("record_response", "max_silence_timeout", opts.max_silence_timeout),
    maxRecordDurationInSeconds = seconds("record_response", "max_record_duration", opts.max_record_duration),
    playBeep = opts.play_beep,
    stopTones = opts.stop_tones,
    clientContext = context("record_response", opts.client_context),
  })
end

local function context_only(name, action)
  return function(self, opts)
    opts = check(name, opts, { client_context = true })
    return operation(self, action, { clientContext = context(name, opts.client_context) })
  end
end

--- Cancel queued and running prompts and recordings. Returns an operation.
Call.cancel_media_processing = context_only("cancel_media_processing", "cancelMediaProcessing")
--- Receive DTMF tones as "tone" events. Returns an operation.
Call.subscribe_to_tone = context_only("subscribe_to_tone", "subscribeToTone")
--- Mute the bot (group calls). Returns an operation.
Call.mute = context_only("mute", "mute")
--- Unmute the bot (group calls). Returns an operation.
Call.unmute = context_only("unmute", "unmute")

--- Transfer the call. opts: `target` (an identity; `replaces_call_id` for a consultative
-- transfer), `transferee` (an identity, group calls only). Returns true or nil, err; the
-- outcome arrives as states transferring, transferAccepted, terminated.
function Call:transfer(opts)
  opts = check("transfer", opts, { target = true, transferee = true })
  if type(opts.target) ~= "table" then error("graphcall: call:transfer: target: required", 2) end
  local p = parts(self, "transfer", { targets = { opts.target, opts.transferee } })
  return accepted(self, "transfer", { transferTarget = p.targets[1],
    transferee = p.targets[2] and { identity = p.targets[2].identity } or nil })
end

--- Invite participants (group calls). opts: `participants` (1 to 5 identities),
-- `client_context`. Returns an operation.
function Call:invite(opts)
  opts = check("invite", opts, { participants = true, client_context = true })
  local p = parts(self, "invite", { targets = opts.participants })
  if not p.targets or #p.targets > 5 then error("graphcall: call:invite: participants: 1 to 5 expected", 2) end
  return operation(self, "participants/invite", { participants = p.targets,
    clientContext = context("invite", opts.client_context) })
end

--- The participants of the call: `GET .../participants`. Returns the list, or nil, err.
function Call:participants()
  local result, req = self.client:call_request(self.id, "GET", "/participants", nil, OK)
  if not result then return nil, req end
  local doc, err = require("graphcall.transport").decode(result, req)
  if not doc then return nil, err end
  self.roster = doc.value
  return doc.value
end

local RECORDING = { recording = "recording", not_recording = "notRecording", failed = "failed" }

--- Tell Graph whether the bot records (required before keeping any media).
-- opts: `status` "recording" | "not_recording" | "failed", `client_context`. Returns an operation.
function Call:update_recording_status(opts)
  opts = check("update_recording_status", opts, { status = true, client_context = true })
  local status = RECORDING[opts.status]
  if not status then
    error("graphcall: call:update_recording_status: status must be recording, not_recording or failed", 2)
  end
  return operation(self, "updateRecordingStatus", { status = status,
    clientContext = context("update_recording_status", opts.client_context) })
end

return Call
