-- Builds the six requests of Graph's "Create call" page and parses its two
-- notifications, offline. Run from the repository root: `make demo`.
local graphcall = require "graphcall"

local client = graphcall.new {
  app_id = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698",
  callback_uri = "https://bot.contoso.com/api/calls",
  endpoint = "beta/app",            -- the seed's POST /beta/app/calls
}

local prompts = graphcall.prompts {
  { uri = "https://cdn.contoso.com/beep.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088E" },
  { uri = "https://cdn.contoso.com/cool.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088F" },
}
local heidi = graphcall.user {
  id = "550fae72-d251-43ec-868c-373732c2704f",
  tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47",
  name = "Heidi Steen",
}
local thread = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2"
local organizer = graphcall.user {
  id = "90ED37DC-D8E3-4E11-9DE3-30A955DDA06F", tenant = "49BFC225-8482-4AB8-94E7-76B48FDB9849",
}

local requests = {
  { "peer-to-peer, service-hosted media", client:prepare_call {
    subject = "Test Call", targets = { heidi }, media = prompts,
    language_id = "languageId-value", region = "region-value", tenant = "tenantId-value" } },
  { "peer-to-peer, app-hosted media", client:prepare_call {
    subject = "Test Call", targets = { heidi }, modalities = { "audio" },
    source = graphcall.application {
      id = "550fae72-d251-43ec-868c-373732c2704f", tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", name = "IT Bot" },
    media = graphcall.app_media { blob = "<media config blob>" },
    language_id = "languageId-value", region = "region-value", tenant = "tenantId-value" } },
  { "group call", client:prepare_call {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts,
    targets = { graphcall.user { id = "29362BD4-CD58-4ED0-A206-0E4A33DBB0B6", name = "Heidi Steen" },
                graphcall.phone { id = "+12345678890", name = "+12345678890" } },
    chat_info = { thread_id = thread, message_id = "0" } } },
  { "join a private meeting", client:prepare_join {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts,
    chat_info = { thread_id = thread, message_id = "0" }, organizer = organizer } },
  { "join a channel meeting", client:prepare_join {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts,
    chat_info = { thread_id = thread, message_id = "1507228578052" }, organizer = organizer } },
  { "join a channel meeting as a guest", client:prepare_join {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts, guest = "App_Guest_DisplayName",
    chat_info = { thread_id = thread, message_id = "1507228578052" }, organizer = organizer } },
}

for i, r in ipairs(requests) do
  local name, req = r[1], r[2]
  print(("%d. %s\n   %s %s\n   %s\n"):format(i, name, req.method, req.url, req.body))
end

for _, state in ipairs { "establishing", "established" } do
  local f = assert(io.open("spec/fixtures/seed/notification_" .. state .. ".json", "rb"))
  local batch = assert(graphcall.parse_notifications(f:read("a")))
  f:close()
  for _, n in ipairs(batch) do
    print(("notification: %s call %s -> %s"):format(n.change_type, n.call_id, n.state))
  end
end
