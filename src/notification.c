/* Notification parsing: the body Graph POSTs to the callbackUri (a
 * commsNotifications envelope) becomes a graphcall.notifications userdata
 * holding one graphcall.notification per entry of `value`.
 *
 * The body is untrusted: size, NUL bytes, UTF-8, nesting depth, trailing
 * data and the type of every field read are checked, and a body with any bad
 * entry is rejected as a whole (nil, err), so no handler sees half a batch.
 * Graph's spellings vary (changeType "Created", legacy `resource`, codes as
 * strings, `subCode`); they are normalised here, once. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graphcall.h"

/* Wrap the table on top of the stack in a read-only userdata of type mt;
 * the table becomes its user value. */
static void push_box(lua_State *L, const char *mt)
{
	lua_newuserdatauv(L, 0, 1);
	luaL_setmetatable(L, mt);
	lua_insert(L, -2);
	lua_setiuservalue(L, -2, 1);
}

/* What is wrong with an entry: the field (a path in Graph's spelling) and
 * why. */
typedef struct {
	const char *field;
	const char *why;
} problem;

static int bad(problem *p, const char *field, const char *why)
{
	p->field = field;
	p->why = why;
	return 0;
}

/* Graph writes null for properties it has no value for; null is absent. */
static int absent(lua_State *L, int idx)
{
	int is_null;

	if (lua_isnil(L, idx))
		return 1;
	if (!lua_islightuserdata(L, idx))
		return 0;
	lua_getfield(L, GC_STATE, "null");
	is_null = lua_rawequal(L, -1, idx);
	lua_pop(L, 1);
	return is_null;
}

/* Push s with its first letter (or, when all is set, every letter) in lower
 * case: "Created" -> "created", "TransferAccepted" -> "transferAccepted". */
static void push_lowered(lua_State *L, const char *s, size_t len, int all)
{
	luaL_Buffer b;
	char *out = luaL_buffinitsize(L, &b, len);

	for (size_t i = 0; i < len; i++)
		out[i] = (all || i == 0) ? (char)tolower((unsigned char)s[i]) : s[i];
	luaL_pushresultsize(&b, len);
}

enum { KEEP, LOWER_FIRST, LOWER_ALL };

/* Copy src[key] (a string, when present) to dst[name]. 0 on a problem. */
static int copy_string(lua_State *L, int src, const char *key, int dst,
                       const char *name, int lower, const char *path, problem *p)
{
	size_t len;
	const char *s;

	lua_getfield(L, src, key);
	if (absent(L, -1)) {
		lua_pop(L, 1);
		return 1;
	}
	if (lua_type(L, -1) != LUA_TSTRING)
		return bad(p, path, "expected a string");
	s = lua_tolstring(L, -1, &len);
	/* The raw body has no NUL, but a \u0000 escape decodes to one. */
	if (memchr(s, '\0', len))
		return bad(p, path, "contains a NUL byte");
	if (lower) {
		push_lowered(L, s, len, lower == LOWER_ALL);
		lua_remove(L, -2);
	}
	lua_setfield(L, dst, name);
	return 1;
}

/* resultInfo codes arrive as numbers or as decimal strings ("200"). */
static int to_code(lua_State *L, int idx, lua_Integer *out)
{
	int isnum = 0;
	lua_Integer v = 0;

	if (lua_type(L, idx) == LUA_TNUMBER) {
		v = lua_tointegerx(L, idx, &isnum);
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		size_t i = (len > 0 && s[0] == '-');
		isnum = len > i && len - i <= 10;
		for (; isnum && i < len; i++)
			isnum = s[i] >= '0' && s[i] <= '9';
		if (isnum)
			v = strtoll(s, NULL, 10);
	}
	if (!isnum || v < -2147483648LL || v > 4294967295LL)
		return 0;
	*out = v;
	return 1;
}

