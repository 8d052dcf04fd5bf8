/* libFuzzer harness: core.parse_notifications(body), the parser of the
 * commsNotifications bodies Graph POSTs to the callback URI.
 *
 * The input is the body. The parser must never raise for a string body: it
 * returns a graphcall.notifications userdata or nil plus a graphcall.error
 * of kind "bad_notification". A parsed batch is then read the way handlers
 * read it (#batch, batch[i], fields, pairs, tostring), and the fields the
 * parser guarantees are checked. */
#include "fuzz.h"

static int parse_ref, walk_ref;

/* Reads a parsed batch like a handler; returns nothing, raises on a broken
 * guarantee (reported as an oracle failure). */
static const char walk_src[] =
	"local batch = ...\n"
	"local kinds = { call = true, participants = true, operation = true,\n"
	"                content_sharing = true, other = true }\n"
	"local n = #batch\n"
	"assert(n >= 1 and n <= 1000, 'batch length ' .. tostring(n))\n"
	"assert(batch[0] == nil and batch[n + 1] == nil and batch.x == nil)\n"
	"assert(type(tostring(batch)) == 'string')\n"
	"for i = 1, n do\n"
	"  local item = batch[i]\n"
	"  assert(getmetatable(item).__name == 'graphcall.notification')\n"
	"  assert(type(item.change_type) == 'string', 'change_type')\n"
	"  assert(type(item.resource_url) == 'string', 'resource_url')\n"
	"  assert(kinds[item.kind], 'kind ' .. tostring(item.kind))\n"
	"  assert(not item.change_type:find('\\0', 1, true), 'NUL in change_type')\n"
	"  if item.kind == 'operation' then assert(type(item.operation_id) == 'string') end\n"
	"  if item.kind ~= 'other' then assert(type(item.call_id) == 'string' and #item.call_id > 0) end\n"
	"  local ri = item.result_info\n"
	"  if ri ~= nil then\n"
	"    assert(type(ri) == 'table')\n"
	"    for _, k in ipairs { 'code', 'subcode' } do\n"
	"      assert(ri[k] == nil or math.type(ri[k]) == 'integer', k)\n"
	"    end\n"
	"  end\n"
	"  local count = 0\n"
	"  for k, v in pairs(item) do\n"
	"    assert(type(k) == 'string' and v ~= nil)\n"
	"    count = count + 1\n"
	"  end\n"
	"  assert(count >= 3)\n"
	"  assert(type(tostring(item)) == 'string')\n"
	"end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	lua_State *L = fz_state();

	(void)argc;
	(void)argv;
	fz_core_field(L, "parse_notifications");
	parse_ref = fz_ref(L);
	if (luaL_loadbuffer(L, walk_src, sizeof walk_src - 1, "=walk") != LUA_OK)
		fz_fail("walk: %s", lua_tostring(L, -1));
	walk_ref = fz_ref(L);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fz_state();
	int top;

	fz_begin(L);
	top = lua_gettop(L);
	fz_push(L, parse_ref);
	lua_pushlstring(L, (const char *)data, size);
	if (fz_pcall(L, 1, 2) != LUA_OK)
		fz_fail("parse_notifications raised for a string body: %s", lua_tostring(L, -1));
	if (lua_isnil(L, top + 1)) {
		fz_check_error(L, top + 2, "bad_notification", "parse_notifications");
	} else {
		if (lua_type(L, top + 1) != LUA_TUSERDATA ||
		    !fz_is_type(L, top + 1, "graphcall.notifications"))
			fz_fail("parse_notifications returned a %s", luaL_typename(L, top + 1));
		fz_push(L, walk_ref);
		lua_pushvalue(L, top + 1);
		if (fz_pcall(L, 1, 0) != LUA_OK)
			fz_fail("a parsed batch breaks a guarantee: %s", lua_tostring(L, -1));
		fz_log("parse_notifications: %d notification(s)", (int)luaL_len(L, top + 1));
	}
	lua_settop(L, top);
	fz_end(L);
	return 0;
}
