-- core.jwt_verifier and testing.jwt_signer: the Bearer tokens of Graph
-- callbacks (security.md 6.D, items 32-43). A fixed clock (NOW) throughout;
-- RSA keys are generated once for the file. Hostile tokens are crafted with
-- the signer (sign_raw signs any header/payload text) and, where a key the
-- signer cannot hold is needed (HMAC, x5c, 1024-bit), with the openssl CLI.
local core = require "graphcall.core"
local testing = require "graphcall.testing"
local cjson = require("cjson").new()

local NOW = 1700000000
local APP = "8a34a46b-3d17-4adc-8dce-dc4e7d572698"
local OTHER_APP = "26a18ebc-cdf7-4a6a-91cb-beb352805e81"
local TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
local BOTFRAMEWORK = "https://api.botframework.com"
local GRAPH = "https://graph.microsoft.com"

-- --- test-only helpers ------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for k = 1, 4 do
      if k <= chars then
        local idx = (n >> (6 * (4 - k))) & 63
        out[#out + 1] = B64:sub(idx + 1, idx + 1)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

local function b64url(data)
  return (b64(data):gsub("=", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

local function unb64url(text)
  local bits, nbits, out = 0, 0, {}
  for ch in text:gmatch(".") do
    local std = ch == "-" and "+" or ch == "_" and "/" or ch
    bits = (bits << 6) | (B64:find(std, 1, true) - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char((bits >> nbits) & 255)
    end
  end
  return table.concat(out)
end

local function hex_to_bytes(hex)
  return (hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

local function to_hex(data)
  return (data:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local DIR = os.tmpname()
os.remove(DIR)
assert(os.execute("mkdir -p " .. q(DIR)))

local function path(name) return DIR .. "/" .. name end

local function write(name, data)
  local f = assert(io.open(path(name), "wb"))
  f:write(data)
  f:close()
  return path(name)
end

local function read(name)
  local f = assert(io.open(path(name), "rb"))
  local data = f:read("a")
  f:close()
  return data
end

local function sh(cmd)
  local ok = os.execute(cmd .. " 2>/dev/null")
  assert(ok, "command failed: " .. cmd)
end

local function sh_read(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null", "r"))
  local out = p:read("a")
  assert(p:close(), "command failed: " .. cmd)
  return out
end

-- A JSON value given as raw text, for what cjson cannot produce ([] and
-- duplicate members).
local RAW = {}
local function raw(text) return setmetatable({ text = text }, RAW) end
local NONE = raw(nil)          -- leave the member out

local function encode_value(v)
  if getmetatable(v) == RAW then return v.text end
  return cjson.encode(v)
end

local CLAIM_ORDER = { "iss", "aud", "tid", "iat", "nbf", "exp", "name" }

-- Claims JSON of a good token, with `over` replacing members.
local function claims(over)
  over = over or {}
  local base = {
    iss = BOTFRAMEWORK, aud = APP, tid = TENANT, iat = NOW - 10, nbf = NOW - 10,
    exp = NOW + 300, name = "graph",
  }
  local parts, seen = {}, {}
  local function add(k, v)
    if v ~= NONE then parts[#parts + 1] = cjson.encode(k) .. ":" .. encode_value(v) end
  end
  for _, k in ipairs(CLAIM_ORDER) do
    seen[k] = true
    local v = over[k]
    if v == nil then v = base[k] end
    add(k, v)
  end
  local extra = {}
  for k in pairs(over) do if not seen[k] then extra[#extra + 1] = k end end
  table.sort(extra)
  for _, k in ipairs(extra) do add(k, over[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function split(token)
  local h, p, s = token:match("^([^.]*)%.([^.]*)%.([^.]*)$")
  assert(h, "not a three-segment token")
  return h, p, s
end

-- Keys: generated once for the whole file.
local S1 = testing.jwt_signer()
local S2 = testing.jwt_signer()
local S3 = testing.jwt_signer { bits = 3072 }
local JWKS = '{"keys":[' .. S1:jwk("k1") .. "," .. S2:jwk("k2") .. "]}"

local function verifier(opts)
  opts = opts or {}
  if opts.audience == nil then opts.audience = APP end
  local v = core.jwt_verifier(opts)
  assert.equal(2, v:set_keys(JWKS))
  return v
end

local function token(over, header, signer)
  return (signer or S1):sign(claims(over), header or { kid = "k1" })
end

local function accepted(v, tok, now)
  local c, err = v:verify(tok, now or NOW)
  assert.is_nil(err and tostring(err))
  assert.is_table(c)
  return c
end

local function rejected(v, tok, reason, now)
  local c, err = v:verify(tok, now or NOW)
  assert.is_nil(c)
  assert.is_table(err)
  assert.equal("unauthorized", err.kind)
  assert.equal(reason, err.reason)
  assert.is_string(err.message)
  assert.matches("unauthorized: ", tostring(err), 1, true)
  return err
end

-- Sign header.payload with a PEM private key through the CLI (RS256).
local function cli_sign(key_pem_path, header_json, claims_json)
  local input = b64url(header_json) .. "." .. b64url(claims_json)
  write("input", input)
  sh(("openssl dgst -sha256 -sign %s -out %s %s"):format(q(key_pem_path), q(path("sig")), q(path("input"))))
  return input .. "." .. b64url(read("sig"))
end

-- HMAC-SHA2 of header.payload keyed with `key` through the CLI.
local function cli_hmac(bits, key, header_json, claims_json)
  local input = b64url(header_json) .. "." .. b64url(claims_json)
  write("input", input)
  local mac = sh_read(("openssl dgst -sha%d -mac HMAC -macopt hexkey:%s -binary %s"):format(
    bits, to_hex(key), q(path("input"))))
  return input .. "." .. b64url(mac)
end

describe("core.jwt_verifier", function()
  teardown(function()
    os.execute("rm -rf " .. q(DIR))
  end)

  describe("valid tokens (6.D 32)", function()
    it("accepts an RS256 token and returns its claims", function()
      local v = verifier()
      local c = accepted(v, token())
      assert.equal(BOTFRAMEWORK, c.iss)
      assert.equal(APP, c.aud)
      assert.equal(TENANT, c.tid)
      assert.equal(NOW + 300, c.exp)
      assert.equal(NOW - 10, c.nbf)
      assert.equal(NOW - 10, c.iat)
      assert.equal("graph", c.name)
    end)

    it("accepts an RS384 token", function()
      local c = accepted(verifier(), token({ name = "rs384" }, { kid = "k1", alg = "RS384" }))
      assert.equal("rs384", c.name)
    end)

    it("accepts an RS512 token", function()
      local c = accepted(verifier(), token({ name = "rs512" }, { kid = "k1", alg = "RS512" }))
      assert.equal("rs512", c.name)
    end)

    it("accepts a token of the second key of the set", function()
      local c = accepted(verifier(), token({ name = "second" }, { kid = "k2" }, S2))
      assert.equal("second", c.name)
    end)

    it("accepts Graph's real header shape (typ, cty JWT, x5t) and extra claims", function()
      local c = accepted(verifier(), token({ appid = OTHER_APP, nested = { a = { 1, 2 } } },
        { kid = "k1", typ = "JWT", cty = "JWT", x5t = "PuHgLnEM-M1VlxSzy10BT6hF_aE" }))
      assert.equal(OTHER_APP, c.appid)
      assert.same({ a = { 1, 2 } }, c.nested)
    end)

    it("accepts a 3072-bit key", function()
      local v = core.jwt_verifier { audience = APP }
      assert.equal(1, v:set_keys('{"keys":[' .. S3:jwk("big") .. "]}"))
      assert.equal("big", accepted(v, token({ name = "big" }, { kid = "big" }, S3)).name)
    end)

    it("rejects an algorithm left out of the allow-list", function()
      local v = verifier { algorithms = { "RS256" } }
      accepted(v, token())
      rejected(v, token({}, { kid = "k1", alg = "RS512" }), "algorithm")
    end)
  end)

  describe("alg none and other algorithms (33, 34)", function()
    for _, alg in ipairs { "none", "None", "NONE" } do
      it("rejects alg " .. alg .. " with an empty signature (malformed: empty segment)", function()
        local tok = b64url(cjson.encode { alg = alg, kid = "k1" }) .. "." .. b64url(claims()) .. "."
        rejected(verifier(), tok, "malformed")
      end)

      it("rejects alg " .. alg .. " with a signature present (algorithm)", function()
        rejected(verifier(), S1:sign_raw(cjson.encode { alg = alg, kid = "k1" }, claims()), "algorithm")
      end)
    end

    it("rejects a header without alg", function()
      rejected(verifier(), S1:sign_raw('{"kid":"k1"}', claims()), "algorithm")
    end)

    it("rejects alg that is not a string (number, array, null, true)", function()
      local v = verifier()
      for _, alg in ipairs { "123", '["RS256"]', "null", "true" } do
        rejected(v, S1:sign_raw('{"alg":' .. alg .. ',"kid":"k1"}', claims()), "algorithm")
      end
    end)

    it("rejects near-miss spellings of RS256", function()
      local v = verifier()
      for _, alg in ipairs { "rs256", "RS256 ", "RS2560", "RS256\0", "RS1" } do
        rejected(v, S1:sign_raw(cjson.encode { alg = alg, kid = "k1" }, claims()), "algorithm")
      end
    end)

    it("rejects HS256 MACed with the RSA public key PEM (key confusion)", function()
      local pem = S1:public_pem()
      assert.matches("^%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-\n", pem)
      local tok = cli_hmac(256, pem, '{"alg":"HS256","kid":"k1"}', claims())
      rejected(verifier(), tok, "algorithm")
    end)

    it("rejects HS512 MACed with the RSA public key PEM", function()
      local tok = cli_hmac(512, S1:public_pem(), '{"alg":"HS512","kid":"k1"}', claims())
      rejected(verifier(), tok, "algorithm")
    end)

    it("rejects HS256 MACed with the raw n||e of the key", function()
      local jwk = cjson.decode(S1:jwk("k1"))
      local tok = cli_hmac(256, unb64url(jwk.n) .. unb64url(jwk.e), '{"alg":"HS256","kid":"k1"}', claims())
      rejected(verifier(), tok, "algorithm")
    end)

    it("rejects ES256 and PS256 headers", function()
      local v = verifier()
      rejected(v, S1:sign_raw('{"alg":"ES256","kid":"k1"}', claims()), "algorithm")
      rejected(v, S1:sign_raw('{"alg":"PS256","kid":"k1"}', claims()), "algorithm")
    end)

    it("checks alg before kid: alg none with an unknown kid is an algorithm failure", function()
      rejected(verifier(), S1:sign_raw('{"alg":"none","kid":"nope"}', claims()), "algorithm")
    end)

    it("ignores EC and kty-less JWKS entries, so their kids are unknown", function()
      local s2 = cjson.decode(S2:jwk("nokty"))
      s2.kty = nil
      local jwks = '{"keys":[' .. S1:jwk("k1") .. ',{"kty":"EC","kid":"ec1","crv":"P-256",' ..
        '"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},' ..
        cjson.encode(s2) .. "]}"
      local v = core.jwt_verifier { audience = APP }
      assert.equal(1, v:set_keys(jwks))
      assert.is_false(v:has_key("ec1"))
      assert.is_false(v:has_key("nokty"))
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"ec1"}', claims()), "unknown_kid")
      rejected(v, token({}, { kid = "nokty" }, S2), "unknown_kid")
    end)

    it("ignores keys declared for another use or algorithm", function()
      local enc = cjson.decode(S2:jwk("enc"))
      enc.use = "enc"
      local oaep = cjson.decode(S2:jwk("oaep"))
      oaep.alg = "RSA-OAEP"
      local v = core.jwt_verifier { audience = APP }
      assert.equal(1, v:set_keys('{"keys":[' .. S1:jwk("k1") .. "," .. cjson.encode(enc) .. "," ..
        cjson.encode(oaep) .. "]}"))
      rejected(v, token({}, { kid = "enc" }, S2), "unknown_kid")
      rejected(v, token({}, { kid = "oaep" }, S2), "unknown_kid")
    end)
  end)

  describe("kid (35)", function()
    it("rejects an unknown kid and reports it", function()
      local err = rejected(verifier(), token({}, { kid = "rotated-away" }), "unknown_kid")
      assert.equal("rotated-away", err.kid)
    end)

    it("rejects a missing kid", function()
      local err = rejected(verifier(), S1:sign_raw('{"alg":"RS256"}', claims()), "unknown_kid")
      assert.is_nil(err.kid)
    end)

    it("rejects a kid that is not a string", function()
      local err = rejected(verifier(), S1:sign_raw('{"alg":"RS256","kid":1}', claims()), "unknown_kid")
      assert.is_nil(err.kid)
    end)

    it("rejects every token before any key is set", function()
      local v = core.jwt_verifier { audience = APP }
      assert.equal(0, v:key_count())
      assert.is_false(v:has_key("k1"))
      assert.equal("k1", rejected(v, token(), "unknown_kid").kid)
    end)

    it("reports the key set through key_count and has_key", function()
      local v = verifier()
      assert.equal(2, v:key_count())
      assert.is_true(v:has_key("k1"))
      assert.is_true(v:has_key("k2"))
      assert.is_false(v:has_key("k3"))
    end)
  end)

  describe("key rotation (36)", function()
    it("accepts the new kid, refuses the removed one, and drops its cached tokens", function()
      local v = verifier()
      local old = token({ name = "old" })
      assert.equal("old", accepted(v, old).name)
      assert.equal("old", accepted(v, old).name)
      assert.equal(1, v:cache_hits())

      assert.equal(2, v:set_keys('{"keys":[' .. S2:jwk("k2") .. "," .. S3:jwk("k3") .. "]}"))
      assert.is_false(v:has_key("k1"))
      assert.is_true(v:has_key("k3"))
      assert.equal("new", accepted(v, token({ name = "new" }, { kid = "k3" }, S3)).name)
      assert.equal("kept", accepted(v, token({ name = "kept" }, { kid = "k2" }, S2)).name)
      assert.equal("k1", rejected(v, old, "unknown_kid").kid)
      assert.equal(1, v:cache_hits())
    end)
  end)

  describe("set_keys (37)", function()
    -- Each failure returns nil, bad_keys and keeps the previous keys.
    local function refused(jwks, what)
      local v = verifier()
      local n, err = v:set_keys(jwks)
      assert.is_nil(n)
      assert.equal("bad_keys", err.kind)
      assert.is_string(err.message)
      if what then assert.matches(what, err.message, 1, true) end
      assert.equal(2, v:key_count())
      accepted(v, token())
      accepted(v, token({}, { kid = "k2" }, S2))
      return err
    end

    it("refuses an HTML page", function()
      refused("<html><body>502 Bad Gateway</body></html>")
    end)

    it("refuses an empty key list", function()
      refused('{"keys":[]}', "no keys")
    end)

    it("refuses a document without keys, and one that is an array", function()
      refused('{"kys":[]}')
      refused("[" .. S1:jwk("k1") .. "]")
      refused('{"keys":"' .. ("x"):rep(10) .. '"}')
    end)

    it("refuses duplicate kids as a whole", function()
      refused('{"keys":[' .. S1:jwk("k1") .. "," .. S2:jwk("k9") .. "," .. S3:jwk("k1") .. "]}", "duplicate kid")
    end)

    it("refuses duplicate member names", function()
      refused('{"keys":[' .. S1:jwk("k1") .. '],"keys":[' .. S2:jwk("k9") .. "]}")
    end)

    it("refuses a set whose only key is a 1024-bit RSA key", function()
      sh(("openssl genrsa -out %s 1024"):format(q(path("weak.pem"))))
      local hex = sh_read(("openssl rsa -in %s -noout -modulus"):format(q(path("weak.pem")))):match("Modulus=(%x+)")
      local weak = cjson.encode { kty = "RSA", use = "sig", kid = "weak", n = b64url(hex_to_bytes(hex)), e = "AQAB" }
      refused('{"keys":[' .. weak .. "]}", "no usable")
      -- next to a good key, the weak one is ignored and its tokens unknown
      local v = core.jwt_verifier { audience = APP }
      assert.equal(1, v:set_keys('{"keys":[' .. weak .. "," .. S1:jwk("k1") .. "]}"))
      assert.is_false(v:has_key("weak"))
      local tok = cli_sign(path("weak.pem"), '{"alg":"RS256","kid":"weak"}', claims())
      rejected(v, tok, "unknown_kid")
    end)

    it("refuses a key with a modulus cut to 1024 bits", function()
      local jwk = cjson.decode(S1:jwk("short"))
      jwk.n = b64url(unb64url(jwk.n):sub(1, 128))
      refused('{"keys":[' .. cjson.encode(jwk) .. "]}", "no usable")
    end)

    it("refuses keys with a bad exponent, an even modulus or an undecodable n", function()
      local function variant(kid, field, value)
        local jwk = cjson.decode(S1:jwk(kid))
        jwk[field] = value(jwk[field])
        return cjson.encode(jwk)
      end
      local bad = {
        variant("e1", "e", function() return "AQ" end),              -- e = 1: signature == message
        variant("e2", "e", function() return "AAI" end),             -- even e
        variant("even", "n", function(n)                             -- even modulus
          local bytes = unb64url(n)
          return b64url(bytes:sub(1, -2) .. string.char(bytes:byte(-1) & 0xFE))
        end),
        variant("pad", "n", function(n) return n .. "==" end),
        variant("std", "n", function(n) return (n:gsub("[-_]", { ["-"] = "+", ["_"] = "/" })) end),
        variant("num", "n", function() return 12345 end),
      }
      refused('{"keys":[' .. table.concat(bad, ",") .. "]}", "no usable")
    end)

    it("refuses a document over 1 MiB", function()
      local big = '{"keys":[' .. S1:jwk("k1") .. '],"pad":"' .. ("x"):rep(2 * 1024 * 1024) .. '"}'
      refused(big, "over the limit")
    end)

    it("ignores keys without kid", function()
      local nokid = cjson.decode(S2:jwk("x"))
      nokid.kid = nil
      local v = core.jwt_verifier { audience = APP }
      assert.equal(1, v:set_keys('{"keys":[' .. cjson.encode(nokid) .. "," .. S1:jwk("k1") .. "]}"))
      refused('{"keys":[' .. cjson.encode(nokid) .. "]}")
    end)

    it("loads a key given only by an x5c certificate", function()
      sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -subj /CN=graphcall-test -days 2"):format(
        q(path("x5c.key")), q(path("x5c.crt"))))
      local der = sh_read(("openssl x509 -in %s -outform DER"):format(q(path("x5c.crt"))))
      local jwks = cjson.encode { keys = { { kty = "RSA", use = "sig", kid = "x1", x5t = "t", x5c = { b64(der) } } } }
      local v = core.jwt_verifier { audience = APP }
      assert.equal(1, v:set_keys(jwks))
      assert.is_true(v:has_key("x1"))
      local tok = cli_sign(path("x5c.key"), '{"alg":"RS256","kid":"x1","typ":"JWT"}', claims { name = "x5c" })
      local c = accepted(v, tok)
      assert.equal("x5c", c.name)
      rejected(v, token({}, { kid = "x1" }), "signature")
    end)

    it("ignores an x5c entry that is not a certificate", function()
      local jwks = cjson.encode { keys = { { kty = "RSA", kid = "x2", x5c = { b64("not a certificate") } },
        { kty = "RSA", kid = "x3", x5c = { "%%%%" } } } }
      refused(jwks, "no usable")
    end)

    it("replaces the whole set: keys of the previous set are gone", function()
      local v = verifier()
      assert.equal(1, v:set_keys('{"keys":[' .. S3:jwk("k3") .. "]}"))
      assert.equal(1, v:key_count())
      rejected(v, token(), "unknown_kid")
    end)
  end)

  describe("time claims (38)", function()
    it("rejects exp = now - 400 with the default skew of 300", function()
      rejected(verifier(), token { exp = NOW - 400 }, "expired")
    end)

    it("accepts exp = now - 60 within the skew", function()
      assert.equal(NOW - 60, accepted(verifier(), token { exp = NOW - 60 }).exp)
    end)

    it("applies now > exp + skew exactly at the boundary", function()
      local v = verifier()
      accepted(v, token { exp = NOW - 300 })
      rejected(v, token { exp = NOW - 301 }, "expired")
    end)

    it("uses the configured skew", function()
      local v = verifier { skew = 0 }
      accepted(v, token { exp = NOW })
      rejected(v, token { exp = NOW - 1 }, "expired")
      rejected(v, token { nbf = NOW + 1 }, "not_yet_valid")
    end)

    it("rejects nbf = now + 400 and accepts nbf = now + 200", function()
      local v = verifier()
      rejected(v, token { nbf = NOW + 400 }, "not_yet_valid")
      accepted(v, token { nbf = NOW + 200 })
      accepted(v, token { nbf = NONE })
    end)

    it("rejects a missing exp as missing_exp", function()
      rejected(verifier(), token { exp = NONE }, "missing_exp")
    end)

    it("rejects exp that is not a number (\"17\", true, null) as missing_exp", function()
      local v = verifier()
      rejected(v, token { exp = "17" }, "missing_exp")
      rejected(v, token { exp = true }, "missing_exp")
      rejected(v, token { exp = raw "null" }, "missing_exp")
    end)

    it("rejects exp = -17 and exp = 1e300 as claims", function()
      local v = verifier()
      rejected(v, token { exp = -17 }, "claims")
      rejected(v, token { exp = raw "1e300" }, "claims")
      rejected(v, token { exp = raw "1e400" }, "claims")
      rejected(v, token { exp = 1e11 + 1 }, "claims")
    end)

    it("rejects nbf = \"17\", -17, 1e300, true as claims", function()
      local v = verifier()
      for _, nbf in ipairs { '"17"', "-17", "1e300", "true", "null" } do
        rejected(v, token { nbf = raw(nbf) }, "claims")
      end
    end)

    it("rejects an iat that is not a number", function()
      local v = verifier()
      rejected(v, token { iat = "yesterday" }, "claims")
      rejected(v, token { iat = -1 }, "claims")
      accepted(v, token { iat = NONE })
    end)
  end)

  describe("issuer (39)", function()
    for _, iss in ipairs {
      BOTFRAMEWORK .. ".evil", "https://api.botframework.co", "HTTPS://API.BOTFRAMEWORK.COM",
      BOTFRAMEWORK .. "/", "https://api.botframework.com\0", "", "https://graph.microsoft.com.evil",
    } do
      it(("rejects iss %q"):format(iss), function()
        rejected(verifier(), token { iss = iss }, "issuer")
      end)
    end

    it("rejects a numeric, array or missing iss", function()
      local v = verifier()
      rejected(v, token { iss = 42 }, "issuer")
      rejected(v, token { iss = { BOTFRAMEWORK } }, "issuer")
      rejected(v, token { iss = NONE }, "issuer")
    end)

    it("accepts both default issuers", function()
      local v = verifier()
      assert.equal(BOTFRAMEWORK, accepted(v, token { iss = BOTFRAMEWORK }).iss)
      assert.equal(GRAPH, accepted(v, token { iss = GRAPH }).iss)
    end)

    it("accepts exactly the configured issuers", function()
      local v = verifier { issuers = { "urn:expected" } }
      accepted(v, token { iss = "urn:expected" })
      rejected(v, token { iss = "urn:" }, "issuer")
      rejected(v, token { iss = BOTFRAMEWORK }, "issuer")
    end)
  end)

  describe("audience and tenant (40)", function()
    it("rejects another app id", function()
      rejected(verifier(), token { aud = OTHER_APP }, "audience")
    end)

    it("rejects aud = []", function()
      rejected(verifier(), token { aud = raw "[]" }, "audience")
    end)

    it("rejects aud = [app id, other] (arrays are not accepted)", function()
      rejected(verifier(), token { aud = { APP, OTHER_APP } }, "audience")
      rejected(verifier(), token { aud = { APP } }, "audience")
    end)

    it("rejects an empty, numeric, case-changed or missing aud", function()
      local v = verifier()
      rejected(v, token { aud = "" }, "audience")
      rejected(v, token { aud = 8 }, "audience")
      rejected(v, token { aud = APP:upper() }, "audience")
      rejected(v, token { aud = NONE }, "audience")
    end)

    it("rejects a missing or non-string tid", function()
      local v = verifier()
      rejected(v, token { tid = NONE }, "tenant")
      rejected(v, token { tid = 7 }, "tenant")
    end)

    it("rejects a tid outside the configured tenants", function()
      local v = verifier { tenants = { TENANT } }
      assert.equal(TENANT, accepted(v, token()).tid)
      rejected(v, token { tid = "00000000-0000-0000-0000-000000000000" }, "tenant")
    end)
  end)

  describe("malformed tokens (41)", function()
    local H = '{"alg":"RS256","kid":"k1"}'       -- 26 bytes: 2 unused bits in its last character

    it("rejects 2 and 4 segments", function()
      local v = verifier()
      local h, p, s = split(token())
      rejected(v, h .. "." .. p, "malformed")
      rejected(v, h .. "." .. p .. "." .. s .. "." .. s, "malformed")
      rejected(v, "thisisnotreallyajwt", "malformed")
    end)

    it("rejects an empty header, payload or signature segment", function()
      local v = verifier()
      local h, p, s = split(token())
      rejected(v, "." .. p .. "." .. s, "malformed")
      rejected(v, h .. ".." .. s, "malformed")
      rejected(v, h .. "." .. p .. ".", "malformed")
      rejected(v, "..", "malformed")
      rejected(v, "", "malformed")
    end)

    it("rejects '=' padding in any segment", function()
      local v = verifier()
      local h, p, s = split(S1:sign_raw(H, claims()))
      assert.equal(3, #h % 4)
      assert.equal(2, #s % 4)
      rejected(v, h .. "=." .. p .. "." .. s, "malformed")
      rejected(v, h .. "." .. p .. "." .. s .. "==", "malformed")
      rejected(v, h .. "." .. p .. "==" .. "." .. s, "malformed")
    end)

    it("rejects '+' and '/' (the standard alphabet)", function()
      local v = verifier()
      local h, p, s = split(token())
      rejected(v, h .. "." .. p .. "." .. "+" .. s:sub(2), "malformed")
      rejected(v, h .. "." .. p .. "." .. "/" .. s:sub(2), "malformed")
      rejected(v, "/" .. h:sub(2) .. "." .. p .. "." .. s, "malformed")
    end)

    it("rejects non-zero unused trailing bits", function()
      local v = verifier()
      local h, p, s = split(S1:sign_raw(H, claims()))
      local function tweak(seg)
        local last = seg:sub(-1)
        local idx = B64:find(last == "-" and "+" or last == "_" and "/" or last, 1, true) - 1
        assert.equal(0, idx % 4)          -- canonical: the unused bits are zero
        local ch = B64:sub(idx + 2, idx + 2):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })
        local out = seg:sub(1, -2) .. ch
        assert.equal(unb64url(seg), unb64url(out))   -- same bytes for a lenient decoder
        return out
      end
      accepted(v, h .. "." .. p .. "." .. s)
      rejected(v, h .. "." .. p .. "." .. tweak(s), "malformed")
      rejected(v, tweak(h) .. "." .. p .. "." .. s, "malformed")
    end)

    it("rejects other characters: spaces, a Bearer prefix, Basic credentials", function()
      local v = verifier()
      local tok = token()
      rejected(v, "Bearer " .. tok, "malformed")
      rejected(v, "bearer x y", "malformed")
      rejected(v, "Basic dXNlcjpwYXNz", "malformed")
      rejected(v, " " .. tok, "malformed")
      rejected(v, tok .. "\n", "malformed")
    end)

    it("rejects a header that is a JSON array, string, number or null", function()
      local v = verifier()
      for _, h in ipairs { '["RS256","k1"]', '"RS256"', "123", "null", "true" } do
        rejected(v, S1:sign_raw(h, claims()), "malformed")
      end
    end)

    it("rejects a header that is not JSON", function()
      local v = verifier()
      rejected(v, S1:sign_raw("alg=RS256", claims()), "malformed")
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"k1"} x', claims()), "malformed")
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"k1"}\0{"alg":"none"}', claims()), "malformed")
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"k\255"}', claims()), "malformed")
    end)

    it("rejects a payload that is not a JSON object", function()
      local v = verifier()
      rejected(v, S1:sign_raw(H, "[" .. claims() .. "]"), "malformed")
      rejected(v, S1:sign_raw(H, '"claims"'), "malformed")
      rejected(v, S1:sign_raw(H, claims():sub(1, -2)), "malformed")
    end)

    it("rejects a header with crit", function()
      local v = verifier()
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"k1","crit":["exp"],"exp":1}', claims()), "malformed")
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"k1","crit":[]}', claims()), "malformed")
    end)

    it("rejects a duplicate alg in the header", function()
      local v = verifier()
      rejected(v, S1:sign_raw('{"alg":"none","kid":"k1","alg":"RS256"}', claims()), "malformed")
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"k1","kid":"k2"}', claims()), "malformed")
      rejected(v, S1:sign_raw('{"alg":"RS256","kid":"k1","\\u0061lg":"RS256"}', claims()), "malformed")
    end)

    it("rejects a duplicate aud in the claims, also nested duplicates", function()
      local v = verifier()
      rejected(v, token { aud = raw(cjson.encode(OTHER_APP) .. ',"aud":' .. cjson.encode(APP)) }, "malformed")
      rejected(v, token { extra = raw '{"a":1,"a":2}' }, "malformed")
      accepted(v, token { extra = raw '{"a":1,"b":[{},[],{"a":"a,b{"}]}' })
    end)
  end)

  describe("size (42)", function()
    it("rejects a token of 16 KiB + 1 bytes", function()
      local v = verifier()
      local h, p = split(token())
      local tok = h .. "." .. p .. "." .. ("A"):rep(16384 + 1 - #h - #p - 2)
      assert.equal(16385, #tok)
      rejected(v, tok, "too_large")
    end)

    it("rejects a 1 MB string of dots at once, without decoding it", function()
      local v = verifier()
      local dots = ("."):rep(1024 * 1024)
      rejected(v, dots, "too_large")
      rejected(v, "Bearer " .. dots, "too_large")
      collectgarbage("collect")
      collectgarbage("stop")
      local before = collectgarbage("count")
      local t0 = os.clock()
      for _ = 1, 1000 do v:verify(dots, NOW) end
      local elapsed = os.clock() - t0
      local grown = collectgarbage("count") - before
      collectgarbage("restart")
      assert.is_true(elapsed < 1, "1000 rejections took " .. elapsed .. " s")
      -- only the error values: ~1 KB each, nothing proportional to 1 MB
      assert.is_true(grown < 2000, ("allocated %.0f KB"):format(grown))
    end)

    it("uses max_token_bytes", function()
      local v = verifier { max_token_bytes = 64 }
      rejected(v, ("A"):rep(65), "too_large")
      rejected(v, ("A"):rep(64), "malformed")
    end)
  end)

  describe("signature (43)", function()
    local function with_sig(tok, bytes)
      local h, p = split(tok)
      return h .. "." .. p .. "." .. b64url(bytes)
    end

    local function sig_of(tok)
      local _, _, s = split(tok)
      return unb64url(s)
    end

    it("rejects a signature with one bit flipped", function()
      local tok = token()
      local sig = sig_of(tok)
      local i = #sig // 2
      local flipped = sig:sub(1, i - 1) .. string.char(sig:byte(i) ~ 0x10) .. sig:sub(i + 1)
      rejected(verifier(), with_sig(tok, flipped), "signature")
    end)

    it("rejects a signature truncated by one byte", function()
      local tok = token()
      rejected(verifier(), with_sig(tok, sig_of(tok):sub(1, -2)), "signature")
    end)

    it("rejects a signature extended by one byte", function()
      local tok = token()
      rejected(verifier(), with_sig(tok, sig_of(tok) .. "\0"), "signature")
      rejected(verifier(), with_sig(tok, "\0" .. sig_of(tok)), "signature")
    end)

    it("rejects a valid header and payload with another token's signature", function()
      local a, b = token { name = "a" }, token { name = "b" }
      rejected(verifier(), with_sig(a, sig_of(b)), "signature")
    end)

    it("rejects a token signed by another key than its kid names", function()
      rejected(verifier(), token({}, { kid = "k1" }, S2), "signature")
    end)

    it("rejects an all-zero signature of the right length", function()
      rejected(verifier(), with_sig(token(), ("\0"):rep(256)), "signature")
    end)

    it("never looks at the claims of a forged token (expired and forged is 'signature')", function()
      local v = verifier()
      local other = sig_of(token())
      rejected(v, with_sig(token { exp = NOW - 4000 }, other), "signature")
      rejected(v, with_sig(token { exp = NONE, iss = "evil", aud = NONE, tid = NONE }, other), "signature")
      rejected(v, with_sig(token { nbf = raw '"soon"' }, other), "signature")
      -- while the same claims, correctly signed, fail on the claims
      rejected(v, token { exp = NOW - 4000 }, "expired")
    end)

    it("rejects the signature of an RS256 token presented as RS512", function()
      local h = '{"alg":"RS512","kid":"k1"}'
      local good = S1:sign_raw('{"alg":"RS256","kid":"k1"}', claims())
      local _, p = split(good)
      rejected(verifier(), b64url(h) .. "." .. p .. "." .. select(3, split(good)), "signature")
    end)
  end)

  describe("verified-token cache", function()
    it("serves a second verify of the same token from the cache", function()
      local v = verifier()
      local tok = token { name = "cached" }
      local first = accepted(v, tok)
      assert.equal(0, v:cache_hits())
      local second = accepted(v, tok)
      assert.equal(1, v:cache_hits())
      assert.same(first, second)
      assert.equal("cached", second.name)
    end)

    it("returns copies: changing returned claims does not change the cache", function()
      local v = verifier()
      local tok = token { nested = { list = { 1 } } }
      local first = accepted(v, tok)
      first.aud, first.nested.list[1] = "changed", 99
      local second = accepted(v, tok)
      assert.equal(1, v:cache_hits())
      assert.equal(APP, second.aud)
      assert.equal(1, second.nested.list[1])
      assert.are_not.equal(first, second)
    end)

    it("refuses a cached token once now passes exp + skew", function()
      local v = verifier()
      local tok = token { exp = NOW + 100 }
      accepted(v, tok)
      accepted(v, tok, NOW + 400)                    -- now == exp + skew
      assert.equal(1, v:cache_hits())
      rejected(v, tok, "expired", NOW + 401)
      rejected(v, tok, "expired", NOW + 401)
      assert.equal(1, v:cache_hits())
    end)

    it("does not serve a cached token to a clock before its nbf", function()
      local v = verifier()
      local tok = token { nbf = NOW + 200 }
      accepted(v, tok)
      rejected(v, tok, "not_yet_valid", NOW - 200)
      assert.equal(0, v:cache_hits())
    end)

    it("caches only accepted tokens", function()
      local v = verifier()
      local tok = token { exp = NOW - 1000 }
      rejected(v, tok, "expired")
      rejected(v, tok, "expired")
      assert.equal(0, v:cache_hits())
    end)

    it("is emptied by clear_cache and disabled by cache_size = 0", function()
      local v = verifier()
      local tok = token()
      accepted(v, tok)
      v:clear_cache()
      accepted(v, tok)
      assert.equal(0, v:cache_hits())
      local off = verifier { cache_size = 0 }
      accepted(off, tok)
      accepted(off, tok)
      assert.equal(0, off:cache_hits())
    end)

    it("is keyed by the whole token: an equal string hits, a one-byte change does not", function()
      local v = verifier()
      local tok = token { name = "keyed" }
      accepted(v, tok)
      -- the same text built anew (another string object) is a hit
      local again = tok:sub(1, 10) .. tok:sub(11)
      assert.equal("keyed", accepted(v, again).name)
      assert.equal(1, v:cache_hits())
      -- a flipped signature byte after a cached good token: verified, refused
      local h, p, sig = split(tok)
      local last = sig:sub(-2, -2) == "A" and "B" or "A"
      rejected(v, h .. "." .. p .. "." .. sig:sub(1, -3) .. last .. sig:sub(-1), "signature")
      -- a longer or shorter token is no hit either
      rejected(v, tok .. "A", "signature")             -- 257 signature bytes
      rejected(v, tok:sub(1, -2), "malformed")
      rejected(v, " " .. tok, "malformed")
      assert.equal(1, v:cache_hits())
    end)

    it("serves alternating tokens from the cache and forgets them all on clear_cache", function()
      local v = verifier()
      local a, b = token { name = "a" }, token { name = "b" }
      accepted(v, a)
      accepted(v, b)
      for i = 1, 3 do
        assert.equal("a", accepted(v, a).name, "round " .. i)
        assert.equal("a", accepted(v, a).name, "round " .. i)
        assert.equal("b", accepted(v, b).name, "round " .. i)
      end
      assert.equal(9, v:cache_hits())
      v:clear_cache()
      assert.equal("b", accepted(v, b).name)
      assert.equal(9, v:cache_hits())
      -- a cached and repeated token still expires with exp (NOW + 300, skew 300)
      assert.equal("b", accepted(v, b, NOW + 600).name)
      assert.equal(10, v:cache_hits())
      rejected(v, b, "expired", NOW + 601)
      rejected(v, b, "expired", NOW + 601)
      assert.equal(10, v:cache_hits())
    end)

    it("drops a cached token once it expires, and does not serve it again", function()
      local v = verifier { skew = 0 }
      local tok = token { exp = NOW + 10 }
      accepted(v, tok)
      accepted(v, tok, NOW + 10)
      assert.equal(1, v:cache_hits())
      rejected(v, tok, "expired", NOW + 11)
      -- an earlier clock afterwards verifies it again (no stale hit) and caches it anew
      accepted(v, tok, NOW + 5)
      assert.equal(1, v:cache_hits())
      accepted(v, tok, NOW + 6)
      assert.equal(2, v:cache_hits())
    end)

    it("stays bounded by cache_size and keeps answering correctly", function()
      local v = verifier { cache_size = 2 }
      local toks = { token { name = "1" }, token { name = "2" }, token { name = "3", exp = NOW + 10 } }
      for round = 1, 3 do
        for i, tok in ipairs(toks) do
          assert.equal(tostring(i), accepted(v, tok).name, "round " .. round)
        end
      end
      assert.is_true(v:cache_hits() < 9)
      -- past the third token's exp + skew, only it is refused
      accepted(v, toks[1], NOW + 311)
      rejected(v, toks[3], "expired", NOW + 311)
    end)
  end)

  describe("options and misuse", function()
    local function raises(what, f, ...)
      local ok, msg = pcall(f, ...)
      assert.is_false(ok)
      assert.matches(what, tostring(msg), 1, true)
    end

    it("raises on unknown option keys, naming the key", function()
      raises("unknown key 'audiance'", core.jwt_verifier, { audience = APP, audiance = APP })
      raises("unknown key 'leeway'", core.jwt_verifier, { audience = APP, leeway = 5 })
      raises("unknown key 'size'", testing.jwt_signer, { size = 2048 })
    end)

    it("raises without a table or a usable audience", function()
      raises("table expected", core.jwt_verifier)
      raises("table expected", core.jwt_verifier, APP)
      raises("audience", core.jwt_verifier, {})
      raises("audience", core.jwt_verifier, { audience = "" })
      raises("audience", core.jwt_verifier, { audience = 42 })
    end)

    it("raises on bad skew, max_token_bytes and cache_size", function()
      raises("skew", core.jwt_verifier, { audience = APP, skew = -1 })
      raises("skew", core.jwt_verifier, { audience = APP, skew = 3601 })
      raises("skew", core.jwt_verifier, { audience = APP, skew = "300" })
      raises("skew", core.jwt_verifier, { audience = APP, skew = 0 / 0 })
      raises("max_token_bytes", core.jwt_verifier, { audience = APP, max_token_bytes = 1.5 })
      raises("max_token_bytes", core.jwt_verifier, { audience = APP, max_token_bytes = 0 })
      raises("max_token_bytes", core.jwt_verifier, { audience = APP, max_token_bytes = 1 << 40 })
      raises("cache_size", core.jwt_verifier, { audience = APP, cache_size = -1 })
      core.jwt_verifier { audience = APP, skew = 0, max_token_bytes = 1024, cache_size = 0 }:close()
    end)

    it("raises on algorithms outside RS256/RS384/RS512", function()
      raises("algorithms", core.jwt_verifier, { audience = APP, algorithms = {} })
      raises("algorithms", core.jwt_verifier, { audience = APP, algorithms = "RS256" })
      raises("algorithms[1]", core.jwt_verifier, { audience = APP, algorithms = { "HS256" } })
      raises("algorithms[1]", core.jwt_verifier, { audience = APP, algorithms = { "none" } })
      raises("algorithms[2]", core.jwt_verifier, { audience = APP, algorithms = { "RS256", "PS256" } })
      raises("algorithms", core.jwt_verifier, { audience = APP, algorithms = { "RS256", x = 1 } })
    end)

    it("raises on bad issuers and tenants", function()
      raises("issuers", core.jwt_verifier, { audience = APP, issuers = {} })
      raises("issuers[1]", core.jwt_verifier, { audience = APP, issuers = { 1 } })
      raises("issuers[2]", core.jwt_verifier, { audience = APP, issuers = { GRAPH, "" } })
      raises("tenants", core.jwt_verifier, { audience = APP, tenants = TENANT })
      raises("tenants", core.jwt_verifier, { audience = APP, tenants = {} })
    end)

    it("raises on bad arguments to the methods", function()
      local v = verifier()
      raises("bad argument #2", v.verify, v)
      raises("bad argument #2", v.verify, v, {}, NOW)
      raises("bad argument #3", v.verify, v, token())
      raises("bad argument #3", v.verify, v, token(), "now")
      raises("bad argument #3", v.verify, v, token(), 0 / 0)
      raises("bad argument #2", v.set_keys, v)
      raises("bad argument #2", v.has_key, v)
      raises("bad argument #1", v.verify, "v", token(), NOW)
    end)

    it("raises on bad signer options and arguments", function()
      raises("bits", testing.jwt_signer, { bits = 1024 })
      raises("bits", testing.jwt_signer, { bits = 8192 })
      raises("bits", testing.jwt_signer, { bits = "2048" })
      raises("table expected", testing.jwt_signer, 2048)
      raises("alg", S1.sign, S1, claims(), { alg = "HS256" })
      raises("strings", S1.sign, S1, claims(), { kid = 1 })
      raises("bad argument #2", S1.sign, S1, { sub = "x" })
      raises("bad argument #3", S1.sign, S1, claims(), "k1")
      raises("bad argument #3", S1.sign_raw, S1, "{}")
      raises("bad argument #3", S1.jwk, S1, "k", "ES256")
      raises("bad argument #2", S1.jwk, S1)
    end)
  end)

  describe("signer output", function()
    it("makes a JWK with base64url n and e", function()
      local jwk = cjson.decode(S1:jwk("k1"))
      assert.same({ "alg", "e", "kid", "kty", "n", "use" }, (function()
        local keys = {}
        for k in pairs(jwk) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      assert.equal("RSA", jwk.kty)
      assert.equal("sig", jwk.use)
      assert.equal("k1", jwk.kid)
      assert.equal("RS256", jwk.alg)
      assert.equal("AQAB", jwk.e)
      assert.matches("^[%w_-]+$", jwk.n)
      assert.equal(256, #unb64url(jwk.n))
      assert.equal(384, #unb64url(cjson.decode(S3:jwk("k3")).n))
      assert.equal("RS512", cjson.decode(S1:jwk("k1", "RS512")).alg)
      assert.equal('k"\\', cjson.decode(S1:jwk('k"\\')).kid)
    end)

    it("writes the header it was given, with alg RS256 by default", function()
      local h = split(S1:sign("{}", { kid = "k1", typ = "JWT" }))
      assert.same({ alg = "RS256", kid = "k1", typ = "JWT" }, cjson.decode(unb64url(h)))
      h = split(S1:sign("{}"))
      assert.same({ alg = "RS256" }, cjson.decode(unb64url(h)))
    end)

    it("signs sign_raw texts as given, with the alg named inside them", function()
      local tok = S1:sign_raw('{"alg":"RS512","kid":"k1"}', claims())
      local h, p = split(tok)
      assert.equal('{"alg":"RS512","kid":"k1"}', unb64url(h))
      assert.equal(claims(), unb64url(p))
      accepted(verifier(), tok)
    end)

    it("writes a PEM public key the openssl CLI reads", function()
      local pem = write("pub.pem", S1:public_pem())
      local out = sh_read(("openssl pkey -pubin -in %s -noout -text"):format(q(pem)))
      assert.matches("2048 bit", out, 1, true)
    end)
  end)

  describe("lifecycle", function()
    it("closes idempotently and raises on use after close", function()
      local v = verifier()
      assert.equal("graphcall.jwt_verifier: 2 key(s)", tostring(v))
      v:close()
      v:close()
      assert.equal("graphcall.jwt_verifier: (closed)", tostring(v))
      for _, call in ipairs {
        function() return v:verify(token(), NOW) end,
        function() return v:set_keys(JWKS) end,
        function() return v:key_count() end,
        function() return v:has_key("k1") end,
        function() return v:cache_hits() end,
        function() return v:clear_cache() end,
      } do
        local ok, msg = pcall(call)
        assert.is_false(ok)
        assert.matches("graphcall.jwt_verifier is closed", msg, 1, true)
      end
    end)

    it("closes at the end of a <close> scope", function()
      local kept
      do
        local v <close> = verifier()
        kept = v
        accepted(v, token())
      end
      assert.is_false(pcall(kept.key_count, kept))
    end)

    it("frees keys of verifiers that are only garbage collected", function()
      for _ = 1, 5 do verifier() end
      collectgarbage("collect")
      collectgarbage("collect")
    end)

    it("closes a signer idempotently", function()
      local s = testing.jwt_signer()
      assert.equal("graphcall.jwt_signer: RSA 2048", tostring(s))
      do
        local t <close> = s
        assert.is_string(t:jwk("x"))
      end
      s:close()
      assert.equal("graphcall.jwt_signer: (closed)", tostring(s))
      for _, name in ipairs { "sign", "sign_raw", "jwk", "public_pem" } do
        local ok, msg = pcall(s[name], s, "{}", "{}")
        assert.is_false(ok)
        assert.matches("graphcall.jwt_signer is closed", msg, 1, true)
      end
    end)
  end)

  describe("memory", function()
    local function rss_bytes()
      local f = assert(io.open("/proc/self/statm", "r"))
      local resident = f:read("a"):match("^%d+%s+(%d+)")
      f:close()
      return tonumber(resident) * 4096
    end

    it("stays flat over 10,000 verifications of valid and rejected tokens", function()
      local v = verifier()
      local uncached = verifier { cache_size = 0 }
      local good = { token(), token({ name = "b" }, { kid = "k2", alg = "RS512" }, S2) }
      local h, p = split(good[1])
      local bad = {
        h .. "." .. p .. "." .. select(3, split(token { name = "other" })),     -- forged
        token { exp = NOW - 1000 },                                                 -- expired
        token { aud = OTHER_APP },                                                  -- audience
        token({}, { kid = "nope" }),                                                -- unknown kid
        S1:sign_raw('{"alg":"none","kid":"k1"}', claims()),                         -- algorithm
        S1:sign_raw('{"alg":"RS256","alg":"RS256","kid":"k1"}', claims()),          -- malformed
        h .. "." .. p,                                                              -- malformed
        ("."):rep(20000),                                                           -- too_large
      }
      local function run(n)
        for i = 1, n do
          assert(uncached:verify(good[i % 2 + 1], NOW))
          assert(v:verify(good[1], NOW))
          local c, err = v:verify(bad[i % #bad + 1], NOW)
          assert(c == nil and err.kind == "unauthorized")
          if i % 1000 == 0 then assert(v:set_keys(JWKS) == 2) end
        end
      end
      -- a whole pass first: the heap this process already has (earlier
      -- specs) settles around the verifier's allocations; a leak shows in
      -- the second pass all the same
      run(10000)
      collectgarbage("collect")
      collectgarbage("collect")
      local lua_before, rss_before = collectgarbage("count"), rss_bytes()
      run(10000)
      collectgarbage("collect")
      collectgarbage("collect")
      local lua_growth = collectgarbage("count") - lua_before
      local rss_growth = rss_bytes() - rss_before
      assert.is_true(lua_growth < 200, ("Lua heap grew by %.1f KB"):format(lua_growth))
      if os.getenv("GRAPHCALL_MEMCHECK") ~= "1" then
        assert.is_true(rss_growth < 1024 * 1024, ("RSS grew by %d bytes"):format(rss_growth))
      end
      assert.is_true(v:cache_hits() >= 10000)
    end)
  end)
end)
