-- Trust, against the emulator: app tokens from a client secret, verified
-- callbacks (the receiver checks the JWT the emulator signs like Graph),
-- and retries that never place a call twice.
local graphcall = require "graphcall"
local support = require "support.world"
local transport = require "graphcall.transport"
local cjson = require "cjson"

local APP_ID = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
local TENANT = "contoso.onmicrosoft.com"
local SECRET = "s3cr3t~value"

-- A world on a loop whose clock the spec moves (`w.advance(s)`).
local function world(opts)
  opts = opts or {}
  local heard = {}
  local rx_opts = { handler = function(batch)
    for _, n in ipairs(batch) do heard[#heard + 1] = n end
  end }
  for k, v in pairs(opts.receiver or {}) do rx_opts[k] = v end
  local w = support.new { clock = 1000,
    emulator = { token = support.NONE, client_secret = SECRET, token_lifetime = opts.token_lifetime },
    client = function(emu)
      return { token = support.NONE, tenant = TENANT, client_secret = opts.secret or SECRET, login_url = emu.url,
        max_retries = opts.max_retries, max_retry_wait = opts.max_retry_wait }
    end,
    receiver = rx_opts }
  w.heard = heard
  function w.advance(s) w.now = w.now + s end
  function w.until_(done)
    local deadline = os.clock() + 5
    while not done() and os.clock() < deadline do w.loop:step(0.01) end
    assert.is_true(done())
  end
  function w.count(pattern, method)
    local n = 0
    for _, r in ipairs(w.emu.requests) do
      if r.path:find(pattern) and (not method or r.method == method) then n = n + 1 end
    end
    return n
  end
  function w.spec() return { callback_uri = w.rx:url(), targets = { graphcall.user { id = "u" } } } end
  return w
end

local function claims(over)
  local now = os.time()
  local c = { iss = "https://api.botframework.com", aud = APP_ID, tid = "72f988bf-86f1-41af-91ab-2d7cd011db47",
    nbf = now - 10, exp = now + 300 }
  for k, v in pairs(over or {}) do c[k] = v end
  return c
end

describe("app tokens from a client secret", function()
  it("are acquired once from the token endpoint and reused", function()
    local w = world()
    assert(w.client:call(w.spec()))
    assert(w.client:call(w.spec()))
    assert.equal(1, w.emu.tokens_issued)
    local form = w.emu.requests[1]
    assert.equal("/" .. TENANT .. "/oauth2/v2.0/token", form.path)
    assert.equal("application/x-www-form-urlencoded", form.headers["content-type"])
    assert.matches("grant_type=client_credentials", form.body, 1, true)
    assert.matches("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default", form.body, 1, true)
    assert.matches("client_id=" .. APP_ID, form.body, 1, true)
    local creates = {}
    for _, r in ipairs(w.emu.requests) do if r.path:find("/calls$") then creates[#creates + 1] = r end end
    assert.equal(2, #creates)
    assert.matches("^Bearer emu%.", creates[1].headers.authorization)
    assert.equal(creates[1].headers.authorization, creates[2].headers.authorization)
    w.close()
  end)

  it("are refreshed before they expire, with a skew", function()
    local w = world { token_lifetime = 3600 }
    assert(w.client:call(w.spec()))
    w.advance(3600 - 301) -- still more than the 300 s skew left
    assert(w.client:call(w.spec()))
    assert.equal(1, w.emu.tokens_issued)
    w.advance(2)          -- inside the skew: renewed before Graph would refuse it
    assert(w.client:call(w.spec()))
    assert.equal(2, w.emu.tokens_issued)
    w.close()
  end)

  it("a 401 InvalidAuthenticationToken refreshes once and retries once", function()
    local w = world()
    assert(w.client:call(w.spec()))
    w.emu:expire_tokens()
    local call, err = w.client:call(w.spec())
    assert.is_nil(err)
    assert.is_string(call.id)
    assert.equal(2, w.emu.tokens_issued)
    assert.equal(3, w.count("/calls$", "POST")) -- the refused one and its retry
    assert.equal(2, w.emu.created)
    w.close()
  end)

  it("token endpoint errors are auth errors that never show the secret", function()
    local w = world { secret = "wrong-" .. SECRET }
    local call, err = w.client:call(w.spec())
    assert.is_nil(call)
    assert.equal("auth", err.kind)
    assert.equal(400, err.status)
    assert.equal("invalid_client", err.code)
    assert.matches("^AADSTS7000215: Invalid client secret provided%.", err.message)
    assert.matches("^%x+%-", err.trace_id)
    assert.is_nil(tostring(err):find(SECRET, 1, true))
    for k, v in pairs(err) do
      assert.is_nil(tostring(v):find(SECRET, 1, true), k)
    end
    assert.is_nil(tostring(w.client):find(SECRET, 1, true))
    for k, v in pairs(w.client) do assert.is_nil(tostring(v):find(SECRET, 1, true), k) end
    assert.equal(0, w.count("/calls$"))
    w.close()
  end)

  it("client_secret needs a tenant, and excludes a static token", function()
    assert.has_error(function() graphcall.new { app_id = APP_ID, client_secret = "x" } end,
      "graphcall.new: client_secret: needs tenant (the tenant id or domain)")
    assert.has_error(function() graphcall.new { app_id = APP_ID, client_secret = "x", tenant = "t", token = "y" } end,
      "graphcall.new: token: give either token or client_secret")
  end)
end)

describe("verified callbacks", function()
  it("accepts the emulator's signed notifications, fetching the keys once", function()
    local w = world()
    for _ = 1, 3 do
      local call = assert(w.client:call(w.spec()))
      assert.is_true(call:hangup())
    end
    w.until_(function() return #w.heard == 12 and w.emu:idle() end)
    assert.equal(12, w.rx.accepted)
    assert.equal(0, w.rx.unauthorized)
    for _, n in ipairs(w.emu.notifications) do assert.equal(202, n.status) end
    assert.equal(1, w.count("^/v1/%.well%-known/OpenIdConfiguration$"))
    assert.equal(1, w.count("^/v1/keys$"))
    -- the same token on every notification: one RSA verification, the rest cached
    assert.is_true(w.rx.verifier:cache_hits() >= 11)
    w.close()
  end)

  it("refuses, with 401 and without calling the handler, every bad token", function()
    local w = world()
    assert.equal(202, w.post("Bearer " .. w.emu:sign_claims(claims())).status) -- loads the keys
    local other = require("graphcall.testing").jwt_signer()
    local bad = {
      { nil, "no Bearer token" },
      { "Basic dXNlcjpwYXNz", "no Bearer token" },
      { "Bearer  " .. w.emu:sign_claims(claims()), "no Bearer token" },
      { "bearer " .. w.emu:sign_claims(claims()), "no Bearer token" },
      { "Bearer " .. w.emu:sign_claims(claims { aud = "00000000-0000-0000-0000-000000000000" }), "audience" },
      { "Bearer " .. w.emu:sign_claims(claims { aud = { APP_ID } }), "audience" },
      { "Bearer " .. w.emu:sign_claims(claims { iss = "https://api.botframework.com.evil" }), "issuer" },
      { "Bearer " .. w.emu:sign_claims(claims { exp = os.time() - 400 }), "expired" },
      { "Bearer " .. w.emu:sign_claims(claims { tid = cjson.null }), "tenant" },
      { "Bearer " .. other:sign(cjson.encode(claims()), { kid = w.emu.kid }), "signature" },
      { "Bearer " .. w.emu:sign_claims(claims(), { alg = "RS512" }):gsub("%.[^.]+$", ".AAAA"), "signature" },
      { "Bearer x.y", "malformed" },
    }
    for i, case in ipairs(bad) do
      local r = w.post(case[1])
      assert.equal(401, r.status, i)
      assert.equal("Bearer", r.headers["www-authenticate"])
      assert.matches(case[2], cjson.decode(r.body).error.message, 1, true)
    end
    assert.equal(1, #w.heard)
    assert.equal(#bad, w.rx.unauthorized)
    w.close()
  end)

  it("an unknown kid refreshes the keys once, then fails; random kids cause no fetch storm", function()
    local w = world()
    local other = require("graphcall.testing").jwt_signer()
    local r = w.post("Bearer " .. other:sign(cjson.encode(claims()), { kid = "unknown-1" }))
    assert.equal(401, r.status)
    assert.equal(1, w.count("^/v1/keys$"))
    for i = 1, 50 do
      r = w.post("Bearer " .. other:sign(cjson.encode(claims()), { kid = "random-" .. i }))
      assert.equal(401, r.status)
    end
    assert.equal(1, w.count("^/v1/keys$")) -- within min_refresh_interval: no more fetches
    w.advance(301)
    assert.equal(401, w.post("Bearer " .. other:sign(cjson.encode(claims()), { kid = "random-x" })).status)
    assert.equal(2, w.count("^/v1/keys$"))
    w.close()
  end)

  it("rotated keys: a token with the new kid is accepted after one refresh", function()
    local w = world()
    assert.equal(202, w.post("Bearer " .. w.emu:sign_claims(claims())).status)
    w.emu:rotate_keys()
    w.advance(301)
    assert.equal(202, w.post("Bearer " .. w.emu:sign_claims(claims())).status)
    assert.equal(2, w.count("^/v1/keys$"))
    w.close()
  end)

  for _, fault in ipairs {
    { mode = "html", what = "HTML" },
    { status = 503, what = "down" },
    { mode = "oversized", size = 10 * 1024 * 1024, what = "10 MB" },
  } do
    it(("a key endpoint returning %s keeps the last good keys until they expire, then fails closed")
      :format(fault.what), function()
      local w = world { receiver = { key_ttl = 3600 } }
      local good = "Bearer " .. w.emu:sign_claims(claims())
      assert.equal(202, w.post(good).status)
      w.emu:fail_next { path = "^/v1/", mode = fault.mode, status = fault.status, size = fault.size, count = 10 }
      w.advance(1801) -- past half the key lifetime: a background refresh is tried, and fails
      assert.equal(202, w.post(good).status)
      w.until_(function() return not w.rx.keys.fetching end)
      assert.is_string(w.rx.keys.last_error)
      assert.equal(202, w.post(good).status) -- still the last good keys
      w.advance(1800)                         -- past their lifetime, endpoint still failing
      local r = w.post(good)
      assert.equal(401, r.status)
      assert.matches("no signing keys", cjson.decode(r.body).error.message, 1, true)
      w.close()
    end)
  end

  it("pinned keys verify without fetching", function()
    local w0 = world()
    local jwks = '{"keys":[' .. w0.emu.signer:jwk(w0.emu.kid) .. "]}"
    w0.close()
    local w = world { receiver = { keys = jwks, openid_url = "https://keys.invalid/none" } }
    assert.equal(202, w.post("Bearer " .. w.emu:sign_claims(claims())).status)
    assert.equal(0, w.count("^/v1/"))
    w.close()
  end)

  it("allowed tenants are enforced when configured", function()
    local w = world { receiver = { tenants = { "11111111-1111-1111-1111-111111111111" } } }
    local r = w.post("Bearer " .. w.emu:sign_claims(claims()))
    assert.equal(401, r.status)
    assert.matches("tenant", cjson.decode(r.body).error.message, 1, true)
    w.close()
  end)

  it("verify = false is a local-development switch that warns once on stderr", function()
    local p = assert(io.popen("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' lua5.4 -e '"
      .. "local g = require [[graphcall]] "
      .. "local c = g.new { app_id = [[" .. APP_ID .. "]] } "
      .. "c:receiver { verify = false }:close() c:receiver { verify = false }:close() "
      .. "c:receiver {}:close() print([[done]])' 2>&1"))
    local out = p:read("a")
    p:close()
    local _, warnings = out:gsub("WARNING: receiver started with verify = false", "")
    assert.equal(1, warnings)
    assert.matches("done", out, 1, true)
  end)
end)

describe("retries", function()
  it("429 then 201 after the Retry-After, with the same client-request-id and a Retry-Attempt", function()
    local w = world()
    w.loop.clock = require("graphcall.core").monotonic -- a real wait, of one second
    w.emu:fail_next { status = 429, retry_after = 1 }
    local call, err = w.client:call(w.spec())
    assert.is_nil(err)
    assert.is_string(call.id)
    local posts = {}
    for _, r in ipairs(w.emu.requests) do if r.path:find("/calls$") then posts[#posts + 1] = r end end
    assert.equal(2, #posts)
    assert.equal(posts[1].headers["client-request-id"], posts[2].headers["client-request-id"])
    assert.is_nil(posts[1].headers["retry-attempt"])
    assert.equal("1", posts[2].headers["retry-attempt"])
    assert.equal(1, w.emu.created)
    w.close()
  end)

  it("503 on a create: unknown_outcome, not retried, exactly one call exists", function()
    local w = world()
    w.emu:fail_next { status = 503, processed = true }
    local call, err = w.client:call(w.spec())
    assert.is_nil(call)
    assert.same({ "unknown_outcome", 503 }, { err.kind, err.status })
    assert.matches("^%x+%-%x+%-4", err.client_request_id)
    assert.equal(1, w.count("/calls$", "POST"))
    assert.equal(1, w.emu.created)
    w.close()
  end)

  it("504 on a create is an unknown outcome too", function()
    local w = world()
    w.emu:fail_next { status = 504 }
    local call, err = w.client:call(w.spec())
    assert.is_nil(call)
    assert.equal("unknown_outcome", err.kind)
    assert.equal(1, w.count("/calls$", "POST"))
    w.close()
  end)

  it("503 on DELETE and GET is retried", function()
    local w = world { max_retry_wait = 0 }
    local call = assert(w.client:call(w.spec()))
    w.emu:fail_next { status = 503, retry_after = 0, count = 2 }
    assert.is_true(call:hangup())
    assert.equal(3, w.count("/calls/", "DELETE"))
    local data, err = w.client:get_call(call.id)
    assert.is_nil(data)
    assert.equal("8522", err.code) -- gone; a 404 is not retried
    assert.equal(1, w.count("/calls/", "GET"))
    w.close()
  end)

  it("gives up after max_retries and returns the last answer", function()
    local w = world { max_retries = 2, max_retry_wait = 0 }
    w.emu:fail_next { status = 429, retry_after = 0, count = 5 }
    local call, err = w.client:call(w.spec())
    assert.is_nil(call)
    assert.same({ "graph", 429, 3 }, { err.kind, err.status, err.attempts })
    assert.equal(3, w.count("/calls$", "POST"))
    w.close()
  end)

  it("a create is retried when the connection was refused before sending", function()
    local loop = graphcall.new_loop { timeout = 2 }
    local c = graphcall.new { app_id = APP_ID, token = "t", graph_url = "http://127.0.0.1:1", loop = loop,
      max_retries = 2, max_retry_wait = 0 }
    local call, err = c:call { callback_uri = "https://bot.example/cb", targets = { graphcall.user { id = "u" } } }
    assert.is_nil(call)
    assert.same({ "connect", 3 }, { err.kind, err.attempts })
    loop:close()
  end)

  describe("Retry-After", function()
    local now = 1700000000
    local function date(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end

    it("reads delta-seconds and the three HTTP date formats; a past date is 0", function()
      assert.equal(7, transport.retry_delay("7", 1, 60, now))
      assert.equal(5, transport.retry_delay(date(now + 5), 1, 60, now))
      assert.equal(5, transport.retry_delay(os.date("!%A, %d-%b-%y %H:%M:%S GMT", now + 5), 1, 60, now))
      assert.equal(5, transport.retry_delay(os.date("!%a %b %e %H:%M:%S %Y", now + 5), 1, 60, now))
      assert.equal(0, transport.retry_delay(date(now - 100), 1, 60, now))
    end)

    it("caps far-future values at max_retry_wait", function()
      assert.equal(60, transport.retry_delay(date(now + 365 * 86400), 1, 60, now))
      assert.equal(60, transport.retry_delay("86400", 1, 60, now))
    end)

    it("falls back to exponential backoff with jitter for garbage", function()
      for _, garbage in ipairs { "soon", "-5", "1e9", "", "  ", "3.5" } do
        for attempt = 1, 4 do
          local d = transport.retry_delay(garbage, attempt, 60, now)
          local base = 2 ^ (attempt - 1)
          assert.is_true(d >= 0.75 * base and d <= 1.25 * base, garbage .. " " .. d)
        end
      end
      assert.equal(10, transport.retry_delay(nil, 10, 10, now))
    end)
  end)
end)
