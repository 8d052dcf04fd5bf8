-- Peer: ls_raw.lua over TLS: a raw HTTP/1.1 client on one keep-alive
-- connection, a luasocket TCP socket wrapped by luasec (TLS 1.2+, the
-- server's certificate verified against BENCH_CA, ALPN http/1.1): encode the
-- body with lua-cjson, write the request, read the status line, the headers
-- and Content-Length bytes, decode the body.
--   BENCH_CA=cert.pem lua5.4 ls_tls.lua URL N
local socket = require "socket"
local ssl = require "ssl"
local cjson = require "cjson"

local host, port = arg[1]:match("^https://([^:/]+):(%d+)")
local n = assert(tonumber(arg[2]))
local body_table = require "peer_body"

local tcp = assert(socket.tcp())
assert(tcp:connect(host, tonumber(port)))
tcp:setoption("tcp-nodelay", true)
local sock = assert(ssl.wrap(tcp, {
  mode = "client", protocol = "any", options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" },
  verify = "peer", cafile = assert(os.getenv("BENCH_CA"), "BENCH_CA: the server's CA file"),
  alpn = "http/1.1",
}))
assert(sock:dohandshake())
local head = "POST /v1.0/communications/calls HTTP/1.1\r\nHost: " .. host .. ":" .. port
  .. "\r\nAuthorization: Bearer x\r\nAccept: application/json\r\nContent-Type: application/json\r\n"
  .. "Content-Length: "

local t0 = socket.gettime()
for i = 1, n do
  local body = cjson.encode(body_table)
  assert(sock:send(head .. #body .. "\r\n\r\n" .. body))
  local status = assert(sock:receive("*l"))
  local code = tonumber(status:match("^HTTP/1%.1 (%d+)"))
  local len
  while true do
    local line = assert(sock:receive("*l"))
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k and k:lower() == "content-length" then len = tonumber(v) end
  end
  local data = assert(sock:receive(len))
  local call = cjson.decode(data)
  if code ~= 201 or type(call.id) ~= "string" then error(("request %d: %s"):format(i, status)) end
end
io.write(("elapsed %.6f\n"):format(socket.gettime() - t0))
sock:close()
