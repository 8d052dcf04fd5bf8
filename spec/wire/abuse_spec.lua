-- The abuse and fault matrix: a receiver under attack keeps serving the
-- legitimate notification and never calls its handler for anything else; a
-- client facing a hostile server returns errors and leaks nothing.
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local socket = require "socket"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local BODY = '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/x",'
  .. '"resourceData":{"state":"established"}}]}'

-- A receiver on its own loop, with a handler that counts.
local function receiver(opts)
  local r = { seen = 0 }
  r.loop = graphcall.new_loop { timeout = 5 }
  r.client = graphcall.new { app_id = APP_ID, token = "t", loop = r.loop }
  opts = opts or {}
  opts.verify = false
  opts.handler = function() r.seen = r.seen + 1 end
  r.rx = assert(r.client:receiver(opts))
  -- raw bytes on a new connection (from `from`, a loopback address); the
  -- first line of the answer, or nil when the server closed without one
  function r.raw(text, from)
    local s = socket.tcp()
    if from then assert(s:bind(from, 0)) end
    assert(s:connect("127.0.0.1", r.rx:port()))
    s:settimeout(0)
    s:send(text)
    local got = ""
    for _ = 1, 200 do
      r.loop:step(0.01)
      local data, err, partial = s:receive("*a")
      got = got .. (data or partial or "")
      if err == "closed" or got:find("\r\n\r\n", 1, true) then break end
    end
    s:close()
    return got:match("^HTTP/1%.1 (%d+)")
  end
  function r.post(body, headers)
    local h = headers or { ["Content-Type"] = "application/json" }
    local result
    r.loop:request({ method = "POST", url = r.rx:url(), headers = h, body = body or BODY },
      function(x) result = x end)
    r.loop:wait(function() return result ~= nil end, 5)
    return result
  end
  function r.close()
    r.rx:close()
    r.loop:close()
  end
  return r
end

