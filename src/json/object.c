/* json/object: untrusted JSON objects decoded strictly (json.h): valid
 * UTF-8 without NUL bytes, one object, decoded by lua-cjson (whose verdict
 * on what is JSON stands), and no object at any level with two members of
 * one name: lua-cjson keeps the last of them, another reader might keep
 * the first, and a signed claim must not read two ways
 * (gc_json_unique_members, json/scan.cpp). */
#include <string.h>

#include "graphcall.h"
#include "json/scan.h"

static int is_object_text(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i < len && s[i] == '{';
}

int gc_json_decode_object(lua_State *L, int state, int idx)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);
	int unique;

	if (memchr(s, '\0', len) || !gc_utf8_valid(s, len, NULL) || !is_object_text(s, len))
		return 0;
	lua_pushvalue(L, idx);
	if (!gc_json_call_at(L, state, "decode") || !lua_istable(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	unique = gc_json_unique_members(s, len);
	if (unique < 0)
		luaL_error(L, "graphcall: out of memory while reading JSON");
	if (!unique) {
		lua_pop(L, 1);
		return 0;
	}
	return 1;
}
