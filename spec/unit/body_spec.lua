-- The body of a create request is written as JSON text directly by the same
-- builder that can write Lua tables (core.build_body, the reference). The
-- text must decode to exactly those tables, escape every string as JSON
-- requires, and survive long strings, errors midway and builds nested in a
-- finalizer.
local graphcall = require "graphcall"
local core = require "graphcall.core"
local cjson = require "cjson"
local json = require "support.json"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local THREAD = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2"
local ORGANIZER = { id = "90ED37DC-D8E3-4E11-9DE3-30A955DDA06F", tenant = "49BFC225-8482-4AB8-94E7-76B48FDB9849" }
local JOIN_LINK = "https://teams.microsoft.com/l/meetup-join/"
  .. "19%3ameeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk%40thread.v2/0"
  .. "?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
  .. "4b444206-207c-42f8-92a6-e332b41c88a2%22%7d"

local client = graphcall.new { app_id = APP_ID, callback_uri = "https://bot.contoso.com/api/calls",
  endpoint = "beta/app" }

local function prompts()
  return graphcall.prompts {
    { uri = "https://cdn.contoso.com/beep.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088E" },
    { uri = "https://cdn.contoso.com/cool.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088F" },
  }
end

local function heidi(name)
  return graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f",
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", name = name or "Heidi Steen" }
end

-- Strings JSON must escape, or that a writer could get wrong.
local TRICKY = {
  'quote " backslash \\ solidus / tab \t end',
  "\\u0000 \\\" \\\\ are text, not escapes",
  '"},{"injected":true,"x":"',
  "UTF-8: é ß € 𝄞 \u{2028} \u{2029} \u{FEFF} DEL \x7f",
  "\t",
  string.rep('"\\', 3000),  -- grows the buffer past its first 4 KB
}

-- name, mode, spec, seed fixture (or nil)
local CASES = {
  { "p2p service-hosted", "call", { subject = "Test Call", targets = { heidi() }, media = prompts(),
      language_id = "languageId-value", region = "region-value", tenant = "tenantId-value" },
    "p2p_service_hosted.json" },
  { "p2p app-hosted", "call", { subject = "Test Call",
      source = graphcall.application { id = "550fae72-d251-43ec-868c-373732c2704f",
        tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", name = "IT Bot" },
      targets = { heidi() }, modalities = { "audio" }, media = graphcall.app_media { blob = "<media config blob>" },
      language_id = "languageId-value", region = "region-value", tenant = "tenantId-value" },
    "p2p_app_hosted.json" },
  { "group call", "call", { subject = "Test Call",
      targets = { graphcall.user { id = "29362BD4-CD58-4ED0-A206-0E4A33DBB0B6", name = "Heidi Steen" },
                  graphcall.phone { id = "+12345678890", name = "+12345678890" } },
      modalities = { "audio", "video" }, media = prompts(), chat_info = { thread_id = THREAD, message_id = "0" } },
    "group_call.json" },
  { "join a private meeting", "join", { subject = "Test Call", modalities = { "audio", "video" },
      media = prompts(), chat_info = { thread_id = THREAD, message_id = "0" }, organizer = graphcall.user(ORGANIZER) },
    "join_private_meeting.json" },
  { "join a channel meeting", "join", { subject = "Test Call", modalities = { "audio", "video" },
      media = prompts(), chat_info = { thread_id = THREAD, message_id = "1507228578052" },
      organizer = graphcall.user(ORGANIZER) },
    "join_channel_meeting.json" },
  { "join a channel meeting as a guest", "join", { subject = "Test Call", guest = "App_Guest_DisplayName",
      modalities = { "audio", "video" }, media = prompts(),
      chat_info = { thread_id = THREAD, message_id = "1507228578052" }, organizer = graphcall.user(ORGANIZER) },
    "join_channel_meeting_guest.json" },
  { "join by link", "join", { url = JOIN_LINK, allow_conversation_without_host = true } },
  { "join by meeting id", "join", { meeting_id = "2414128301281", passcode = "NzhDLMLT8b07DrkwkE",
      source = graphcall.guest { name = "Bot" } } },
  { "join by token", "join", { meeting_token = "token-value", tenant = "t" } },
  { "call options, instance source, replaces_call_id", "call", {
      source = graphcall.application_instance { id = "11111111-2222-3333-4444-555555555555" },
      targets = { graphcall.phone { id = "+12345678901", replaces_call_id = "abc" } },
      modalities = { "audio", "video_based_screen_sharing", "data" },
      call_options = { is_content_sharing_notification_enabled = true, hide_bot_after_escalation = false,
                       is_delta_roster_enabled = true } } },
  { "removeFromDefaultAudioGroup, empty prompts", "call", { targets = { heidi() },
      media = { type = "service_hosted", prompts = {}, remove_from_default_audio_group = false } } },
  { "extra", "call", { targets = { heidi() }, extra = {
      ["@odata.type"] = "#microsoft.graph.call", direction = "outgoing", routingPolicies = { "none" },
      ringingTimeoutInSeconds = 30, ratio = 0.25, negative = -7, flag = false, callChainId = graphcall.null,
      empty = {}, nested = { a = { b = { 1, 2, { c = "d" } } } } } } },
}
for i, s in ipairs(TRICKY) do
  CASES[#CASES + 1] = { "tricky string " .. i, "call", {
    subject = s, language_id = s, region = s,
    source = graphcall.application { id = APP_ID, name = s, tenant = s },
    targets = { heidi(s), graphcall.phone { id = "+1555", name = s, replaces_call_id = s } },
    media = graphcall.prompts { { uri = "https://cdn.contoso.com/a.wav?x=" .. s:gsub("[^%w]", ""), resource_id = s } },
    extra = { [s] = s, list = { s, { [s] = s } } },
  } }
  CASES[#CASES + 1] = { "tricky string " .. i .. " in a meeting", "join", {
    chat_info = { thread_id = s, message_id = s, reply_chain_message_id = s },
    organizer = graphcall.user { id = s, name = s, tenant = s, identity_provider = s }, tenant = s } }
  CASES[#CASES + 1] = { "tricky string " .. i .. " as a token and blob", "join", {
    meeting_token = s, media = graphcall.app_media { blob = s } } }
