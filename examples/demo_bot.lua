-- The demo bot, against the local Graph emulator: it starts its receiver,
-- places a peer-to-peer call with service-hosted media, waits for it to be
-- established, plays a prompt and waits for the prompt to finish, joins a
-- meeting from a Teams link as a guest, hangs up both, and prints the
-- timeline. Exits 0 only when every step happened.
--   make demo                                      (emulator in its own process)
--   bin/graphcall-run lua5.4 examples/demo_bot.lua (the same by hand)
--   lua5.4 examples/demo_bot.lua                   (emulator in this process)
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local monotonic = require("graphcall.core").monotonic

local started, timeline, steps = monotonic(), {}, {}

local function log(call, event, state)
  timeline[#timeline + 1] = ("%7.3f s  %-36s  %-22s %s"):format(monotonic() - started,
    call and call.id or "-", event, state or "")
end

-- Record a step of the demo: `ok` or `nil, err` from the library.
local function step(call, name, ok, err)
  steps[#steps + 1] = ok and true or false
  log(call, (ok and "step: " or "FAILED: ") .. name, err and tostring(err) or call and call.state)
  return ok
end

local session = emulator.session()
local client, rx = session.client, session.receiver
log(nil, "emulator", session.url)
-- the emulator's dashboard: open it while an emulator runs (bin/graphcall-emulator)
log(nil, "dashboard", session.url .. "/_emulator/")
log(nil, "receiver", rx:url())

local function follow(call)
  call:on("notification", function(c, n) log(c, "notification: " .. n.kind, n.state or n.status) end)
  return call
end

local call, err = client:call {
  callback_uri = rx:url(),
  subject = "graphcall demo",
  targets = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f", name = "Heidi Steen" } },
  media = graphcall.prompts { { uri = "https://cdn.contoso.com/beep.wav", resource_id = "beep" } },
}
if step(call, "place a peer-to-peer call", call, err) then
  follow(call)
  step(call, "established", call:wait("established", 10))
  local op
  op, err = call:play_prompt { prompts = { { uri = "https://cdn.contoso.com/beep.wav", resource_id = "beep" } } }
  if step(call, "play a prompt", op, err) then step(call, "prompt finished", op:wait(10)) end
end

local meeting
meeting, err = client:join {
  callback_uri = rx:url(),
  url = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk"
    .. "%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
    .. "4b444206-207c-42f8-92a6-e332b41c88a2%22%7d",
  guest = "graphcall demo bot",
}
if step(meeting, "join a meeting as a guest", meeting, err) then
  follow(meeting)
  step(meeting, "established", meeting:wait("established", 10))
end

for _, c in ipairs { call, meeting } do
  if c then
    step(c, "hang up", c:hangup())
    step(c, "terminated", c:wait("terminated", 10))
  end
end
session.close()

print(table.concat(timeline, "\n"))
local done = 0
for _, ok in ipairs(steps) do if ok then done = done + 1 end end
print(("demo: %d of %d steps done (call placed, established, prompt played, meeting joined as a guest, "
  .. "both hung up and terminated)"):format(done, 10))
os.exit((done == 10 and #steps == 10) and 0 or 1)
