-- Many create requests at once over TLS and HTTP/2 (issue 16), against
-- nginx on loopback.
--
-- nginx answers a `return` location without reading the request body, as
-- any HTTP/2 server may (RFC 9113, 8.1: a complete response before the
-- whole request, then the stream ends). libcurl 7.88 sends an HTTP/2
-- request body in a later step than its HEADERS; core.http used to tell
-- libcurl only that a socket was readable, so a transfer that had just sent
-- its HEADERS could not send its body until the next wake-up, and when the
-- answer and the end of the stream came first, libcurl failed the transfer
-- with "Stream error in the HTTP/2 framing layer": a 201 reported as a
-- network failure, or lost (an unknown outcome). Before the fix, 2000
-- creates with 64 in flight failed in most runs.
--
-- nginx also ends a connection after keepalive_requests streams (GOAWAY);
-- streams the client opened after the last one nginx took are refused, and
-- libcurl resends them. libcurl 7.88 does not say that a resend is of a
-- refused stream, so a create is never resent: it ends as an unknown
-- outcome, and nginx sees every create at most once.
local graphcall = require "graphcall"
local process = require "support.process"
local socket = require "socket"

local function nginx_binary()
  for _, p in ipairs { "/usr/sbin/nginx", "/usr/bin/nginx" } do
    local f = io.open(p)
    if f then
      f:close()
      return p
    end
  end
end

local NGINX = nginx_binary()
local CONF = [[
daemon off;
worker_processes 1;
error_log DIR/error.log warn;
pid DIR/nginx.pid;
events { worker_connections 256; }
http {
  log_format ids $http_x_id;
  access_log DIR/ids.log ids;
  keepalive_requests REQUESTS;
  client_body_temp_path DIR/body;
  proxy_temp_path DIR/proxy;
  fastcgi_temp_path DIR/fastcgi;
  uwsgi_temp_path DIR/uwsgi;
  scgi_temp_path DIR/scgi;
  ssl_certificate DIR/c.pem;
  ssl_certificate_key DIR/k.pem;
  server {
    listen 127.0.0.1:PORT ssl http2;
    location = /v1.0/communications/calls {
      default_type application/json;
      return 201 '{"id":"$request_id","state":"establishing"}';
    }
  }
}
]]

-- nginx with TLS and HTTP/2 in a fresh directory; keepalive_requests as given.
local function start_nginx(requests)
  local dir = os.tmpname()
  os.remove(dir)
  local q = process.q(dir)
  assert(os.execute(("mkdir -p %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/k.pem -out %s/c.pem "
    .. "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null"):format(q, q, q)))
  local port = process.free_port()
  local conf = CONF:gsub("DIR", dir):gsub("REQUESTS", tostring(requests)):gsub("PORT", tostring(port))
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local p = assert(io.popen(("%s -p %s -c %s/nginx.conf -e %s/error.log >/dev/null 2>&1 & echo $!")
    :format(NGINX, q, q, q)))
  local pid = tonumber(p:read("l"))
  p:close()
  for _ = 1, 200 do
    local c = socket.tcp()
    c:settimeout(0.05)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then break end
    socket.sleep(0.02)
  end
  return {
    dir = dir,
    url = ("https://127.0.0.1:%d/v1.0/communications/calls"):format(port),
    -- the x-id of every request nginx answered
    ids = function()
      local seen = {}
      for line in io.lines(dir .. "/ids.log") do seen[#seen + 1] = line end
      return seen
    end,
    stop = function()
      os.execute(("kill %d 2>/dev/null"):format(pid))
      os.execute(("rm -rf %s"):format(q))
    end,
  }
end

-- n creates at once (max_in_flight in flight), each with a ~1 KB body;
-- returns the results by x-id.
local function creates(ng, n, in_flight)
  local loop = graphcall.new_loop { timeout = 10, max_in_flight = in_flight, ca_file = ng.dir .. "/c.pem" }
  local body = '{"@odata.type":"#microsoft.graph.call","padding":"' .. ("x"):rep(900) .. '"}'
  local results, left = {}, n
  for i = 1, n do
    local req = { method = "POST", url = ng.url, body = body, create = true,
                  headers = { ["content-type"] = "application/json", ["x-id"] = tostring(i) } }
    loop:request(req, function(r)
      results[i] = { r = r, err = require("graphcall.transport").check(r, req, { [201] = true }) }
      left = left - 1
    end)
  end
  assert.is_true(loop:run_until(function() return left == 0 end, 60))
  loop:close()
  return results
end

local describe_nginx = NGINX and describe or pending

describe_nginx("HTTP/2 over TLS with many requests in flight (nginx)", function()
  it("answers every create when the server answers before reading the body", function()
    local ng = start_nginx(1000000)
    local ok, failures, versions = 0, {}, {}
    for _, x in ipairs(creates(ng, 2000, 64)) do
      if x.err then
        failures[#failures + 1] = x.err.kind .. ": " .. tostring(x.err.message)
      else
        ok = ok + 1
      end
      versions[x.r.http_version or "none"] = (versions[x.r.http_version or "none"] or 0) + 1
    end
    ng.stop()
    assert.same({}, failures)
    assert.same({ 2000, { ["HTTP/2"] = 2000 } }, { ok, versions })
  end)

  it("never resends a create when the server ends its connections (GOAWAY): 201 or unknown_outcome", function()
    local ng = start_nginx(100)
    local results = creates(ng, 1000, 64)
    local seen = {}
    for _, id in ipairs(ng.ids()) do
      assert.is_nil(seen[id], "create " .. id .. " reached nginx twice")
      seen[id] = true
    end
    ng.stop()
    local created, unknown = 0, 0
    for i, x in ipairs(results) do
      if x.err then
        assert.equal("unknown_outcome", x.err.kind, x.err.message)
        unknown = unknown + 1
      else
        assert.is_true(seen[tostring(i)])
        created = created + 1
      end
    end
    assert.equal(1000, created + unknown)
  end)
end)
