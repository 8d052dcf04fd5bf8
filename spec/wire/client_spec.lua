-- The wire end to end on loopback: every seed scenario through the local
-- emulator and the receiver, and every transport fault with its error kind.
local graphcall = require "graphcall"
local support = require "support.world"
local json = require "support.json"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local THREAD = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2"
local UUID4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- A loop, an emulator, a receiver that records what it hears, and a client.
local function world(opts)
  opts = opts or {}
  local heard, by_call = {}, {}
  local w = support.new {
    loop = { timeout = opts.timeout or 5, max_response_bytes = opts.max_response_bytes,
      max_in_flight = opts.max_in_flight },
    client = { token = opts.token, graph_url = opts.graph_url, endpoint = opts.endpoint,
      max_retries = opts.max_retries },
    receiver = { handler = function(batch)
      for _, n in ipairs(batch) do
        heard[#heard + 1] = n
        local list = by_call[n.call_id] or {}
        list[#list + 1] = n.state
        by_call[n.call_id] = list
      end
    end } }
  w.heard, w.by_call = heard, by_call
  function w.until_heard(count)
    assert.is_true(w.loop:run_until(function() return #w.heard >= count and w.emu:idle() end, 5))
  end
  -- the requests to Graph's calls API (not the key and token fetches)
  function w.graph_requests()
    local list = {}
    for _, r in ipairs(w.emu.requests) do
      if r.path:find("/calls") then list[#list + 1] = r end
    end
    return list
  end
  return w
end

local prompts = graphcall.prompts {
  { uri = "https://cdn.contoso.com/beep.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088E" },
}
local organizer = graphcall.user { id = "90ED37DC-D8E3-4E11-9DE3-30A955DDA06F",
  tenant = "49BFC225-8482-4AB8-94E7-76B48FDB9849" }

local SCENARIOS = {
  { "p2p, service-hosted", "call", { targets = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } },
    media = prompts, subject = "Test Call", tenant = "tenantId-value" } },
  { "p2p, app-hosted", "call", { targets = { graphcall.user { id = "550fae72-d251-43ec-868c-373732c2704f" } },
    modalities = { "audio" }, media = graphcall.app_media { blob = "<media config blob>" } } },
  { "group call", "call", { targets = { graphcall.user { id = "29362BD4-CD58-4ED0-A206-0E4A33DBB0B6" },
    graphcall.phone { id = "+12345678890" } }, modalities = { "audio", "video" }, media = prompts,
    chat_info = { thread_id = THREAD } } },
  { "private meeting", "join", { chat_info = { thread_id = THREAD }, organizer = organizer, media = prompts } },
  { "channel meeting", "join", { chat_info = { thread_id = THREAD, message_id = "1507228578052" },
    organizer = organizer } },
  { "channel meeting as a guest", "join", { chat_info = { thread_id = THREAD, message_id = "1507228578052" },
    organizer = organizer, guest = "App_Guest_DisplayName" } },
  { "meeting from a short link", "join", { url = "https://teams.microsoft.com/meet/1234567?p=psw123",
    tenant = "86dc81db-c112-4228-9222-63f3esaa1edb" } },
}

describe("every seed scenario on loopback", function()
  for _, endpoint in ipairs { "v1.0", "beta/app", "beta/applications" } do
    for _, s in ipairs(SCENARIOS) do
      it(("%s via %s: create, establishing, established, hang up, terminated"):format(s[1], endpoint), function()
        local w = world { endpoint = endpoint }
        local spec = {}
        for k, v in pairs(s[3]) do spec[k] = v end
        spec.callback_uri = w.rx:url()
        local ok, err = pcall(function()
          local call, cerr = w.client[s[2]](w.client, spec)
          assert.is_nil(cerr)
          assert.equal("establishing", call.state)
          assert.matches(UUID4, call.id)
          assert.is_string(call.my_participant_id)
          assert.equal(w.emu.url .. w.client:prepare_call { targets = { graphcall.user { id = "x" } },
            callback_uri = w.rx:url() }.path .. "/" .. call.id, call.location)

          -- what went on the wire is exactly what prepare_* builds
          local sent = w.graph_requests()[1]
          local req = w.client["prepare_" .. s[2]](w.client, spec)
          assert.equal("POST", sent.method)
          assert.equal(req.path, sent.path)
          assert.same(json.decode(req.body), json.decode(sent.body))
          assert.equal("Bearer tok", sent.headers.authorization)
          assert.equal("application/json", sent.headers["content-type"])
          assert.equal("application/json", sent.headers.accept)
          assert.equal("graphcall/" .. graphcall._VERSION, sent.headers["user-agent"])
          assert.matches(UUID4, sent.headers["client-request-id"])

          w.until_heard(2)
          assert.same({ "establishing", "established" }, w.by_call[call.id])

          assert.is_true(call:hangup())
          w.until_heard(4)
          assert.same({ "establishing", "established", "terminating", "terminated" }, w.by_call[call.id])
          local last = w.heard[4]
          assert.equal("deleted", last.change_type)
          assert.same({ code = 200, subcode = 5001, message = "The conversation has ended." }, last.result_info)
          -- nothing lost, nothing twice: every notification sent was answered 202 and heard once
          assert.equal(4, #w.emu.notifications)
          for _, n in ipairs(w.emu.notifications) do assert.equal(202, n.status) end
          assert.equal(4, w.rx.accepted)
        end)
        w.close()
        assert(ok, err)
      end)
    end
  end
end)

describe("client requests", function()
  local w
  before_each(function() w = world() end)
  after_each(function() w.close() end)

  it("get_call reads the call, hangup of a gone call is a graph error 8522", function()
    local call = assert(w.client:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } })
    w.until_heard(2)
    local data = assert(w.client:get_call(call.id))
    assert.equal(call.id, data.id)
    assert.equal("established", data.state)
    assert.is_true(w.client:hangup(call.id))
    local ok, err = w.client:hangup(call.id)
    assert.is_nil(ok)
    assert.equal("graph", err.kind)
    assert.equal(404, err.status)
    assert.equal("8522", err.code)
    assert.equal("Call not found.", err.message)
    assert.matches(UUID4, err.request_id)
    local graph = w.graph_requests()
    assert.equal(graph[#graph].headers["client-request-id"], err.client_request_id)
    assert.equal("graph: Call not found.", tostring(err))
    assert.has_error(function() w.client:hangup("../x") end, "graphcall: expected a call id, got '../x'")
  end)

  it("a pooled connection handle carries nothing of the request before it", function()
    -- POST (body), GET, DELETE, POST again, GET: each with its own method and body
    local call = assert(w.client:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } })
    assert(w.client:get_call(call.id))
    assert.is_true(w.client:hangup(call.id))
    local second = assert(w.client:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "v" } } })
    assert(w.client:get_call(second.id))
    local seen = {}
    for _, r in ipairs(w.graph_requests()) do
      seen[#seen + 1] = { r.method, #r.body > 0, r.json and r.json.targets[1].identity.user.id or false }
    end
    assert.same({ { "POST", true, "u" }, { "GET", false, false }, { "DELETE", false, false },
                  { "POST", true, "v" }, { "GET", false, false } }, seen)
  end)

  it("a wrong token is a graph error with Graph's code, the request id and the date", function()
    local c = graphcall.new { app_id = APP_ID, token = "wrong", graph_url = w.emu.url, loop = w.loop }
    local call, err = c:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } }
    assert.is_nil(call)
    assert.equal("graph", err.kind)
    assert.equal(401, err.status)
    assert.equal("InvalidAuthenticationToken", err.code)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", err.date)
    assert.matches(UUID4, err.client_request_id)
  end)

  it("a token function is called for each request", function()
    local calls = 0
    local c = graphcall.new { app_id = APP_ID, graph_url = w.emu.url, loop = w.loop,
      token = function() calls = calls + 1; return "tok" end }
    assert(c:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } })
    assert(c:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "v" } } })
    assert.equal(2, calls)
    local failing = graphcall.new { app_id = APP_ID, graph_url = w.emu.url, loop = w.loop,
      token = function() error("vault down") end }
    local call, err = failing:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } }
    assert.is_nil(call)
    assert.equal("auth", err.kind)
    assert.matches("vault down", err.message, 1, true)
  end)

  it("without a token, sending raises", function()
    local c = graphcall.new { app_id = APP_ID, graph_url = w.emu.url, loop = w.loop }
    assert.has_error(function() c:call { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } } end,
      "graphcall: the client has no credentials (give graphcall.new{ token = ... } or "
      .. "{ tenant = ..., client_secret = ... })")
  end)

  it("the emulator validates bodies like Graph, with Graph's codes", function()
    local function post(body)
      local result
      w.loop:request({ method = "POST", url = w.emu.url .. "/v1.0/communications/calls", body = body,
        headers = { Authorization = "Bearer tok", ["Content-Type"] = "application/json" } },
        function(r) result = r end)
      w.loop:run_until(function() return result end, 2)
      return result.status, json.decode(result.body).error
    end
    local status, e = post('{"callbackUri":"https://bot/cb","targets":[{"identity":{"user":{"id":"u"}}}]}')
    assert.equal(400, status)
    assert.same({ "8523", "Missing mediaConfig information." }, { e.code, e.message })
    status, e = post('{"mediaConfig":{},"targets":[{"identity":{"user":{"id":"u"}}}]}')
    assert.equal(400, status)
    assert.equal("callbackUri is required.", e.message)
    status, e = post('{"callbackUri":"https://bot/cb","mediaConfig":{},"targets":[{"identity":{}}]}')
    assert.equal(400, status)
    assert.equal("targets[1] has no identity.", e.message)
    status, e = post('{"callbackUri":"https://bot/cb","mediaConfig":{}}')
    assert.equal(400, status)
    assert.equal("Either targets or meetingInfo is required.", e.message)
  end)
