-- graphcall create-call driver: N calls against the stand-in for Graph.
--   lua5.4 gc_create.lua URL N seq    sequential client:call
--   lua5.4 gc_create.lua URL N many   client:call_many, at most 32 in flight
-- Prints "elapsed <seconds of the request phase>".
local graphcall = require "graphcall"
local core = require "graphcall.core"
local common = require "spec"

local url, n, mode = arg[1], assert(tonumber(arg[2])), arg[3] or "seq"
-- BENCH_CA: PEM to trust (the TLS stand-in); BENCH_IN_FLIGHT: max_in_flight (32)
local loop = graphcall.new_loop { max_in_flight = tonumber(os.getenv "BENCH_IN_FLIGHT") or 32,
                                  ca_file = os.getenv "BENCH_CA" or false }
local client = common.client(url, loop)
local spec = common.spec()

local t0 = core.monotonic()
if mode == "seq" then
  for i = 1, n do
    local call, err = client:call(spec)
    if not call then error(("request %d: %s"):format(i, tostring(err))) end
  end
elseif mode == "many" then
  local specs = {}
  for i = 1, n do specs[i] = spec end
  local calls, errs = client:call_many(specs)
  for i = 1, n do
    if not calls[i] then error(("request %d: %s"):format(i, tostring(errs[i]))) end
  end
else
  error("mode: seq or many")
end
io.write(("elapsed %.6f\n"):format(core.monotonic() - t0))
