/* libFuzzer harness: the Lua decoders of Graph responses,
 * graphcall.transport.check (the Graph error body) and .decode_fields (the
 * 201 body of a created call: simdjson, or lua-cjson for what simdjson
 * refuses), used the way client.lua uses them, with .decode (lua-cjson
 * alone) as the oracle: whatever decode_fields accepts, decode accepts, with
 * the same string members.
 *
 * Input: byte 0 chooses the result, the rest is the response body.
 *   status  = {200, 201, 400, 429, 503}[(b0 & 7) % 5 + 1]
 *   bit 3   the request is a create request (req.create)
 *   bit 4   a retry-after header (b0 >> 5 seconds) and a request-id header
 * The Lua code runs with a line hook feeding libFuzzer (fz_lua_coverage).
 * check(), decode_fields() and decode() must never raise: they return nil
 * or a graphcall.error, and a table or nil plus a graphcall.error. */
#include "fuzz.h"

static int run_ref;

static const char run_src[] =
	"local transport = require 'graphcall.transport'\n"
	"local CREATED = { [200] = true, [201] = true }\n"
	"local KINDS = { graph = true, http = true, unknown_outcome = true }\n"
	"local function is_error(e)\n"
	"  return type(e) == 'table' and getmetatable(e) and getmetatable(e).__name == 'graphcall.error'\n"
	"    and type(e.kind) == 'string' and type(e.message) == 'string'\n"
	"end\n"
	"return function(status, create, headers, body)\n"
	"  local r = { status = status, headers = headers, body = body, attempts = 1 }\n"
	"  local req = { method = 'POST', url = 'https://graph.microsoft.com/v1.0/communications/calls',\n"
	"                create = create, client_request_id = '6a9ba0f4-0c2a-4b59-a2b3-8a1a4d4c3e11' }\n"
	"  local err = transport.check(r, req, CREATED)\n"
	"  if err ~= nil then\n"
	"    assert(is_error(err), 'check returned a non-error')\n"
	"    assert(not CREATED[status], 'check failed an expected status')\n"
	"    assert(KINDS[err.kind], 'check: kind ' .. err.kind)\n"
	"    assert(err.status == status)\n"
	"    assert(type(err.body) == 'string' and #err.body <= 1024)\n"
	"    assert(err.kind ~= 'graph' or type(err.code) == 'string')\n"
	"    assert(type(tostring(err)) == 'string')\n"
	"    return 'error ' .. err.kind\n"
	"  end\n"
	"  assert(CREATED[status], 'check passed an unexpected status')\n"
	"  local fields, ferr = transport.decode_fields(r, req, 'id', 'state', 'direction', 'myParticipantId')\n"
	"  local doc, derr = transport.decode(r, req)\n"
	"  if doc == nil then\n"
	"    assert(is_error(derr) and derr.kind == 'bad_response', 'decode: bad error')\n"
	"    assert(#derr.body <= 1024)\n"
	"  end\n"
	"  if fields == nil then\n"
	"    assert(is_error(ferr) and ferr.kind == 'bad_response', 'decode_fields: bad error')\n"
	"    assert(#ferr.body <= 1024)\n"
	"    return 'bad_response'\n"
	"  end\n"
	"  assert(type(doc) == 'table', 'decode_fields accepted what decode refuses')\n"
	"  for _, k in ipairs { 'id', 'state', 'direction', 'myParticipantId' } do\n"
	"    local v = doc[k]\n"
	"    if type(v) ~= 'string' then v = nil end\n"
	"    assert(fields[k] == v, 'decode_fields and decode differ on ' .. k)\n"
	"  end\n"
	"  return 'decoded, id ' .. type(fields.id)\n"
	"end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	lua_State *L = fz_state();

	(void)argc;
	(void)argv;
	fz_run(L, "=decoders", run_src, 0, 1);
	run_ref = fz_ref(L);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 201, 400, 429, 503 };
	lua_State *L = fz_state();
	unsigned b0;
	int top, status;

	if (size == 0)
		return 0;
	b0 = data[0];
	fz_begin(L);
	top = lua_gettop(L);
	fz_push(L, run_ref);
	lua_pushinteger(L, statuses[(b0 & 7) % 5]);
	lua_pushboolean(L, (b0 >> 3) & 1);
	lua_newtable(L);
	if ((b0 >> 4) & 1) {
		lua_pushfstring(L, "%d", (int)(b0 >> 5));
		lua_setfield(L, -2, "retry-after");
		lua_pushliteral(L, "0f4a8d2e-9c1b-4d7e-8f3a-2b5c6d7e8f90");
		lua_setfield(L, -2, "request-id");
	}
	lua_pushlstring(L, (const char *)data + 1, size - 1);
	fz_lua_coverage(L, 1);
	status = fz_pcall(L, 4, 1);
	fz_lua_coverage(L, 0);
	if (status != LUA_OK)
		fz_fail("transport.check/decode: %s", lua_tostring(L, -1));
	fz_log("decoders: status %d: %s", statuses[(b0 & 7) % 5], lua_tostring(L, -1));
	lua_settop(L, top);
	fz_end(L);
	return 0;
}