static int copy_result_info(lua_State *L, int data, int dst, problem *p)
{
	static const char *const keys[][3] = {
		{ "code", "code", "resourceData.resultInfo.code" },
		{ "subcode", "subcode", "resourceData.resultInfo.subcode" },
		{ "subCode", "subcode", "resourceData.resultInfo.subCode" },
	};
	int ri;

	lua_getfield(L, data, "resultInfo");
	if (absent(L, -1)) {
		lua_pop(L, 1);
		return 1;
	}
	if (!lua_istable(L, -1))
		return bad(p, "resourceData.resultInfo", "expected an object");
	ri = lua_gettop(L);
	lua_createtable(L, 0, 3);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		lua_Integer v;
		lua_getfield(L, ri, keys[i][0]);
		if (absent(L, -1)) {
			lua_pop(L, 1);
			continue;
		}
		if (!to_code(L, -1, &v))
			return bad(p, keys[i][2], "expected an integer code");
		lua_pop(L, 1);
		lua_pushinteger(L, v);
		lua_setfield(L, -2, keys[i][1]);
	}
	if (!copy_string(L, ri, "message", lua_gettop(L), "message", KEEP,
	                 "resourceData.resultInfo.message", p))
		return 0;
	lua_setfield(L, dst, "result_info");
	lua_pop(L, 1);
	return 1;
}

/* call_id, kind and operation_id from a resource path such as
 * /communications/calls/{id}/operations/{op} or the legacy /app/calls/{id}. */
static void split_resource(lua_State *L, const char *url, int dst)
{
	const char *p = strstr(url, "/calls/"), *id, *rest;
	const char *kind = "other";

	if (p) {
		id = p + 7;
		rest = strchr(id, '/');
		if (!rest)
			rest = id + strlen(id);
		if (rest > id) {
			lua_pushlstring(L, id, (size_t)(rest - id));
			lua_setfield(L, dst, "call_id");
			if (*rest == '\0' || strcmp(rest, "/") == 0) {
				kind = "call";
			} else if (strncmp(rest, "/participants", 13) == 0 &&
			           (rest[13] == '\0' || rest[13] == '/')) {
				kind = "participants";
			} else if (strncmp(rest, "/operations/", 12) == 0 && rest[12]) {
				kind = "operation";
				lua_pushstring(L, rest + 12);
				lua_setfield(L, dst, "operation_id");
			} else if (strncasecmp(rest, "/contentsharingsessions", 23) == 0) {
				kind = "content_sharing";
			}
		}
	}
	lua_pushstring(L, kind);
	lua_setfield(L, dst, "kind");
}

/* Extract the fields of the entry at item into a new table on the stack.
 * 0 (and *p filled) when the entry is unusable. */
