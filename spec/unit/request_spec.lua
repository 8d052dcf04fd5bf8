-- Request construction: every seed example reproduced through the Lua API,
-- the endpoints, and every bad spec rejected before anything is sent.
local graphcall = require "graphcall"
local json = require "support.json"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local CALLBACK = "https://bot.contoso.com/api/calls"
local THREAD = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2"

local function seed_client(extra)
  local opts = { app_id = APP_ID, callback_uri = CALLBACK, endpoint = "beta/app" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return graphcall.new(opts)
end

local function seed_prompts()
  return graphcall.prompts {
    { uri = "https://cdn.contoso.com/beep.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088E" },
    { uri = "https://cdn.contoso.com/cool.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088F" },
  }
end

local function heidi()
  return graphcall.user {
    id = "550fae72-d251-43ec-868c-373732c2704f",
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47",
    name = "Heidi Steen",
  }
end

local ORGANIZER = { id = "90ED37DC-D8E3-4E11-9DE3-30A955DDA06F", tenant = "49BFC225-8482-4AB8-94E7-76B48FDB9849" }

local function assert_seed(req, fixture)
  assert.equal("POST", req.method)
  assert.equal("https://graph.microsoft.com/beta/app/calls", req.url)
  assert.equal("/beta/app/calls", req.path)
  assert.same(json.decode(json.fixture("seed/" .. fixture)), json.decode(req.body))
end

describe("the seed's examples", function()
  it("peer-to-peer VOIP call with service-hosted media", function()
    local req = seed_client():prepare_call {
      subject = "Test Call",
      targets = { heidi() },
      media = seed_prompts(),
      language_id = "languageId-value",
      region = "region-value",
      tenant = "tenantId-value",
    }
    assert.equal("call", req.kind)
    assert_seed(req, "p2p_service_hosted.json")
  end)

  it("peer-to-peer VOIP call with app-hosted media", function()
    local req = seed_client():prepare_call {
      subject = "Test Call",
      source = graphcall.application {
        id = "550fae72-d251-43ec-868c-373732c2704f",
        tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47",
        name = "IT Bot",
      },
      targets = { heidi() },
      modalities = { "audio" },
      media = graphcall.app_media { blob = "<media config blob>" },
      language_id = "languageId-value",
      region = "region-value",
      tenant = "tenantId-value",
    }
    assert_seed(req, "p2p_app_hosted.json")
  end)

  it("group call with a user and a phone target and chatInfo", function()
    local req = seed_client():prepare_call {
      subject = "Test Call",
      targets = {
        graphcall.user { id = "29362BD4-CD58-4ED0-A206-0E4A33DBB0B6", name = "Heidi Steen" },
        graphcall.phone { id = "+12345678890", name = "+12345678890" },
      },
      modalities = { "audio", "video" },
      media = seed_prompts(),
      chat_info = { thread_id = THREAD, message_id = "0" },
    }
    assert_seed(req, "group_call.json")
  end)

  it("join a private meeting", function()
    local req = seed_client():prepare_join {
      subject = "Test Call",
      modalities = { "audio", "video" },
      media = seed_prompts(),
      chat_info = { thread_id = THREAD, message_id = "0" },
      organizer = graphcall.user(ORGANIZER),
    }
    assert.equal("join", req.kind)
    assert_seed(req, "join_private_meeting.json")
  end)

  it("join a channel meeting", function()
    local req = seed_client():prepare_join {
      subject = "Test Call",
      modalities = { "audio", "video" },
      media = seed_prompts(),
      chat_info = { thread_id = THREAD, message_id = "1507228578052" },
      organizer = graphcall.user(ORGANIZER),
    }
    assert_seed(req, "join_channel_meeting.json")
  end)

  it("join a channel meeting as a guest", function()
    local req = seed_client():prepare_join {
      subject = "Test Call",
      guest = "App_Guest_DisplayName",
      modalities = { "audio", "video" },
      media = seed_prompts(),
      chat_info = { thread_id = THREAD, message_id = "1507228578052" },
      organizer = graphcall.user(ORGANIZER),
    }
    assert_seed(req, "join_channel_meeting_guest.json")
  end)

  it("graphcall.guest writes the documented guest identity; the seed's form is a user with provider None", function()
    local a = seed_client():prepare_join { guest = "Bot", meeting_id = "1" }
    local b = seed_client():prepare_join { source = graphcall.guest { name = "Bot" }, meeting_id = "1" }
    local c = seed_client():prepare_join { meeting_id = "1",
      source = graphcall.user { id = APP_ID, name = "Bot", identity_provider = "None" } }
    assert.same({ user = { id = APP_ID, displayName = "Bot", identityProvider = "None" } },
      json.decode(a.body).source.identity)
    assert.same(json.decode(a.body).source, json.decode(c.body).source)
    assert.same({ guest = { id = APP_ID, displayName = "Bot" } }, json.decode(b.body).source.identity)
  end)
end)

describe("endpoints and defaults", function()
  local spec = { targets = { heidi() } }

  it("posts to v1.0 /communications/calls by default", function()
    local req = graphcall.new({ app_id = APP_ID, callback_uri = CALLBACK }):prepare_call(spec)
    assert.equal("https://graph.microsoft.com/v1.0/communications/calls", req.url)
    assert.equal("/v1.0/communications/calls", req.path)
  end)

  it("supports beta, the seed's /app/calls and /applications/{id}/calls", function()
    local paths = {
      beta = "/beta/communications/calls",
      ["beta/app"] = "/beta/app/calls",
      ["beta/applications"] = "/beta/applications/" .. APP_ID .. "/calls",
    }
    for endpoint, path in pairs(paths) do
      local req = seed_client({ endpoint = endpoint }):prepare_call(spec)
      assert.equal(path, req.path)
      assert.equal("https://graph.microsoft.com" .. path, req.url)
    end
  end)

  it("uses graph_url (the emulator) without doubling slashes", function()
    local c = graphcall.new { app_id = APP_ID, callback_uri = CALLBACK, graph_url = "http://127.0.0.1:8931/" }
    assert.equal("http://127.0.0.1:8931/v1.0/communications/calls", c:prepare_call(spec).url)
  end)

  it("defaults the source to the client's application and the media to service-hosted", function()
    local body = json.decode(seed_client():prepare_call(spec).body)
    assert.same({ identity = { application = { id = APP_ID } } }, body.source)
    assert.same({ ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig" }, body.mediaConfig)
    assert.equal(CALLBACK, body.callbackUri)
    assert.is_nil(body.requestedModalities)
    assert.is_nil(body.tenantId)
  end)

  it("lets a spec override the client's callback_uri", function()
    local body = json.decode(seed_client():prepare_call {
      targets = { heidi() }, callback_uri = "https://other.contoso.com/cb",
    }.body)
    assert.equal("https://other.contoso.com/cb", body.callbackUri)
  end)

  it("accepts an http callback on loopback, for the local emulator", function()
    local body = json.decode(seed_client():prepare_call {
      targets = { heidi() }, callback_uri = "http://127.0.0.1:9000/api/calls",
    }.body)
    assert.equal("http://127.0.0.1:9000/api/calls", body.callbackUri)
  end)

  it("maps call options, an application instance source, replaces_call_id and snake_case modalities", function()
    local body = json.decode(seed_client():prepare_call {
      source = graphcall.application_instance { id = "11111111-2222-3333-4444-555555555555" },
      targets = { graphcall.phone { id = "+12345678901", replaces_call_id = "abc" } },
      modalities = { "audio", "video_based_screen_sharing" },
      call_options = { is_content_sharing_notification_enabled = true, hide_bot_after_escalation = false },
    }.body)
    assert.same({ applicationInstance = { id = "11111111-2222-3333-4444-555555555555" } }, body.source.identity)
    assert.same({ identity = { phone = { id = "+12345678901" } }, replacesCallId = "abc" }, body.targets[1])
    assert.same({ "audio", "videoBasedScreenSharing" }, body.requestedModalities)
    assert.same({
      ["@odata.type"] = "#microsoft.graph.outgoingCallOptions",
      isContentSharingNotificationEnabled = true,
      hideBotAfterEscalation = false,
    }, body.callOptions)
  end)

  it("passes properties it does not model through extra", function()
    local body = json.decode(seed_client():prepare_call {
      targets = { heidi() },
      extra = {
        ["@odata.type"] = "#microsoft.graph.call",
        direction = "outgoing",
        routingPolicies = { "none" },
        ringingTimeoutInSeconds = 30,
        callChainId = graphcall.null,
      },
    }.body)
    assert.equal("#microsoft.graph.call", body["@odata.type"])
    assert.equal("outgoing", body.direction)
    assert.same({ "none" }, body.routingPolicies)
    assert.equal(30, body.ringingTimeoutInSeconds)
    local raw = require("cjson").decode(seed_client():prepare_call {
      targets = { heidi() }, extra = { callChainId = graphcall.null },
    }.body)
    assert.equal(require("cjson").null, raw.callChainId)
  end)

  it("keeps removeFromDefaultAudioGroup and an empty prompt list", function()
    local body = json.decode(seed_client():prepare_call {
      targets = { heidi() },
      media = { type = "service_hosted", prompts = {}, remove_from_default_audio_group = false },
    }.body)
    assert.same({
      ["@odata.type"] = "#microsoft.graph.serviceHostedMediaConfig",
      removeFromDefaultAudioGroup = false,
    }, body.mediaConfig)
  end)

  it("prints a request and never leaks the client secret", function()
    local c = seed_client { client_secret = "s3cr3t-value", tenant = "contoso.onmicrosoft.com" }
    assert.equal("graphcall.request: POST https://graph.microsoft.com/beta/app/calls",
      tostring(c:prepare_call(spec)))
    assert.is_nil(tostring(c):find("s3cr3t", 1, true))
    for _, v in pairs(c) do assert.is_nil(tostring(v):find("s3cr3t", 1, true)) end
  end)
end)

describe("bad specs raise before anything is sent, naming the field", function()
  local client = seed_client()
  local function rejects(spec, pattern, mode)
    local ok, err = pcall(client["prepare_" .. (mode or "call")], client, spec)
    assert.is_false(ok)
    assert.is_string(err)
    assert.matches(pattern, err, 1, true)
  end

  it("callback_uri missing, or not https", function()
    local bare = graphcall.new { app_id = APP_ID }
    local ok, err = pcall(bare.prepare_call, bare, { targets = { heidi() } })
    assert.is_false(ok)
    assert.matches("callback_uri: required", err, 1, true)
    rejects({ targets = { heidi() }, callback_uri = "http://bot.contoso.com/cb" },
      "callback_uri: must be an https URL")
    rejects({ targets = { heidi() }, callback_uri = "not a url" }, "callback_uri: not a valid absolute URL")
    rejects({ targets = { heidi() }, callback_uri = "https://user:pw@bot.contoso.com/" },
      "callback_uri: must not carry credentials")
    rejects({ targets = { heidi() }, callback_uri = "https://bot.contoso.com/" .. ("x"):rep(2048) },
      "callback_uri: longer than 2048 bytes")
  end)

  it("remembers accepted URLs, never a refused one, and only so many", function()
    -- accepted URLs are cached (so the same callback is not parsed for every
    -- call); 300 distinct ones overflow the cache, which starts over
    for i = 1, 300 do
      local req = client:prepare_call { targets = { heidi() }, callback_uri = "https://bot" .. i .. ".contoso.com/cb" }
      assert.equals("https://bot" .. i .. ".contoso.com/cb", json.decode(req.body).callbackUri)
    end
    for _ = 1, 2 do -- a refusal is not remembered as an acceptance
      rejects({ targets = { heidi() }, callback_uri = "http://bot.contoso.com/cb" },
        "callback_uri: must be an https URL")
    end
    rejects({ targets = { heidi() }, media = graphcall.prompts { { uri = "ftp://cdn.contoso.com/a.wav" } } },
      "media.prompts[1].uri: must be an https URL")
    assert.equals("https://bot1.contoso.com/cb", json.decode(client:prepare_call {
      targets = { heidi() }, callback_uri = "https://bot1.contoso.com/cb" }.body).callbackUri)
  end)

  it("CR/LF in any value", function()
    rejects({ targets = { heidi() }, subject = "Test\r\nX-Injected: 1" }, "subject: contains CR/LF")
    rejects({ targets = { graphcall.user { id = "a", name = "Heidi\n" } } }, "targets[1].name: contains CR/LF")
    rejects({ chat_info = { thread_id = "19:x\r" }, organizer = graphcall.user { id = "o" } },
      "chat_info.thread_id: contains CR/LF", "join")
    rejects({ targets = { heidi() }, extra = { note = { "ok", "bad\n" } } }, "extra.note[2]: contains CR/LF")
    rejects({ targets = { heidi() }, subject = "nul\0byte" }, "subject: contains control character 0x00")
  end)

  it("invalid UTF-8", function()
    rejects({ targets = { heidi() }, subject = "caf\xc3" }, "subject: invalid UTF-8 at byte 4")
    rejects({ targets = { graphcall.user { id = "\xed\xa0\x80" } } }, "targets[1].id: invalid UTF-8 at byte 1")
    rejects({ targets = { heidi() }, extra = { ["k\xff"] = 1 } }, "invalid UTF-8")
  end)

  it("targets empty, missing, or not a list", function()
    rejects({ targets = {} }, "targets: must not be empty")
    rejects({ subject = "x" }, "call needs targets, or meeting info")
    rejects({ targets = { a = heidi() } }, "targets: expected an array")
    rejects({ targets = { heidi(), nil, heidi() } }, "targets: expected an array")
    rejects({ targets = { "heidi" } }, "targets[1]: expected table, got string")
    rejects({ targets = heidi() }, "targets: expected an array")
  end)

  it("identities: unknown type or key, missing id, bad phone number", function()
    rejects({ targets = { { type = "robot", id = "x" } } }, "targets[1].type: unknown identity type 'robot'")
    rejects({ targets = { graphcall.user { id = "x", tenant_id = "t" } } }, "targets[1]: unknown key 'tenant_id'")
    rejects({ targets = { graphcall.user { name = "x" } } }, "targets[1].id: required")
    rejects({ targets = { graphcall.phone { id = "12345" } } }, "targets[1].id: phone numbers are E.164")
    rejects({ targets = { graphcall.phone { id = "+1234abc" } } }, "targets[1].id: phone numbers are E.164")
    rejects({ targets = { graphcall.user { id = 42 } } }, "targets[1].id: expected string, got number")
    rejects({ targets = { graphcall.user { id = "" } } }, "targets[1].id: must not be empty")
    rejects({ targets = { heidi() }, source = graphcall.user { id = "x", replaces_call_id = "y" } },
      "source: unknown key 'replaces_call_id'")
    rejects({ targets = { heidi() }, source = graphcall.guest { name = "g" }, guest = "g" },
      "guest: cannot be combined with source")
  end)

  it("modalities: unknown, duplicate, empty", function()
    rejects({ targets = { heidi() }, modalities = { "audio", "smell" } }, "modalities[2]: unknown modality 'smell'")
    rejects({ targets = { heidi() }, modalities = { "audio", "audio" } }, "modalities[2]: duplicate 'audio'")
    rejects({ targets = { heidi() }, modalities = {} }, "modalities: expected a non-empty array")
    rejects({ targets = { heidi() }, modalities = "audio" }, "modalities: expected table, got string")
  end)

  it("media: unknown type, misplaced keys, bad prompts", function()
    rejects({ targets = { heidi() }, media = { type = "cloud" } }, "media.type: unknown media type 'cloud'")
    rejects({ targets = { heidi() }, media = graphcall.app_media {} }, "media.blob: required")
    rejects({ targets = { heidi() }, media = { type = "service_hosted", blob = "b" } },
      "media.blob: only for app_hosted")
    rejects({ targets = { heidi() }, media = { type = "app_hosted", blob = "b", prompts = {} } },
      "media.prompts: only for service_hosted")
    -- removeFromDefaultAudioGroup is a mediaConfig property: app-hosted media carries it too
    local app = seed_client():prepare_call { targets = { heidi() },
      media = { type = "app_hosted", blob = "b", remove_from_default_audio_group = true } }
    assert.is_true(json.decode(app.body).mediaConfig.removeFromDefaultAudioGroup)
    rejects({ targets = { heidi() }, media = graphcall.prompts { { uri = "ftp://cdn/x.wav" } } },
      "media.prompts[1].uri: must be an https URL")
    rejects({ targets = { heidi() }, media = graphcall.prompts { { url = "https://cdn/x.wav" } } },
      "media.prompts[1]: unknown key 'url'")
  end)

  it("meetings: nothing to join, conflicting or incomplete meeting info", function()
    rejects({ subject = "x" }, "join needs a meeting", "join")
    rejects({ targets = { heidi() } }, "join needs a meeting", "join")
    rejects({ organizer = graphcall.user(ORGANIZER) }, "organizer: needs chat_info", "join")
    rejects({ meeting_id = "1", meeting_token = "t" }, "give only one of", "join")
    rejects({ passcode = "p" }, "passcode: needs meeting_id", "join")
    rejects({ meeting_id = "1", allow_conversation_without_host = true }, "needs an organizer meeting", "join")
    rejects({ url = "https://teams.microsoft.com/meet/1", allow_conversation_without_host = true },
      "needs an organizer meeting", "join")
    rejects({ url = "https://teams.microsoft.com/meet/1", chat_info = { thread_id = "t" } },
      "url: cannot be combined with chat_info", "join")
    rejects({ chat_info = { thread_id = "t", message = "0" }, organizer = graphcall.user(ORGANIZER) },
      "chat_info: unknown key 'message'", "join")
  end)

  it("an unparsable join link", function()
    rejects({ url = "https://example.com/l/meetup-join/a/b?context={}" }, "url: not a Teams link", "join")
    rejects({ url = "https://teams.microsoft.com/l/meetup-join/19%3ax/0" }, "url: meetup-join link has no context",
      "join")
  end)

  it("unknown keys, wrong types", function()
    rejects({ targets = { heidi() }, subjcet = "typo" }, "call: unknown key 'subjcet'")
    rejects({ meeting_id = "1", colour = "red" }, "join: unknown key 'colour'", "join")
    rejects({ targets = { heidi() }, [1] = "x" }, "unexpected number key")
    rejects({ targets = { heidi() }, call_options = { mute = true } }, "call_options: unknown key 'mute'")
    rejects({ targets = { heidi() }, call_options = { hide_bot_after_escalation = "yes" } },
      "call_options.hide_bot_after_escalation: expected boolean, got string")
    rejects({ targets = { heidi() }, subject = 7 }, "subject: expected string, got number")
  end)

  it("extra values that would not survive JSON", function()
    rejects({ targets = { heidi() }, extra = { x = 0 / 0 } }, "extra.x: must be a finite number")
    rejects({ targets = { heidi() }, extra = { x = math.huge } }, "extra.x: must be a finite number")
    rejects({ targets = { heidi() }, extra = { x = 123456789012345 } }, "extra.x: integer too large")
    local cyclic = {}
    cyclic.self = cyclic
    rejects({ targets = { heidi() }, extra = { x = cyclic } }, "extra.x.self: the same table appears twice")
    -- shared subtables would multiply into a huge body: each table may appear once
    local shared = true
    for _ = 1, 15 do shared = { a = shared, b = shared } end
    rejects({ targets = { heidi() }, extra = { x = shared } }, "the same table appears twice")
    local wide = {}
    for i = 1, 10001 do wide[i] = i end
    rejects({ targets = { heidi() }, extra = { x = wide } }, "extra: more than 10000 values")
    rejects({ targets = { heidi() }, extra = { x = 1 / 3 } }, "does not survive JSON's 14 significant digits")
    rejects({ targets = { heidi() }, extra = { x = 2.0 ^ 53 } }, "does not survive JSON's 14 significant digits")
    local deep = {}
    for _ = 1, 20 do deep = { deep } end
    rejects({ targets = { heidi() }, extra = { x = deep } }, "nested deeper than 16 levels")
    rejects({ targets = { heidi() }, extra = { x = { 1, nil, 3 } } }, "extra.x: mixes array and object keys")
    rejects({ targets = { heidi() }, extra = { x = { 1, a = 2 } } }, "extra.x: mixes array and object keys")
    rejects({ targets = { heidi() }, extra = { x = print } }, "extra.x: unsupported value (function)")
    rejects({ targets = { heidi() }, extra = { subject = "x" }, subject = "y" }, "extra.subject: already set")
    rejects({ targets = { heidi() }, extra = { "positional" } }, "extra: keys must be Graph property names")
  end)

  it("reads spec tables raw: metamethods are never called", function()
    local proxy = setmetatable({}, { __index = function() error("__index must not run") end })
    rejects(proxy, "call needs targets")
    local target = setmetatable({ type = "user" }, { __index = function() return "+1555" end })
    rejects({ targets = { target } }, "targets[1].id: required")
  end)

  it("deep extra values inside a coroutine with a small stack", function()
    local v = true
    for _ = 1, 15 do v = { k = v } end
    local req = coroutine.wrap(function()
      return client:prepare_call { targets = { heidi() }, extra = { x = v } }
    end)()
    local depth, node = 0, json.decode(req.body).x
    while type(node) == "table" do depth, node = depth + 1, node.k end
    assert.equal(15, depth)
  end)

  it("a client changed after creation is checked again", function()
    local c = seed_client()
    c.graph_url = "ftp://attacker.example"
    local ok, err = pcall(c.prepare_call, c, { targets = { heidi() } })
    assert.is_false(ok)
    assert.matches("graph_url: must be an https URL", err, 1, true)
    c = seed_client { endpoint = "beta/applications" }
    c.app_id = "x/../../evil?a="
    ok, err = pcall(c.prepare_call, c, { targets = { heidi() } })
    assert.is_false(ok)
    assert.matches("app_id: expected a GUID", err, 1, true)
  end)

  it("misuse of the API itself", function()
    assert.has_error(function() client:prepare_call("targets") end,
      "graphcall.prepare_call: expected a spec table, got string")
    assert.has_error(function() client.prepare_call({}, {}) end)
    assert.has_error(function() graphcall.user("heidi") end)
    assert.has_error(function() graphcall.user { type = "phone", id = "x" } end)
    assert.has_error(function() graphcall.prompts("beep.wav") end)
  end)
end)

describe("graphcall.new", function()
  local function new_fails(opts, pattern)
    local ok, err = pcall(graphcall.new, opts)
    assert.is_false(ok)
    assert.matches(pattern, err, 1, true)
  end

  it("rejects unknown options, bad types and bad values", function()
    new_fails({ app_id = APP_ID, callback = CALLBACK }, "unknown option 'callback'")
    new_fails({}, "app_id: required")
    new_fails({ app_id = "bot" }, "app_id: expected a GUID")
    new_fails({ app_id = APP_ID, endpoint = "v2" }, "endpoint: unknown endpoint 'v2'")
    new_fails({ app_id = APP_ID, graph_url = "http://graph.microsoft.com" }, "graph_url: must be an https URL")
    new_fails({ app_id = APP_ID, callback_uri = "http://bot/cb" }, "callback_uri: must be an https URL")
    new_fails({ app_id = APP_ID, token = 42 }, "token: expected string or function")
    new_fails({ app_id = APP_ID, tenant = true }, "tenant: expected string, got boolean")
    new_fails("app", "expected an options table")
  end)

  it("keeps the documented defaults", function()
    local c = graphcall.new { app_id = APP_ID }
    assert.equal("https://graph.microsoft.com", c.graph_url)
    assert.equal("v1.0", c.endpoint)
    assert.equal(APP_ID, c.app_id)
  end)
end)

describe("error paths", function()
  it("leave no Lua references behind over 10,000 rejected and accepted specs", function()
    local client = seed_client()
    local bad = {
      { targets = {} },
      { targets = { graphcall.user { id = "x\n" } } },
      { url = "https://teams.microsoft.com/l/meetup-join/19%3ax/0?context=nope" },
      { targets = { graphcall.phone { id = "12" } }, extra = { x = 0 / 0 } },
    }
    local good = { url = "https://teams.microsoft.com/meet/1234567?p=psw123", subject = "s" }
    local function round(n)
      for i = 1, n do
        local ok = pcall(client.prepare_join, client, bad[i % #bad + 1])
        assert(not ok)
        assert(client:prepare_join(good).body)
      end
    end
    local function rss_kb()
      local f = assert(io.open("/proc/self/statm"))
      local pages = f:read("n") and f:read("n")
      f:close()
      return pages * 4
    end
    round(1000)
    collectgarbage()
    collectgarbage()
    local heap, rss = collectgarbage("count"), rss_kb()
    round(10000)
    collectgarbage()
    collectgarbage()
    -- Lua-side leaks show in the heap count, C-side leaks (libcurl URL
    -- handles, decoded strings) in the resident size.
    assert.is_true(collectgarbage("count") - heap < 64, "Lua heap grew by "
      .. (collectgarbage("count") - heap) .. " KB")
    -- Under valgrind or ASan (which report C leaks themselves) RSS is their bookkeeping.
    if os.getenv("GRAPHCALL_MEMCHECK") ~= "1" then
      assert.is_true(rss_kb() - rss < 512, "RSS grew by " .. (rss_kb() - rss) .. " KB")
    end
  end)
end)
