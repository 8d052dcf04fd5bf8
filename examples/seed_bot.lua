-- A bot for each seed scenario, against the emulator: it places the call (or
-- joins the meeting), waits for it to be established, hangs up, and waits
-- for the end.
--   bin/graphcall-run lua5.4 examples/seed_bot.lua group_call
--   bin/graphcall-run lua5.4 examples/seed_bot.lua           (all six)
local emulator = require "graphcall.emulator"
package.path = "./examples/?.lua;" .. package.path
local scenarios = require "seed_scenarios"

local session = emulator.session { endpoint = "beta/app" }
local client, rx = session.client, session.receiver
local failed = 0

for _, s in ipairs(scenarios) do
  local name, kind, spec = s[1], s[2], s[3]
  if not arg[1] or arg[1] == name then
    spec.callback_uri = rx:url()
    local call, err = client[kind](client, spec)
    local ok = call and call:wait("established", 10) and call:hangup() and call:wait("terminated", 10)
    print(("%-30s %s"):format(name, ok and ("established and hung up (" .. call.id .. ")")
      or ("FAILED: " .. tostring(err or (call and call.state)))))
    if not ok then failed = failed + 1 end
  end
end
session.close()
os.exit(failed == 0 and 0 or 1)
