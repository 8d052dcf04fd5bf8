-- graphcall receiver on its own loop, in its own process, answering the
-- notifications wrk POSTs; the handler counts.
--   lua5.4 gc_receiver.lua off DIR            verify = false
--   lua5.4 gc_receiver.lua on DIR             JWT verification with pinned keys
--   lua5.4 gc_receiver.lua mem DIR N          verification on; exit after N notifications,
--                                             printing the peak RSS after 1,000 and after N
-- Writes DIR/port (the port) and, for on/mem, DIR/token (a token signed like
-- Graph's: one token reused for every notification), then serves until killed.
-- With BENCH_TLS_DIR set, serves HTTPS itself (tls_cert/tls_key: the
-- cert.pem and key.pem in that directory).
local graphcall = require "graphcall"
local cjson = require "cjson"
local common = require "spec"

local mode, dir, limit = arg[1], arg[2], tonumber(arg[3] or "0")
local verify = mode ~= "off"

local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name .. ".tmp", "wb"))
  f:write(text)
  f:close()
  assert(os.rename(dir .. "/" .. name .. ".tmp", dir .. "/" .. name))
end

local function peak_rss_kib()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmHWM:%s*(%d+)")
    if v then return tonumber(v) end
  end
end

local keys
if verify then
  local signer = require("graphcall.testing").jwt_signer()
  keys = '{"keys":[' .. signer:jwk("bench-key") .. "]}"
  local now = os.time()
  write("token", signer:sign(cjson.encode {
    iss = "https://graph.microsoft.com", aud = common.APP_ID, tid = "72f988bf-86f1-41af-91ab-2d7cd011db47",
    iat = now, nbf = now, exp = now + 3600,
  }, { kid = "bench-key" }))
end

local loop = graphcall.new_loop()
local client = common.client("http://127.0.0.1:9", loop)
local count, rss_first = 0, nil
local tls_dir = os.getenv("BENCH_TLS_DIR")
local function pem(name)
  if not tls_dir or tls_dir == "" then return nil end
  local f = assert(io.open(tls_dir .. "/" .. name, "rb"))
  local text = f:read("a")
  f:close()
  return text
end
local rx = assert(client:receiver {
  tls_cert = pem("cert.pem"), tls_key = pem("key.pem"),
  port = 0, path = "/api/calls", verify = verify, keys = keys or nil,
  max_connections = 256, max_per_ip = 256,
  handler = function(batch)
    count = count + #batch
    if limit > 0 then
      if count == 1000 then rss_first = peak_rss_kib() end
      if count >= limit then loop:stop() end
    end
  end,
})
write("port", tostring(rx:port()))
loop:run_until(nil)
if limit > 0 then
  io.write(("rss_first %d\nrss_last %d\ncount %d\n"):format(rss_first, peak_rss_kib(), count))
end
rx:close()
loop:close()
