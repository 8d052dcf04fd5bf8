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

#define SHORT_MAX 64

/* Wrap the table on top of the stack in a read-only userdata of type mt;
 * the table becomes its user value. */
static void push_box(lua_State *L, const char *mt)
{
	lua_newuserdatauv(L, 0, 1);
	luaL_setmetatable(L, mt);
	lua_insert(L, -2);
	lua_setiuservalue(L, -2, 1);
}

/* Push s with its first letter (or, when all is set, every letter) in lower
 * case: "Created" -> "created", "TransferAccepted" -> "transferAccepted". */
static void push_lowered(lua_State *L, const char *s, size_t len, int all)
{
	char buf[SHORT_MAX];

	if (len >= sizeof buf) {
		lua_pushlstring(L, s, len);
		return;
	}
	for (size_t i = 0; i < len; i++)
		buf[i] = (all || i == 0) ? (char)tolower((unsigned char)s[i]) : s[i];
	lua_pushlstring(L, buf, len);
}

/* Copy src[key] (a string, when present) to dst[name]. NULL or the error. */
static const char *copy_string(lua_State *L, int src, const char *key, int dst,
                               const char *name, int lower)
{
	switch (lua_getfield(L, src, key)) {
	case LUA_TNIL:
		lua_pop(L, 1);
		return NULL;
	case LUA_TSTRING:
		if (lower) {
			size_t len;
			const char *s = lua_tolstring(L, -1, &len);
			push_lowered(L, s, len, lower > 1);
			lua_remove(L, -2);
		}
		lua_setfield(L, dst, name);
		return NULL;
	default:
		lua_pop(L, 1);
		return key;
	}
}

/* resultInfo codes arrive as numbers or numeric strings. */
static int to_code(lua_State *L, int idx, lua_Integer *out)
{
	if (lua_type(L, idx) == LUA_TNUMBER || lua_type(L, idx) == LUA_TSTRING) {
		int isnum;
		lua_Number n = lua_tonumberx(L, idx, &isnum);
		if (isnum && n == (lua_Number)(lua_Integer)n && n >= -2147483648.0 &&
		    n <= 4294967295.0) {
			*out = (lua_Integer)n;
			return 1;
		}
	}
	return 0;
}

static const char *copy_result_info(lua_State *L, int data, int dst)
{
	static const char *const keys[][2] = {
		{ "code", "code" }, { "subcode", "subcode" }, { "subCode", "subcode" }
	};
	int ri;

	switch (lua_getfield(L, data, "resultInfo")) {
	case LUA_TNIL:
		lua_pop(L, 1);
		return NULL;
	case LUA_TTABLE:
		break;
	default:
		return "resultInfo";
	}
	ri = lua_gettop(L);
	lua_createtable(L, 0, 3);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		lua_Integer v;
		if (lua_getfield(L, ri, keys[i][0]) == LUA_TNIL) {
			lua_pop(L, 1);
			continue;
		}
		if (!to_code(L, -1, &v))
			return keys[i][0];
		lua_pop(L, 1);
		lua_pushinteger(L, v);
		lua_setfield(L, -2, keys[i][1]);
	}
	if (copy_string(L, ri, "message", lua_gettop(L), "message", 0))
		return "resultInfo.message";
	lua_setfield(L, dst, "result_info");
	lua_pop(L, 1);
	return NULL;
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

/* Extract the fields of value[i] (at idx) into a new table on the stack.
 * Returns NULL, or the name of the offending field. */
static const char *extract(lua_State *L, int item)
{
	int dst, data;
	const char *bad;
	const char *url;

	lua_createtable(L, 0, 16);
	dst = lua_gettop(L);

	if (lua_getfield(L, item, "changeType") != LUA_TSTRING)
		return "changeType";
	lua_pop(L, 1);
	if ((bad = copy_string(L, item, "changeType", dst, "change_type", 2)) ||
	    (bad = copy_string(L, item, "resource", dst, "resource", 0)) ||
	    (bad = copy_string(L, item, "resourceUrl", dst, "resource_url", 0)) ||
	    (bad = copy_string(L, item, "callbackUri", dst, "callback_uri", 0)))
		return bad;

	/* The legacy `resource` stands in when resourceUrl is missing. */
	if (lua_getfield(L, dst, "resource_url") == LUA_TNIL) {
		lua_pop(L, 1);
		if (lua_getfield(L, dst, "resource") == LUA_TNIL)
			return "resourceUrl";
		lua_pushvalue(L, -1);
		lua_setfield(L, dst, "resource_url");
	}
	url = lua_tostring(L, -1);
	split_resource(L, url, dst);
	lua_pop(L, 1);

	switch (lua_getfield(L, item, "resourceData")) {
	case LUA_TNIL:
		lua_pop(L, 1);
		return NULL;
	case LUA_TTABLE:
		break;
	default:
		return "resourceData";
	}
	data = lua_gettop(L);
	lua_pushvalue(L, data);
	lua_setfield(L, dst, "resource_data");
	if (lua_rawlen(L, data) > 0) {
		/* a collection (participants, content sharing sessions) */
		if (lua_rawgeti(L, data, 1) == LUA_TTABLE &&
		    copy_string(L, lua_gettop(L), "@odata.type", dst, "odata_type", 0))
			return "resourceData[1].@odata.type";
		lua_settop(L, data);
		return NULL;
	}
	if ((bad = copy_string(L, data, "@odata.type", dst, "odata_type", 0)) ||
	    (bad = copy_string(L, data, "@odata.etag", dst, "etag", 0)) ||
	    (bad = copy_string(L, data, "state", dst, "state", 1)) ||
	    (bad = copy_string(L, data, "direction", dst, "direction", 1)) ||
	    (bad = copy_string(L, data, "status", dst, "status", 1)) ||
	    (bad = copy_string(L, data, "clientContext", dst, "client_context", 0)) ||
	    (bad = copy_result_info(L, data, dst)))
		return bad;
	lua_settop(L, data);
	return NULL;
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
		const char *field;
		if (lua_rawgeti(L, value, i) != LUA_TTABLE || lua_rawlen(L, -1) > 0)
			return gc_fail(L, "bad_notification", "value[%I]: not an object", i);
		if ((field = extract(L, lua_gettop(L))))
			return gc_fail(L, "bad_notification", "value[%I].%s: wrong type or missing",
			               i, field);
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

static int fields_next(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 2);
	if (lua_next(L, 1))
		return 2;
	lua_pushnil(L);
	return 1;
}

static int notification_pairs(lua_State *L)
{
	luaL_checkudata(L, 1, GC_NOTIFICATION_MT);
	lua_pushcfunction(L, fields_next);
	lua_getiuservalue(L, 1, 1);
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
	luaL_checkudata(L, 1, GC_NOTIFICATIONS_MT);
	lua_getiuservalue(L, 1, 1);
	if (lua_isinteger(L, 2))
		lua_rawgeti(L, -1, lua_tointeger(L, 2));
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
