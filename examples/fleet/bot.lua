-- One instance of a bot that runs as a fleet: several of these processes,
-- behind one load balancer, share their calls through Redis. Any of them
-- may receive any notification; each call has one owner that runs its
-- handlers; when an instance dies, the others adopt its calls; on SIGTERM
-- it hands its calls over and exits.
--
-- Configured by the environment (examples/fleet/run sets it all):
--   INSTANCE      this instance's name, stable across restarts ("bot-1")
--   PORT          where its receiver listens (the load balancer's upstream)
--   GRAPH_URL     Graph, or the emulator (bin/graphcall-emulator)
--   REDIS_URL     the fleet's Redis (redis://127.0.0.1:6379/0 or unix:///path)
--   CALLBACK_URI  the load balancer's URL of the receivers (…/api/calls)
--   CALLS         how many calls this instance places when it starts (0)
--   KEEP_ALIVE    seconds between keepAlives (900), HEARTBEAT and LIVENESS_TTL (1, 3)
--   EVENTS        a file to append one line per event to ("-": stdout)
--
-- Each line of EVENTS is tab-separated: the instance, the time (the loop's
-- clock: CLOCK_MONOTONIC, the same in every process), what happened, and
-- its details, e.g. "bot-2  8123.456  handled  <call id>  updated  -  established  -".
local graphcall = require "graphcall"

local env = os.getenv
local me = assert(env "INSTANCE", "INSTANCE is required")
local graph_url = assert(env "GRAPH_URL", "GRAPH_URL is required")

local out = io.stdout
if env "EVENTS" and env "EVENTS" ~= "-" then out = assert(io.open(env "EVENTS", "a")) end
out:setvbuf("line")
local loop
local function event(what, ...)
  local fields = { me, ("%.3f"):format(loop.clock()), what, ... }
  for i = 1, select("#", ...) + 3 do fields[i] = tostring(fields[i] == nil and "-" or fields[i]) end
  out:write(table.concat(fields, "\t"), "\n")
end

local client = graphcall.new {
  app_id = env "GRAPHCALL_APP_ID" or "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698",
  token = env "GRAPHCALL_TOKEN" or "demo-token",
  graph_url = graph_url,
  callback_uri = env "CALLBACK_URI",
  keep_alive_interval = tonumber(env "KEEP_ALIVE") or 900,
  store = {
    redis = env "REDIS_URL" or "redis://127.0.0.1:6379/0",
    instance = me,
    heartbeat = tonumber(env "HEARTBEAT") or 1,
    liveness_ttl = tonumber(env "LIVENESS_TTL") or 3,
  },
}
loop = client.loop
-- Behind a load balancer every connection comes from its address: no
-- per-address limit (the default, 16, is for a receiver facing the internet).
local rx = assert(client:receiver { port = tonumber(env "PORT") or 0, max_per_ip = 0,
  openid_url = graph_url .. "/v1/.well-known/OpenIdConfiguration" })

-- What a bot does with its calls: listen to the caller's keys once the
-- call is up. The same handlers serve calls it placed and calls it adopted.
local function follow(call)
  call:on("established", function(c) c:subscribe_to_tone() end)
  call:on("tone", function(c, tone) c:set_checkpoint { n = c.checkpoint and c.checkpoint.n, last_tone = tone.tone } end)
end

-- Every notification this instance handles (it owns the call): the spec
-- checks that each one the emulator posted is handled exactly once.
client:on("notification", function(n)
  local data = n.kind == "call" and n.resource_data
  local tone = type(data) == "table" and type(data.toneInfo) == "table" and data.toneInfo.tone or nil
  local resource = n.resource_url and n.resource_url:match("/calls/[^/]+(/.*)$")
  event("handled", n.call_id, n.change_type, resource, n.state, tone)
end)

client:on("adopted", function(call, checkpoint)
  event("adopted", call.id, checkpoint and checkpoint.n, call.state)
  follow(call)
end)

-- SIGTERM (a deploy): hand the calls to the other instances, then exit.
loop:on_signal({ "TERM", "INT" }, function(name)
  loop:spawn(function()
    local n, err = client:drain()
    event("drained", name, n or err.kind)
    rx:close()
    client:close()
    loop:stop()
  end)
end)

event("ready", rx:port())

local target = graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" }
for i = 1, tonumber(env "CALLS") or 0 do
  client:call({ targets = { target }, subject = me .. " call " .. i }, function(call, err)
    if not call then return event("failed", i, err.kind, err.message) end
    call:set_checkpoint { n = i }
    follow(call)
    event("placed", call.id, i)
  end)
end

loop:run_until(nil)
event("exit")