describe("receiver abuse", function()
  it("a 10 MB Content-Length gets 413 without the body being read", function()
    local r = receiver()
    assert.equal("413", r.raw("POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Content-Length: 10485760\r\n\r\n"))
    assert.equal(0, r.seen)
    r.close()
  end)

  it("a 64 KB header gets 431", function()
    local r = receiver()
    assert.equal("431", r.raw("POST /api/calls HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(65536)
      .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #BODY .. "\r\n\r\n" .. BODY))
    assert.equal(0, r.seen)
    r.close()
  end)

  it("duplicate Content-Length, and Content-Length with Transfer-Encoding, get 400", function()
    local r = receiver()
    assert.equal("400", r.raw("POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Content-Length: " .. #BODY .. "\r\nContent-Length: 5\r\n\r\n" .. BODY))
    assert.equal("400", r.raw("POST /api/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. ("%x\r\n%s\r\n0\r\n\r\n"):format(#BODY, BODY)))
    assert.equal(0, r.seen)
    -- and the receiver still serves
    assert.equal(202, r.post().status)
    assert.equal(1, r.seen)
    r.close()
  end)

  it("200 slow connections from one address cannot keep out a legitimate notification", function()
    local r = receiver { max_per_ip = 16 }
    local slow, refused = {}, 0
    for i = 1, 200 do
      local s = socket.tcp()
      assert(s:bind("127.0.0.2", 0))
      s:settimeout(0)
      s:connect("127.0.0.1", r.rx:port())
      slow[i] = s
    end
    for _ = 1, 20 do r.loop:step(0.01) end
    for _, s in ipairs(slow) do s:send("POST /api/calls HTTP/1.1\r\nHost: x\r\n") end -- and never more
    for _ = 1, 20 do r.loop:step(0.01) end
    for _, s in ipairs(slow) do
      local _, err = s:receive(1)
      if err == "closed" then refused = refused + 1 end
    end
    local result = r.post()
    assert.equal(202, result.status)
    assert.equal(1, r.seen)
    assert.is_true(refused >= 200 - 16, "only " .. refused .. " over the per-IP limit were refused")
    for _, s in ipairs(slow) do s:close() end
    r.close()
  end)

  it("slow headers are cut off by the request deadline", function()
    local r = receiver { request_timeout = 0.3 }
    local s = socket.tcp()
    assert(s:connect("127.0.0.1", r.rx:port()))
    s:settimeout(0)
    s:send("POST /api/calls HTTP/1.1\r\nHost: x\r\n")
    local closed = false
    local deadline = socket.gettime() + 3
    while socket.gettime() < deadline and not closed do
      s:send("X")
      r.loop:step(0.05)
      local _, err = s:receive(1)
      closed = err == "closed"
    end
    s:close()
    assert.is_true(closed)
    assert.equal(0, r.seen)
    r.close()
  end)
end)

describe("client faults", function()
  local function world()
    local w = {}
    w.loop = graphcall.new_loop { timeout = 5, max_response_bytes = 1024 * 1024 }
    w.emu = assert(emulator.start { loop = w.loop, token = "tok" })
    w.client = graphcall.new { app_id = APP_ID, token = "tok", graph_url = w.emu.url, loop = w.loop,
      max_retries = 0 }
    w.spec = { callback_uri = "https://bot.example/cb", targets = { graphcall.user { id = "u" } } }
    function w.close() w.emu:close(); w.loop:close() end
    return w
  end

  it("a 302 to another host is not followed, and the token never goes there", function()
    local w = world()
    local other = assert(emulator.start { loop = w.loop })
    w.emu:fail_next { mode = "redirect", location = other.url .. "/v1.0/communications/calls" }
    local call, err = w.client:call(w.spec)
    assert.is_nil(call)
    assert.same({ "http", 302 }, { err.kind, err.status })
    assert.equal(0, #other.requests)
    other:close()
    w.close()
  end)

  it("a gzip bomb is never inflated: the compressed bytes are a bad response", function()
    local w = world()
    local p = assert(io.popen("head -c 20000000 /dev/zero | gzip -9"))
    local bomb = p:read("a")
    p:close()
    assert.is_true(#bomb < 64 * 1024)
    w.emu:fail_next { mode = "gzip", body = bomb }
    local call, err = w.client:call(w.spec)
    assert.is_nil(call)
    assert.same({ "bad_response", 201 }, { err.kind, err.status })
    assert.is_true(#err.body <= 1024)
    w.close()
  end)

  it("1000 response headers are refused", function()
    local w = world()
    w.emu:fail_next { mode = "headers", headers = 1000 }
    local call, err = w.client:call(w.spec)
    assert.is_nil(call)
    assert.same({ "bad_response", "too_many_headers" }, { err.kind, err.cause })
    w.close()
  end)

  it("a dead https_proxy is a connect error; uppercase HTTP_PROXY is ignored for http", function()
    local env = "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'"
    local script = "local g = require [[graphcall]] "
      .. "local c = g.new { app_id = [[" .. APP_ID .. "]], token = [[t]], max_retries = 0 } "
      .. "local call, err = c:call { callback_uri = [[https://bot.example/cb]], targets = { g.user { id = [[u]] } } } "
      .. "print(err.kind)"
    local p = assert(io.popen(("https_proxy=http://127.0.0.1:1 %s lua5.4 -e %q 2>&1"):format(env, script)))
    local out = p:read("a")
    p:close()
    assert.equal("connect\n", out)

    -- uppercase HTTP_PROXY is ignored for http URLs (libcurl's rule): the
    -- request reaches the emulator, which answers 8522 for an unknown call
    p = assert(io.popen(("HTTP_PROXY=http://127.0.0.1:1 %s lua5.4 -e %q 2>&1"):format(env,
      "local g = require [[graphcall]] local emu = require([[graphcall.emulator]]).start {} "
      .. "local c = g.new { app_id = [[" .. APP_ID .. "]], token = [[t]], graph_url = emu.url, max_retries = 0 } "
      .. "local _, err = c:get_call([[nope]]) print(err.kind, err.code)")))
    out = p:read("a")
    p:close()
    assert.equal("graph\t8522\n", out)
  end)

  it("10,000 failed requests leave the heap flat", function()
    local loop = graphcall.new_loop { timeout = 1 }
    local c = graphcall.new { app_id = APP_ID, token = "t", graph_url = "http://127.0.0.1:1", loop = loop,
      max_retries = 0 }
    local function round(n)
      for _ = 1, n do
        local data, err = c:get_call("x")
        assert(data == nil and err.kind == "connect")
      end
    end
    round(500)
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    round(10000)
    collectgarbage()
    collectgarbage()
    assert.is_true(collectgarbage("count") - before < 256, "heap grew by " .. (collectgarbage("count") - before))
    loop:close()
  end)
end)
