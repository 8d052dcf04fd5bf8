-- Peak RSS of N create-call round trips (graphcall), after the first 1,000
-- and after N. Each call then ends the way Graph ends it: a "terminated"
-- notification for it goes through parse_notifications and client:dispatch
-- (the receiver's path without HTTP), so the call leaves the client's
-- registry. With "keep", calls are never terminated and stay registered
-- (the registry holds live calls by design).
--   lua5.4 gc_mem_create.lua URL N [end|keep]
local graphcall = require "graphcall"
local common = require "spec"

local url, n, policy = arg[1], assert(tonumber(arg[2])), arg[3] or "end"
local loop = graphcall.new_loop { max_in_flight = 32 }
local client = common.client(url, loop)
local spec = common.spec()

local function peak_rss_kib()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmHWM:%s*(%d+)")
    if v then return tonumber(v) end
  end
end

local TERMINATED = '{"value":[{"changeType":"deleted","resourceUrl":"/communications/calls/%s",'
  .. '"resourceData":{"@odata.type":"#microsoft.graph.call","state":"terminated",'
  .. '"resultInfo":{"code":200,"subcode":5001,"message":"ok"}}}]}'

local rss_first
for i = 1, n do
  local call, err = client:call(spec)
  if not call then error(("request %d: %s"):format(i, tostring(err))) end
  if policy == "end" then
    client:dispatch(assert(graphcall.parse_notifications(TERMINATED:format(call.id))))
    assert(call.state == "terminated" and client.calls[call.id] == nil)
  end
  if i == 1000 then rss_first = peak_rss_kib() end
end
io.write(("rss_first %d\nrss_last %d\ncount %d\n"):format(rss_first, peak_rss_kib(), n))
