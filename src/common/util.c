/* Shared helpers: UTF-8 validation, error values, the array check
 * (option tables: common/options.c). None of them allocates
 * outside the Lua heap, so raising from here never leaks. */
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "graphcall.h"

int gc_utf8_valid(const char *str, size_t len, size_t *bad)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t need;
		unsigned min, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			need = 1; min = 0x80; cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2; min = 0x800; cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3; min = 0x10000; cp = c & 0x07;
		} else {
			goto invalid;
		}
		if (len - i <= need)
			goto invalid;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				goto invalid;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			goto invalid;
		i += need + 1;
	}
	return 1;
invalid:
	if (bad)
		*bad = i;
	return 0;
}

static void push_verror(lua_State *L, const char *kind, const char *fmt,
                        va_list ap)
{
	lua_createtable(L, 0, 2);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	lua_pushvfstring(L, fmt, ap);
	lua_setfield(L, -2, "message");
	luaL_setmetatable(L, GC_ERROR_MT);
}

void gc_push_error(lua_State *L, const char *kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	push_verror(L, kind, fmt, ap);
	va_end(ap);
}

int gc_fail(lua_State *L, const char *kind, const char *fmt, ...)
{
	va_list ap;

	lua_pushnil(L);
	va_start(ap, fmt);
	push_verror(L, kind, fmt, ap);
	va_end(ap);
	return 2;
}

int gc_is_array(lua_State *L, int idx, lua_Integer *n)
{
	lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
	lua_Integer count = 0;

	luaL_checkstack(L, 3, "array check");
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
		    lua_tointeger(L, -1) > len) {
			lua_pop(L, 1);
			return 0;
		}
		count++;
	}
	if (n)
		*n = len;
	return count == len && len > 0;
}

/* graphcall.error objects print as "kind: message". */
static int error_tostring(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "kind");
	lua_getfield(L, 1, "message");
	lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "error"),
	                luaL_optstring(L, -1, "(no message)"));
	return 1;
}

/* core.new_error(t): give a table built by the Lua layer the error metatable,
 * so every graphcall error looks the same. */
int gc_l_new_error(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "kind");
	luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "error needs a string kind");
	lua_pop(L, 1);
	lua_settop(L, 1);
	luaL_setmetatable(L, GC_ERROR_MT);
	return 1;
}

void gc_open_util(lua_State *L)
{
	if (luaL_newmetatable(L, GC_ERROR_MT)) {
		lua_pushcfunction(L, error_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}

/* core.monotonic() -> seconds from an arbitrary start, never going back:
 * the clock of timers and timeouts. */
int gc_l_monotonic(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}
