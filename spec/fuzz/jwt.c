/* libFuzzer harness: the JWT verifier (v:verify with a fixed key set and a
 * fixed clock) and the JWKS parser (v:set_keys).
 *
 * The key set, built once: "fuzz-fixed", the public half of
 * spec/fuzz/jwt_fixed_key.pem (spec/fuzz/jwt_fixed_jwk.json), so tokens in
 * the corpus signed with that key verify in every run; and "fuzz-kid" /
 * "fuzz-kid-512", a graphcall.testing jwt_signer made at start-up, which signs what the
 * fuzzer writes. The verifier: audience APP, tenants {TENANT}, default
 * issuers, skew 300 s, cache of 8 tokens (so eviction runs). Clock NOW.
 *
 * Input: byte 0 is the mode ('0'..'4', taken modulo 5), the rest:
 *   '0' a raw token: v:verify(rest, NOW); a verified token is verified
 *       again (the cache) and must give the same claims
 *   '1' claims JSON: signer:sign_raw(HEADER, rest), then v:verify
 *   '2' header JSON "\n" claims JSON: signer:sign_raw(header, claims),
 *       then v:verify (no "\n": the rest is the header, CLAIMS the claims)
 *   '3' a JWKS document: v2:set_keys(rest) on a second verifier, then
 *       key_count, has_key and the verification of a fixed signer token
 *       (kid "fuzz-kid") against the keys from the document
 *   '4' two clock offsets (4 bytes each, signed, big-endian seconds from
 *       NOW), then claims JSON signed with HEADER: verified at the first
 *       time, then at the second (the cache may answer), where the answer
 *       must be the one of a verifier without a cache
 * verify and set_keys must never raise for a string; a rejection is
 * nil plus a graphcall.error of kind "unauthorized" with a known reason,
 * a bad JWKS nil plus kind "bad_keys". Accepted claims are checked. */
#include "fuzz.h"

#define NOW 1700000000

static int run_ref;

