-- Writes the seed corpora of the fuzz harnesses, spec/fuzz/corpus/<harness>/seed-*,
-- and the fixed JWK of the jwt harness (spec/fuzz/jwt_fixed_jwk.json, the
-- public half of spec/fuzz/jwt_fixed_key.pem). Regression inputs (crash-*)
-- are kept. Run from the project root after `make`:
--
--   LUA_PATH='./lua/?.lua;./lua/?/init.lua;./examples/?.lua;;' \
--   LUA_CPATH='./build/?.so;;' lua5.4 spec/fuzz/make_corpus.lua
--
-- Sources: spec/fixtures (the seed's and the reference's notifications, the
-- seed's request bodies and 201 response), examples/seed_scenarios.lua (the
-- seed requests as specs), the links of spec/unit/joinlink_spec.lua, the Graph
-- error bodies of the reference (graph-api.md 5.1), tokens made with the
-- module's signer and with the fixed key (openssl CLI).
local core = require "graphcall.core"
local cjson = require("cjson").new()

local DIR = "spec/fuzz/corpus"
local KEY = "spec/fuzz/jwt_fixed_key.pem"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  assert(p:close(), "command failed: " .. cmd)
  return out
end

local TMP = os.tmpname()
os.remove(TMP)
sh("mkdir -p " .. q(TMP))

local counts = {}
local function seed(harness, name, data)
  local dir = DIR .. "/" .. harness
  if not counts[harness] then
    sh("mkdir -p " .. q(dir) .. " && rm -f " .. q(dir) .. "/seed-*")
    counts[harness] = 0
  end
  counts[harness] = counts[harness] + 1
  write(("%s/seed-%s"):format(dir, name:gsub("[^%w_.-]", "_")), data)
end

