-- `make screenshot`: a PNG of the emulator's dashboard during a demo call.
--   lua5.4 spec/support/screenshot.lua [build/dashboard.png]
-- (LUA_PATH with ./lua and ./spec, LUA_CPATH with ./build, as the Makefile
-- sets them.) The emulator, a bot and its receiver run on one loop in this
-- process: the bot places a call and plays a prompt, joins a meeting and
-- leaves it, and answers a call the emulator rings it with (the caller
-- presses a key); a request fails once (503, retried). Then headless
-- chromium takes the screenshot (1280x900) while the loop keeps serving the
-- page, with the bot's first call and the answered call still up.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local browser = require "support.browser"

local out = arg[1] or "build/dashboard.png"
local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local MEETING = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdm"
  .. "ZDZk%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
  .. "4b444206-207c-42f8-92a6-e332b41c88a2%22%7d"
local PROMPT = { uri = "https://cdn.contoso.com/beep.wav", resource_id = "beep" }

local function fail(...)
  io.stderr:write("make screenshot: ", ...)
  io.stderr:write("\n")
  os.exit(1)
end

if not browser.available() then fail("chromium and chromium-driver are needed (make deps installs them)") end

local loop = graphcall.new_loop { timeout = 5 }
local emu = assert(emulator.start { loop = loop, token = "demo-token", app_id = APP_ID, notify_delay = 0.05,
  operation_delay = 0.2 })
local client = graphcall.new { app_id = APP_ID, token = "demo-token", graph_url = emu.url, loop = loop }
local rx = assert(client:receiver { openid_url = emu.openid_url })

local function check(ok, what, err)
  if not ok then fail(what, ": ", tostring(err)) end
  return ok
end

-- the demo: a call with a prompt played, a meeting joined and left
local call = check(client:call { callback_uri = rx:url(), subject = "graphcall demo",
  targets = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f", name = "Heidi Steen" } },
  media = graphcall.prompts { PROMPT } })
check(call:wait("established", 10), "the call was not established")
local op = check(call:play_prompt { prompts = { PROMPT } }, "playPrompt")
check(op:wait(10), "the prompt did not finish")
local meeting = check(client:join { callback_uri = rx:url(), url = MEETING, guest = "graphcall demo bot" }, "join")
check(meeting:wait("established", 10), "the meeting was not joined")
check(meeting:hangup(), "hang up the meeting")
check(meeting:wait("terminated", 10), "the meeting did not end")

-- an incoming call, answered; the caller presses 5
local answered
client:on("incoming", function(c)
  c:answer { modalities = { "audio" } }
  answered = c
end)
emu:ring { callback_uri = rx:url(), from = { user = { id = "0e4a3c2b-77a1-4d0c-9e1e-5b9c0e7f1a11",
  displayName = "Megan Bowen" } } }
check(loop:wait(function() return answered ~= nil end, 10), "no incoming call")
check(answered:wait("established", 10), "the incoming call was not answered")
check(answered:subscribe_to_tone(), "subscribeToTone")
emu:press_tone(answered.id, "5")
-- one request fails with 503 (the client retries it)
emu:fail_next { status = 503, retry_after = 0 }
check(call:keep_alive(), "keepAlive")
loop:wait(function() return emu:idle() end, 5)

-- the screenshot, while the loop serves the page
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. browser.q(dir)))
os.remove(out)
local args = { browser.q(browser.CHROMIUM) }
for _, f in ipairs(browser.FLAGS) do args[#args + 1] = f end
for _, f in ipairs { "--user-data-dir=" .. dir .. "/profile", "--hide-scrollbars", "--window-size=1280,900",
  "--virtual-time-budget=3000", "--screenshot=" .. out, emu.url .. "/_emulator/" } do
  args[#args + 1] = browser.q(f)
end
local chromium = browser.spawn(table.concat(args, " "), dir .. "/chromium.log")
local done = loop:wait(function() return chromium:exited() end, 60)
chromium:stop()
local log = browser.read(dir .. "/chromium.log") or ""
os.execute("rm -rf " .. browser.q(dir))
answered:hangup()
call:hangup()
rx:close()
emu:close()
loop:close()

if not done then fail("chromium did not finish within 60 s\n", log) end
local png = browser.read(out)
if chromium.status ~= 0 or not png or png:sub(1, 8) ~= "\137PNG\r\n\26\n" then
  fail("chromium wrote no PNG (exit ", tostring(chromium.status), ")\n", log)
end
print(("make screenshot: %s (%d bytes), the dashboard during the demo"):format(out, #png))