static const char setup_src[] =
	"local root, NOW = ...\n"
	"local core = require 'graphcall.core'\n"
	"local APP = '8a34a46b-3d17-4adc-8dce-dc4e7d572698'\n"
	"local TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'\n"
	"local ISSUERS = { ['https://api.botframework.com'] = true, ['https://graph.microsoft.com'] = true }\n"
	"local HEADER = '{\"alg\":\"RS256\",\"kid\":\"fuzz-kid\",\"typ\":\"JWT\"}'\n"
	"local CLAIMS = ('{\"iss\":\"https://api.botframework.com\",\"aud\":\"%s\",\"tid\":\"%s\",'\n"
	"  .. '\"iat\":%d,\"nbf\":%d,\"exp\":%d}'):format(APP, TENANT, NOW - 10, NOW - 10, NOW + 300)\n"
	"local REASONS = {}\n"
	"for r in ('too_large malformed algorithm unknown_kid signature issuer audience '\n"
	"  .. 'missing_exp claims expired not_yet_valid tenant'):gmatch('%S+') do REASONS[r] = true end\n"
	"local f = assert(io.open(root .. '/spec/fuzz/jwt_fixed_jwk.json', 'rb'))\n"
	"local fixed = f:read('a')\n"
	"f:close()\n"
	"local signer = require('graphcall.testing').jwt_signer()\n"
	"local JWKS = '{\"keys\":[' .. fixed .. ',' .. signer:jwk('fuzz-kid') .. ','\n"
	"  .. signer:jwk('fuzz-kid-512', 'RS512') .. ']}'\n"
	"local function verifier()\n"
	"  return core.jwt_verifier { audience = APP, tenants = { TENANT }, cache_size = 8 }\n"
	"end\n"
	"local v = verifier()\n"
	"assert(v:set_keys(JWKS) == 3, 'the fixed key set')\n"
	"local v2 = verifier()\n"
	"local fresh = core.jwt_verifier { audience = APP, tenants = { TENANT }, cache_size = 0 }\n"
	"assert(fresh:set_keys(JWKS) == 3)\n"
	"local PRE = signer:sign_raw(HEADER, CLAIMS)\n"
	"assert(v:verify(PRE, NOW), 'the fixed token')\n"
	"\n"
	"local function is_error(e, kind)\n"
	"  return type(e) == 'table' and getmetatable(e) and getmetatable(e).__name == 'graphcall.error'\n"
	"    and e.kind == kind and type(e.message) == 'string'\n"
	"end\n"
	"\n"
	"-- Verify; check the shape of the answer and, when accepted, the claims.\n"
	"local function verify(ver, token, now)\n"
	"  local claims, err = ver:verify(token, now)\n"
	"  if claims == nil then\n"
	"    assert(is_error(err, 'unauthorized'), 'verify: not an unauthorized error')\n"
	"    assert(REASONS[err.reason], 'verify: unknown reason ' .. tostring(err.reason))\n"
	"    return nil, err.reason\n"
	"  end\n"
	"  assert(type(claims) == 'table', 'verify returned a ' .. type(claims))\n"
	"  assert(ISSUERS[claims.iss], 'accepted iss')\n"
	"  assert(claims.aud == APP, 'accepted aud')\n"
	"  assert(claims.tid == TENANT, 'accepted tid')\n"
	"  assert(type(claims.exp) == 'number' and now <= claims.exp + 300, 'accepted exp')\n"
	"  assert(claims.nbf == nil or now >= claims.nbf - 300, 'accepted nbf')\n"
	"  return claims\n"
	"end\n"
	"\n"
	"local function same(a, b)\n"
	"  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end\n"
	"  for k, x in pairs(a) do if not same(x, b[k]) then return false end end\n"
	"  for k in pairs(b) do if a[k] == nil then return false end end\n"
	"  return true\n"
	"end\n"
	"\n"
	"local modes = {}\n"
	"modes[0] = function(rest)\n"
	"  local claims, why = verify(v, rest, NOW)\n"
	"  if not claims then return why end\n"
	"  claims.aud = 'changed by the caller'\n"
	"  local again = assert(verify(v, rest, NOW), 'a verified token failed the second time')\n"
	"  claims.aud = APP\n"
	"  assert(same(claims, again), 'the cached claims differ')\n"
	"  return 'accepted'\n"
	"end\n"
	"local function signed(header, claims, now)\n"
	"  local token = signer:sign_raw(header, claims)\n"
	"  local ok, why = verify(v, token, now)\n"
	"  return ok and 'accepted' or why\n"
	"end\n"
	"modes[1] = function(rest) return signed(HEADER, rest, NOW) end\n"
	"modes[2] = function(rest)\n"
	"  local nl = rest:find('\\n', 1, true)\n"
	"  if not nl then return signed(rest, CLAIMS, NOW) end\n"
	"  return signed(rest:sub(1, nl - 1), rest:sub(nl + 1), NOW)\n"
	"end\n"
	"modes[3] = function(rest)\n"
	"  local n, err = v2:set_keys(rest)\n"
	"  if n == nil then\n"
	"    assert(is_error(err, 'bad_keys'), 'set_keys: not a bad_keys error')\n"
	"    return 'bad_keys'\n"
	"  end\n"
	"  assert(math.type(n) == 'integer' and n >= 1 and v2:key_count() == n, 'set_keys count')\n"
	"  v2:has_key('fuzz-kid')\n"
	"  local ok, why = verify(v2, PRE, NOW)\n"
	"  return ('%d key(s), %s'):format(n, ok and 'accepted' or why)\n"
	"end\n"
	"modes[4] = function(rest)\n"
	"  if #rest < 8 then return 'short' end\n"
	"  local o1, o2 = string.unpack('>i4>i4', rest)\n"
	"  local token = signer:sign_raw(HEADER, rest:sub(9))\n"
	"  local first, why1 = verify(v, token, NOW + o1)\n"
	"  local cached, why2 = verify(v, token, NOW + o2)\n"
	"  local ok, why3 = verify(fresh, token, NOW + o2)\n"
	"  assert((cached ~= nil) == (ok ~= nil) and why2 == why3,\n"
	"    ('with the cache: %s, without: %s'):format(why2 or 'accepted', why3 or 'accepted'))\n"
	"  if cached then assert(same(cached, ok), 'the cached claims differ') end\n"
	"  return (first and 'accepted' or why1) .. ', then ' .. (cached and 'accepted' or why2)\n"
	"end\n"
	"return function(mode, rest) return modes[mode](rest) end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	lua_State *L = fz_state();

	(void)argc;
	(void)argv;
	lua_pushstring(L, GC_FUZZ_ROOT);
	lua_pushinteger(L, NOW);
	fz_run(L, "=jwt-setup", setup_src, 2, 1);
	run_ref = fz_ref(L);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fz_state();
	int top, mode;

	if (size == 0)
		return 0;
	mode = ((int)data[0] - '0' + 250) % 5;
	fz_begin(L);
	top = lua_gettop(L);
	fz_push(L, run_ref);
	lua_pushinteger(L, mode);
	lua_pushlstring(L, (const char *)data + 1, size - 1);
	if (fz_pcall(L, 2, 1) != LUA_OK)
		fz_fail("jwt mode %d: %s", mode, lua_tostring(L, -1));
	fz_log("jwt mode %d: %s", mode, lua_tostring(L, -1));
	lua_settop(L, top);
	fz_end(L);
	return 0;
}
