-- Logging and tracing (graphcall.log), against the emulator: the events of
-- a call's round trip and their fields, retries and token refreshes, the
-- stderr default that GRAPHCALL_LOG and GRAPHCALL_TRACE drive, the trace's
-- format, redaction (no token or secret in any line, at any level), and
-- handler errors that reach stderr without an on_error hook.
local graphcall = require "graphcall"
local support = require "support.world"
local logging = require "graphcall.log"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local TENANT = "contoso.onmicrosoft.com"
local SECRET = "s3cr3t~Value&x=y"
local UUID = "^%x+%-%x+%-%x+%-%x+%-%x+$"

-- Records what a log hook gets.
local function recorder()
  local rec = { events = {} }
  function rec.fn(level, event, fields)
    rec.events[#rec.events + 1] = { level = level, event = event, fields = fields }
  end
  function rec.all(event)
    local list = {}
    for _, e in ipairs(rec.events) do if e.event == event then list[#list + 1] = e end end
    return list
  end
  -- the first `event` whose fields match `want` (equal values)
  function rec.find(event, want)
    for _, e in ipairs(rec.events) do
      if e.event == event then
        local ok = true
        for k, v in pairs(want or {}) do if e.fields[k] ~= v then ok = false end end
        if ok then return e end
      end
    end
    return nil
  end
  return rec
end

-- A loop on a clock the spec moves, the emulator, a client logging to a
-- recorder, and a receiver. opts.secret: tokens from the client-credentials
-- flow (else the static token "tok"); opts.trace: the client's trace.
local function world(opts)
  opts = opts or {}
  local rec = recorder()
  local secret = opts.secret
  local w = support.new { clock = 1000, loop = { log = opts.loop_log, on_error = opts.on_error },
    emulator = { token = secret and support.NONE, client_secret = secret, operation_delay = 0, app_id = APP_ID },
    client = function(emu)
      return { token = secret and support.NONE, tenant = secret and TENANT, client_secret = secret,
        login_url = emu.url, log = rec.fn, trace = opts.trace, keep_alive_interval = 600 }
    end }
  w.rec = rec
  local advance = w.advance
  function w.advance(s)
    advance(s)
    w.settle()
  end
  return w
end

-- Run a Lua chunk in a child lua5.4 with `env` (a string of VAR=value
-- words); returns its stdout and its stderr.
local function child(env, code)
  local script = os.tmpname()
  local errfile = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(("env -u GRAPHCALL_LOG -u GRAPHCALL_TRACE %s LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' "
    .. "LUA_CPATH='./build/?.so;;' lua5.4 %s 2>%s"):format(env, script, errfile)))
  local out = p:read("a")
  p:close()
  f = assert(io.open(errfile))
  local err = f:read("a")
  f:close()
  os.remove(script)
  os.remove(errfile)
  return out, err
end

-- A bot in a child process: a call against the emulator, established, hung up.
local CHILD_BOT = [[
local graphcall = require "graphcall"
local emulator = require "graphcall.emulator"
local emu = assert(emulator.start { notify_delay = 0, client_secret = "s3cr3t~Value&x=y" })
local bot = graphcall.new { app_id = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", tenant = "contoso",
  client_secret = "s3cr3t~Value&x=y", graph_url = emu.url, login_url = emu.url }
local rx = assert(bot:receiver { openid_url = emu.openid_url })
local call = assert(bot:call { callback_uri = rx:url(), targets = { graphcall.user { id = "u1" } } })
assert(call:wait("established", 5))
assert(call:hangup())
for _, r in ipairs(emu.requests) do
  local token = r.headers.authorization and r.headers.authorization:match("^Bearer (.+)$")
  if token then print("token " .. token) end
end
print("done")
]]

describe("the log hook", function()
  it("hears a call's round trip: request, response, keys, notifications, state changes", function()
    local w = world()
    local call = w.call()
    local url = w.emu.url .. "/v1.0/communications/calls"
    local req = w.rec.find("request", { method = "POST", url = url })
    assert.equal("info", req.level)
    assert.matches(UUID, req.fields.client_request_id)
    assert.equal(call.client_request_id, req.fields.client_request_id)
    assert.equal(1, req.fields.attempt)
    local res = w.rec.find("response", { method = "POST", url = url })
    assert.equal("info", res.level)
    assert.equal(201, res.fields.status)
    assert.equal(req.fields.client_request_id, res.fields.client_request_id)
    assert.matches(UUID, res.fields.request_id)
    assert.equal("integer", math.type(res.fields.elapsed_ms))
    local keys = w.rec.find("keys_fetch")
    assert.equal("info", keys.level)
    assert.equal(w.emu.openid_url, keys.fields.url)
    assert.is_true(keys.fields.keys >= 1)
    local accepted = w.rec.all("notification_accepted")
    assert.is_true(#accepted >= 2) -- establishing, established
    assert.same({ count = 1, path = "/api/calls", remote = "127.0.0.1", tenant = accepted[1].fields.tenant,
      verified = true }, accepted[1].fields)
    assert.is_string(accepted[1].fields.tenant)
    local n = w.rec.find("notification", { state = "established" })
    assert.same({ "debug", { call_id = call.id, kind = "call", change_type = "updated", state = "established",
      known = true } }, { n.level, n.fields })
    local state = w.rec.find("call_state", { to = "established" })
    assert.same({ call_id = call.id, from = "establishing", to = "established" }, state.fields)
    assert.is_true(call:hangup())
    assert.is_true(call:wait("terminated", 5))
    assert.is_not_nil(w.rec.find("request", { method = "DELETE", url = url .. "/" .. call.id }))
    local deleted = w.rec.find("response", { method = "DELETE" })
    assert.same({ "info", call.id }, { deleted.level, deleted.fields.url:match("[^/]+$") })
    assert.is_true(deleted.fields.status >= 200 and deleted.fields.status < 300)
    local states = {}
    for _, e in ipairs(w.rec.all("call_state")) do
      assert.equal(call.id, e.fields.call_id)
      states[#states + 1] = e.fields.from .. ">" .. e.fields.to
    end
    assert.same({ "establishing>established", "established>terminating", "terminating>terminated" }, states)
    -- no trace unless asked for
    assert.same({}, w.rec.all("trace"))
    w.close()
  end)

  it("hears a refused notification and why, never its token", function()
    local w = world()
    w.call() -- the keys are fetched
    assert.equal(401, w.post(nil).status)
    local e = w.rec.find("notification_refused", { reason = "no Bearer token" })
    assert.equal("warn", e.level)
    assert.same({ status = 401, reason = "no Bearer token", path = "/api/calls", remote = "127.0.0.1" }, e.fields)
    local forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJmb3JnZWQifQ.c2lnbmF0dXJl"
    assert.equal(401, w.post("Bearer " .. forged).status)
    local refused = w.rec.all("notification_refused")
    assert.equal(2, #refused)
    assert.is_string(refused[2].fields.reason)
    assert.not_equal("no Bearer token", refused[2].fields.reason)
    local now = os.time()
    local good = w.emu:sign_claims { iss = "https://api.botframework.com", aud = APP_ID,
      tid = "72f988bf-86f1-41af-91ab-2d7cd011db47", nbf = now - 10, exp = now + 300 }
    assert.equal(400, w.post("Bearer " .. good, "not json").status)
    local bad = w.rec.find("notification_refused", { status = 400 })
    assert.matches("^bad_notification: ", bad.fields.reason)
    for _, ev in ipairs(w.rec.events) do
      local line = logging.format(ev.level, ev.event, ev.fields)
      assert.is_nil(line:find(forged, 1, true))
      assert.is_nil(line:find(good, 1, true))
    end
    w.close()
  end)

  it("hears keepAlives, and a failed one at warn", function()
    local w = world()
    local call = w.call()
    w.advance(600)
    local ok = w.rec.find("keep_alive")
    assert.equal("info", ok.level)
    assert.same({ call_id = call.id }, ok.fields)
    w.emu:fail_next { status = 500, path = "/keepAlive$" }
    w.advance(600)
    local failed = w.rec.find("keep_alive_failed")
    assert.equal("warn", failed.level)
    assert.equal(call.id, failed.fields.call_id)
    assert.equal(500, failed.fields.status)
    assert.equal("graph", failed.fields.kind)
    assert.equal("Injected fault.", failed.fields.error)
    assert.equal("established", call.state) -- tried again at the next beat
    assert.same({}, w.loop.errors)
    w.close()
  end)

  it("hears a retry and why (a 503 answer), with the same client-request-id", function()
    local w = world()
    local call = w.call()
    w.emu:fail_next { status = 503, retry_after = 0 }
    assert.is_table(w.client:get_call(call.id))
    local retry = w.rec.find("retry")
    assert.equal("warn", retry.level)
    assert.equal("HTTP 503", retry.fields.reason)
    assert.equal(1, retry.fields.attempt)
    assert.equal(0, retry.fields.delay)
    assert.equal("0", retry.fields.retry_after)
    assert.equal("GET", retry.fields.method)
    local answers = {}
    for _, e in ipairs(w.rec.all("response")) do
      if e.fields.client_request_id == retry.fields.client_request_id then answers[#answers + 1] = e end
    end
    assert.equal(2, #answers)
    assert.same({ "warn", 503 }, { answers[1].level, answers[1].fields.status })
    assert.same({ "info", 200 }, { answers[2].level, answers[2].fields.status })
    assert.is_not_nil(w.rec.find("request", { client_request_id = retry.fields.client_request_id, attempt = 2 }))
    w.close()
  end)

  it("hears token refreshes from the token endpoint, and the retry after Graph refused a token", function()
    local w = world { secret = SECRET }
    w.call()
    local first = w.rec.find("token_refresh")
    assert.equal("info", first.level)
    assert.same({ tenant = TENANT, expires_in = 3599, count = 1, elapsed_ms = 0 }, first.fields)
    w.emu:expire_tokens()
    w.call()
    local retry = w.rec.find("retry", { reason = "token_expired" })
    assert.equal("warn", retry.level)
    assert.equal("POST", retry.fields.method)
    local refreshes = w.rec.all("token_refresh")
    assert.equal(2, #refreshes)
    assert.equal(2, refreshes[2].fields.count)
    w.close()
  end)

  it("hears a failed token refresh at warn", function()
    local w = world { secret = SECRET }
    local w2 = graphcall.new { app_id = APP_ID, tenant = TENANT, client_secret = "wrong", login_url = w.emu.url,
      graph_url = w.emu.url, loop = w.loop, log = w.rec.fn }
    local call, err = w2:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } }
    assert.is_nil(call)
    assert.equal("auth", err.kind)
    local e = w.rec.find("token_refresh", { failed = true })
    assert.equal("warn", e.level)
    assert.equal(TENANT, e.fields.tenant)
    assert.equal(400, e.fields.status) -- the emulator answers as the identity platform does
    assert.equal("invalid_client", e.fields.code)
    assert.is_string(e.fields.error)
    w.close()
  end)

  it("is an option of the client and of the loop, checked like every option", function()
    assert.has_error(function() graphcall.new { app_id = APP_ID, log = 42 } end,
      "graphcall.new: log: expected a function(level, event, fields), got number")
    assert.has_error(function() graphcall.new { app_id = APP_ID, trace = "yes" } end,
      "graphcall.new: trace: expected a boolean, got string")
    assert.has_error(function() graphcall.new { app_id = APP_ID, logger = print } end,
      "graphcall.new: unknown option 'logger'")
    assert.has_error(function() graphcall.new_loop { log = "info" } end,
      "graphcall.loop.new: log: expected a function(level, event, fields), got string")
    assert.has_error(function() graphcall.new_loop { trace = 1 } end,
      "graphcall.loop.new: trace: expected a boolean, got number")
    -- a client without its own hook logs through its loop's
    local rec = recorder()
    local loop = graphcall.new_loop { log = rec.fn }
    local c = graphcall.new { app_id = APP_ID, loop = loop }
    assert.equal(loop.log, c.log)
    local own = graphcall.new { app_id = APP_ID, loop = loop, log = function() end }
    assert.not_equal(loop.log, own.log)
    assert.is_true(own.log.debug and own.log.info and own.log.warn and own.log.error)
    loop:close()
  end)

  it("a hook that raises does not stop the request; its error is written by the default writer", function()
    local written = {}
    local saved = logging.output
    logging.output = function(text) written[#written + 1] = text end
    local w = world()
    w.client.log = logging.new(function() error("hook broke") end)
    local ok, result = pcall(w.client.get_call, w.client, "nope")
    logging.output = saved
    assert.is_true(ok)
    assert.is_nil(result)
    assert.matches("^graphcall error log_failed error=.*hook broke.* event=request\n", written[1])
    w.close()
  end)
end)

describe("handler errors", function()
  it("reach the log (level error, with the traceback) without an on_error hook, and stay in loop.errors", function()
    local rec = recorder()
    local w = world { loop_log = rec.fn }
    w.client:on("notification", function() error("handler boom") end)
    w.call()
    local e = rec.find("handler_error")
    assert.equal("error", e.level)
    assert.matches("handler boom", e.fields.error, 1, true)
    assert.matches("stack traceback:", e.fields.traceback, 1, true)
    assert.is_true(#w.loop.errors >= 1)
    w.close()
  end)

  it("an on_error hook takes them instead", function()
    local rec, seen = recorder(), {}
    local w = world { loop_log = rec.fn, on_error = function(err) seen[#seen + 1] = err end }
    w.client:on("notification", function() error("handler boom") end)
    w.call()
    assert.is_true(#seen >= 1)
    assert.same({}, rec.all("handler_error"))
    w.close()
  end)

  it("reach stderr by default, with no GRAPHCALL_LOG set", function()
    local out, err = child("", [[
local graphcall = require "graphcall"
local loop = graphcall.new_loop()
loop:timer(0, function() error("handler boom 17") end)
loop:timer(0, function() loop:stop() end)
loop:run_until(nil, 5)
print(#loop.errors)
]])
    assert.equal("1\n", out)
    assert.matches("^graphcall error handler_error error=\"[^\n]*handler boom 17\"\n", err)
    assert.matches("\nstack traceback:\n", err, 1, true)
    local _, lines = err:gsub("\n", "")
    assert.is_true(lines > 2)
  end)
end)

describe("the default writer", function()
  it("writes one line per event: level, event, fields sorted, values quoted when needed", function()
    assert.equal("graphcall info request client_request_id=abc method=POST url=http://x/y\n",
      logging.format("info", "request", { method = "POST", url = "http://x/y", client_request_id = "abc" }))
    assert.equal('graphcall warn retry attempt=2 delay=1.5 reason="HTTP 503"\n',
      logging.format("warn", "retry", { reason = "HTTP 503", attempt = 2, delay = 1.5 }))
    assert.equal('graphcall error handler_error error="a\\nb"\nstack traceback:\n\tx.lua:1\n',
      logging.format("error", "handler_error", { error = "a\nb", traceback = "stack traceback:\n\tx.lua:1" }))
    assert.equal("> GET / HTTP/1.1\n", logging.format("debug", "trace", { text = "> GET / HTTP/1.1" }))
    assert.equal('graphcall error handler_error error=x.lua:1:_boom\nstack traceback:\n\tx.lua:1\n',
      logging.format("error", "handler_error", { error = "x.lua:1:_boom",
        traceback = "x.lua:1:_boom\nstack traceback:\n\tx.lua:1" }))
  end)

  it("writes what GRAPHCALL_LOG asks for, and only errors without it", function()
    local out, err = child("GRAPHCALL_LOG=info", CHILD_BOT)
    assert.matches("done\n$", out)
    assert.matches("\ngraphcall info request attempt=1 client_request_id=%x[%x-]+ method=POST "
      .. "url=http://127%.0%.0%.1:%d+/v1%.0/communications/calls\n", "\n" .. err)
    assert.matches("\ngraphcall info response client_request_id=[%x-]+ elapsed_ms=%d+ method=POST "
      .. "request_id=[%x-]+ status=201 url=http://[^\n]+/calls\n", err)
    assert.matches("\ngraphcall info token_refresh count=1 elapsed_ms=%d+ expires_in=3599 tenant=contoso\n",
      "\n" .. err)
    assert.matches("\ngraphcall info call_state call_id=[%x-]+ from=establishing to=established\n", err)
    assert.matches("\ngraphcall info notification_accepted count=1 ", err)
    assert.is_nil(err:find("\n> ", 1, true)) -- no trace
    assert.is_nil(err:find("graphcall debug", 1, true))
    -- warn: none of the info lines
    out, err = child("GRAPHCALL_LOG=warn", CHILD_BOT)
    assert.matches("done\n$", out)
    assert.equal("", err)
    -- unset: nothing (no error happened)
    out, err = child("", CHILD_BOT)
    assert.matches("done\n$", out)
    assert.equal("", err)
  end)

  it("is off at the levels not asked for: a logger says so before any field is built", function()
    local lg = logging.new(nil, false)
    if os.getenv("GRAPHCALL_LOG") == nil then
      assert.same({ false, false, false, true, false }, { lg.debug, lg.info, lg.warn, lg.error, lg.trace })
    end
    local saved = logging.output
    local written = {}
    logging.output = function(text) written[#written + 1] = text end
    lg:log("error", "x", { a = 1 })
    if not lg.info then lg:log("info", "y", { a = 1 }) end
    logging.output = saved
    assert.same({ "graphcall error x a=1\n" }, written)
  end)
end)

describe("the trace", function()
  it("shows requests and answers as curl -v does, through the log hook", function()
    local w = world { trace = true }
    local call = w.call()
    local traces = w.rec.all("trace")
    assert.is_true(#traces >= 2)
    local sent, got = traces[1], traces[2]
    assert.equal("debug", sent.level)
    assert.equal(">", sent.fields.direction)
    assert.equal("<", got.fields.direction)
    assert.equal("POST", sent.fields.method)
    assert.equal(call.client_request_id, sent.fields.client_request_id)
    local port = w.emu.url:match(":(%d+)$")
    local text = sent.fields.text
    assert.matches("^> POST /v1%.0/communications/calls HTTP/1%.1\n> Host: 127%.0%.0%.1:" .. port .. "\n", text)
    assert.matches("\n> Accept: application/json\n", text, 1, true)
    assert.matches("\n> Authorization: Bearer [redacted]\n", text, 1, true)
    assert.matches("\n> client-request-id: " .. call.client_request_id .. "\n", text, 1, true)
    assert.matches("\n> Content-Type: application/json\n", text, 1, true)
    assert.matches("\n> Content%-Length: %d+\n\n{", text)
    assert.matches('"callbackUri":"' .. w.rx:url() .. '"', text, 1, true)
    assert.is_nil(text:find("tok\n", 1, true))
    assert.equal(201, got.fields.status)
    assert.matches("^< HTTP/1%.1 201\n", got.fields.text)
    assert.matches("\n< location: " .. w.emu.url .. "/v1.0/communications/calls/" .. call.id .. "\n", got.fields.text,
      1, true)
    assert.matches("\n< request%-id: [%x-]+\n", got.fields.text)
    assert.matches('\n\n{"', got.fields.text, 1, true)
    assert.matches('"id":"' .. call.id .. '"', got.fields.text, 1, true)
    w.close()
  end)

  it("a request without an answer shows why", function()
    assert.equal("< (no answer: connect: Couldn't connect to server)\n",
      logging.response_text { failure = "connect", message = "Couldn't connect to server" })
  end)
end)

describe("redaction", function()
  -- every text an event could put in a line: the default writer's line and
  -- every field value
  local function texts(rec)
    local list = {}
    for _, e in ipairs(rec.events) do
      list[#list + 1] = logging.format(e.level, e.event, e.fields)
      for _, v in pairs(e.fields) do list[#list + 1] = tostring(v) end
    end
    return list
  end

  it("no token and no client secret in any event or trace at debug level, token requests included", function()
    local w = world { secret = SECRET, trace = true }
    local call = w.call()
    w.emu:expire_tokens()
    assert.is_true(call:keep_alive())
    local tokens = {}
    for _, r in ipairs(w.emu.requests) do
      local t = r.headers.authorization and r.headers.authorization:match("^Bearer (emu%..+)$")
      if t then tokens[t] = true end
    end
    assert.equal(2, w.emu.tokens_issued)
    local n = 0
    for _ in pairs(tokens) do n = n + 1 end
    assert.equal(2, n)
    local encoded = SECRET:gsub("[^%w%-%._]", function(c) return ("%%%02X"):format(c:byte()) end)
    local seen_form, seen_answer = false, false
    for _, text in ipairs(texts(w.rec)) do
      assert.is_nil(text:find(SECRET, 1, true))
      assert.is_nil(text:find(encoded, 1, true))
      for t in pairs(tokens) do assert.is_nil(text:find(t, 1, true)) end
      if text:find("client_secret=[redacted]&grant_type", 1, true) then seen_form = true end
      if text:find('"access_token":"[redacted]"', 1, true) then seen_answer = true end
    end
    assert.is_true(seen_form)   -- the token request was traced, its secret redacted
    assert.is_true(seen_answer) -- and its answer, the token redacted
    w.close()
  end)

  it("a static token never shows either", function()
    local w = world { trace = true }
    w.call()
    local bearer = 0
    for _, text in ipairs(texts(w.rec)) do
      assert.is_nil(text:find("Bearer tok", 1, true))
      if text:find("Authorization: Bearer [redacted]", 1, true) then bearer = bearer + 1 end
    end
    assert.is_true(bearer >= 1)
    w.close()
  end)

  it("GRAPHCALL_TRACE=1 traces to stderr, with no token and no secret", function()
    local out, err = child("GRAPHCALL_TRACE=1 GRAPHCALL_LOG=debug", CHILD_BOT)
    assert.matches("done\n$", out)
    assert.matches("\n> POST /contoso/oauth2/v2%.0/token HTTP/1%.1\n", "\n" .. err)
    assert.matches("client_secret=[redacted]&", err, 1, true)
    assert.matches('"access_token":"[redacted]"', err, 1, true)
    assert.matches("\n> Authorization: Bearer [redacted]\n", err, 1, true)
    assert.matches("\n< HTTP/1%.1 201\n", err)
    assert.is_nil(err:find("s3cr3t", 1, true))
    local n = 0
    for token in out:gmatch("token (%S+)") do
      n = n + 1
      assert.is_nil(err:find(token, 1, true))
    end
    assert.is_true(n >= 2)
  end)

  it("redacts credential headers and secret body members", function()
    assert.equal("Bearer [redacted]", logging.redact_header("authorization", "Bearer abc.def"))
    assert.equal("[redacted]", logging.redact_header("Cookie", "a=b"))
    assert.equal("application/json", logging.redact_header("Accept", "application/json"))
    assert.equal("client_id=x&client_secret=[redacted]&grant_type=y",
      logging.redact_body("client_id=x&client_secret=p%40ss&grant_type=y"))
    assert.equal('{"access_token" : "[redacted]","refresh_token":"[redacted]","n":"v"}',
      logging.redact_body('{"access_token" : "eyJ0","refresh_token":"r1","n":"v"}'))
  end)
end)
