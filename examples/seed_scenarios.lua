-- The six requests of Graph's "Create call" page (the seed), as graphcall
-- specs: { name, "call" | "join", spec }. Used by seed_requests.lua
-- (offline) and seed_bot.lua (against the emulator).
local graphcall = require "graphcall"

local prompts = graphcall.prompts {
  { uri = "https://cdn.contoso.com/beep.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088E" },
  { uri = "https://cdn.contoso.com/cool.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088F" },
}
local heidi = graphcall.user {
  id = "550fae72-d251-43ec-868c-373732c2704f", tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", name = "Heidi Steen",
}
local thread = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2"
local organizer = graphcall.user {
  id = "90ED37DC-D8E3-4E11-9DE3-30A955DDA06F", tenant = "49BFC225-8482-4AB8-94E7-76B48FDB9849",
}

return {
  { "p2p_service_hosted", "call", {
    subject = "Test Call", targets = { heidi }, media = prompts,
    language_id = "languageId-value", region = "region-value", tenant = "tenantId-value" } },
  { "p2p_app_hosted", "call", {
    subject = "Test Call", targets = { heidi }, modalities = { "audio" },
    source = graphcall.application {
      id = "550fae72-d251-43ec-868c-373732c2704f", tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47", name = "IT Bot" },
    media = graphcall.app_media { blob = "<media config blob>" },
    language_id = "languageId-value", region = "region-value", tenant = "tenantId-value" } },
  { "group_call", "call", {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts,
    targets = { graphcall.user { id = "29362BD4-CD58-4ED0-A206-0E4A33DBB0B6", name = "Heidi Steen" },
                graphcall.phone { id = "+12345678890", name = "+12345678890" } },
    chat_info = { thread_id = thread, message_id = "0" } } },
  { "join_private_meeting", "join", {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts,
    chat_info = { thread_id = thread, message_id = "0" }, organizer = organizer } },
  { "join_channel_meeting", "join", {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts,
    chat_info = { thread_id = thread, message_id = "1507228578052" }, organizer = organizer } },
  { "join_channel_meeting_as_guest", "join", {
    subject = "Test Call", modalities = { "audio", "video" }, media = prompts, guest = "App_Guest_DisplayName",
    chat_info = { thread_id = thread, message_id = "1507228578052" }, organizer = organizer } },
}
