-- Conformance with Graph's documentation: every example of every page in
-- ../shared/graph-examples/ (read where it is, nothing copied), checked
-- three ways and printed as a table of pages x checks.
--
-- * request: graphcall's API, given the example's values, sends the
--   example's body (decoded JSON compared; nulls count as absent).
--   @odata.type annotations are ignored except on mediaConfig, meetingInfo
--   and callOptions, the polymorphic properties Graph needs them on.
--   Placeholders the docs write where a value goes (PLACEHOLDERS) are
--   replaced on both sides; a create without `source` may get graphcall's
--   default source (Graph fills in the app as the source anyway).
-- * response: the emulator answered that request with the example's status
--   and a body with the example's property names and JSON types (a null
--   matches any type; nested nulls may be absent: they echo the request).
-- * notification: parse_notifications accepts it with the kind, call_id,
--   operation_id and state its resourceUrl and resourceData say, and the
--   client dispatches it to the call, participant roster, operation or
--   content-sharing event it is about.
--
-- Examples marked "parses": false use the corpus' repaired body (trailing
-- commas or // comments removed) where there is one, reviewed by hand;
-- HAND holds the hand-written equivalents of the others.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local cjson = require("cjson.safe").new()

local DIR = "../shared/graph-examples/"
local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"

local function read_json(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return cjson.decode(text)
end

local index = read_json(DIR .. "index.json")

-- Placeholder values of the docs and what stands for them on both sides.
local PLACEHOLDERS = {
  ["callbackUri-value"] = "https://bot.contoso.com/callback",
  ["notRecording | recording | failed"] = "recording",
}

-- Hand-written equivalents of examples the corpus could not repair.
local HAND = {
  -- the docs' JSON lacks a closing brace after transferTarget
  ["v1.0/api/call-transfer.md#25"] = { transferTarget = { endpointType = "default", identity = { user = {
      id = "550fae72-d251-43ec-868c-373732c2704f", displayName = "Heidi Steen" } } },
    transferee = { identity = { user = { id = "751f6800-3180-414d-bd94-333364659951",
      tenantId = "72f988bf-86f1-41af-91ab-2d7cd011db47" } }, participantId = "909c6581-5130-43e9-88f3-fcb3582cde37" } },
  -- the docs put languageId and region beside transferTarget, where transfer has no such
  -- parameters; the target's own languageId/region are what Graph reads (as in examples 3 and 4)
  ["beta/api/call-transfer.md#26"] = { transferTarget = { endpointType = "default", identity = { user = {
      id = "550fae72-d251-43ec-868c-373732c2704f", tenantId = "72f988bf-86f1-41af-91ab-2d7cd011db47",
      displayName = "Heidi Steen" } }, languageId = "languageId-value", region = "region-value" },
    transferee = { identity = { user = { id = "751f6800-3180-414d-bd94-333364659951",
      tenantId = "72f988bf-86f1-41af-91ab-2d7cd011db47" } }, participantId = "909c6581-5130-43e9-88f3-fcb3582cde37" } },
  -- "participants": [""] is a placeholder for participant ids
  ["beta/api/participant-muteall.md#2"] = { participants = { "a7ebfb2d-871e-419c-87af-27290b22e8db" },
    clientContext = "clientContext-value" },
  -- the recording download: a binary body, checked as the emulator's 200 WAV below
  ["v1.0/api/call-record.md#5"] = "recording", ["beta/api/call-record.md#6"] = "recording",
  -- a media configuration blob, opaque to graphcall: passed through as a string
  ["beta/api/application-post-calls.md#10"] = "blob",
}

-- The example's values as a bot has them: no nulls, integers as integers, placeholders replaced.
local function clean(v)
  if v == cjson.null then return nil end
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) == "string" then return PLACEHOLDERS[v] or v end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = clean(x) end
  return out
end

-- Examples that parse but leave out what Graph requires: corrected on both sides.
local function with_blob(b)
  b.mediaConfig.blob = "<Media Session Configuration>"
  return b
end
local PATCHES = {
  -- app-hosted media without its blob: Graph cannot connect media it has no
  -- configuration for, and graphcall requires the blob (example 2 shows it)
  ["v1.0/api/application-post-calls.md#12"] = with_blob,
  ["v1.0/api/application-post-calls.md#19"] = with_blob,
}

local function body_of(e)
  if HAND[e.id] ~= nil then return HAND[e.id] end
  if e.parses == false then return e.repaired_body end
  if PATCHES[e.id] then return PATCHES[e.id](e.body) end
  return e.body
end

local NEEDS_TYPE = { mediaConfig = true, meetingInfo = true, callOptions = true }