end

-- The request for a case, and the reference tables for its body.
local function build(case)
  local _, mode, spec = case[1], case[2], case[3]
  local req = client["prepare_" .. mode](client, spec)
  return req, core.build_body(client.app_id, spec, mode, client.callback_uri)
end

describe("the written body", function()
  for _, case in ipairs(CASES) do
    it("decodes to build_body's tables: " .. case[1], function()
      local req, ref = build(case)
      assert.same(ref, cjson.decode(req.body))
      if case[4] then assert.same(json.decode(json.fixture("seed/" .. case[4])), json.decode(req.body)) end
    end)
  end

  it("escapes every string as JSON requires: no raw control character, valid UTF-8", function()
    for _, case in ipairs(CASES) do
      local body = build(case).body
      assert.is_nil(body:find("[%z\1-\31]"), case[1])
      assert.is_not_nil(utf8.len(body), case[1])
    end
  end)

  it("gives back each tricky string exactly", function()
    for _, s in ipairs(TRICKY) do
      local req = client:prepare_call { subject = s, targets = { heidi(s) }, extra = { [s] = { s } } }
      local body = cjson.decode(req.body)
      assert.equal(s, body.subject)
      assert.equal(s, body.targets[1].identity.user.displayName)
      assert.same({ s }, body[s])
    end
  end)

  it("writes bodies over the kept buffer's size, and small ones after them", function()
    local big = string.rep("x\t\"", 30000) -- 90 KB of text, 150 KB written
    for _ = 1, 2 do
      local req = client:prepare_call { subject = big, targets = { heidi() } }
      assert.equal(big, cjson.decode(req.body).subject)
      local small = client:prepare_call { subject = "s", targets = { heidi() } }
      assert.same(core.build_body(client.app_id, { subject = "s", targets = { heidi() } }, "call", client.callback_uri),
        cjson.decode(small.body))
    end
  end)

  it("is whole after a spec that failed midway", function()
    local good = { subject = "after", targets = { heidi() }, media = prompts() }
    local expected = core.build_body(client.app_id, good, "call", client.callback_uri)
    -- each fails after part of the body is written
    local bad = {
      { subject = "x", targets = { heidi() }, media = { type = "nope" } },
      { targets = { heidi(), { type = "user" } } },
      { targets = { heidi() }, extra = { x = 0 / 0 } },
      { targets = { heidi() }, extra = { subject = "twice" }, subject = "once" },
      { targets = { heidi() }, extra = { x = print } },
    }
    for _, spec in ipairs(bad) do
      local ok, err = pcall(client.prepare_call, client, spec)
      assert.is_false(ok)
      local ok2, err2 = pcall(core.build_body, client.app_id, spec, "call", client.callback_uri)
      assert.is_false(ok2)
      assert.matches(err2, err, 1, true) -- the same builder refuses it the same way
      assert.same(expected, cjson.decode(client:prepare_call(good).body))
    end
  end)

  it("is whole when a finalizer builds a body in the middle of another", function()
    local spec = { subject = string.rep("outer ", 200), targets = { heidi(), heidi("B"), heidi("C") },
      media = prompts(), extra = { a = { 1, 2, 3 }, b = { c = { d = "e" } } } }
    local inner_spec = { subject = "inner", targets = { heidi("inner") } }
    local expected = cjson.encode(core.build_body(client.app_id, spec, "call", client.callback_uri))
    local inner_expected = core.build_body(client.app_id, inner_spec, "call", client.callback_uri)
    local building, nested, inner = false, 0, {}
    local function finalizer()
      if building then nested = nested + 1 end
      inner[#inner + 1] = client:prepare_call(inner_spec).body
    end
    collectgarbage("incremental", 1, 100, 1) -- tiny pause and steps: finalizers run at allocations
    for _ = 1, 300 do
      for _ = 1, 20 do setmetatable({}, { __gc = finalizer }) end
      building = true
      local body = client:prepare_call(spec).body
      building = false
      assert.same(cjson.decode(expected), cjson.decode(body))
    end
    collectgarbage("incremental", 200, 100, 13) -- Lua 5.4's defaults
    collectgarbage()
    assert.is_true(nested > 0, "no finalizer ran during a build")
    for _, body in ipairs(inner) do assert.same(inner_expected, cjson.decode(body)) end
  end)

  it("build_parts gives the tables the operations merge", function()
    local p = core.build_parts(client.app_id, { targets = { heidi('a "b"') }, modalities = { "audio" },
      media = prompts(), callback_uri = "https://bot.contoso.com/x" })
    assert.same({
      callbackUri = "https://bot.contoso.com/x",
      targets = { { identity = { user = { id = "550fae72-d251-43ec-868c-373732c2704f",
        tenantId = "72f988bf-86f1-41af-91ab-2d7cd011db47", displayName = 'a "b"' } } } },
      requestedModalities = { "audio" },
      mediaConfig = { ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig", preFetchMedia = {
        { uri = "https://cdn.contoso.com/beep.wav", resourceId = "1D6DE2D4-CD51-4309-8DAA-70768651088E" },
        { uri = "https://cdn.contoso.com/cool.wav", resourceId = "1D6DE2D4-CD51-4309-8DAA-70768651088F" } } },
    }, p)
    assert.same({}, core.build_parts(client.app_id, {}))
  end)
end)