static int extract(lua_State *L, int item, problem *p)
{
	int dst, data;

	lua_createtable(L, 0, 16);
	dst = lua_gettop(L);

	lua_getfield(L, item, "changeType");
	if (absent(L, -1))
		return bad(p, "changeType", "missing");
	lua_pop(L, 1);
	if (!copy_string(L, item, "changeType", dst, "change_type", LOWER_ALL, "changeType", p) ||
	    !copy_string(L, item, "resource", dst, "resource", KEEP, "resource", p) ||
	    !copy_string(L, item, "resourceUrl", dst, "resource_url", KEEP, "resourceUrl", p) ||
	    !copy_string(L, item, "callbackUri", dst, "callback_uri", KEEP, "callbackUri", p))
		return 0;

	/* The legacy `resource` stands in when resourceUrl is missing. */
	if (lua_getfield(L, dst, "resource_url") == LUA_TNIL) {
		lua_pop(L, 1);
		if (lua_getfield(L, dst, "resource") == LUA_TNIL)
			return bad(p, "resourceUrl", "missing (and no legacy resource)");
		lua_pushvalue(L, -1);
		lua_setfield(L, dst, "resource_url");
	}
	split_resource(L, lua_tostring(L, -1), dst);
	lua_pop(L, 1);

	lua_getfield(L, item, "resourceData");
	if (absent(L, -1)) {
		lua_pop(L, 1);
		return 1;
	}
	if (!lua_istable(L, -1))
		return bad(p, "resourceData", "expected an object or an array");
	data = lua_gettop(L);
	lua_pushvalue(L, data);
	lua_setfield(L, dst, "resource_data");
	if (lua_rawlen(L, data) > 0) {
		/* a collection (participants, content sharing sessions) */
		if (lua_rawgeti(L, data, 1) == LUA_TTABLE &&
		    !copy_string(L, lua_gettop(L), "@odata.type", dst, "odata_type", KEEP,
		                 "resourceData[1].@odata.type", p))
			return 0;
		lua_settop(L, data);
		return 1;
	}
	if (!copy_string(L, data, "@odata.type", dst, "odata_type", KEEP, "resourceData.@odata.type", p) ||
	    !copy_string(L, data, "@odata.etag", dst, "etag", KEEP, "resourceData.@odata.etag", p) ||
	    !copy_string(L, data, "state", dst, "state", LOWER_FIRST, "resourceData.state", p) ||
	    !copy_string(L, data, "direction", dst, "direction", LOWER_FIRST, "resourceData.direction", p) ||
	    !copy_string(L, data, "status", dst, "status", LOWER_FIRST, "resourceData.status", p) ||
	    !copy_string(L, data, "clientContext", dst, "client_context", KEEP,
	                 "resourceData.clientContext", p) ||
	    !copy_result_info(L, data, dst, p))
		return 0;
	lua_settop(L, data);
	return 1;
}

/* core.parse_notifications(body [, max_bytes]) -> notifications | nil, err */
int gc_l_parse_notifications(lua_State *L)
{
	size_t len, bad;
	const char *body = luaL_checklstring(L, 1, &len);
	lua_Integer max = luaL_optinteger(L, 2, GC_NOTIFY_MAX_BYTES_DEFAULT);
	lua_Integer n = 0;
	const char *nul;
	int top, value, list;

	luaL_argcheck(L, max > 0, 2, "max_bytes must be positive");
	if (len == 0)
		return gc_fail(L, "bad_notification", "empty body");
	if ((lua_Integer)len > max)
		return gc_fail(L, "bad_notification",
		               "body of %I bytes is over the limit of %I bytes",
		               (lua_Integer)len, max);
	if ((nul = memchr(body, '\0', len)))
		return gc_fail(L, "bad_notification", "NUL byte at offset %I",
		               (lua_Integer)(nul - body));
	if (!gc_utf8_valid(body, len, &bad))
		return gc_fail(L, "bad_notification", "invalid UTF-8 at byte %I",
		               (lua_Integer)bad + 1);

	lua_settop(L, 1);
	lua_pushvalue(L, 1);
	if (!gc_json_call(L, "decode")) {
		const char *msg = lua_tostring(L, -1);
		if (strstr(msg, "too many nested"))
			return gc_fail(L, "bad_notification", "nested deeper than %d levels",
			               GC_NOTIFY_MAX_DEPTH);
		return gc_fail(L, "bad_notification", "not valid JSON: %s", msg);
	}
	top = lua_gettop(L);
	if (!lua_istable(L, top) || lua_rawlen(L, top) > 0)
		return gc_fail(L, "bad_notification", "body is not a JSON object");
	if (lua_getfield(L, top, "value") != LUA_TTABLE)
		return gc_fail(L, "bad_notification", "value: missing or not an array");
	value = lua_gettop(L);
	if (!gc_is_array(L, value, &n))
		return gc_fail(L, "bad_notification", "value: must be a non-empty array");
	if (n > GC_NOTIFY_MAX_ITEMS)
		return gc_fail(L, "bad_notification", "value: %I notifications, over the "
		               "limit of %d", n, GC_NOTIFY_MAX_ITEMS);

	lua_createtable(L, (int)n, 0);
	list = lua_gettop(L);
	for (lua_Integer i = 1; i <= n; i++) {
		problem p;
		if (lua_rawgeti(L, value, i) != LUA_TTABLE || lua_rawlen(L, -1) > 0)
			return gc_fail(L, "bad_notification", "value[%I]: not an object", i);
		if (!extract(L, lua_gettop(L), &p))
			return gc_fail(L, "bad_notification", "value[%I].%s: %s", i, p.field, p.why);
		lua_settop(L, list + 2);         /* item fields */
		push_box(L, GC_NOTIFICATION_MT);
		lua_rawseti(L, list, i);
		lua_settop(L, list);
	}
	push_box(L, GC_NOTIFICATIONS_MT);
	return 1;
}