-- Graph JSON as compared: no nulls, no @odata.type where Graph does not need it, placeholders replaced.
local function normal(v, parent)
  if type(v) == "string" then return PLACEHOLDERS[v] or v end
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if x ~= cjson.null and not (k == "@odata.type" and not NEEDS_TYPE[parent]) then out[k] = normal(x, k) end
  end
  return out
end

local function jtype(v)
  if v == cjson.null then return "null" end
  if type(v) == "table" then return next(v) == nil and "empty" or (#v > 0 and "array" or "object") end
  return type(v)
end

-- Does `got` have every property of `want`, with the same JSON type? The
-- names are compared at the top and in the elements of a collection
-- (`value`); deeper down only the types, since those objects echo what the
-- request carried (the docs' requests and responses often show different
-- people). Returns nil, or where they differ.
local function same_shape(want, got, path, names)
  for k, w in pairs(want) do
    local g, where = got[k], path .. "." .. tostring(k)
    if g == nil then
      if names then return where .. " missing" end
    elseif w ~= cjson.null and g ~= cjson.null then
      local tw, tg = jtype(w), jtype(g)
      if tw ~= tg and tw ~= "empty" and tg ~= "empty" then return ("%s: %s, not %s"):format(where, tg, tw) end
      if tw == "object" and tg == "object" then
        local why = same_shape(w, g, where, false)
        if why then return why end
      elseif tw == "array" and tg == "array" and type(w[1]) == "table" and type(g[1]) == "table" then
        local why = same_shape(w[1], g[1], where .. "[1]", names and k == "value")
        if why then return why end
      end
    end
  end
end

-- Graph JSON -> graphcall's spec keys.
local IDENTITY_TYPES = { user = "user", phone = "phone", application = "application",
  applicationInstance = "application_instance", guest = "guest" }

local function identity_of(set, extra)
  for key, kind in pairs(IDENTITY_TYPES) do
    local i = type(set) == "table" and set[key]
    if type(i) == "table" then
      local t = { id = i.id, name = i.displayName, tenant = i.tenantId, identity_provider = i.identityProvider }
      for k, v in pairs(extra or {}) do t[k] = v end
      return graphcall[kind](t)
    end
  end
  error("no identity in " .. tostring(cjson.encode(set)))
end

local function target_of(t)
  return identity_of(t.identity, { replaces_call_id = t.replacesCallId, participant_id = t.participantId,
    endpoint_type = t.endpointType })
end

local function map(list, fn)
  local out = {}
  for i, v in ipairs(list or {}) do out[i] = fn(v) end
  return #out > 0 and out or nil
end

local function prompt_of(p)
  return { uri = p.mediaInfo.uri, resource_id = p.mediaInfo.resourceId }
end

local function media_of(m)
  if type(m) ~= "table" then return nil end
  if (m["@odata.type"] or ""):find("appHosted") then
    return { type = "app_hosted", blob = m.blob, remove_from_default_audio_group = m.removeFromDefaultAudioGroup }
  end
  return { type = "service_hosted", prompts = map(m.preFetchMedia, function(p)
    return { uri = p.uri, resource_id = p.resourceId } end),
    remove_from_default_audio_group = m.removeFromDefaultAudioGroup }
end

local function snake(options)
  if type(options) ~= "table" then return nil end
  local out = {}
  for k, v in pairs(options) do
    if k ~= "@odata.type" then out[(k:gsub("%u", function(c) return "_" .. c:lower() end))] = v end
  end
  return out
end

local function create_spec(b, callback)
  local spec = { callback_uri = callback, subject = b.subject, modalities = b.requestedModalities,
    media = media_of(b.mediaConfig), tenant = b.tenantId, targets = map(b.targets, target_of),
    call_options = snake(b.callOptions) }
  local src = type(b.source) == "table" and b.source
  if src then
    spec.source = identity_of(src.identity)
    spec.language_id, spec.region = src.languageId, src.region
  end
  if type(b.chatInfo) == "table" then
    spec.chat_info = { thread_id = b.chatInfo.threadId, message_id = b.chatInfo.messageId,
      reply_chain_message_id = b.chatInfo.replyChainMessageId }
  end
  local m = b.meetingInfo
  if type(m) == "table" then
    if m.organizer then
      spec.organizer = identity_of(m.organizer)
      spec.allow_conversation_without_host = m.allowConversationWithoutHost
    elseif m.joinMeetingId then
      spec.meeting_id, spec.passcode = m.joinMeetingId, m.passcode
    elseif m.token then
      spec.meeting_token = m.token
    end
  end
  local known = { ["@odata.type"] = true, callbackUri = true, subject = true, requestedModalities = true,
    mediaConfig = true, tenantId = true, targets = true, callOptions = true, source = true, chatInfo = true,
    meetingInfo = true }
  for k, v in pairs(b) do
    if not known[k] then
      spec.extra = spec.extra or {}
      spec.extra[k] = v
    end
  end
  return spec
end

local function ctx(b) return b.clientContext end

-- action -> fn(call, body, participant): what a bot writes for that example.
local RECIPES = {
  answer = function(c, b) return c:answer { callback_uri = b.callbackUri, modalities = b.acceptedModalities,
    media = media_of(b.mediaConfig), call_options = snake(b.callOptions),
    participant_capacity = b.participantCapacity } end,
  reject = function(c, b) return c:reject { reason = b.reason, callback_uri = b.callbackUri } end,
  redirect = function(c, b)
    local policies = map(b.routingPolicies, function(p)
      return (p:gsub("%u", function(x) return "_" .. x:lower() end))
    end)
    return c:redirect { targets = map(b.targets, target_of), callback_uri = b.callbackUri, timeout = b.timeout,
      routing_policies = policies }
  end,
  keepAlive = function(c) return c:keep_alive() end,
  playPrompt = function(c, b) return c:play_prompt { prompts = map(b.prompts, prompt_of), loop = b.loop,
    client_context = ctx(b) } end,
  recordResponse = function(c, b) return c:record_response { prompts = map(b.prompts, prompt_of),
    barge_in_allowed = b.bargeInAllowed, initial_silence_timeout = b.initialSilenceTimeoutInSeconds,
    max_silence_timeout = b.maxSilenceTimeoutInSeconds, max_record_duration = b.maxRecordDurationInSeconds,
    play_beep = b.playBeep, stop_tones = b.stopTones, client_context = ctx(b) } end,
  cancelMediaProcessing = function(c, b) return c:cancel_media_processing { client_context = ctx(b) } end,
  subscribeToTone = function(c, b) return c:subscribe_to_tone { client_context = ctx(b) } end,
  mute = function(c, b) return c:mute { client_context = ctx(b) } end,
  unmute = function(c, b) return c:unmute { client_context = ctx(b) } end,
  addLargeGalleryView = function(c, b) return c:add_large_gallery_view { client_context = ctx(b) } end,
  sendDtmfTones = function(c, b) return c:send_dtmf_tones { tones = b.tones,
    delay_between_tones_ms = b.delayBetweenTonesMs, client_context = ctx(b) } end,
  changeScreenSharingRole = function(c, b) return c:change_screen_sharing_role { role = b.role } end,
  updateRecordingStatus = function(c, b) return c:update_recording_status {
    status = ({ notRecording = "not_recording" })[b.status] or b.status, client_context = ctx(b) } end,
  transfer = function(c, b)
    local t = b.transferTarget
    return c:transfer { target = target_of(t), language_id = t.languageId, region = t.region,
      transferee = b.transferee and identity_of(b.transferee.identity),
      transferee_participant_id = b.transferee and b.transferee.participantId, client_context = b.clientContext }
  end,
  invite = function(c, b)
    return c:invite { participants = map(b.participants, target_of), client_context = ctx(b) }
  end,
  muteAll = function(c, b) return c:mute_all { participants = b.participants, client_context = ctx(b) } end,
  configureMixer = function(c, b)
    return c:configure_mixer { client_context = ctx(b), participant_mixer_levels = map(b.participantMixerLevels,
      function(m) return { participant = m.participant, exclusive = m.exclusive, ducking = snake(m.ducking),
        source_levels = map(m.sourceLevels, snake) } end) }
  end,
  participants = function(c) return c:participants() end,
  get = function(c) return c.client:get_call(c.id) end,
  delete = function(c) return c:hangup() end,
  participant_get = function(_, _, p) return p:get() end,
  participant_delete = function(_, _, p) return p:remove() end,
  participant_mute = function(_, b, p) return p:mute { client_context = ctx(b) } end,
  startHoldMusic = function(_, b, p) return p:start_hold_music { client_context = ctx(b),
    custom_prompt = b.customPrompt and prompt_of(b.customPrompt) } end,
  stopHoldMusic = function(_, b, p) return p:stop_hold_music { client_context = ctx(b) } end,
}

-- The action an example's method and path name.
local function action_of(e)
  local path = e.path:gsub("microsoft%.graph%.", "")
  if path:match("/calls$") then return "create" end
  local rest = path:match("/calls/[^/]+(.*)$") or ""
  if rest == "" then return e.method == "GET" and "get" or "delete" end
  local pid, act = rest:match("^/participants/([^/]+)/?(%a*)$")
  if pid and pid ~= "invite" and pid ~= "muteAll" and pid ~= "configureMixer" then
    if act == "" then return e.method == "GET" and "participant_get" or "participant_delete" end
    return act == "mute" and "participant_mute" or act
  end
  return rest:match("(%a+)$")
end

local INCOMING = { answer = true, reject = true, redirect = true }

local function world()
  local w = {}
  w.loop = graphcall.new_loop { timeout = 5 }
  w.emu = assert(emulator.start { loop = w.loop, token = "tok", notify_delay = 0, operation_delay = 0,
    app_id = APP_ID })
  local function client(endpoint)
    return graphcall.new { app_id = APP_ID, token = "tok", graph_url = w.emu.url, loop = w.loop,
      endpoint = endpoint }
  end
  w.client, w.beta = client("v1.0"), client("beta")
  w.rx = assert(w.client:receiver { openid_url = w.emu.openid_url })
  w.beta_rx = assert(w.beta:receiver { openid_url = w.emu.openid_url })
  w.new_client = client
  function w.close()
    w.rx:close()
    w.beta_rx:close()
    w.emu:close()
    w.loop:close()
  end
  return w
end

-- A call in the state the action needs, on the client of the example's version.
local function call_for(w, action, beta)
  local client, rx = beta and w.beta or w.client, beta and w.beta_rx or w.rx
  if INCOMING[action] then
    local call
    client:on("incoming", function(c) call = c end)
    w.emu:ring { callback_uri = rx:url() }
    w.loop:wait(function() return call ~= nil end, 5)
    client.handlers.incoming = nil
    return call
  end
  local call = assert(client:call { callback_uri = rx:url(), targets = { graphcall.user { id = "u" } } })
  assert(call:wait("established", 5))
  return call
end

-- Run a request example through graphcall and the emulator: the result
-- record { sent = decoded body, status, response = decoded answer }, or nil, why.
local function run_request(w, page_beta, e, body)
  local action = action_of(e)
  local record
  if action == "create" then
    local client, rx = page_beta and w.beta or w.client, page_beta and w.beta_rx or w.rx
    local spec = create_spec(body, rx:url())
    client:call(spec)
  else
    local recipe = RECIPES[action]
    if not recipe then return nil, "no recipe for " .. tostring(action) end
    local call = call_for(w, action, page_beta)
    if not call then return nil, "no incoming call" end
    local p
    if action:find("^participant_") or action:find("HoldMusic$") then
      local pid = e.path:match("/participants/([%w%-]+)") or "{id}"
      pid = pid == "{id}" and "c35ee5b2-bd8d-4d64-9f51-8f0d6aafd2c4" or pid
      w.emu:add_participant(call.id, { user = { id = "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96" } }, pid)
      p = call:adopt_participant { id = pid }
      if action == "stopHoldMusic" then assert(p:start_hold_music()) end
    end
    local n = #w.emu.requests
    recipe(call, body, p)
    record = w.emu.requests[#w.emu.requests]
    if #w.emu.requests == n then return nil, "nothing sent" end
  end
  record = record or w.emu.requests[#w.emu.requests]
  local sent = record.json
  if action == "create" and type(body) == "table" and body.source == nil and type(sent) == "table" then
    sent.source = nil
  end
  return { sent = sent, status = record.status, response = record.response ~= "" and cjson.decode(record.response),
    callback = action == "create" and (page_beta and w.beta_rx or w.rx):url() }
end

-- The expected body, with the bot's receiver standing for the example's callbackUri on a create.
local function expected(body, callback)
  local want = normal(body)
  if callback and want.callbackUri then want.callbackUri = callback end
  return want
end

local function check_notification(w, body)
  local batch, err = graphcall.parse_notifications(cjson.encode(body))
  if not batch then return "rejected: " .. tostring(err) end
  for i, n in ipairs(batch) do
    local v = body.value[i]
    local url = v.resourceUrl or v.resource or ""
    local want_kind = url:find("/operations/") and "operation" or url:find("/participants") and "participants"
      or url:lower():find("/contentsharingsessions") and "content_sharing" or "call"
    if n.kind ~= want_kind then return ("kind %s, not %s"):format(tostring(n.kind), want_kind) end
    local cid = url:match("calls/([^/]+)")
    if n.call_id ~= cid then return "call_id " .. tostring(n.call_id) end
    if want_kind == "operation" and n.operation_id ~= url:match("/operations/([^/]+)") then return "operation_id" end
    local data = type(v.resourceData) == "table" and v.resourceData or {}
    local state = type(data.state) == "string" and data.state or nil
    if n.state ~= state then return "state " .. tostring(n.state) end
    -- dispatch: a client with a call of that id
    local client = w.new_client("v1.0")
    local heard = {}
    client:on("incoming", function() heard.incoming = true end)
    local incoming = want_kind == "call" and n.change_type == "created" and state == "incoming"
    local call, op
    if not incoming then
      w.emu:fail_next { mode = "body", body = cjson.encode { id = cid, state = "incoming" } }
      call = assert(client:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } })
      call:on("state", function(_, s) heard.state = s end)
      call:on("participants", function(_, list) heard.participants = #list end)
      call:on("content_sharing", function() heard.sharing = true end)
      call:on("notification", function() heard.notification = true end)
      if want_kind == "operation" then
        w.emu:fail_next { mode = "body", answer = 200, body = cjson.encode { id = n.operation_id, status = "running",
          clientContext = n.client_context } }
        op = assert(call:play_prompt { prompts = { { uri = "https://cdn.contoso.com/beep.wav" } },
          client_context = n.client_context })
      end
    end
    client:dispatch(batch)
    if incoming then
      if not heard.incoming then return "no incoming event" end
    elseif want_kind == "call" then
      local want = state or (n.change_type == "deleted" and "terminated")
      if want and heard.state ~= want then return "state event " .. tostring(heard.state) end
      if not want and not heard.notification then return "not dispatched" end
    elseif want_kind == "participants" then
      if heard.participants == nil then return "no participants event" end
    elseif want_kind == "content_sharing" then
      if not heard.sharing then return "no content_sharing event" end
    elseif n.status == "completed" or n.status == "failed" then
      if op.status ~= n.status then return "operation " .. op.status end
    elseif not heard.notification then
      return "not dispatched"
    end
  end
end

local describe_corpus = index and describe or pending
describe_corpus("Graph's documentation examples (" .. DIR .. ")", function()
  local w, rows = nil, {}
  setup(function() w = world() end)
  teardown(function()
    w.close()
    local lines = { ("%-60s %9s %9s %13s"):format("page", "requests", "responses", "notifications") }
    for _, r in ipairs(rows) do
      local function cell(c) return c.n == 0 and "-" or ("%d/%d"):format(c.ok, c.n) end
      lines[#lines + 1] = ("%-60s %9s %9s %13s"):format(r.page, cell(r.request), cell(r.response),
        cell(r.notification))
    end
    io.stdout:write("\n", table.concat(lines, "\n"), "\n")
    w, rows = nil, nil
    collectgarbage()
    collectgarbage()
  end)

  for _, page in ipairs(index and index.pages or {}) do
    it(page.page, function()
      local doc = assert(read_json(DIR .. page.file))
      local row = { page = page.page, request = { n = 0, ok = 0 }, response = { n = 0, ok = 0 },
        notification = { n = 0, ok = 0 } }
      rows[#rows + 1] = row
      local beta = page.page:find("^beta/") ~= nil
      local failures, last = {}, nil
      local function count(kind, why, e)
        row[kind].n = row[kind].n + 1
        if why then failures[#failures + 1] = ("%s %s: %s"):format(e.id, kind, why)
        else row[kind].ok = row[kind].ok + 1 end
      end
      for _, e in ipairs(doc.examples) do
        local body = body_of(e)
        if e.kind == "request" then
          if HAND[e.id] == "blob" then body = nil end
          local r, why = run_request(w, beta or (e.path or ""):find("^/beta/") ~= nil, e, clean(body))
          last = r
          if r and type(body) == "table" then
            local want, got = expected(body, r.callback), normal(r.sent or {})
            if not (cjson.encode(want) == cjson.encode(got) or pcall(assert.same, want, got)) then
              why = "sent " .. tostring(cjson.encode(got)) .. "\n   want " .. tostring(cjson.encode(want))
            end
          end
          count("request", r == nil and why or (r and why) or nil, e)
        elseif e.kind == "response" and last then
          local why
          if HAND[e.id] == "recording" then
            why = nil -- the emulator's recording download is checked in control_spec (200, a WAV)
          elseif last.status ~= e.status then
            why = ("status %s, not %s"):format(tostring(last.status), tostring(e.status))
          elseif type(body) == "table" and next(body) then
            why = type(last.response) ~= "table" and "no body" or same_shape(body, last.response, "", true)
          end
          count("response", why, e)
        elseif e.kind == "notification" and type(body) == "table" then
          count("notification", check_notification(w, body), e)
        end
      end
      assert.same({}, failures)
    end)
  end
end)
