-- Peer: luasocket's socket.http + lua-cjson. socket.http sends
-- "Connection: close" and opens a new connection for every request.
--   lua5.4 ls_http.lua URL N
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson"

local url, n = arg[1] .. "/v1.0/communications/calls", assert(tonumber(arg[2]))
local body_table = require "peer_body"

local t0 = socket.gettime()
for i = 1, n do
  local body = cjson.encode(body_table)
  local chunks = {}
  local ok, status = http.request {
    url = url, method = "POST",
    headers = { ["Authorization"] = "Bearer x", ["Accept"] = "application/json",
                ["Content-Type"] = "application/json", ["Content-Length"] = tostring(#body) },
    source = ltn12.source.string(body), sink = ltn12.sink.table(chunks),
  }
  if not ok or status ~= 201 then error(("request %d: %s"):format(i, tostring(status))) end
  local call = cjson.decode(table.concat(chunks))
  assert(type(call.id) == "string")
end
io.write(("elapsed %.6f\n"):format(socket.gettime() - t0))
