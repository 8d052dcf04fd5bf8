-- wrk script (bench/lua/fleet.lua): POST call notifications to a fleet's
-- load balancer, as Graph would, for the calls the bots placed.
--   FLEET_CALLS  a file with one line per call: "<call id> <path>", where
--                path is the callbackUri's path and query on the load
--                balancer (/api/calls?gi=bot-2, /rr/api/calls?gi=bot-2)
--   FLEET_TOKEN  the Bearer token (the emulator's, GET /_emulator/notification_token)
--   FLEET_TAG    makes this run's bodies differ from every other run's
-- Each request is an `updated` notification with a toneInfo whose
-- sequenceId and the call's etag count up: every body differs, so the
-- fleet's dedupe (by body hash) and the call's (by etag) let each through,
-- and the bot handles every one. Each request picks a call at random (a
-- fixed seed), so that round robin meets the owners by chance, not in step.
local calls = {}
for line in io.lines(os.getenv("FLEET_CALLS")) do
  local id, path = line:match("^(%S+) (%S+)$")
  if id then calls[#calls + 1] = { id = id, path = path } end
end
assert(#calls > 0, "FLEET_CALLS lists no calls")
local tag = os.getenv("FLEET_TAG") or "0"
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. assert(os.getenv("FLEET_TOKEN"), "FLEET_TOKEN is required"),
  ["User-Agent"] = "Microsoft-Skype/3.0,(Calling/1.0)",
}
-- the emulator's own tone notification, as bin/graphcall-emulator sends it
local BODY = '{"@odata.type":"#microsoft.graph.commsNotifications","value":[{'
  .. '"@odata.type":"#microsoft.graph.commsNotification","changeType":"updated",'
  .. '"resource":"/app/calls/%s","resourceUrl":"/communications/calls/%s","callbackUri":"%s",'
  .. '"resourceData":{"@odata.type":"#microsoft.graph.call","@odata.id":"/communications/calls/%s",'
  .. '"@odata.etag":"W/\\"%s-%d-%d\\"","state":"established","toneInfo":{'
  .. '"@odata.type":"#microsoft.graph.toneInfo","sequenceId":%d,"tone":"tone%d"}}}]}'

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local n, me = 0, 1
function init()
  me = thread_no or 1 -- luacheck: ignore (set by setup in this thread's state)
  math.randomseed(me)
end

function request()
  n = n + 1
  local c = calls[math.random(#calls)]
  local body = BODY:format(c.id, c.id, "http://lb" .. c.path, c.id, tag, me, n, n, n % 10)
  return wrk.format("POST", c.path, headers, body)
end