local function files(dir, pattern)
  local out = {}
  for name in sh("ls " .. q(dir)):gmatch("[^\n]+") do
    if name:match(pattern) then out[#out + 1] = name end
  end
  return out
end

-- --- base64url -------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for k = 1, chars do
      local idx = (n >> (6 * (4 - k))) & 63
      out[#out + 1] = B64:sub(idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end

local function hex_to_bytes(hex)
  return (hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

-- --- notifications -----------------------------------------------------------

for _, name in ipairs(files("spec/fixtures/notifications", "%.json$")) do
  seed("notifications", "ref-" .. name, read("spec/fixtures/notifications/" .. name))
end
for _, name in ipairs(files("spec/fixtures/seed", "^notification_.*%.json$")) do
  seed("notifications", "seed-" .. name, read("spec/fixtures/seed/" .. name))
end
local function envelope(entry) return '{"value":[' .. entry .. ']}' end
seed("notifications", "codes-as-strings", envelope(
  '{"changeType":"Deleted","resourceUrl":"/communications/calls/abc","resourceData":'
  .. '{"@odata.type":"#microsoft.graph.call","state":"Terminated","resultInfo":'
  .. '{"code":"200","subCode":"5001","message":"ok"}}}'))
seed("notifications", "operation-null-fields", envelope(
  '{"changeType":"deleted","resourceUrl":"/communications/calls/abc/operations/op1",'
  .. '"callbackUri":null,"resourceData":{"@odata.type":"#microsoft.graph.playPromptOperation",'
  .. '"status":"Completed","clientContext":null,"resultInfo":{"code":-1,"subcode":4294967295}}}'))
seed("notifications", "content-sharing", envelope(
  '{"changeType":"created","resourceUrl":"/communications/calls/abc/contentSharingSessions",'
  .. '"resourceData":[{"@odata.type":"#microsoft.graph.contentSharingSession","id":"s1"}]}'))
seed("notifications", "escapes", envelope(
  '{"changeType":"upd\\u00e4ted","resourceUrl":"/calls/\\ud83d\\ude00/","resourceData":'
  .. '{"state":"\\u0045stablished","direction":"Incoming","@odata.etag":"W/\\"1\\"",'
  .. '"x":[1e400,-0.0,{"y":[[[]]]}]}}'))
seed("notifications", "two-entries", '{"value":[{"changeType":"updated","resource":"/app/calls/1"},'
  .. '{"changeType":"updated","resourceUrl":"/communications/calls/2/participants/"}]}')
seed("notifications", "bad-code", envelope(
  '{"changeType":"deleted","resourceUrl":"/communications/calls/1","resourceData":{"resultInfo":{"code":"2e3"}}}'))
-- for the differential oracle (simdjson's pass against lua-cjson's): duplicate
-- and escaped keys, empty arrays, several entries with and without data
seed("notifications", "duplicates", '{"value":[{"changeType":"a","resourceUrl":"/x"}],"value":['
  .. '{"changeType":"Updated","changeType":"deleted","resourceUrl":"/communications/calls/c1",'
  .. '"resourceData":{"state":"One","state":"Two","resultInfo":{"code":1,"code":"2","subCode":3}},'
  .. '"resourceData":{"st\\u0061te":"Esc","resultInfo":[]}}]}')
seed("notifications", "batch", '{"value":[{"changeType":"created","resourceUrl":"/communications/calls/c1",'
  .. '"resourceData":[]},{"changeType":"updated","resourceUrl":"/communications/calls/c1/participants",'
  .. '"resourceData":[[1],{"@odata.type":"p"}]},{"changeType":"x","resourceUrl":"/calls/c4/",'
  .. '"resourceData":{}},{"changeType":"deleted","resource":"/app/calls/c2",'
  .. '"resourceData":null},{"changeType":"updated","resourceUrl":"/communications/calls/c3/operations/o",'
  .. '"resourceData":{"status":"Running","resultInfo":{"code":200.0,"message":"m\\u00e9"}}}]}')

-- --- join links ------------------------------------------------------------------

local TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
local OID = "4b444206-207c-42f8-92a6-e332b41c88a2"
local THREAD = "19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2"
local ENCODED = "https://teams.microsoft.com/l/meetup-join/"
  .. "19%3ameeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk%40thread.v2/0"
  .. "?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
  .. "4b444206-207c-42f8-92a6-e332b41c88a2%22%7d"
local links = {
  ENCODED,
  "https://teams.microsoft.com/l/meetup-join/" .. THREAD:gsub(":", "%%3a") .. "/0"
    .. '?context=%7B%22Tid%22:%22' .. TID .. '%22,%22Oid%22:%22' .. OID .. '%22%7D',
  "https://teams.microsoft.com/l/meetup-join/" .. THREAD .. "/0"
    .. '?context={"Tid":"' .. TID .. '","Oid":"' .. OID .. '"}',
  "https://teams.microsoft.com/l/meetup-join/19:cd9ce3da56624fe69c9d7cd026f9126d@thread.skype/1509579179399"
    .. '?context={"Tid":"' .. TID .. '","Oid":"' .. OID .. '","MessageId":"1536978844957"}&anon=true',
  "https://teams.microsoft.com/meet/2414128301281?p=NzhDLMLT8b07DrkwkE",
  "https://teams.microsoft.com/meet/2414128301281",
  "https://teams.microsoft.com/meet/123?p=&x=evil",
  "https://teams.microsoft.com/meet/123/?x=1&p=abc&y=2",
  "https://gov.teams.microsoft.us/meet/1?p=x",
  "https://DOD.teams.microsoft.us/l/meetup-join/a/b/?context={\"Tid\":\"t\",\"Oid\":\"o\",\"MessageId\":7}",
  "teams.microsoft.com/meet/1",
  "http://teams.microsoft.com/meet/1",
  "https://teams.example.com/meet/1",
  "https://teams.microsoft.com/l/chat/0/0",
  "https://teams.microsoft.com/meet/",
  "https://teams.microsoft.com/l/meetup-join/",
  "https://teams.microsoft.com/l/meetup-join/19%3ax",
  "https://teams.microsoft.com/l/meetup-join/19%3ax/0/extra?context={}",
  "https://teams.microsoft.com/l/meetup-join/19%3ax/0",
  "https://teams.microsoft.com/l/meetup-join/19%3ax/0?context=nope",
  "https://teams.microsoft.com/l/meetup-join/19%3ax/0?context=%7B%7D",
  'https://teams.microsoft.com/l/meetup-join/19%3ax/0?context={"Tid":"t"}',
  'https://teams.microsoft.com/l/meetup-join/19%3ax/0?context={"Tid":"t","Oid":7}',
  "https://teams.microsoft.com/l/meetup-join/19%0ax/0?context={}",
  "https://teams.microsoft.com/meet/1?p=%ff",
  "https://teams.microsoft.com/meet/123?p=abc\0junk",
  "https://user:pw@teams.microsoft.com/meet/1",
  "https://teams.microsoft.com:9999/meet/1",
  "https://teams.microsoft.com/meet/1/2",
  "https://teams.microsoft.com/meet/%F0%9F%98%80#frag",
  "https://[::1]/meet/1",
}
for i, link in ipairs(links) do seed("joinlink", ("%02d"):format(i), link) end

-- --- Graph error and 201 bodies --------------------------------------------------
-- byte 0: status {200, 201, 400, 429, 503}[(b0 & 7) % 5 + 1]; bit 3 create; bit 4 headers.

local function status_byte(status, create, headers)
  local idx = ({ [200] = 0, [201] = 1, [400] = 2, [429] = 3, [503] = 4 })[status]
  local b = idx + (create and 8 or 0) + (headers and 16 or 0)
  return string.char(b)
end

local graph_errors = {
  { 400, '{"error":{"code":"7505","message":"Request authorization tenant mismatch.",'
    .. '"innerError":{"date":"2025-09-30T05:03:57","request-id":"9302576f-0000-0000-0000-000000000000",'
    .. '"client-request-id":"9302576f-0000-0000-0000-000000000001"}}}' },
  { 400, '{"error":{"code":"8523","message":"Missing mediaConfig information.","innerError":'
    .. '{"request-id":"r","date":"2020-01-01T00:00:00"}}}' },
  { 400, '{"error":{"code":"UnknownError","message":"{\\"errorCode\\":\\"7500\\",\\"message\\":'
    .. '\\"Unsupported AAD Identity.\\"}","innererror":{"request-id":"r"}}}' },
  { 400, '{"error":{"code":"BadRequest","message":"Found a function \'microsoft.graph.answer\' '
    .. 'on an open property.","innerError":{"innerError":{"innerError":{}}}}}' },
  { 429, '{"error":{"code":"TooManyRequests","message":"Too many requests","innerError":{"code":"429"}}}' },
  { 503, '{"error":{"code":"9999","message":"Unkown internal Server Error.","innerError":{"date":7}}}' },
  { 400, '{"error":"invalid_scope","error_description":"AADSTS70011: x","error_codes":[70011],'
    .. '"timestamp":"2020-01-01 00:00:00Z","trace_id":"t","correlation_id":"c"}' },
  { 503, "<html><body>Service Unavailable</body></html>" },
  { 429, "" },
  { 400, '{"error":{"code":8522,"message":null}}' },
}
for i, e in ipairs(graph_errors) do
  seed("decoders", ("error-%02d"):format(i), status_byte(e[1], i % 2 == 1, i % 3 ~= 0) .. e[2])
end
local created = read("spec/fixtures/seed/p2p_service_hosted_response.json")
seed("decoders", "201-seed", status_byte(201, true, true) .. created)
seed("decoders", "200-seed", status_byte(200, false, false) .. created)
seed("decoders", "201-compact", status_byte(201, true, false) .. cjson.encode(cjson.decode(created)))
seed("decoders", "201-array", status_byte(201, true, false) .. "[1,2,3]")
seed("decoders", "201-truncated", status_byte(201, true, false) .. created:sub(1, 200))
seed("decoders", "201-no-id", status_byte(201, false, true) .. '{"id":null,"state":"establishing"}')

-- --- JWTs ---------------------------------------------------------------------------
-- byte 0: '0' raw token, '1' claims, '2' header "\n" claims, '3' JWKS, '4' two clocks + claims.

local NOW = 1700000000
local APP = "8a34a46b-3d17-4adc-8dce-dc4e7d572698"
local BOTFRAMEWORK = "https://api.botframework.com"

-- The fixed key's JWK.
local modulus = sh("openssl rsa -in " .. q(KEY) .. " -noout -modulus 2>/dev/null"):match("Modulus=(%x+)")
assert(modulus, "cannot read " .. KEY)
assert(sh("openssl rsa -in " .. q(KEY) .. " -noout -text 2>/dev/null"):find("publicExponent: 65537", 1, true))
local FIXED_JWK = ('{"kty":"RSA","use":"sig","kid":"fuzz-fixed","n":"%s","e":"AQAB"}'):format(
  b64url(hex_to_bytes(modulus)))
write("spec/fuzz/jwt_fixed_jwk.json", FIXED_JWK)

local function claims(over)
  local c = { iss = BOTFRAMEWORK, aud = APP, tid = TID, iat = NOW - 10, nbf = NOW - 10, exp = NOW + 300 }
  for k, v in pairs(over or {}) do c[k] = v end
  for k, v in pairs(c) do if v == false then c[k] = nil end end
  local keys = {}
  for k in pairs(c) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = cjson.encode(k) .. ":" .. cjson.encode(c[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- header.payload signed with the fixed key by the openssl CLI.
local function fixed_token(header, payload, bits)
  local input = b64url(header) .. "." .. b64url(payload)
  write(TMP .. "/input", input)
  sh(("openssl dgst -sha%d -sign %s -out %s %s"):format(bits or 256, q(KEY), q(TMP .. "/sig"), q(TMP .. "/input")))
  return input .. "." .. b64url(read(TMP .. "/sig"))
end

local H = '{"alg":"RS256","kid":"fuzz-fixed","typ":"JWT"}'
seed("jwt", "raw-fixed-good", "0" .. fixed_token(H, claims()))
seed("jwt", "raw-fixed-rs384", "0" .. fixed_token('{"alg":"RS384","kid":"fuzz-fixed"}', claims(), 384))
seed("jwt", "raw-fixed-rs512", "0" .. fixed_token('{"alg":"RS512","kid":"fuzz-fixed"}',
  claims { iss = "https://graph.microsoft.com", nbf = false }, 512))
seed("jwt", "raw-fixed-expired", "0" .. fixed_token(H, claims { exp = NOW - 1000 }))
seed("jwt", "raw-fixed-audience", "0" .. fixed_token(H, claims { aud = "other" }))
seed("jwt", "raw-fixed-nested", "0" .. fixed_token(H, claims { extra = { a = { 1, 2, { b = "c" } } } }))
seed("jwt", "raw-fixed-dup", "0" .. fixed_token(H, '{"aud":"x","aud":"' .. APP .. '"}'))
local signer = require("graphcall.testing").jwt_signer()
seed("jwt", "raw-signer", "0" .. signer:sign(claims(), { kid = "fuzz-kid" }))
seed("jwt", "raw-signer-512", "0" .. signer:sign(claims(), { kid = "fuzz-kid-512", alg = "RS512" }))
seed("jwt", "raw-signer-unknown-kid", "0" .. signer:sign(claims(), { kid = "nope" }))
seed("jwt", "raw-none", "0" .. b64url('{"alg":"none"}') .. "." .. b64url(claims()) .. ".")
seed("jwt", "raw-hs256", "0" .. b64url('{"alg":"HS256","kid":"fuzz-fixed"}') .. "." .. b64url(claims()) .. ".AAAA")
seed("jwt", "raw-padded", "0" .. b64url(H) .. "=." .. b64url(claims()) .. ".AA==")
seed("jwt", "raw-four-segments", "0a.b.c.d")

seed("jwt", "claims-good", "1" .. claims())
seed("jwt", "claims-graph-issuer", "1" .. claims { iss = "https://graph.microsoft.com" })
seed("jwt", "claims-expired", "1" .. claims { exp = NOW - 301 })
seed("jwt", "claims-not-yet", "1" .. claims { nbf = NOW + 301 })
seed("jwt", "claims-no-exp", "1" .. claims { exp = false })
seed("jwt", "claims-string-exp", "1" .. claims { exp = tostring(NOW + 300) })
seed("jwt", "claims-huge-exp", "1" .. claims():gsub('"exp":%d+', '"exp":1e400'))
seed("jwt", "claims-tenant", "1" .. claims { tid = "other" })
seed("jwt", "claims-no-iat", "1" .. claims { iat = false })
seed("jwt", "claims-dup", "1" .. '{"aud":"' .. APP .. '","aud":"' .. APP .. '"}')
seed("jwt", "claims-array", "1[1,2]")
seed("jwt", "claims-nested", "1" .. claims { roles = { "a", "b" }, cnf = { jwk = { kty = "RSA" } } })

local function hc(header, c) return "2" .. header .. "\n" .. (c or claims()) end
seed("jwt", "header-rs384", hc('{"alg":"RS384","kid":"fuzz-kid"}'))
seed("jwt", "header-rs512", hc('{"alg":"RS512","kid":"fuzz-kid-512","typ":"JWT","x5t":"abc"}'))
seed("jwt", "header-none", hc('{"alg":"none","kid":"fuzz-kid"}'))
seed("jwt", "header-hs256", hc('{"alg":"HS256","kid":"fuzz-kid"}'))
seed("jwt", "header-crit", hc('{"alg":"RS256","kid":"fuzz-kid","crit":["exp"]}'))
seed("jwt", "header-no-kid", hc('{"alg":"RS256"}'))
seed("jwt", "header-kid-number", hc('{"alg":"RS256","kid":7}'))
seed("jwt", "header-dup", hc('{"alg":"RS256","kid":"fuzz-kid","kid":"fuzz-kid"}'))
seed("jwt", "header-only", "2" .. '{"alg":"RS256","kid":"fuzz-kid","jku":"https://evil/keys"}')

local function jwks(...) return "3" .. '{"keys":[' .. table.concat({ ... }, ",") .. "]}" end
seed("jwt", "jwks-fixed", jwks(FIXED_JWK))
seed("jwt", "jwks-signer", jwks(signer:jwk("fuzz-kid"), signer:jwk("other", "RS384")))
seed("jwt", "jwks-dup-kid", jwks(FIXED_JWK, FIXED_JWK))
seed("jwt", "jwks-oct", jwks('{"kty":"oct","kid":"fuzz-kid","k":"c2VjcmV0"}', FIXED_JWK))
seed("jwt", "jwks-enc", jwks('{"kty":"RSA","use":"enc","kid":"e","n":"AQAB","e":"AQAB"}'))
seed("jwt", "jwks-small-e", jwks(('{"kty":"RSA","kid":"fuzz-kid","n":"%s","e":"AQ"}'):format(
  b64url(hex_to_bytes(modulus)))))
seed("jwt", "jwks-even-n", jwks(('{"kty":"RSA","kid":"fuzz-kid","n":"%s","e":"AQAB"}'):format(
  b64url(hex_to_bytes(modulus:sub(1, -2) .. "0")))))
seed("jwt", "jwks-no-keys", '3{"keys":[]}')
seed("jwt", "jwks-not-array", '3{"keys":{"kid":"a"}}')
-- x5c: a self-signed certificate of the fixed key, and a 1024-bit key.
local der = sh(("openssl req -x509 -key %s -subj /CN=fuzz -days 36500 -outform DER 2>/dev/null | base64 -w0")
  :format(q(KEY)))
seed("jwt", "jwks-x5c", jwks(('{"kty":"RSA","kid":"fuzz-kid","x5c":["%s"]}'):format(der)))
sh(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out %s 2>/dev/null"):format(q(TMP .. "/k1024")))
local m1024 = sh(("openssl rsa -in %s -noout -modulus 2>/dev/null"):format(q(TMP .. "/k1024"))):match("Modulus=(%x+)")
seed("jwt", "jwks-1024", jwks(('{"kty":"RSA","kid":"fuzz-kid","n":"%s","e":"AQAB"}'):format(
  b64url(hex_to_bytes(m1024)))))

local function clocks(o1, o2, c) return "4" .. string.pack(">i4>i4", o1, o2) .. (c or claims()) end
seed("jwt", "clock-now", clocks(0, 0))
seed("jwt", "clock-skew-edge", clocks(600, 601))
seed("jwt", "clock-before-nbf", clocks(0, -311))
seed("jwt", "clock-far", clocks(-2147483648, 2147483647))
seed("jwt", "clock-long-lived", clocks(1000, 10, claims { exp = NOW + 5000, nbf = NOW + 900 }))

-- --- request specs --------------------------------------------------------------
-- The encoding of spec/fuzz/request.c; KEYS and WORDS are read from it.

local function c_strings(src, name)
  local body = src:match("static const char %*const " .. name .. "%[%] = {(.-)\n};")
  assert(body, "no " .. name .. " in request.c")
  body = body:gsub("/%*.-%*/", "")
  local out, cur, i = {}, nil, 1
  while i <= #body do
    local ch = body:sub(i, i)
    if ch == '"' then
      i = i + 1
      cur = cur or ""
      while body:sub(i, i) ~= '"' do
        local c = body:sub(i, i)
        if c == "\\" then
          local e = body:sub(i + 1, i + 1)
          if e == "x" then
            local hex = body:match("^%x+", i + 2)
            cur = cur .. string.char(tonumber(hex, 16))
            i = i + 2 + #hex
          else
            cur = cur .. (({ n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\" })[e]
              or error("escape \\" .. e))
            i = i + 2
          end
        else
          cur = cur .. c
          i = i + 1
        end
      end
      i = i + 1
    elseif ch == "," then
      out[#out + 1] = cur
      cur = nil
      i = i + 1
    else
      i = i + 1
    end
  end
  if cur then out[#out + 1] = cur end
  return out
end

local rsrc = read("spec/fuzz/request.c")
local KEYS, WORDS = c_strings(rsrc, "KEYS"), c_strings(rsrc, "WORDS")
local KEY_INDEX, WORD_INDEX = {}, {}
for i, k in ipairs(KEYS) do KEY_INDEX[k] = KEY_INDEX[k] or i - 1 end
for i, w in ipairs(WORDS) do WORD_INDEX[w] = WORD_INDEX[w] or i - 1 end

local encode_value
local function enc_string(s)
  if #s >= 255 then return string.char(255) .. string.pack(">I2", #s) .. s end
  return string.char(#s) .. s
end

local function is_sequence(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

local function encode_table(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  assert(#keys < 16, "too many keys")
  local out = { string.char(#keys) }
  for _, k in ipairs(keys) do
    if math.type(k) == "integer" then
      assert(k >= 0 and k < 32)
      out[#out + 1] = string.char(0xC0 + k)
    elseif KEY_INDEX[k] then
      out[#out + 1] = string.char(KEY_INDEX[k])
    else
      out[#out + 1] = string.char(0xE0) .. enc_string(k)
    end
    out[#out + 1] = encode_value(t[k])
  end
  return table.concat(out)
end

function encode_value(v)
  if v == core.null then return string.char(8) end
  local t = type(v)
  if t == "string" then
    if WORD_INDEX[v] then return string.char(1, WORD_INDEX[v]) end
    return string.char(0) .. enc_string(v)
  elseif math.type(v) == "integer" then
    if v >= -128 and v <= 127 then return string.char(2, v & 255) end
    return string.char(3) .. string.pack(">i8", v)
  elseif t == "number" then
    return string.char(4) .. string.pack(">d", v)
  elseif t == "boolean" then
    return string.char(5, v and 1 or 0)
  elseif t == "table" then
    if is_sequence(v) then
      assert(#v < 16)
      local out = { string.char(7, #v) }
      for _, x in ipairs(v) do out[#out + 1] = encode_value(x) end
      return table.concat(out)
    end
    return string.char(6) .. encode_table(v)
  end
  error("cannot encode a " .. t)
end

-- byte 0: bit 0 join, bits 1-2 endpoint, bit 3 client callback_uri, bit 4 build_parts,
-- bit 5 loopback graph_url.
local ENDPOINT = { ["v1.0"] = 0, beta = 1, ["beta/app"] = 2, ["beta/applications"] = 3 }
local function spec_input(mode, spec, o)
  o = o or {}
  local b = (mode == "join" and 1 or 0) + ENDPOINT[o.endpoint or "beta/app"] * 2
    + (o.no_callback and 0 or 8) + (o.parts and 16 or 0) + (o.loopback and 32 or 0)
  return string.char(b) .. encode_table(spec)
end

for i, s in ipairs(require "seed_scenarios") do
  seed("request", ("scenario-%d-%s"):format(i, s[1]), spec_input(s[2], s[3], { endpoint = i % 2 == 0 and "v1.0" }))
end
local user = { type = "user", id = "550fae72-d251-43ec-868c-373732c2704f", tenant = TID, name = "Heidi Steen" }
local more = {
  { "join-url", "join", { url = ENCODED, allow_conversation_without_host = true } },
  { "join-meet-url", "join", { url = "https://teams.microsoft.com/meet/2414128301281?p=NzhDLMLT8b07DrkwkE",
    tenant = TID } },
  { "join-meeting-id", "join", { meeting_id = "1234567", passcode = "psw123" } },
  { "join-token", "join", { meeting_token = "tok", guest = "Guest" } },
  { "call-extra", "call", { targets = { user }, extra = {
    customField = { a = 1, b = { 1.5, "x", true, core.null }, c = { d = { e = {} } } }, n = 99999999999999 } } },
  { "call-options", "call", { targets = { user }, call_options = { hide_bot_after_escalation = true,
    is_content_sharing_notification_enabled = false, is_delta_roster_enabled = true },
    modalities = { "audio", "video_based_screen_sharing", "data" } } },
  { "call-instance", "call", { source = { type = "application_instance", id = "app-inst", name = "Desk",
    tenant = TID }, targets = { { type = "phone", id = "+14255550123" },
    { type = "guest", name = "Visitor", replaces_call_id = "c1" } },
    callback_uri = "http://127.0.0.1:8080/cb", media = { type = "service_hosted",
    prompts = {}, remove_from_default_audio_group = true } } },
  { "call-app-media", "call", { targets = { user },
    media = { type = "app_hosted", blob = ("{\"mpUri\":\"x\"}"):rep(3) } } },
  { "parts", "call", { targets = { user }, callback_uri = "https://bot.contoso.com/api/calls",
    modalities = { "audio" }, media = { type = "service_hosted", prompts = {
      { uri = "https://cdn.contoso.com/beep.wav", resource_id = "1D6DE2D4-CD51-4309-8DAA-70768651088E" } } } },
    { parts = true } },
  { "bad-unknown-key", "call", { targets = { user }, targetz = 1 } },
  { "bad-phone", "call", { targets = { { type = "phone", id = "12" } } } },
}
for i, s in ipairs(more) do
  local o = s[4] or {}
  if i % 3 == 0 then o.loopback = true end
  if i % 4 == 1 then o.endpoint = "beta/applications" end
  seed("request", s[1], spec_input(s[2], s[3], o))
end
-- A table shared twice in extra: tag 9 refers to a table made earlier.
seed("request", "bad-shared", string.char(8) .. string.char(2)
  .. string.char(KEY_INDEX.targets) .. encode_value({ user })
  .. string.char(KEY_INDEX.extra) .. string.char(6, 2)
  .. string.char(0xE0) .. enc_string("a") .. string.char(6, 0)
  .. string.char(0xE0) .. enc_string("b") .. string.char(9, 4))

sh("rm -rf " .. q(TMP))
local names = {}
for h in pairs(counts) do names[#names + 1] = h end
table.sort(names)
for _, h in ipairs(names) do print(("%-14s %d seed inputs"):format(h, counts[h])) end
