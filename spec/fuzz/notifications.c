/* libFuzzer harness: core.parse_notifications(body), the parser of the
 * commsNotifications bodies Graph POSTs to the callback URI.
 *
 * The input is the body. The parser must never raise for a string body: it
 * returns a graphcall.notifications userdata or nil plus a graphcall.error
 * of kind "bad_notification". A parsed batch is then read the way handlers
 * read it (#batch, batch[i], fields, pairs, tostring), and the fields the
 * parser guarantees are checked.
 *
 * Differential oracle: the fast pass (simdjson, fields made Lua values when
 * read, resource_data decoded on first use) must give exactly what the
 * reference pass (the whole body decoded by lua-cjson) gives: the same
 * error message, or the same notifications field by field, resource_data
 * included. */
#include "fuzz.h"

int gc_l_parse_notifications_reference(lua_State *L);

static int parse_ref, reference_ref, walk_ref, compare_ref;

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

/* Compares the fast and the reference results; raises on a difference.
 * Reads some fields by name before pairs (the lazy path), resource_data
 * first or last depending on the body's length. */
static const char compare_src[] =
	"local body, fast, ferr, ref, rerr = ...\n"
	"local function same(a, b, path)\n"
	"  if type(a) ~= type(b) then error(path .. ': ' .. type(a) .. ' vs ' .. type(b)) end\n"
	"  if type(a) == 'table' then\n"
	"    for k, v in pairs(a) do same(v, b[k], path .. '.' .. tostring(k)) end\n"
	"    for k in pairs(b) do\n"
	"      if a[k] == nil then error(path .. '.' .. tostring(k) .. ': only in the reference') end\n"
	"    end\n"
	"  elseif type(a) == 'number' then\n"
	"    if math.type(a) ~= math.type(b) or a ~= b then\n"
	"      error(path .. ': ' .. tostring(a) .. ' vs ' .. tostring(b))\n"
	"    end\n"
	"  elseif a ~= b then\n"
	"    error(path .. ': ' .. tostring(a) .. ' vs ' .. tostring(b))\n"
	"  end\n"
	"end\n"
	"if fast == nil or ref == nil then\n"
	"  assert(fast == nil and ref == nil, 'only one pass accepted the body: '\n"
	"    .. tostring(ferr and ferr.message or rerr and rerr.message))\n"
	"  assert(ferr.kind == rerr.kind and ferr.message == rerr.message,\n"
	"    'errors differ: ' .. ferr.message .. ' | ' .. rerr.message)\n"
	"  return\n"
	"end\n"
	"assert(#fast == #ref, 'batch lengths differ')\n"
	"assert(tostring(fast) == tostring(ref))\n"
	"for i = 1, #ref do\n"
	"  local f, r, ff, rr = fast[i], ref[i], {}, {}\n"
	"  if #body % 2 == 0 then same(f.resource_data, r.resource_data, 'resource_data') end\n"
	"  for _, k in ipairs { 'kind', 'call_id', 'state', 'result_info', 'nope' } do\n"
	"    same(f[k], r[k], k)\n"
	"  end\n"
	"  same(f.result_info, f.result_info, 'result_info twice')\n"
	"  assert(tostring(f) == tostring(r), 'tostring differs')\n"
	"  for k, v in pairs(f) do ff[k] = v end\n"
	"  for k, v in pairs(r) do rr[k] = v end\n"
	"  same(ff, rr, 'value[' .. i .. ']')\n"
	"  assert(rawequal(f.resource_data, ff.resource_data), 'resource_data not cached')\n"
	"end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	lua_State *L = fz_state();

	(void)argc;
	(void)argv;
	fz_core_field(L, "parse_notifications");
	lua_getupvalue(L, -1, 1);        /* the module state */
	lua_pushcclosure(L, gc_l_parse_notifications_reference, 1);
	reference_ref = fz_ref(L);
	parse_ref = fz_ref(L);
	if (luaL_loadbuffer(L, compare_src, sizeof compare_src - 1, "=compare") != LUA_OK)
		fz_fail("compare: %s", lua_tostring(L, -1));
	compare_ref = fz_ref(L);
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
	fz_push(L, reference_ref);
	lua_pushlstring(L, (const char *)data, size);
	if (fz_pcall(L, 1, 2) != LUA_OK)
		fz_fail("the reference pass raised for a string body: %s", lua_tostring(L, -1));
	fz_push(L, compare_ref);
	lua_pushlstring(L, (const char *)data, size);
	lua_pushvalue(L, top + 1);
	lua_pushvalue(L, top + 2);
	lua_pushvalue(L, top + 3);
	lua_pushvalue(L, top + 4);
	if (fz_pcall(L, 5, 0) != LUA_OK)
		fz_fail("the fast and the reference pass differ: %s", lua_tostring(L, -1));
	lua_settop(L, top);
	fz_end(L);
	return 0;
}
