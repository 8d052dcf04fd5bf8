/* json/cjson: the module's private lua-cjson instance and calls of it from
 * C (json.h). lua-cjson is the JSON library of the Lua side; the C core
 * decodes with it what simdjson does not take, and encodes spec.extra. */
#include "graphcall.h"

static void set_option(lua_State *L, int inst, const char *name, int boolean, lua_Integer v)
{
	lua_getfield(L, inst, name);
	if (boolean)
		lua_pushboolean(L, (int)v);
	else
		lua_pushinteger(L, v);
	lua_call(L, 1, 0);
}

void gc_json_push_state(lua_State *L, int decode_depth, int encode_depth)
{
	int state, inst;

	lua_createtable(L, 0, 4);
	state = lua_gettop(L);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "cjson.safe");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "new");
	lua_call(L, 0, 1);
	inst = lua_gettop(L);

	set_option(L, inst, "decode_max_depth", 0, decode_depth);
	set_option(L, inst, "encode_max_depth", 0, encode_depth);
	set_option(L, inst, "decode_invalid_numbers", 1, 0);
	set_option(L, inst, "encode_invalid_numbers", 1, 0);
	set_option(L, inst, "encode_number_precision", 0, 14);

	lua_getfield(L, inst, "encode");
	lua_setfield(L, state, "encode");
	lua_getfield(L, inst, "decode");
	lua_setfield(L, state, "decode");
	lua_getfield(L, inst, "null");
	lua_setfield(L, state, "null");
	lua_settop(L, state);
}

int gc_json_call_at(lua_State *L, int state, const char *name)
{
	lua_getfield(L, state, name);  /* value fn */
	lua_insert(L, -2);             /* fn value */
	lua_call(L, 1, 2);             /* cjson.safe: result | nil, msg */
	if (lua_isnil(L, -2)) {
		lua_remove(L, -2);     /* msg */
		if (!lua_isstring(L, -1)) {
			lua_pop(L, 1);
			lua_pushliteral(L, "empty input");
		}
		return 0;
	}
	lua_pop(L, 1);
	return 1;
}

int gc_json_call(lua_State *L, const char *name)
{
	return gc_json_call_at(L, GC_STATE, name);
}
