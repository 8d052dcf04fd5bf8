-- The demo bot: against the local Graph emulator (started here, in the same
-- process, unless GRAPH_URL points at one), it starts its receiver, places
-- a peer-to-peer call, joins a meeting from a Teams link as a guest, waits
-- for both to be established, hangs up both, and prints the timeline.
-- Exits 0 only when every step happened. Run: `make demo`.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"

local started = require("graphcall.core").monotonic()
local timeline, states = {}, {}

local function log(call, event, state)
  timeline[#timeline + 1] = ("%7.3f s  %-36s  %-14s %s"):format(
    require("graphcall.core").monotonic() - started, call or "-", event, state or "")
end

local graph_url, emu = os.getenv("GRAPH_URL"), nil
if not graph_url then
  emu = assert(emulator.start { token = "demo-token" })
  graph_url = emu.url
end
log(nil, "emulator", graph_url)

local client = graphcall.new {
  app_id = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698",
  token = "demo-token",
  graph_url = graph_url,
}
local rx = assert(client:receiver {
  -- the emulator publishes its signing keys like Graph does; with real Graph leave this out
  openid_url = graph_url .. "/v1/.well-known/OpenIdConfiguration",
  handler = function(batch)
    for _, n in ipairs(batch) do
      states[n.call_id] = n.state
      log(n.call_id, "notification", n.state)
    end
  end,
})
log(nil, "receiver", rx:url())

local function wait_state(call, state)
  return graphcall.run { timeout = 5, done = function() return states[call.id] == state end }
end

local call, err = client:call {
  callback_uri = rx:url(),
  subject = "graphcall demo",
  targets = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f", name = "Heidi Steen" } },
  media = graphcall.prompts { { uri = "https://cdn.contoso.com/beep.wav", resource_id = "beep" } },
}
assert(call, err and tostring(err))
log(call.id, "call placed", call.state)

local meeting
meeting, err = client:join {
  callback_uri = rx:url(),
  url = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk"
    .. "%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
    .. "4b444206-207c-42f8-92a6-e332b41c88a2%22%7d",
  guest = "graphcall demo bot",
}
assert(meeting, err and tostring(err))
log(meeting.id, "meeting joined", meeting.state)

local steps = {
  wait_state(call, "established"),
  wait_state(meeting, "established"),
  call:hangup() == true,
  meeting:hangup() == true,
  wait_state(call, "terminated"),
  wait_state(meeting, "terminated"),
}

rx:close()
if emu then emu:close() end
print(table.concat(timeline, "\n"))
local done = 0
for _, ok in ipairs(steps) do if ok then done = done + 1 end end
print(("demo: %d of %d steps done: a call and a meeting placed, established, hung up, terminated")
  :format(done, #steps))
os.exit(done == #steps and 0 or 1)
