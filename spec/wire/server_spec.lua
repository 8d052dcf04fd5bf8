-- The libmicrohttpd receiver (core.server), driven by the curl command-line
-- tool in the background and by raw sockets: requests arrive through
-- srv:run()/srv:next() or at a handler given to srv:run(), answers go out
-- through srv:respond(), and what C answers by itself (404, 405, 413, 415,
-- 431) never reaches Lua.
local core = require "graphcall.core"
local cjson = require "cjson"

local scratch = require "support.scratch"
local q, file, read, write = scratch.q, scratch.file, scratch.read, scratch.write

-- Bounded waiting: at most `seconds` of wall time (and 5000 rounds). Round
-- counts alone are no bound in time: srv:run(20) returns at once while
-- libmicrohttpd asks to be run again (e.g. during a TLS handshake).
local function rounds(seconds)
  local stop, n = os.time() + (seconds or 5), 0
  return function()
    n = n + 1
    if n <= 5000 and os.time() <= stop then return n end
  end
end

local seq = 0

-- Start curl in the background. Every URL gets its own body file; -w writes
-- "code connects uploaded seconds" per URL; the .rc file appears when curl is done.
local function curl(args, ...)
  seq = seq + 1
  local tag = "c" .. seq
  local parts = { "curl -s --max-time 5", "-D", q(file(tag .. ".hdr")),
                  "-w", q("%{http_code} %{num_connects} %{size_upload} %{time_total}\\n") }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  for i, url in ipairs({ ... }) do
    parts[#parts + 1] = "-o " .. q(file(tag .. ".body" .. i)) .. " " .. q(url)
  end
  local cmd = table.concat(parts, " ")
  os.execute(("(%s > %s 2>/dev/null; echo $? > %s; mv %s %s) &"):format(
    cmd, q(file(tag .. ".out")), q(file(tag .. ".tmp")), q(file(tag .. ".tmp")), q(file(tag .. ".rc"))))
  return tag
end

-- Wait (running the server, when there is one) until curl has finished.
local function wait_curl(srv, tag)
  for _ in rounds(6) do
    local rc = read(tag .. ".rc")
    if rc then
      local res = { rc = tonumber(rc), headers = read(tag .. ".hdr") or "", results = {} }
      for code, connects, up, secs in (read(tag .. ".out") or ""):gmatch("(%d+) (%d+) (%d+) ([%d.]+)\n") do
        res.results[#res.results + 1] = { code = tonumber(code), connects = tonumber(connects),
                                          uploaded = tonumber(up), seconds = tonumber(secs) }
      end
      res.code = res.results[1] and res.results[1].code
      res.body = read(tag .. ".body1")
      res.body2 = read(tag .. ".body2")
      return res
    end
    if srv then srv:run(20) else os.execute("sleep 0.02") end
  end
  error("curl " .. tag .. " did not finish")
end

local function next_request(srv)
  for _ in rounds() do
    srv:run(20)
    local req = srv:next()
    if req then return req end
  end
  return nil
end

-- The value of a response header in a curl -D dump (the last one wins).
local function header(dump, name)
  local value
  for line in dump:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k and k:lower() == name then value = v end
  end
  return value
end

local function url(srv, path, scheme)
  return ("%s://127.0.0.1:%d%s"):format(scheme or "http", srv:port(), path)
end

describe("core.server", function()
  setup(scratch.open)
  teardown(scratch.close)

  describe("creation", function()
    it("binds a free port when asked for port 0 and reports it", function()
      local srv <close> = assert(core.server { port = 0 })
      local port = srv:port()
      assert.is_true(math.type(port) == "integer" and port > 0 and port < 65536)
      assert.equal("graphcall.server: 127.0.0.1:" .. port, tostring(srv))
      assert.is_true(math.type(srv:fd()) == "integer" and srv:fd() >= 0)
      assert.equal(-1, srv:timeout())  -- no connection: no timer of its own
      assert.equal(0, srv:run())
      assert.equal(0, srv:run(1))
      assert.is_nil(srv:next())
      assert.equal(0, srv:pending())
    end)

    it("returns nil, err of kind 'listen' for a port already in use", function()
      local a <close> = assert(core.server())
      local b, err = core.server { port = a:port() }
      assert.is_nil(b)
      assert.equal("listen", err.kind)
      assert.matches("^listen: cannot listen on 127%.0%.0%.1:" .. a:port(), tostring(err))
    end)

    it("raises for an unknown option, naming it", function()
      assert.has_error(function() core.server { prot = 8080 } end,
        "graphcall.server: unknown key 'prot'")
      assert.has_error(function() core.server { [1] = "x" } end)
    end)

    it("raises for options of the wrong type or range", function()
      local bad = {
        { port = "8080" }, { port = 70000 }, { port = 1.5 }, { port = -1 },
        { host = 127 }, { host = "localhost" }, { host = "::1" },
        { paths = "/api" }, { paths = {} }, { paths = { 1 } }, { paths = { "api" } },
        { methods = { "BAD METHOD" } }, { methods = { "" } }, { content_types = { x = 1 } },
        { max_body = -1 }, { max_body = "big" }, { max_connections = 0 }, { max_per_ip = -2 },
        { idle_timeout = -1 }, { request_timeout = "30" }, { request_timeout = -1 },
        { tls_cert = "PEM" }, { tls_key = "PEM" }, { tls_cert = 1, tls_key = 2 },
      }
      for _, opts in ipairs(bad) do
        local k = next(opts)
        assert.has_error(function() core.server(opts) end, nil, "option " .. k)
        local ok, msg = pcall(core.server, opts)
        assert.is_false(ok)
        local named = false
        for key in pairs(opts) do named = named or msg:find("'" .. key .. "'", 1, true) ~= nil end
        assert.is_true(named, msg)
      end
      assert.has_error(function() core.server(5) end)
    end)
  end)

  describe("requests", function()
    it("delivers a POST with method, path, query, lowercase headers and exact body", function()
      local srv <close> = assert(core.server { paths = { "/api/calls" }, methods = { "POST" },
                                               content_types = { "application/json" } })
      local body = '{"value":[{"changeType":"updated","resource":"/app/calls/1"}],"x":"\226\130\172"}'
      local tag = curl({ "-H", "Content-Type: application/json; charset=utf-8",
                         "-H", "Authorization: Bearer abc.def.ghi", "-H", "X-Test: hello",
                         "--data-binary", body }, url(srv, "/api/calls?a=b&c=%20"))
      local req = assert(next_request(srv))
      assert.equal(0, srv:run())
      assert.is_true(math.type(req.id) == "integer")
      assert.equal("POST", req.method)
      assert.equal("/api/calls", req.path)
      assert.equal("a=b&c=%20", req.query)
      assert.equal(body, req.body)
      assert.equal("127.0.0.1", req.remote)
      assert.equal("application/json; charset=utf-8", req.headers["content-type"])
      assert.equal("Bearer abc.def.ghi", req.headers.authorization)
      assert.equal("hello", req.headers["x-test"])
      assert.equal(tostring(#body), req.headers["content-length"])
      assert.is_nil(req.headers["Content-Type"])
      assert.equal(1, srv:pending())

      assert.is_true(srv:respond(req.id, 202, '{"ok":true}',
        { ["content-type"] = "application/json", location = "https://example.test/calls/1" }))
      assert.equal(0, srv:pending())
      assert.equal(0, srv:timeout())  -- the resumed connection needs a run at once
      local res = wait_curl(srv, tag)
      assert.equal(0, res.rc)
      assert.equal(202, res.code)
      assert.equal('{"ok":true}', res.body)
      assert.equal("application/json", header(res.headers, "content-type"))
      assert.equal("https://example.test/calls/1", header(res.headers, "location"))
    end)

    it("gives a bodiless GET an empty body and no query, and joins repeated headers", function()
      local srv <close> = assert(core.server())
      local tag = curl({ "-H", "X-Test: 1", "-H", "X-Test: 2" }, url(srv, "/any/path"))
      local req = assert(next_request(srv))
      assert.equal("GET", req.method)
      assert.equal("/any/path", req.path)
      assert.is_nil(req.query)
      assert.equal("", req.body)
      assert.equal("1, 2", req.headers["x-test"])
      srv:respond(req.id, 204)
      local res = wait_curl(srv, tag)
      assert.equal(204, res.code)
      assert.equal("", res.body or "")
    end)

    it("serves two requests over one keep-alive connection", function()
      local srv <close> = assert(core.server { paths = { "/a", "/b" } })
      local tag = curl({}, url(srv, "/a"), url(srv, "/b"))
      local seen = {}
      for _ = 1, 2 do
        local req = assert(next_request(srv))
        seen[#seen + 1] = req.path
        srv:respond(req.id, 200, "answer " .. req.path)
      end
      assert.same({ "/a", "/b" }, seen)
      local res = wait_curl(srv, tag)
      assert.equal(0, res.rc)
      assert.equal(2, #res.results)
      assert.equal(200, res.results[1].code)
      assert.equal(200, res.results[2].code)
      assert.equal(1, res.results[1].connects)
      assert.equal(0, res.results[2].connects)  -- the connection was reused
      assert.equal("answer /a", res.body)
      assert.equal("answer /b", res.body2)
    end)

    it("hands out requests oldest first with increasing ids", function()
      local srv <close> = assert(core.server())
      local t1 = curl({}, url(srv, "/1"))
      local first = assert(next_request(srv))
      local t2 = curl({}, url(srv, "/2"))
      local n = 0
      for _ in rounds() do
        n = srv:run(20)
        if n > 0 then break end
      end
      assert.equal(1, n)
      local second = assert(srv:next())
      assert.equal("/1", first.path)
      assert.equal("/2", second.path)
      assert.is_true(second.id > first.id)
      assert.equal(2, srv:pending())
      srv:respond(second.id, 200, "two")
      srv:respond(first.id, 200, "one")
      assert.equal("one", wait_curl(srv, t1).body)
      assert.equal("two", wait_curl(srv, t2).body)
    end)
  end)

  describe("the client address (req.remote)", function()
    local socket = require "socket"

    it("gives req.remote as a dotted quad for every byte width", function()
      local srv <close> = assert(core.server { host = "0.0.0.0" })
      for _, from in ipairs { "127.0.0.1", "127.10.200.9", "127.255.0.99", "127.1.20.100" } do
        local c = socket.tcp()
        assert(c:bind(from, 0))
        assert(c:connect("127.0.0.1", srv:port()))
        assert(c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        local req = assert(next_request(srv))
        assert.equal(from, req.remote)
        srv:respond(req.id, 200)
        srv:run()
        c:close()
      end
    end)
  end)

  describe("the Bearer token (req.token)", function()
    local socket = require "socket"


    -- POST with the given Authorization header lines (raw bytes); the
    -- request as srv:next() gives it
    local function request_with(auth_lines)
      local srv <close> = assert(core.server { paths = { "/api/calls" } })
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", srv:port()))
      local head = { "POST /api/calls HTTP/1.1", "Host: x" }
      for _, v in ipairs(auth_lines) do head[#head + 1] = "Authorization: " .. v end
      assert(c:send(table.concat(head, "\r\n") .. "\r\nContent-Length: 2\r\n\r\n{}"))
      local req = assert(next_request(srv))
      assert.is_true(srv:respond(req.id, 202))
      srv:run()
      c:close()
      return req
    end

    it("takes a 16 KiB token (the verifier's limit) with other headers; 20 KiB of headers get 431", function()
      local srv <close> = assert(core.server { paths = { "/api/calls" } })
      local function send(token)
        local c = socket.tcp()
        assert(c:connect("127.0.0.1", srv:port()))
        c:settimeout(0)
        assert(c:send("POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          .. "User-Agent: Microsoft-Skype/3.0\r\nClient-Request-Id: 6a0d2c6e-63e0-4e6b-8a8b-3f3d1c2b1a10\r\n"
          .. "X-Microsoft-Skype-Chain-Id: 6a0d2c6e-63e0-4e6b-8a8b-3f3d1c2b1a10\r\n"
          .. "Authorization: Bearer " .. token .. "\r\nContent-Length: 2\r\n\r\n{}"))
        local req, got = nil, ""
        for _ in rounds() do
          srv:run(5)
          local r = srv:next()
          if r then
            req = r
            srv:respond(r.id, 202)
          end
          local data, err, partial = c:receive("*a")
          got = got .. (data or partial or "")
          if got:find("\r\n\r\n", 1, true) or err == "closed" then break end
        end
        c:close()
        return req, got:match("^HTTP/1%.1 (%d+)")
      end
      local big = ("a"):rep(16384)
      local req, status = send(big)
      assert.equal("202", status)
      assert.equal(big, req.token)
      req, status = send(("a"):rep(20 * 1024))
      assert.equal("431", status)
      assert.is_nil(req)
    end)

    it("reads a 200 KB body behind a 16 KiB token in a bounded number of rounds", function()
      -- Headers that nearly filled libmicrohttpd's pool left a read buffer
      -- of a few bytes: this body took ~18,000 rounds (one read each).
      -- With at most 20 KiB of headers in a 32 KiB pool it takes ~100.
      local srv <close> = assert(core.server { paths = { "/api/calls" }, max_body = 300000 })
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", srv:port()))
      c:settimeout(0)
      local body = ("x"):rep(200000)
      local msg = "POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "Authorization: Bearer " .. ("a"):rep(16384) .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
      local sent, req, n = 0, nil, 0
      for i in rounds() do
        n = i
        if sent < #msg then
          local last, _, partial = c:send(msg, sent + 1)
          sent = last or partial
        end
        srv:run(5)
        req = srv:next()
        if req then break end
      end
      c:close()
      assert.is_table(req)
      assert.equal(#body, #req.body)
      assert.is_true(n < 1000, "rounds: " .. n)
    end)

    it("refuses headers over 20 KiB with 431 and closes without reading the body", function()
      local srv <close> = assert(core.server { paths = { "/api/calls" } })
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", srv:port()))
      c:settimeout(0)
      assert(c:send("POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "X-Pad: " .. ("a"):rep(20 * 1024) .. "\r\nContent-Length: 100000\r\n\r\n{"))
      local got, closed = "", false
      for _ in rounds() do
        srv:run(5)
        assert.is_nil(srv:next())
        local data, err, partial = c:receive("*a")
        got = got .. (data or partial or "")
        if err == "closed" then closed = true break end
      end
      c:close()
      assert.is_true(closed)
      assert.equal("431", got:match("^HTTP/1%.1 (%d+)"))
      assert.truthy(got:find("connection: close", 1, true) or got:find("Connection: close", 1, true))
      local err = cjson.decode(got:match("\r\n\r\n(.*)$"))
      assert.equal("requestHeaderFieldsTooLarge", err.error.code)
      assert.equal("request headers exceed 20480 bytes", err.error.message)
    end)

    local cases = {
      { { "Bearer abc.def.ghi" }, "abc.def.ghi" },
      { { "Bearer eyJ0eXAi-_.x~+/=" }, "eyJ0eXAi-_.x~+/=" },  -- any non-space bytes; the verifier judges them
      { { "bearer abc" }, nil },                       -- the scheme is case-sensitive
      { { "BEARER abc" }, nil },
      { { "Bearer  abc" }, nil },                      -- two spaces
      { { "Bearer abc def" }, nil },                   -- two tokens
      { { "Bearer abc\tdef" }, nil },                  -- a tab inside
      { { "Bearer\tabc" }, nil },                      -- a tab instead of the space
      { { "Bearer" }, nil },                           -- no token
      { { "Bearer " }, nil },                          -- (trailing space: trimmed by the server)
      { { "Basic dXNlcjpwYXNz" }, nil },
      { { "Bearer abc", "Bearer abc" }, nil },         -- two Authorization headers
      { { "Bearer abc", "Bearer def" }, nil },
      { {}, nil },
    }
    for _, case in ipairs(cases) do
      local lines, want = case[1], case[2]
      it(("%s -> %s"):format(#lines > 0 and ("%q"):format(table.concat(lines, " | ")) or "no header",
                             tostring(want)), function()
        local req = request_with(lines)
        assert.equal(want, req.token)
        -- the same answer as the exact-form pattern on the (joined) header
        assert.equal((req.headers.authorization or ""):match("^Bearer ([^%s]+)$"), req.token)
        if #lines == 0 then assert.is_nil(req.headers.authorization) end
      end)
    end
  end)

  describe("rejections answered in C", function()
    local function expect_error(srv, res, status, code)
      assert.equal(status, res.code)
      assert.equal("application/json", header(res.headers, "content-type"))
      assert.matches('{"error":{"code":"' .. code .. '"', res.body, 1, true)
      assert.is_nil(srv:next())
      assert.equal(0, srv:pending())
    end

    it("404 for a path not in paths", function()
      local srv <close> = assert(core.server { paths = { "/api/calls" } })
      local res = wait_curl(srv, curl({ "--data-binary", "{}", "-H", "Content-Type: application/json" },
                                      url(srv, "/api/other")))
      expect_error(srv, res, 404, "notFound")
      res = wait_curl(srv, curl({}, url(srv, "/api/calls/")))
      expect_error(srv, res, 404, "notFound")
    end)

    it("405 with an Allow header for a method not in methods", function()
      local srv <close> = assert(core.server { methods = { "POST", "PUT" } })
      local res = wait_curl(srv, curl({}, url(srv, "/api/calls")))
      expect_error(srv, res, 405, "methodNotAllowed")
      assert.equal("POST, PUT", header(res.headers, "allow"))
      res = wait_curl(srv, curl({ "-X", "DELETE" }, url(srv, "/api/calls")))
      expect_error(srv, res, 405, "methodNotAllowed")
    end)

    it("415 for a body of a type not in content_types, or of no type", function()
      local srv <close> = assert(core.server { content_types = { "application/json" } })
      local res = wait_curl(srv, curl({ "-H", "Content-Type: text/plain", "--data-binary", "hi" },
                                      url(srv, "/api/calls")))
      expect_error(srv, res, 415, "unsupportedMediaType")
      res = wait_curl(srv, curl({ "-H", "Content-Type:", "--data-binary", "hi" }, url(srv, "/api/calls")))
      expect_error(srv, res, 415, "unsupportedMediaType")
      -- media types compare case-insensitively, parameters ignored; no body needs no type
      local tag = curl({ "-H", "Content-Type: Application/JSON ; charset=utf-8", "--data-binary", "{}" },
                       url(srv, "/api/calls"))
      local req = assert(next_request(srv))
      srv:respond(req.id, 200)
      assert.equal(200, wait_curl(srv, tag).code)
      tag = curl({}, url(srv, "/api/calls"))
      req = assert(next_request(srv))
      srv:respond(req.id, 200)
      assert.equal(200, wait_curl(srv, tag).code)
    end)

    it("413 for a Content-Length over max_body, before the body is read", function()
      local srv <close> = assert(core.server { max_body = 100 })
      local big = write("big", string.rep("x", 101))
      local res = wait_curl(srv, curl({ "-H", "Content-Type: application/json", "--data-binary", "@" .. big },
                                      url(srv, "/api/calls")))
      expect_error(srv, res, 413, "payloadTooLarge")
      -- with Expect: 100-continue curl waits: the 413 comes before any body byte
      res = wait_curl(srv, curl({ "-H", "Expect: 100-continue", "--expect100-timeout", "4",
                                  "--data-binary", "@" .. big }, url(srv, "/api/calls")))
      expect_error(srv, res, 413, "payloadTooLarge")
      assert.equal(0, res.results[1].uploaded)
    end)

    it("413 for a chunked body that grows past max_body", function()
      local srv <close> = assert(core.server { max_body = 100 })
      local big = write("big", string.rep("y", 150))
      local res = wait_curl(srv, curl({ "-H", "Transfer-Encoding: chunked", "--data-binary", "@" .. big },
                                      url(srv, "/api/calls")))
      expect_error(srv, res, 413, "payloadTooLarge")
    end)

    it("accepts a body of exactly max_body, with Content-Length or chunked", function()
      local srv <close> = assert(core.server { max_body = 100 })
      local exact = string.rep("z", 100)
      local f = write("exact", exact)
      for _, extra in ipairs({ {}, { "-H", "Transfer-Encoding: chunked" } }) do
        local args = { "--data-binary", "@" .. f }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        local tag = curl(args, url(srv, "/api/calls"))
        local req = assert(next_request(srv))
        assert.equal(exact, req.body)
        srv:respond(req.id, 200, "ok")
        assert.equal(200, wait_curl(srv, tag).code)
      end
    end)

    it("closes a request whose body is still arriving after request_timeout", function()
      local srv <close> = assert(core.server { request_timeout = 0.5, max_body = 100000 })
      local f = write("slow", string.rep("s", 30000))
      -- at 10000 bytes/s the upload would take 3 s
      local res = wait_curl(srv, curl({ "--limit-rate", "10000", "--data-binary", "@" .. f },
                                      url(srv, "/api/calls")))
      assert.equal(0, res.code)
      assert.not_equal(0, res.rc)
      assert.is_true(res.results[1].seconds < 2.9)
      assert.is_nil(srv:next())
    end)

    it("cuts off a client trickling its headers after request_timeout (slowloris)", function()
      local srv <close> = assert(core.server { request_timeout = 0.5, idle_timeout = 10 })
      -- one header byte every 0.2 s keeps the idle timeout from ever firing
      local script = ([[
exec 3<>/dev/tcp/127.0.0.1/%d
printf 'POST /api/calls HTTP/1.1\r\nHost: a\r\n' >&3
( for i in $(seq 20); do sleep 0.2; printf X >&3 || exit; done ) 2>/dev/null &
start=$(date +%%s%%N); timeout 4 cat <&3 >/dev/null; stop=$(date +%%s%%N)
echo $(( (stop - start) / 1000000 )) > %s.tmp; mv %s.tmp %s]]):format(
        srv:port(), file("slowloris"), file("slowloris"), file("slowloris"))
      os.execute("bash -c " .. q(script) .. " >/dev/null 2>&1 &")
      local ms
      for _ in rounds() do
        srv:run(20)
        ms = read("slowloris")
        if ms then break end
      end
      ms = assert(tonumber(ms))
      assert.is_true(ms >= 400 and ms < 1500, "closed after " .. ms .. " ms")
      assert.is_nil(srv:next())
    end)
  end)

  describe("srv:run with a handler", function()
    local socket = require "socket"

    local function connect(srv)
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", srv:port()))
      c:settimeout(0)
      return c
    end
    local function post(c, body)
      assert(c:send(("POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "Content-Length: %d\r\n\r\n%s"):format(#body, body)))
    end
    -- What arrives within a bounded wait (at most max_rounds rounds), running
    -- the server meanwhile only when asked to; stops at `until_text` or when
    -- the peer closes.
    local function receive(c, until_text, srv, max_rounds)
      local got, closed = "", false
      for i in rounds(2) do
        if max_rounds and i > max_rounds then break end
        if srv then srv:run(5) else socket.sleep(0.005) end
        local data, err, partial = c:receive("*a")
        got = got .. (data or partial or "")
        if err == "closed" then closed = true break end
        if until_text and got:find(until_text, 1, true) then break end
      end
      return got, closed
    end
    -- A server on /api/calls and one connection that has posted `body`.
    local function posted(body)
      local srv = assert(core.server { paths = { "/api/calls" } })
      local c = connect(srv)
      post(c, body)
      return srv, c
    end
    -- srv:run(20, handler) until a request has been handed to the handler
    local function run_until_handled(srv, handler)
      for _ in rounds() do
        if srv:run(20, handler) > 0 then return true end
      end
      return false
    end

    it("answers within the round that completed the request", function()
      local srv <close>, c = posted('{"a":1}')
      local seen
      assert.is_true(run_until_handled(srv, function(req)
        seen = req
        assert(srv:respond(req.id, 202, "taken"))
      end))
      assert.equal('{"a":1}', seen.body)
      assert.equal("/api/calls", seen.path)
      assert.equal(0, srv:pending())
      -- no further srv:run: the answer left in the round that ran the handler
      local got = receive(c, "taken")
      assert.equal("202", got:match("^HTTP/1%.1 (%d+)"))
      assert.equal("taken", got:match("\r\n\r\n(.*)$"))
      -- the connection stays open for the next request
      post(c, "[2]")
      assert.is_true(run_until_handled(srv, function(req) srv:respond(req.id, 200, req.body) end))
      assert.equal("[2]", receive(c, "[2]"):match("\r\n\r\n(.*)$"))
      c:close()
    end)

    it("keeps a request the handler left unanswered until srv:respond", function()
      local srv <close>, c = posted("{}")
      local id
      assert.is_true(run_until_handled(srv, function(req) id = req.id end))
      assert.equal(1, srv:pending())
      assert.is_nil(srv:next())
      assert.equal("", (receive(c, nil, srv, 10)))
      assert.is_true(srv:respond(id, 202, "later"))
      local got = receive(c, "later", srv)
      assert.equal("202", got:match("^HTTP/1%.1 (%d+)"))
      assert.equal(0, srv:pending())
      c:close()
    end)

    it("lets a handler answer another request that was left waiting", function()
      local srv <close> = assert(core.server { paths = { "/api/calls" } })
      local first, second = connect(srv), connect(srv)
      post(first, "[1]")
      local waiting
      assert.is_true(run_until_handled(srv, function(req) waiting = req.id end))
      post(second, "[2]")
      assert.is_true(run_until_handled(srv, function(req)
        assert(srv:respond(waiting, 200, "first"))
        assert(srv:respond(req.id, 200, "second"))
      end))
      assert.equal(0, srv:pending())
      assert.equal("second", receive(second, "second"):match("\r\n\r\n(.*)$"))
      assert.equal("first", receive(first, "first", srv):match("\r\n\r\n(.*)$"))
      first:close()
      second:close()
    end)

    it("answers 500 when the handler raises, and raises its error after the round", function()
      local srv <close>, c = posted("{}")
      local problem = { reason = "the handler's own error value" }
      local ok, err
      for _ in rounds() do
        ok, err = pcall(srv.run, srv, 20, function() error(problem) end)
        if not ok then break end
      end
      assert.is_false(ok)
      assert.equal(problem, err)
      assert.equal(0, srv:pending())
      local got = receive(c, "}}")
      assert.equal("500", got:match("^HTTP/1%.1 (%d+)"))
      assert.equal("handlerError", cjson.decode(got:match("\r\n\r\n(.*)$")).error.code)
      -- the server serves on
      post(c, "{}")
      assert.is_true(run_until_handled(srv, function(req) srv:respond(req.id, 202) end))
      assert.equal("202", receive(c, "\r\n\r\n"):match("^HTTP/1%.1 (%d+)"))
      c:close()
    end)

    it("lets the handler close its server: it stops when the round is over", function()
      local srv = assert(core.server { paths = { "/api/calls" } })
      local waiting = connect(srv) -- a second request, suspended when the server closes
      post(waiting, "{}")
      assert.is_true(run_until_handled(srv, function() end))
      local c = connect(srv)
      post(c, "{}")
      local after_close
      assert.is_true(run_until_handled(srv, function(req)
        srv:close()
        after_close = { pcall(srv.respond, srv, req.id, 202) }
      end))
      assert.is_false(after_close[1])
      assert.matches("is closed", after_close[2])
      assert.equal("graphcall.server: (closed)", tostring(srv))
      local got, closed = receive(c)
      assert.equal("", got)
      assert.is_true(closed)
      got, closed = receive(waiting)
      assert.equal("", got)
      assert.is_true(closed)
      c:close()
      waiting:close()
    end)

    it("lets the handler abort its own request: closed, never answered", function()
      local srv <close>, c = posted("{}")
      assert.is_true(run_until_handled(srv, function(req) srv:abort(req.id) end))
      assert.equal(0, srv:pending())
      local got, closed = receive(c, nil, srv)
      assert.equal("", got)
      assert.is_true(closed)
      c:close()
    end)

    it("does not re-enter libmicrohttpd from a handler: srv:run gives 0, srv:timeout -1", function()
      local srv <close> = assert(core.server { paths = { "/api/calls" } })
      local second = connect(srv)
      post(second, "[2]")
      local c = connect(srv)
      post(c, "[1]")
      local inside, bodies = {}, {}
      for _ in rounds() do
        srv:run(20, function(req)
          bodies[#bodies + 1] = req.body
          if #bodies == 1 then
            inside = { srv:run(0), srv:timeout() }
          end
          srv:respond(req.id, 202)
        end)
        if #bodies == 2 then break end
      end
      assert.same({ 0, -1 }, inside)
      table.sort(bodies)
      assert.same({ "[1]", "[2]" }, bodies) -- the second was served by the outer rounds
      c:close()
      second:close()
    end)

    it("raises for a handler that is not a function", function()
      local srv <close> = assert(core.server())
      assert.has_error(function() srv:run(0, 42) end)
    end)
  end)

  describe("respond", function()
    it("raises for an unknown or already answered id and for bad arguments", function()
      local srv <close> = assert(core.server())
      assert.has_error(function() srv:respond(12345, 200) end,
        "graphcall.server: respond: unknown or already answered request id 12345")
      local tag = curl({}, url(srv, "/x"))
      local req = assert(next_request(srv))
      assert.has_error(function() srv:respond(req.id, 99) end)
      assert.has_error(function() srv:respond(req.id, 200, "", { ["bad name"] = "x" }) end)
      assert.has_error(function() srv:respond(req.id, 200, "", { ["x-a"] = "a\r\nb" }) end)
      assert.has_error(function() srv:respond(req.id, 200, "", { ["content-length"] = "3" }) end)
      assert.has_error(function() srv:respond(req.id, 200, "", { ["x-a"] = 1 }) end)
      assert.equal(1, srv:pending())  -- misuse left the request pending
      assert.is_true(srv:respond(req.id, 200, "fine"))
      assert.has_error(function() srv:respond(req.id, 200) end,
        "graphcall.server: respond: unknown or already answered request id " .. req.id)
      assert.equal("fine", wait_curl(srv, tag).body)
    end)
  end)

  describe("close", function()
    it("is idempotent, and every method raises afterwards", function()
      local srv = assert(core.server())
      srv:close()
      srv:close()
      assert.equal("graphcall.server: (closed)", tostring(srv))
      for _, m in ipairs({ "port", "fd", "timeout", "run", "next", "pending" }) do
        assert.has_error(function() srv[m](srv) end, "graphcall.server is closed")
      end
      assert.has_error(function() srv:respond(1, 200) end, "graphcall.server is closed")
    end)

    it("is the same function as __gc and __close", function()
      local mt = getmetatable(assert(core.server()))
      assert.equal("graphcall.server", mt.__name)
      assert.equal(mt.__index.close, mt.__gc)
      assert.equal(mt.__index.close, mt.__close)
    end)

    it("runs for a <close> variable at the end of its scope", function()
      local ref
      do
        local srv <close> = assert(core.server())
        ref = srv
        assert.matches("^graphcall.server: 127.0.0.1:%d+$", tostring(ref))
      end
      assert.equal("graphcall.server: (closed)", tostring(ref))
    end)

    it("drops requests waiting to be taken or answered, answering none", function()
      local srv = assert(core.server())
      local t1 = curl({}, url(srv, "/taken"))
      local req = assert(next_request(srv))
      local t2 = curl({}, url(srv, "/queued"))
      for _ in rounds() do
        if srv:run(20) > 0 then break end
      end
      assert.equal(1, srv:pending())
      srv:close()
      assert.has_error(function() srv:respond(req.id, 200) end, "graphcall.server is closed")
      local r1, r2 = wait_curl(nil, t1), wait_curl(nil, t2)
      assert.equal(0, r1.code)
      assert.equal(0, r2.code)
      assert.not_equal(0, r1.rc)
      assert.not_equal(0, r2.rc)
    end)
  end)

  describe("limits", function()
    it("refuses a third connection from one IP with max_per_ip = 2", function()
      local srv <close> = assert(core.server { max_per_ip = 2 })
      local tags = {}
      for i = 1, 3 do tags[i] = curl({ "--max-time", "2" }, url(srv, "/idle" .. i)) end
      local reqs, failed = {}, {}
      for _ in rounds(3) do
        srv:run(20)
        local req = srv:next()
        if req then reqs[#reqs + 1] = req end
        for i, tag in ipairs(tags) do
          if not failed[i] and read(tag .. ".rc") then failed[i] = wait_curl(srv, tag) end
        end
        if #reqs == 2 and next(failed) then break end
      end
      assert.equal(2, #reqs)
      local refused = 0
      for _, res in pairs(failed) do
        assert.equal(0, res.code)
        refused = refused + 1
      end
      assert.equal(1, refused)
      for _, req in ipairs(reqs) do srv:respond(req.id, 200, "late") end
      local codes = {}
      for i, tag in ipairs(tags) do codes[i] = (failed[i] or wait_curl(srv, tag)).code end
      table.sort(codes)
      assert.same({ 0, 200, 200 }, codes)
    end)
  end)

  describe("TLS", function()
    it("serves HTTPS with tls_cert and tls_key", function()
      local ok = os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 " ..
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"):format(
        q(file("k.pem")), q(file("c.pem"))))
      assert.is_true(ok)
      local srv <close> = assert(core.server { tls_cert = read("c.pem"), tls_key = read("k.pem"),
                                               paths = { "/api/calls" } })
      local tag = curl({ "--cacert", file("c.pem"), "-H", "Content-Type: application/json",
                         "--data-binary", '{"tls":true}' }, url(srv, "/api/calls", "https"))
      local req = assert(next_request(srv))
      assert.equal('{"tls":true}', req.body)
      assert.equal("/api/calls", req.path)
      srv:respond(req.id, 201, "secure", { ["content-type"] = "text/plain" })
      local res = wait_curl(srv, tag)
      assert.equal(0, res.rc)
      assert.equal(201, res.code)
      assert.equal("secure", res.body)
      -- the same port refuses plain HTTP requests
      res = wait_curl(srv, curl({ "--max-time", "2" }, url(srv, "/api/calls")))
      assert.not_equal(201, res.code)
      assert.is_nil(srv:next())
    end)

    it("returns nil, err of kind 'tls' for an unusable certificate", function()
      local srv, err = core.server { tls_cert = "not a certificate", tls_key = "not a key" }
      assert.is_nil(srv)
      assert.equal("tls", err.kind)
    end)
  end)
end)
