-- An incoming-call bot: it answers every call (Graph gives 15 seconds),
-- plays a greeting, and hangs up once the greeting has played. Against the
-- emulator it rings itself once to show the whole exchange:
--   bin/graphcall-run lua5.4 examples/answer_bot.lua
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"

local session = emulator.session()
local client = session.client
local finished

client:on("incoming", function(call)
  local who = call.data.source and call.data.source.identity
  print("incoming call " .. call.id .. " from " .. tostring(who and who.user and who.user.displayName))
  call:on("established", function(c)
    local op = c:play_prompt { prompts = { { uri = "https://cdn.contoso.com/greeting.wav" } } }
    if op then op:on_done(function() c:hangup() end) end
  end)
  call:on("terminated", function(c)
    print(("call %s ended (%s)"):format(c.id, c.result_info and c.result_info.message or "hung up"))
    finished = c
  end)
  assert(call:answer { modalities = { "audio" } })
end)

assert(session.ring(), "the emulator did not ring")
local ok = graphcall.run { timeout = 10, done = function() return finished ~= nil end }
session.close()
print(ok and "answered, greeted and hung up" or "FAILED")
os.exit(ok and 0 or 1)