static int notification_index(lua_State *L)
{
	luaL_checkudata(L, 1, GC_NOTIFICATION_MT);
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, 2);
	lua_rawget(L, -2);
	return 1;
}

/* Iterates the fields with the userdata as state, so the fields table
 * itself never reaches Lua code and stays read-only. */
static int fields_next(lua_State *L)
{
	luaL_checkudata(L, 1, GC_NOTIFICATION_MT);
	lua_settop(L, 2);
	lua_getiuservalue(L, 1, 1);
	lua_insert(L, 2);
	if (lua_next(L, 2))
		return 2;
	lua_pushnil(L);
	return 1;
}

static int notification_pairs(lua_State *L)
{
	luaL_checkudata(L, 1, GC_NOTIFICATION_MT);
	lua_pushcfunction(L, fields_next);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

static int notification_tostring(lua_State *L)
{
	luaL_checkudata(L, 1, GC_NOTIFICATION_MT);
	lua_getiuservalue(L, 1, 1);
	lua_getfield(L, -1, "change_type");
	lua_getfield(L, -2, "resource_url");
	lua_getfield(L, -3, "state");
	lua_pushfstring(L, GC_NOTIFICATION_MT ": %s %s%s%s", lua_tostring(L, -3),
	                lua_tostring(L, -2), lua_isstring(L, -1) ? " " : "",
	                lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
	return 1;
}

static int notifications_index(lua_State *L)
{
	lua_Integer i;
	int isnum;

	luaL_checkudata(L, 1, GC_NOTIFICATIONS_MT);
	lua_getiuservalue(L, 1, 1);
	isnum = 0;
	i = lua_type(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, 2, &isnum) : 0;
	if (isnum)
		lua_rawgeti(L, -1, i);
	else
		lua_pushnil(L);
	return 1;
}

static int notifications_len(lua_State *L)
{
	luaL_checkudata(L, 1, GC_NOTIFICATIONS_MT);
	lua_getiuservalue(L, 1, 1);
	lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
	return 1;
}

static int notifications_tostring(lua_State *L)
{
	luaL_checkudata(L, 1, GC_NOTIFICATIONS_MT);
	lua_getiuservalue(L, 1, 1);
	lua_pushfstring(L, GC_NOTIFICATIONS_MT ": %I notification(s)",
	                (lua_Integer)lua_rawlen(L, -1));
	return 1;
}

void gc_open_notification(lua_State *L)
{
	static const luaL_Reg one[] = {
		{ "__index", notification_index },
		{ "__pairs", notification_pairs },
		{ "__tostring", notification_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg many[] = {
		{ "__index", notifications_index },
		{ "__len", notifications_len },
		{ "__tostring", notifications_tostring },
		{ NULL, NULL }
	};

	luaL_newmetatable(L, GC_NOTIFICATION_MT);
	luaL_setfuncs(L, one, 0);
	luaL_newmetatable(L, GC_NOTIFICATIONS_MT);
	luaL_setfuncs(L, many, 0);
	lua_pop(L, 2);
}
