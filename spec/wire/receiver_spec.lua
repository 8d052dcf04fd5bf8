-- The receiver (client:receiver): the HTTP endpoint behind the bot's
-- callbackUri, served by the client's event loop. Raw requests come from the
-- loop's own dispatcher (loop:request) or, for limits that need several
-- connections or slow clients, from curl and bash running in the background.
-- Every test has its own loop and closes what it opens.
local graphcall = require "graphcall"
local receiver = require "graphcall.receiver"
local core = require "graphcall.core"
local cjson = require("cjson.safe").new()

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local SEED_CALL_ID = "57DAB8B1894C409AB240BD8BEAE78896"
local JSON = { ["Content-Type"] = "application/json" }

local scratch = require "support.scratch"
local q, file, read, write = scratch.q, scratch.file, scratch.read, scratch.write

local function fixture(path)
  local f = assert(io.open("spec/fixtures/" .. path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- A compact notification body; `context` lands in clientContext so that each
-- delivery can be told apart.
local function notification(context, state)
  return cjson.encode { value = { {
    changeType = "updated",
    resourceUrl = "/communications/calls/" .. SEED_CALL_ID,
    resourceData = { ["@odata.type"] = "#microsoft.graph.call", state = state or "established",
                     clientContext = context },
  } } }
end

-- These specs are about HTTP and limits: receivers skip token verification
-- (when the receiver has it).
local function unverified(opts)
  if receiver.DEFAULTS.verify ~= nil and opts.verify == nil then opts.verify = false end
  return opts
end

-- What each test opened, closed by after_each in reverse order.
local opened = {}

local function track(x)
  opened[#opened + 1] = x
  return x
end

-- A private loop, a client on it, and a receiver whose handler records every
-- call: env.calls (count), env.batches, env.requests, env.seen[context] (count
-- of deliveries per clientContext), env.errors (what reached on_error).
local function setup_env(rx_opts, handler)
  local env = { calls = 0, batches = {}, requests = {}, seen = {}, errors = {} }
  env.loop = track(graphcall.new_loop {
    timeout = 5,
    on_error = function(err, traceback) env.errors[#env.errors + 1] = { err = err, traceback = traceback } end,
  })
  env.client = graphcall.new { app_id = APP_ID, token = "tok", loop = env.loop }
  rx_opts = unverified(rx_opts or {})
  rx_opts.handler = function(batch, request)
    env.calls = env.calls + 1
    env.batches[#env.batches + 1] = batch
    env.requests[#env.requests + 1] = request
    for _, n in ipairs(batch) do
      local ctx = n.client_context or "?"
      env.seen[ctx] = (env.seen[ctx] or 0) + 1
    end
    if handler then handler(batch, request) end
  end
  env.rx = track(assert(env.client:receiver(rx_opts)))
  return env
end

-- Send one raw request with the loop's own dispatcher and wait for its result.
local function send(env, req)
  local result
  env.loop:request({
    method = req.method or "POST", url = req.url or env.rx:url(),
    headers = req.headers or JSON, body = req.body,
  }, function(r) result = r end)
  assert.is_true(env.loop:run_until(function() return result ~= nil end, 3))
  return result
end

local function post(env, body, headers)
  return send(env, { body = body, headers = headers })
end

local function error_of(result)
  assert.equal("application/json", result.headers["content-type"])
  local doc = assert(cjson.decode(result.body))
  assert.is_table(doc.error)
  return doc.error
end

-- Bounded wall-clock rounds: at most `seconds` (and 2000 rounds).
local function rounds(seconds)
  local stop, n = core.monotonic() + seconds, 0
  return function()
    n = n + 1
    if n <= 2000 and core.monotonic() < stop then return n end
  end
end

local seq = 0

-- curl in the background; -w writes "code seconds" and an .rc file appears
-- when it is done.
local function curl(args, url)
  seq = seq + 1
  local tag = "c" .. seq
  local parts = { "curl -s", "-o", q(file(tag .. ".body")), "-w", q("%{http_code} %{time_total}\\n") }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  parts[#parts + 1] = q(url)
  os.execute(("((%s > %s 2>/dev/null; echo $? > %s; mv %s %s) &)"):format(table.concat(parts, " "),
    q(file(tag .. ".out")), q(file(tag .. ".tmp")), q(file(tag .. ".tmp")), q(file(tag .. ".rc"))))
  return tag
end

local function curl_post(body, url, extra)
  local args = { "--max-time", "4", "-H", "Content-Type: application/json", "--data-binary", body }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return curl(args, url)
end

local function curl_done(tag)
  local rc = read(tag .. ".rc")
  if not rc then return nil end
  local code, secs = (read(tag .. ".out") or ""):match("(%d+) ([%d.]+)")
  return { rc = tonumber(rc), code = tonumber(code), seconds = tonumber(secs), body = read(tag .. ".body") }
end

-- Run the loop until curl is done; its result.
local function wait_curl(env, tag)
  for _ in rounds(6) do
    local res = curl_done(tag)
    if res then return res end
    env.loop:step(0.02)
  end
  error("curl " .. tag .. " did not finish")
end

-- Run the loop until the marker file appears.
local function wait_file(env, name, seconds)
  for _ in rounds(seconds or 5) do
    if read(name) then return true end
    env.loop:step(0.02)
  end
  error("no " .. name)
end

local function step_for(env, seconds)
  for _ in rounds(seconds) do env.loop:step(0.02) end
end

-- A bash client holding an idle connection open for `seconds`; files
-- <name>.up when connected, <name>.done when it has gone.
local function hold(port, seconds, name)
  local script = ("exec 3<>/dev/tcp/127.0.0.1/%d || exit 1; touch %s; sleep %s; exec 3>&-; touch %s"):format(
    port, q(file(name .. ".up")), seconds, q(file(name .. ".done")))
  os.execute("bash -c " .. q(script) .. " >/dev/null 2>&1 &")
end

describe("graphcall receiver", function()
  setup(scratch.open)
  teardown(scratch.close)

  after_each(function()
    for i = #opened, 1, -1 do opened[i]:close() end
    opened = {}
  end)

  describe("valid notifications", function()
    it("answers the seed's notification 202 and hands the parsed batch and the headers to the handler", function()
      local env = setup_env()
      local body = fixture("seed/notification_establishing.json")
      local r = post(env, body, { ["Content-Type"] = "application/json", ["X-Test"] = "hello",
                                  ["Authorization"] = "Bearer abc" })
      assert.is_nil(r.failure)
      assert.equal(202, r.status)
      assert.equal("", r.body)
      assert.equal(1, env.calls)
      local batch, req = env.batches[1], env.requests[1]
      assert.equal(1, #batch)
      local n = batch[1]
      assert.equal("establishing", n.state)
      assert.equal("outgoing", n.direction)
      assert.equal("updated", n.change_type)
      assert.equal(SEED_CALL_ID, n.call_id)
      assert.equal("call", n.kind)
      assert.equal("#microsoft.graph.call", n.odata_type)
      assert.equal("application/json", req.headers["content-type"])
      assert.equal("hello", req.headers["x-test"])
      assert.equal("Bearer abc", req.headers.authorization)
      assert.equal(tostring(#body), req.headers["content-length"])
      assert.equal("POST", req.method)
      assert.equal("/api/calls", req.path)
      assert.equal(body, req.body)
      assert.equal("127.0.0.1", req.remote)
      assert.equal(1, env.rx.accepted)
      assert.equal(0, env.rx.rejected)
      assert.same({}, env.errors)
    end)

    it("accepts a Content-Type with parameters and a query string on the path", function()
      local env = setup_env()
      local r = send(env, { url = env.rx:url() .. "?validationToken=x",
                            headers = { ["Content-Type"] = "Application/JSON; charset=utf-8" },
                            body = notification("q") })
      assert.equal(202, r.status)
      assert.equal(1, env.calls)
      assert.equal("validationToken=x", env.requests[1].query)
    end)

    it("delivers three POSTs sent at once, each to the handler exactly once", function()
      local env = setup_env()
      local results = {}
      for i = 1, 3 do
        env.loop:request({ method = "POST", url = env.rx:url(), headers = JSON, body = notification("n" .. i) },
          function(r) results[i] = r end)
      end
      assert.is_true(env.loop:run_until(function() return results[1] and results[2] and results[3] end, 3))
      for i = 1, 3 do assert.equal(202, results[i].status) end
      assert.equal(3, env.calls)
      assert.same({ n1 = 1, n2 = 1, n3 = 1 }, env.seen)
      -- and three more one after the other
      for i = 4, 6 do assert.equal(202, post(env, notification("n" .. i)).status) end
      assert.equal(6, env.calls)
      assert.same({ n1 = 1, n2 = 1, n3 = 1, n4 = 1, n5 = 1, n6 = 1 }, env.seen)
      assert.equal(6, env.rx.accepted)
    end)

    it("hands every notification of a batch over in one handler call", function()
      local env = setup_env()
      local body = '{"value":[' ..
        '{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":{"state":"establishing"}},' ..
        '{"changeType":"deleted","resourceUrl":"/communications/calls/b","resourceData":{"state":"terminated"}}]}'
      assert.equal(202, post(env, body).status)
      assert.equal(1, env.calls)
      local batch = env.batches[1]
      assert.equal(2, #batch)
      assert.equal("a", batch[1].call_id)
      assert.equal("establishing", batch[1].state)
      assert.equal("b", batch[2].call_id)
      assert.equal("deleted", batch[2].change_type)
    end)
  end)

  describe("malformed bodies", function()
    local cases = {
      { name = "not JSON", body = "{not json", message = "not valid JSON" },
      { name = "empty", body = "", message = "empty body" },
      { name = "value missing", body = '{"foo":1}', message = "value: missing or not an array" },
      { name = "a NUL byte", body = '{"value":[{"changeType":"upd\0ated"}]}', message = "NUL byte at offset 28" },
      { name = "value empty", body = '{"value":[]}', message = "value: must be a non-empty array" },
      { name = "an entry without changeType",
        body = '{"value":[{"resourceUrl":"/communications/calls/a"}]}', message = "value[1].changeType: missing" },
    }
    for _, case in ipairs(cases) do
      it("answers 400 naming the problem for a body that is " .. case.name .. ", without the handler", function()
        local env = setup_env()
        local r = post(env, case.body)
        assert.is_nil(r.failure)
        assert.equal(400, r.status)
        local e = error_of(r)
        assert.equal("badRequest", e.code)
        assert.matches(case.message, e.message, 1, true)
        assert.equal(0, env.calls)
        assert.equal(1, env.rx.rejected)
        assert.equal(0, env.rx.accepted)
        assert.same({}, env.errors)
      end)
    end

    it("counts every rejection and keeps serving valid notifications in between", function()
      local env = setup_env()
      for i, case in ipairs(cases) do
        assert.equal(400, post(env, case.body).status)
        assert.equal(202, post(env, notification("ok" .. i)).status)
      end
      assert.equal(#cases, env.rx.rejected)
      assert.equal(#cases, env.rx.accepted)
      assert.equal(#cases, env.calls)
      for i = 1, #cases do assert.equal(1, env.seen["ok" .. i]) end
    end)
  end)

  describe("handler errors", function()
    it("answer 500, reach on_error with a traceback, and the receiver keeps serving", function()
      local fail = true
      local env = setup_env(nil, function()
        if fail then error("handler boom") end
      end)
      local r = post(env, notification("first"))
      assert.equal(500, r.status)
      assert.equal("handlerError", error_of(r).code)
      assert.equal(1, #env.errors)
      assert.matches("handler boom", tostring(env.errors[1].err), 1, true)
      assert.is_string(env.errors[1].traceback)
      assert.matches("handler boom", env.errors[1].traceback, 1, true)
      assert.matches("stack traceback:", env.errors[1].traceback, 1, true)
      assert.equal(1, env.calls)

      fail = false
      r = post(env, notification("second"))
      assert.equal(202, r.status)
      assert.equal(2, env.calls)
      assert.same({ first = 1, second = 1 }, env.seen)
      assert.equal(1, #env.errors)
    end)

    it("keep the last errors in loop.errors when there is no on_error hook (and log them)", function()
      local logged = {}
      local loop = track(graphcall.new_loop { log = function(level, event, fields)
        if event == "handler_error" then logged[#logged + 1] = { level, fields.error } end
      end })
      local client = graphcall.new { app_id = APP_ID, token = "tok", loop = loop }
      local rx = track(assert(client:receiver(unverified { handler = function() error({ code = "table error" }) end })))
      local result
      loop:request({ method = "POST", url = rx:url(), headers = JSON, body = notification("x") },
        function(r) result = r end)
      assert.is_true(loop:run_until(function() return result ~= nil end, 3))
      assert.equal(500, result.status)
      assert.equal(1, #loop.errors)
      assert.same({ code = "table error" }, loop.errors[1].error)
      assert.is_string(loop.errors[1].traceback)
      assert.same({ { "error", tostring(loop.errors[1].error) } }, logged)
    end)
  end)

  describe("requests refused before any Lua runs", function()
    it("404 for another path", function()
      local env = setup_env()
      local base = env.rx:url():gsub("/api/calls$", "")
      for _, path in ipairs({ "/api/other", "/api/calls/", "/", "/API/CALLS" }) do
        local r = send(env, { url = base .. path, body = notification("x") })
        assert.equal(404, r.status, path)
        assert.equal("notFound", error_of(r).code)
      end
      assert.equal(0, env.calls)
      assert.equal(0, env.rx.rejected + env.rx.accepted)
    end)

    it("405 with Allow: POST for GET, PUT and DELETE", function()
      local env = setup_env()
      for _, method in ipairs({ "GET", "PUT", "DELETE" }) do
        local r = send(env, { method = method, body = method == "PUT" and notification("x") or nil })
        assert.equal(405, r.status, method)
        assert.equal("POST", r.headers.allow)
        assert.equal("methodNotAllowed", error_of(r).code)
      end
      assert.equal(0, env.calls)
    end)

    it("415 for text/plain and for a body without a Content-Type", function()
      local env = setup_env()
      local r = post(env, notification("x"), { ["Content-Type"] = "text/plain" })
      assert.equal(415, r.status)
      assert.equal("unsupportedMediaType", error_of(r).code)
      r = post(env, notification("x"), { ["Content-Type"] = "" })
      assert.equal(415, r.status)
      assert.equal(0, env.calls)
      assert.equal(0, env.rx.rejected)
    end)

    it("413 for a body over max_body, and a body of exactly max_body is served", function()
      local env = setup_env { max_body = 300 }
      local body = notification(("p"):rep(300))
      assert.is_true(#body > 300)
      local r = post(env, body)
      assert.equal(413, r.status)
      local e = error_of(r)
      assert.equal("payloadTooLarge", e.code)
      assert.equal("request body exceeds 300 bytes", e.message)
      assert.equal(0, env.calls)
      local exact = notification("e")
      exact = exact:gsub('"e"', '"e' .. ("x"):rep(300 - #exact) .. '"')
      assert.equal(300, #exact)
      assert.equal(202, post(env, exact).status)
      assert.equal(1, env.calls)
      assert.equal(1, env.rx.accepted)
    end)

    it("413 for a chunked body growing over max_body (curl)", function()
      local env = setup_env { max_body = 200 }
      local big = write("chunked", notification(("c"):rep(300)))
      local res = wait_curl(env, curl_post("@" .. big, env.rx:url(), { "-H", "Transfer-Encoding: chunked" }))
      assert.equal(413, res.code)
      assert.equal("payloadTooLarge", cjson.decode(res.body).error.code)
      assert.equal(0, env.calls)
    end)
  end)

  describe("limits", function()
    it("has documented defaults", function()
      local limits = {
        host = "127.0.0.1", port = 0, path = "/api/calls", max_body = 262144,
        max_connections = 64, max_per_ip = 16, idle_timeout = 10, request_timeout = 30,
      }
      for k, v in pairs(limits) do assert.equal(v, receiver.DEFAULTS[k], k) end
    end)

    it("applies the default max_body of 262144 bytes", function()
      local env = setup_env()
      local file_name = write("big", notification(("d"):rep(262144)))
      -- Expect: 100-continue lets the 413 come before the body is sent
      local res = wait_curl(env, curl_post("@" .. file_name, env.rx:url(),
        { "-H", "Expect: 100-continue", "--expect100-timeout", "3" }))
      assert.equal(413, res.code)
      assert.equal("request body exceeds 262144 bytes", cjson.decode(res.body).error.message)
      assert.equal(0, env.calls)
    end)

    it("refuses a third connection from one IP with max_per_ip = 2; nothing accepted is lost", function()
      local env = setup_env { max_per_ip = 2 }
      local port = env.rx:port()
      hold(port, 0.8, "ip1")
      hold(port, 0.8, "ip2")
      wait_file(env, "ip1.up")
      wait_file(env, "ip2.up")
      step_for(env, 0.1)
      local refused = wait_curl(env, curl_post(notification("refused"), env.rx:url()))
      assert.equal(0, refused.code)
      assert.not_equal(0, refused.rc)
      -- the held connections go; a new one is served
      wait_file(env, "ip1.done")
      wait_file(env, "ip2.done")
      step_for(env, 0.1)
      local ok = wait_curl(env, curl_post(notification("after"), env.rx:url()))
      assert.equal(0, ok.rc)
      assert.equal(202, ok.code)
      assert.same({ after = 1 }, env.seen)
      assert.equal(1, env.calls)
    end)

    it("makes connections over max_connections wait for a free slot, then delivers each once", function()
      local env = setup_env { max_connections = 2 }
      local port = env.rx:port()
      hold(port, 0.6, "mc1")
      hold(port, 0.6, "mc2")
      wait_file(env, "mc1.up")
      wait_file(env, "mc2.up")
      step_for(env, 0.1)
      local t1 = curl_post(notification("w1"), env.rx:url())
      local t2 = curl_post(notification("w2"), env.rx:url())
      step_for(env, 0.2)
      assert.equal(0, env.calls)          -- both wait while the slots are taken
      assert.is_nil(curl_done(t1))
      assert.is_nil(curl_done(t2))
      local r1, r2 = wait_curl(env, t1), wait_curl(env, t2)
      assert.equal(202, r1.code)
      assert.equal(202, r2.code)
      -- the holders close their sockets, then mark it: the waiting requests
      -- may be answered before the marks exist, so wait for them
      wait_file(env, "mc1.done")
      wait_file(env, "mc2.done")
      assert.same({ w1 = 1, w2 = 1 }, env.seen)
      assert.equal(2, env.calls)
    end)

    it("cuts off a slow upload after request_timeout; the handler never sees it", function()
      local env = setup_env { request_timeout = 0.5, idle_timeout = 10 }
      local started = core.monotonic()
      -- curl: at 200 bytes/s the upload of the body would take 5 s
      local tag = curl_post(notification(("s"):rep(800)), env.rx:url(), { "--limit-rate", "200" })
      -- bash: one body byte every 0.1 s keeps the idle timeout away; measure when the server cuts
      local script = ([[
exec 3<>/dev/tcp/127.0.0.1/%d
printf 'POST /api/calls HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n' >&3
( for i in $(seq 40); do sleep 0.1; printf X >&3 || exit; done ) 2>/dev/null &
start=$(date +%%s%%N); timeout 4 cat <&3 >/dev/null; stop=$(date +%%s%%N)
echo $(( (stop - start) / 1000000 )) > %s.tmp; mv %s.tmp %s]]):format(
        env.rx:port(), file("trickle"), file("trickle"), file("trickle"))
      os.execute("bash -c " .. q(script) .. " >/dev/null 2>&1 &")
      local res = wait_curl(env, tag)
      assert.equal(0, res.code)
      assert.not_equal(0, res.rc)
      assert.is_true(core.monotonic() - started < 4, "curl ran into its own --max-time")
      wait_file(env, "trickle", 4)
      local ms = assert(tonumber(read("trickle")))
      assert.is_true(ms >= 400 and ms < 1500, "cut after " .. ms .. " ms")
      step_for(env, 0.05)
      assert.equal(0, env.calls)
      assert.equal(0, env.rx.accepted + env.rx.rejected)
      -- and the receiver still serves
      assert.equal(202, post(env, notification("fast")).status)
      assert.same({ fast = 1 }, env.seen)
    end)

    it("closes a connection idle for idle_timeout seconds; the handler never sees it", function()
      local env = setup_env { idle_timeout = 1, request_timeout = 30 }
      local script = ([[
exec 3<>/dev/tcp/127.0.0.1/%d
printf 'POST /api/calls HTTP/1.1\r\nHost: a\r\n' >&3
start=$(date +%%s%%N); timeout 4 cat <&3 >/dev/null; stop=$(date +%%s%%N)
echo $(( (stop - start) / 1000000 )) > %s.tmp; mv %s.tmp %s]]):format(
        env.rx:port(), file("idle"), file("idle"), file("idle"))
      os.execute("bash -c " .. q(script) .. " >/dev/null 2>&1 &")
      wait_file(env, "idle", 5)
      local ms = assert(tonumber(read("idle")))
      assert.is_true(ms >= 700 and ms < 3000, "closed after " .. ms .. " ms")
      assert.equal(0, env.calls)
    end)
  end)

  describe("creation and closing", function()
    it("picks a free port for port 0 and puts it in url()", function()
      local env = setup_env { port = 0 }
      local port = env.rx:port()
      assert.is_true(math.type(port) == "integer" and port > 0 and port < 65536)
      assert.equal("http://127.0.0.1:" .. port .. "/api/calls", env.rx:url())
      assert.matches(":" .. port, tostring(env.rx), 1, true)
    end)

    it("serves another path when asked", function()
      local env = setup_env { path = "/bot/notify" }
      assert.matches("/bot/notify$", env.rx:url())
      assert.equal(202, post(env, notification("p")).status)
      assert.equal(1, env.calls)
    end)

    it("returns nil, err of kind 'listen' for a port in use", function()
      local env = setup_env()
      local rx, err = env.client:receiver { port = env.rx:port() }
      assert.is_nil(rx)
      assert.equal("listen", err.kind)
      assert.matches("cannot listen on 127%.0%.0%.1:" .. env.rx:port(), tostring(err))
      -- the first one is unharmed
      assert.equal(202, post(env, notification("still")).status)
    end)

    it("raises for an unknown option, naming it, and for a bad handler or path", function()
      local env = setup_env()
      assert.has_error(function() env.client:receiver { prot = 8080 } end,
        "graphcall.receiver: unknown option 'prot'")
      assert.has_error(function() env.client:receiver { handler = "f" } end,
        "graphcall.receiver: handler must be a function")
      assert.has_error(function() env.client:receiver { path = "api" } end,
        "graphcall.receiver: path must start with '/'")
    end)

    it("close is idempotent and the port stops accepting", function()
      local env = setup_env()
      assert.equal(202, post(env, notification("before")).status)
      local url = env.rx:url()
      env.rx:close()
      env.rx:close()
      local r = send(env, { url = url, body = notification("after") })
      assert.is_nil(r.status)
      assert.equal("connect", r.failure)
      assert.same({ before = 1 }, env.seen)
    end)

    it("a handler may close its own receiver without breaking the loop", function()
      local env
      env = setup_env(nil, function() env.rx:close() end)
      local ok, err = pcall(function()
        local result
        env.loop:request({ method = "POST", url = env.rx:url(), headers = JSON, body = notification("self") },
          function(r) result = r end)
        env.loop:run_until(function() return result ~= nil end, 3)
      end)
      assert.is_true(ok, tostring(err))
      assert.equal(1, env.calls)
      -- the handler did nothing wrong: no error is reported for it
      assert.same({}, env.errors)
      assert.has_no_error(function() env.loop:step(0) end)
    end)
  end)

  describe("TLS", function()
    it("receives a notification over HTTPS with tls_cert and tls_key", function()
      local ok = os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 " ..
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"):format(
        q(file("k.pem")), q(file("c.pem"))))
      assert.is_true(ok)
      local env = setup_env { tls_cert = read("c.pem"), tls_key = read("k.pem") }
      assert.equal("https://127.0.0.1:" .. env.rx:port() .. "/api/calls", env.rx:url())
      local res = wait_curl(env, curl_post(notification("tls"), env.rx:url(), { "--cacert", file("c.pem") }))
      assert.equal(0, res.rc)
      assert.equal(202, res.code)
      assert.same({ tls = 1 }, env.seen)
      assert.equal("application/json", env.requests[1].headers["content-type"])
      -- plain HTTP on the same port gets no answer from the handler
      res = wait_curl(env, curl_post(notification("plain"), (env.rx:url():gsub("^https", "http"))))
      assert.not_equal(202, res.code)
      assert.equal(1, env.calls)
    end)

    it("returns nil, err of kind 'tls' for an unusable certificate", function()
      local loop = track(graphcall.new_loop {})
      local client = graphcall.new { app_id = APP_ID, token = "tok", loop = loop }
      local rx, err = client:receiver(unverified { tls_cert = "not a certificate", tls_key = "not a key" })
      assert.is_nil(rx)
      assert.equal("tls", err.kind)
    end)
  end)
end)
