/* common/options: option tables read in one pass (see options.h). */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <lauxlib.h>

#include "common/options.h"

int gc_opts_error(lua_State *L, const char *where, const char *key, const char *fmt, ...)
{
	va_list ap;

	lua_pushfstring(L, "%s: option '%s' ", where, key);
	va_start(ap, fmt);
	lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	lua_concat(L, 2);
	return lua_error(L);
}

/* The key at k (lua_next's), which must be a string. */
static const char *string_key(lua_State *L, int k, const char *where, size_t *len)
{
	if (lua_type(L, k) != LUA_TSTRING)
		luaL_error(L, "%s: unexpected %s key (expected named options)", where,
		           luaL_typename(L, k));
	return lua_tolstring(L, k, len);
}

/* name[0..len) is the NUL-terminated key? (an embedded NUL never matches) */
static int same_key(const char *key, const char *name, size_t len)
{
	return name[0] == key[0] && strlen(key) == len && memcmp(key, name, len) == 0;
}

/* A range for a message: integers as integers, other numbers as numbers. */
static void push_range(lua_State *L, lua_Number min, lua_Number max)
{
	if (min == floor(min) && max == floor(max) && fabs(min) < 1e15 && fabs(max) < 1e15)
		lua_pushfstring(L, "%I..%I", (lua_Integer)min, (lua_Integer)max);
	else
		lua_pushfstring(L, "%f..%f", min, max);
}

/* Raise for the value of spec: what it must be. item > 0: the item of a
 * STRINGS option that is wrong. */
static int bad_value(lua_State *L, const char *where, const gc_opt *spec, lua_Integer item)
{
	const char *range;

	if (spec->what)
		return gc_opts_error(L, where, spec->key, "must be %s", spec->what);
	push_range(L, spec->min, spec->max);
	range = lua_tostring(L, -1);
	switch (spec->type) {
	case GC_OPT_INTEGER:
		return gc_opts_error(L, where, spec->key, "must be an integer in %s", range);
	case GC_OPT_NUMBER:
		return gc_opts_error(L, where, spec->key, "must be a number in %s", range);
	case GC_OPT_BOOLEAN:
		return gc_opts_error(L, where, spec->key, "must be a boolean");
	case GC_OPT_STRINGS:
		if (item > 0)
			return gc_opts_error(L, where, spec->key, "must hold strings of %s bytes%s: "
			                     "%s[%I] is not one", range,
			                     spec->flags & GC_OPT_NO_NUL ? " without NUL" : "",
			                     spec->key, item);
		return gc_opts_error(L, where, spec->key, "must be a non-empty array of strings");
	default:
		return gc_opts_error(L, where, spec->key, "must be a %sstring of %s bytes%s",
		                     spec->min > 0 ? "non-empty " : "", range,
		                     spec->flags & GC_OPT_NO_NUL ? " without NUL" : "");
	}
}

/* A string value within the spec's length range (and without NUL if so
 * flagged)? */
static int string_ok(const gc_opt *spec, const char *s, size_t len)
{
	return (lua_Number)len >= spec->min && (lua_Number)len <= spec->max &&
	       !((spec->flags & GC_OPT_NO_NUL) && memchr(s, '\0', len));
}

/* Check the value at the top of the stack against spec into *v. */
static void read_value(lua_State *L, const char *where, const gc_opt *spec, gc_optval *v)
{
	int t = lua_type(L, -1);

	v->set = 1;
	switch (spec->type) {
	case GC_OPT_INTEGER: {
		int ok = 0;
		lua_Integer i = t == LUA_TNUMBER ? lua_tointegerx(L, -1, &ok) : 0;

		if (!ok || (lua_Number)i < spec->min || (lua_Number)i > spec->max)
			bad_value(L, where, spec, 0);
		v->i = i;
		v->n = (lua_Number)i;
		return;
	}
	case GC_OPT_NUMBER: {
		lua_Number x = lua_tonumber(L, -1);

		if (t != LUA_TNUMBER || !(x >= spec->min && x <= spec->max))
			bad_value(L, where, spec, 0);
		v->n = x;
		return;
	}
	case GC_OPT_BOOLEAN:
		if (t != LUA_TBOOLEAN)
			bad_value(L, where, spec, 0);
		v->i = lua_toboolean(L, -1);
		return;
	case GC_OPT_STRING:
		if (t != LUA_TSTRING)
			bad_value(L, where, spec, 0);
		v->s = lua_tolstring(L, -1, &v->len);
		if (!string_ok(spec, v->s, v->len))
			bad_value(L, where, spec, 0);
		return;
	case GC_OPT_STRINGS: {
		lua_Integer n = (lua_Integer)lua_rawlen(L, -1), count = 0;

		if (t != LUA_TTABLE || n == 0)
			bad_value(L, where, spec, 0);
		/* 1..n and no other key */
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pop(L, 1);
			if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
			    lua_tointeger(L, -1) > n)
				bad_value(L, where, spec, 0);
			count++;
		}
		if (count != n)
			bad_value(L, where, spec, 0);
		v->bytes = 0;
		for (lua_Integer i = 1; i <= n; i++) {
			size_t len;
			const char *s;

			if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
				bad_value(L, where, spec, i);
			s = lua_tolstring(L, -1, &len);
			if (!string_ok(spec, s, len))
				bad_value(L, where, spec, i);
			v->bytes += len + 1;
			lua_pop(L, 1);
		}
		v->len = (size_t)n;
		return;
	}
	}
}

void gc_opts_read(lua_State *L, int idx, const char *where, const gc_opt *specs, size_t n,
                  gc_optval *out)
{
	memset(out, 0, n * sizeof *out);
	if (lua_isnoneornil(L, idx)) {
		idx = 0;
	} else {
		luaL_checktype(L, idx, LUA_TTABLE);
		idx = lua_absindex(L, idx);
	}
	luaL_checkstack(L, 6, where);
	if (idx) {
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			size_t klen, k;
			const char *key;

			key = string_key(L, -2, where, &klen);
			for (k = 0; k < n; k++)
				if (same_key(specs[k].key, key, klen))
					break;
			if (k == n)
				luaL_error(L, "%s: unknown key '%s'", where, key);
			read_value(L, where, &specs[k], &out[k]);
			lua_pop(L, 1);
		}
	}
	for (size_t k = 0; k < n; k++) {
		if (out[k].set)
			continue;
		if (specs[k].flags & GC_OPT_REQUIRED)
			gc_opts_error(L, where, specs[k].key, "is required");
		out[k].n = specs[k].def;
		out[k].i = (lua_Integer)specs[k].def;
	}
}

const char *gc_opts_item(lua_State *L, int idx, const gc_opt *spec, lua_Integer i, size_t *len)
{
	const char *s;

	idx = lua_absindex(L, idx);
	lua_pushstring(L, spec->key);
	lua_rawget(L, idx);
	lua_rawgeti(L, -1, i);
	s = lua_tolstring(L, -1, len);
	lua_pop(L, 2);  /* still anchored in the options table */
	return s;
}

void gc_check_keys(lua_State *L, int idx, const char *where, const char *const allowed[])
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		size_t len;
		const char *k;
		int ok = 0;

		lua_pop(L, 1);
		k = string_key(L, -1, where, &len);
		/* hot (every table of every spec): strcmp, which stops at an
		 * embedded NUL; such a key then names no field the builder reads */
		for (int i = 0; allowed[i]; i++) {
			if (k[0] == allowed[i][0] && strcmp(k, allowed[i]) == 0) {
				ok = 1;
				break;
			}
		}
		if (!ok)
			luaL_error(L, "%s: unknown key '%s'", where, k);
	}
}
