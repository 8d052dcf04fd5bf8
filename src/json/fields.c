/* JSON bodies from Graph other than notifications: read the few members a
 * caller needs (e.g. a created call's id and state) with the same validating
 * simdjson pass as notifications, and leave the rest as text for whoever
 * decodes it later. Decoding a whole 1.3 KB call object with lua-cjson was a
 * quarter of a create request's cost. */
#include <string.h>

#include "graphcall.h"
#include "json/scan.h"

#define MAX_KEYS 16

/* core.json_fields(text, key...) -> {key = string, ...} | nil [, msg]
 * The top-level members named by the keys whose values are strings (others
 * are left out), when text is valid JSON and an object or array (an array
 * has no members: {}). Not JSON: nil, lua-cjson's message; JSON but not an
 * object or array: nil. A body simdjson refuses goes to lua-cjson, whose
 * verdict stands (it accepts a little more). */
int gc_l_json_fields(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	int n = lua_gettop(L) - 1;
	const char *keys[MAX_KEYS];
	gc_jval top, out[MAX_KEYS];
	gc_jscan *scan;
	int r = GC_JSCAN_REJECTED;

	luaL_argcheck(L, n >= 1 && n <= MAX_KEYS, 2, "between 1 and 16 keys");
	for (int i = 0; i < n; i++)
		keys[i] = luaL_checkstring(L, i + 2);
	scan = gc_scanner_take(L, GC_STATE, len);          /* at n + 2 */
	if (scan)
		r = gc_jscan_members(scan, text, len, keys, (size_t)n, &top, out);
	if (r == GC_JSCAN_OK) {
		/* push the strings before the scanner is reused */
		lua_createtable(L, 0, n);
		for (int i = 0; i < n; i++) {
			if (out[i].type == GC_JT_STRING) {
				lua_pushlstring(L, out[i].str, out[i].len);
				lua_setfield(L, -2, keys[i]);
			}
		}
		gc_scanner_give_back(L, GC_STATE, n + 2);
		if (top.type != GC_JT_OBJECT && top.type != GC_JT_ARRAY)
			lua_pushnil(L);
		return 1;
	}
	gc_scanner_give_back(L, GC_STATE, n + 2);
	if (r == GC_JSCAN_NOMEM)
		return luaL_error(L, "graphcall.json_fields: out of memory");

	/* the reference decoder's verdict */
	lua_pushvalue(L, 1);
	if (!gc_json_call(L, "decode")) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (!lua_istable(L, -1)) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, n);
	for (int i = 0; i < n; i++) {
		if (lua_getfield(L, -2, keys[i]) == LUA_TSTRING)
			lua_setfield(L, -2, keys[i]);
		else
			lua_pop(L, 1);
	}
	return 1;
}