end)

describe("faults, each with its error kind", function()
  local function spec(w) return { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } } end

  it("server down: connect", function()
    local w = world { graph_url = "http://127.0.0.1:1" }
    local call, err = w.client:call(spec(w))
    w.close()
    assert.is_nil(call)
    assert.equal("connect", err.kind)
    assert.equal("POST", err.method)
    assert.equal("http://127.0.0.1:1/v1.0/communications/calls", err.url)
  end)

  it("429 with Retry-After is a graph error carrying retry_after once retries are used up", function()
    local w = world { max_retries = 0 }
    w.emu:fail_next { status = 429, retry_after = 7 }
    local call, err = w.client:call(spec(w))
    assert.is_nil(call)
    assert.same({ "graph", 429, "TooManyRequests", 7 }, { err.kind, err.status, err.code, err.retry_after })
    assert.equal(1, #w.graph_requests())
    w.close()
  end)

  it("503 on a create is an unknown outcome, never retried; on a read a graph error", function()
    local w = world { max_retries = 0 }
    w.emu:fail_next { status = 503, retry_after = 2 }
    local call, err = w.client:call(spec(w))
    assert.is_nil(call)
    assert.same({ "unknown_outcome", 503, "ServiceUnavailable", "graph" },
      { err.kind, err.status, err.code, err.cause })
    assert.matches(UUID4, err.client_request_id)
    w.emu:fail_next { status = 503 }
    local data
    data, err = w.client:get_call("some-id")
    assert.is_nil(data)
    assert.same({ "graph", 503 }, { err.kind, err.status })
    assert.equal(2, #w.graph_requests())
    w.close()
  end)

  it("timeout: unknown_outcome for a create, timeout for a read", function()
    local w = world { timeout = 0.3 }
    w.emu:fail_next { delay = 2 }
    local call, err = w.client:call(spec(w))
    assert.is_nil(call)
    assert.equal("unknown_outcome", err.kind)
    assert.equal("timeout", err.cause)
    w.emu:fail_next { delay = 2 }
    local data
    data, err = w.client:get_call("some-id")
    assert.is_nil(data)
    assert.equal("timeout", err.kind)
    w.close()
  end)

  it("connection reset after the request: unknown_outcome, and the create is not resent", function()
    local w = world()
    assert(w.client:call(spec(w))) -- a kept-alive connection, which libcurl would retry on
    w.emu:fail_next { mode = "drop" }
    local call, err = w.client:call(spec(w))
    assert.is_nil(call)
    assert.equal("unknown_outcome", err.kind)
    assert.equal(2, #w.graph_requests())
    assert.equal(1, w.emu.created)
    w.close()
  end)

  it("truncated, non-JSON and oversized answers: bad_response keeping at most 1 KB", function()
    local w = world { max_response_bytes = 64 * 1024 }
    w.emu:fail_next { mode = "truncate" }
    local call, err = w.client:call(spec(w))
    assert.is_nil(call)
    assert.same({ "bad_response", 201, "truncated" }, { err.kind, err.status, err.cause })

    w.emu:fail_next { mode = "not_json" }
    call, err = w.client:call(spec(w))
    assert.is_nil(call)
    assert.same({ "bad_response", 201 }, { err.kind, err.status })
    assert.equal("<html>Service Unavailable</html>", err.body)

    w.emu:fail_next { mode = "oversized", size = 100 * 1024 }
    call, err = w.client:call(spec(w))
    assert.is_nil(call)
    assert.same({ "bad_response", "too_large" }, { err.kind, err.cause })
    w.close()
  end)

  it("a created call reads four members of Graph's answer and decodes call.data when read", function()
    local w = world()
    local call = assert(w.client:call(spec(w)))
    assert.same({ "establishing", "outgoing" }, { call.state, call.direction })
    assert.equal(w.emu.url .. "/v1.0/communications/calls/" .. call.id, call.location)
    local data = call.data
    assert.equal(call.id, data.id)
    assert.equal("establishing", data.state)
    assert.equal(w.graph_requests()[1].json.callbackUri, data.callbackUri)
    assert.equal(data, call.data) -- decoded once
    assert.is_function(call.on)   -- methods still resolve
    -- JSON simdjson refuses but lua-cjson takes (1e999) is still an answer
    w.emu:fail_next { mode = "body", body = '{"id":"c-1","state":"Establishing","big":1e999,"id":"c-2"}' }
    call = assert(w.client:call(spec(w)))
    assert.same({ "c-2", "establishing", math.huge }, { call.id, call.state, call.data.big })
    -- nested deeper than the strict pass's 32 levels, or NaN: still a call, as before
    w.emu:fail_next { mode = "body", body = '{"id":"c-3","x":' .. ("["):rep(40) .. ("]"):rep(40) .. ',"n":NaN}' }
    call = assert(w.client:call(spec(w)))
    assert.equal("c-3", call.id)
    -- an array, a string, a non-string id: no call, bad_response
    local answers = { ['[{"id":"x"}]'] = "the created call has no id", ['"x"'] = "response is not a JSON object",
                      ['{"id":7}'] = "the created call has no id", ['{"id":"x",}'] = "response is not a JSON object: " }
    for body, message in pairs(answers) do
      w.emu:fail_next { mode = "body", body = body }
      local none, err = w.client:call(spec(w))
      assert.is_nil(none)
      assert.same({ "bad_response", 201 }, { err.kind, err.status })
      assert.equal(message, err.message:sub(1, #message))
      assert.matches(UUID4, err.request_id) -- from the request-id header (read_headers)
    end
    w.close()
  end)

  it("a Graph error body is kept to 1 KB", function()
    local w = world()
    local result
    w.loop:request({ method = "GET", url = w.emu.url .. "/nowhere/" .. ("x"):rep(3000),
      headers = { Authorization = "Bearer tok" } }, function(r) result = r end)
    w.loop:run_until(function() return result end, 2)
    local err = require("graphcall.transport").check(result, { method = "GET" }, { [200] = true })
    assert.equal("graph", err.kind)
    assert.equal(1024, #err.body)
    w.close()
  end)
end)

describe("many calls at once", function()
  it("runs them concurrently, in bounded flight, one failure not hiding the others", function()
    local w = world { max_in_flight = 4 }
    local specs = {}
    for i = 1, 20 do
      specs[i] = { callback_uri = w.rx:url(), targets = { graphcall.user { id = "user-" .. i } } }
    end
    w.emu:fail_next { status = 503 }
    local calls, errs = w.client:call_many(specs)
    local ok, failed, ids = 0, 0, {}
    for i = 1, 20 do
      assert.is_true((calls[i] == nil) ~= (errs[i] == nil))
      if calls[i] then
        ok = ok + 1
        ids[calls[i].id] = true
      else
        failed = failed + 1
        assert.same({ "unknown_outcome", 503 }, { errs[i].kind, errs[i].status })
      end
    end
    assert.same({ 19, 1 }, { ok, failed })
    assert.equal(20, #w.graph_requests())
    w.until_heard(38)
    local established = 0
    for id in pairs(ids) do
      assert.same({ "establishing", "established" }, w.by_call[id])
      established = established + 1
    end
    assert.equal(19, established)
    w.close()
  end)
end)

describe("https", function()
  local dir, cert, key

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(("mkdir -p %q && openssl req -x509 -newkey rsa:2048 -nodes -keyout %q/k.pem -out %q/c.pem "
      .. "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null"):format(dir, dir, dir)))
    cert = assert(io.open(dir .. "/c.pem")):read("a")
    key = assert(io.open(dir .. "/k.pem")):read("a")
  end)

  teardown(function() os.execute(("rm -rf %q"):format(dir)) end)

  local function fetch(loop, url)
    local result
    loop:request({ method = "GET", url = url }, function(r) result = r end)
    assert.is_true(loop:run_until(function() return result end, 5))
    return result
  end

  it("verifies the peer always: an unknown CA is a tls failure, a given ca_file is trusted", function()
    local server = assert(require("graphcall.core").server { tls_cert = cert, tls_key = key })
    local url = ("https://127.0.0.1:%d/x"):format(server:port())
    local plain = graphcall.new_loop { timeout = 5 }
    local trusting = graphcall.new_loop { timeout = 5, ca_file = dir .. "/c.pem" }
    for _, loop in ipairs { plain, trusting } do
      loop:add_server(server, function(req) server:respond(req.id, 200, "hello") end)
    end
    local r = fetch(plain, url)
    assert.equal("tls", r.failure)
    r = fetch(trusting, url)
    assert.is_nil(r.failure)
    assert.same({ 200, "hello" }, { r.status, r.body })
    local err = require("graphcall.transport").check(fetch(plain, url), { method = "GET", url = url }, {})
    assert.equal("tls", err.kind)
    plain:close()
    trusting:close()
    server:close()
  end)
end)

describe("client-request-id", function()
  it("is a distinct version 4 UUID for every request, across refills of the random pool", function()
    local core = require "graphcall.core"
    local seen, count = {}, 0
    for _ = 1, 2000 do -- 16 bytes each: eight refills of the 4 KiB pool
      local id = core.uuid()
      assert.matches(UUID4, id)
      assert.is_nil(seen[id])
      seen[id], count = true, count + 1
    end
    assert.equal(2000, count)
  end)
end)
