-- Builds the six requests of Graph's "Create call" page and parses its two
-- notifications, offline: lua5.4 examples/seed_requests.lua
local graphcall = require "graphcall"
package.path = "./examples/?.lua;" .. package.path
local scenarios = require "seed_scenarios"

local client = graphcall.new {
  app_id = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698",
  callback_uri = "https://bot.contoso.com/api/calls",
  endpoint = "beta/app",            -- the seed's POST /beta/app/calls
}

for i, s in ipairs(scenarios) do
  local name, kind, spec = s[1], s[2], s[3]
  local req = client["prepare_" .. kind](client, spec)
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
