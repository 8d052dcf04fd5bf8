/* Notification parsing: the body Graph POSTs to the callbackUri (a
 * commsNotifications envelope) becomes a graphcall.notifications userdata
 * holding one graphcall.notification per entry of `value`.
 *
 * The body is untrusted: size, NUL bytes, UTF-8, nesting depth, trailing
 * data and the type of every field read are checked, and a body with any bad
 * entry is rejected as a whole (nil, err), so no handler sees half a batch.
 * Graph's spellings vary (changeType "Created", legacy `resource`, codes as
 * strings, `subCode`); they are normalised here, once.
 *
 * Two passes do the same job. The fast one (json_scan.cpp, simdjson)
 * validates the whole body and reads only the fields a notification
 * exposes; each entry's resourceData stays JSON text in the body until
 * n.resource_data is first read, then lua-cjson decodes it (it cannot fail:
 * the text was validated) and the table is kept. Any body simdjson does not
 * accept goes through the reference pass, which decodes it all with
 * lua-cjson: lua-cjson alone decides what is invalid and words the error,
 * and it takes a few things simdjson does not (1e999, "1.", control
 * characters in strings), which must keep parsing as before. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graphcall.h"
#include "json_scan.h"

#define GC_SCANNER_MT "graphcall.json_scanner"

/* Bodies up to this size reuse the module's scanner, whose buffers grow to
 * the largest of them; a larger body gets a scanner of its own, freed after
 * the parse. */
#define SCANNER_KEEP_BYTES (64 * 1024)

/* A notification: user value 1 is its fields table. While its
 * resourceData is not decoded yet, user value 2 is its batch's pending
 * data and pending is set. */
typedef struct {
	size_t item;             /* its index in value, from 0 */
	int pending;
} notification;

/* The pending data of a batch parsed by the fast pass, shared by its
 * notifications: user value 1 is the body. The first notification whose
 * resource_data is read locates every entry's resourceData in one pass. */
typedef struct {
	size_t n, value_field;
	int located;
	gc_jspan spans[];        /* n entries */
} pending_data;

/* Wrap the table on top of the stack in a read-only userdata of type mt;
 * the table becomes its user value. */
static void push_box(lua_State *L, const char *mt)
{
	lua_newuserdatauv(L, 0, 1);
	luaL_setmetatable(L, mt);
	lua_insert(L, -2);
	lua_setiuservalue(L, -2, 1);
}

/* Wrap the fields table on top of the stack in a graphcall.notification.
 * With pending_idx (not 0), its resourceData, entry `item` of the batch's
 * pending data at pending_idx, is decoded on first use. */
static void push_notification(lua_State *L, int pending_idx, size_t item)
{
	notification *n = lua_newuserdatauv(L, sizeof *n, 2);

	n->item = item;
	n->pending = pending_idx != 0;
	luaL_setmetatable(L, GC_NOTIFICATION_MT);
	lua_insert(L, -2);
	lua_setiuservalue(L, -2, 1);
	if (pending_idx) {
		lua_pushvalue(L, pending_idx);
		lua_setiuservalue(L, -2, 2);
	}
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

/* A code given as a decimal string ("200"): at most 10 digits, an optional
 * minus sign, nothing else. */
static int code_from_string(const char *s, size_t len, lua_Integer *out)
{
	int neg = len > 0 && s[0] == '-';
	size_t i = (size_t)neg;
	lua_Integer v = 0;

	if (len <= i || len - i > 10)
		return 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return 1;
}

static int code_in_range(lua_Integer v)
{
	return v >= -2147483648LL && v <= 4294967295LL;
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
		isnum = code_from_string(s, len, &v);
	}
	if (!isnum || !code_in_range(v))
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

/* --- the fast pass: fields read by json_scan ------------------------------ */

/* copy_string for a value read by json_scan. */
static int fast_string(lua_State *L, const gc_jval *v, int dst, const char *name,
                       int lower, const char *path, problem *p)
{
	if (v->type == GC_JT_ABSENT)
		return 1;
	if (v->type != GC_JT_STRING)
		return bad(p, path, "expected a string");
	if (memchr(v->str, '\0', v->len))
		return bad(p, path, "contains a NUL byte");
	if (lower)
		push_lowered(L, v->str, v->len, lower == LOWER_ALL);
	else
		lua_pushlstring(L, v->str, v->len);
	lua_setfield(L, dst, name);
	return 1;
}

/* to_code for a value read by json_scan. */
static int fast_code(const gc_jval *v, lua_Integer *out)
{
	lua_Integer c = 0;
	int ok = 0;

	if (v->type == GC_JT_NUMBER && v->num_ok) {
		c = (lua_Integer)v->num;
		ok = 1;
	} else if (v->type == GC_JT_STRING) {
		ok = code_from_string(v->str, v->len, &c);
	}
	if (!ok || !code_in_range(c))
		return 0;
	*out = c;
	return 1;
}

static int fast_result_info(lua_State *L, const gc_jitem *it, int dst, problem *p)
{
	static const struct {
		int field;
		const char *name, *path;
	} codes[] = {
		{ GC_JF_CODE, "code", "resourceData.resultInfo.code" },
		{ GC_JF_SUBCODE, "subcode", "resourceData.resultInfo.subcode" },
		{ GC_JF_SUBCODE_CAMEL, "subcode", "resourceData.resultInfo.subCode" },
	};
	int t = it->f[GC_JF_RESULT_INFO].type;

	if (t == GC_JT_ABSENT)
		return 1;
	if (t != GC_JT_OBJECT && t != GC_JT_ARRAY)
		return bad(p, "resourceData.resultInfo", "expected an object");
	lua_createtable(L, 0, 3);
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		const gc_jval *v = &it->f[codes[i].field];
		lua_Integer c;
		if (v->type == GC_JT_ABSENT)
			continue;
		if (!fast_code(v, &c))
			return bad(p, codes[i].path, "expected an integer code");
		lua_pushinteger(L, c);
		lua_setfield(L, -2, codes[i].name);
	}
	if (!fast_string(L, &it->f[GC_JF_MESSAGE], lua_gettop(L), "message", KEEP,
	                 "resourceData.resultInfo.message", p))
		return 0;
	lua_setfield(L, dst, "result_info");
	return 1;
}

/* extract() for an entry read by json_scan: the same checks in the same
 * order, the same fields, except resource_data, left to the caller. */
static int fast_extract(lua_State *L, const gc_jitem *it, problem *p)
{
	const gc_jval *f = it->f, *url, *data;
	int dst;

	lua_createtable(L, 0, 16);
	dst = lua_gettop(L);

	if (f[GC_JF_CHANGE_TYPE].type == GC_JT_ABSENT)
		return bad(p, "changeType", "missing");
	if (!fast_string(L, &f[GC_JF_CHANGE_TYPE], dst, "change_type", LOWER_ALL, "changeType", p) ||
	    !fast_string(L, &f[GC_JF_RESOURCE], dst, "resource", KEEP, "resource", p) ||
	    !fast_string(L, &f[GC_JF_RESOURCE_URL], dst, "resource_url", KEEP, "resourceUrl", p) ||
	    !fast_string(L, &f[GC_JF_CALLBACK_URI], dst, "callback_uri", KEEP, "callbackUri", p))
		return 0;

	/* The legacy `resource` stands in when resourceUrl is missing. */
	url = &f[GC_JF_RESOURCE_URL];
	if (url->type == GC_JT_ABSENT) {
		url = &f[GC_JF_RESOURCE];
		if (url->type == GC_JT_ABSENT)
			return bad(p, "resourceUrl", "missing (and no legacy resource)");
		lua_getfield(L, dst, "resource");
		lua_pushvalue(L, -1);
		lua_setfield(L, dst, "resource_url");
	} else {
		lua_getfield(L, dst, "resource_url");
	}
	split_resource(L, lua_tostring(L, -1), dst);
	lua_pop(L, 1);

	data = &f[GC_JF_RESOURCE_DATA];
	if (data->type == GC_JT_ABSENT)
		return 1;
	if (data->type != GC_JT_OBJECT && data->type != GC_JT_ARRAY)
		return bad(p, "resourceData", "expected an object or an array");
	if (data->type == GC_JT_ARRAY && data->len > 0)
		/* a collection (participants, content sharing sessions) */
		return fast_string(L, &f[GC_JF_FIRST_ODATA_TYPE], dst, "odata_type", KEEP,
		                   "resourceData[1].@odata.type", p);
	return fast_string(L, &f[GC_JF_ODATA_TYPE], dst, "odata_type", KEEP,
	                   "resourceData.@odata.type", p) &&
	       fast_string(L, &f[GC_JF_ETAG], dst, "etag", KEEP, "resourceData.@odata.etag", p) &&
	       fast_string(L, &f[GC_JF_STATE], dst, "state", LOWER_FIRST, "resourceData.state", p) &&
	       fast_string(L, &f[GC_JF_DIRECTION], dst, "direction", LOWER_FIRST,
	                   "resourceData.direction", p) &&
	       fast_string(L, &f[GC_JF_STATUS], dst, "status", LOWER_FIRST, "resourceData.status", p) &&
	       fast_string(L, &f[GC_JF_CLIENT_CONTEXT], dst, "client_context", KEEP,
	                   "resourceData.clientContext", p) &&
	       fast_result_info(L, it, dst, p);
}

static int has_data(const gc_jitem *it)
{
	int t = it->f[GC_JF_RESOURCE_DATA].type;

	return it->item.type == GC_JT_OBJECT && (t == GC_JT_OBJECT || t == GC_JT_ARRAY);
}

/* The envelope checks of the reference pass, on what json_scan read. */
static int fast_parse(lua_State *L, const gc_jdoc *doc, int body_idx)
{
	const gc_jval *top = &doc->top, *value = &doc->value;
	pending_data *pd = NULL;
	lua_Integer n;
	int list, pending = 0;

	if (top->type != GC_JT_OBJECT && !(top->type == GC_JT_ARRAY && top->len == 0))
		return gc_fail(L, "bad_notification", "body is not a JSON object");
	/* lua-cjson decodes [] as an empty table, which passes for an object */
	if (top->type == GC_JT_ARRAY || (value->type != GC_JT_OBJECT && value->type != GC_JT_ARRAY))
		return gc_fail(L, "bad_notification", "value: missing or not an array");
	if (value->type == GC_JT_OBJECT || value->len == 0)
		return gc_fail(L, "bad_notification", "value: must be a non-empty array");
	n = (lua_Integer)value->len;
	if (value->len > GC_NOTIFY_MAX_ITEMS)
		return gc_fail(L, "bad_notification", "value: %I notifications, over the "
		               "limit of %d", n, GC_NOTIFY_MAX_ITEMS);
	if (doc->nitems != value->len)
		return luaL_error(L, "graphcall.parse_notifications: %I of %I entries read",
		                  (lua_Integer)doc->nitems, n);

	for (size_t i = 0; i < doc->nitems && !pd; i++) {
		if (has_data(&doc->items[i])) {
			pd = lua_newuserdatauv(L, sizeof *pd + doc->nitems * sizeof pd->spans[0], 1);
			pending = lua_gettop(L);
			pd->n = doc->nitems;
			pd->value_field = doc->value_field;
			pd->located = 0;
			for (size_t k = 0; k < doc->nitems; k++)
				pd->spans[k].field = has_data(&doc->items[k]) ?
				                     doc->items[k].data_field : GC_JSPAN_NONE;
			lua_pushvalue(L, body_idx);
			lua_setiuservalue(L, pending, 1);
		}
	}

	lua_createtable(L, (int)n, 0);
	list = lua_gettop(L);
	for (lua_Integer i = 1; i <= n; i++) {
		const gc_jitem *it = &doc->items[i - 1];
		problem p;
		if (it->item.type != GC_JT_OBJECT && !(it->item.type == GC_JT_ARRAY && it->item.len == 0))
			return gc_fail(L, "bad_notification", "value[%I]: not an object", i);
		if (!fast_extract(L, it, &p))
			return gc_fail(L, "bad_notification", "value[%I].%s: %s", i, p.field, p.why);
		lua_settop(L, list + 1);         /* item fields */
		push_notification(L, has_data(it) ? pending : 0, (size_t)(i - 1));
		lua_rawseti(L, list, i);
	}
	push_box(L, GC_NOTIFICATIONS_MT);
	return 1;
}

/* The scanner userdata: owns a gc_jscan. */
typedef struct {
	gc_jscan *scan;
} scanner;

static int scanner_close(lua_State *L)
{
	scanner *s = luaL_checkudata(L, 1, GC_SCANNER_MT);

	if (s->scan) {
		gc_jscan_free(s->scan);
		s->scan = NULL;
	}
	return 0;
}

/* Push a scanner for a body of len bytes and return its gc_jscan (NULL
 * when out of memory). The module's scanner is taken out of the state
 * table while in use, so that a parse run by a finalizer in the middle of
 * this one makes its own, and an error thrown midway only loses it to the
 * collector; give_back() returns it. */
static gc_jscan *take_scanner(lua_State *L, size_t len)
{
	scanner *s;

	if (len <= SCANNER_KEEP_BYTES) {
		if (lua_getfield(L, GC_STATE, "scanner") == LUA_TUSERDATA) {
			lua_pushboolean(L, 0);
			lua_setfield(L, GC_STATE, "scanner");
			s = lua_touserdata(L, -1);
			if (s->scan)
				return s->scan;
		}
		lua_pop(L, 1);
	}
	s = lua_newuserdatauv(L, sizeof *s, 0);
	s->scan = NULL;
	luaL_setmetatable(L, GC_SCANNER_MT);
	s->scan = gc_jscan_new(GC_NOTIFY_MAX_DEPTH);
	return s->scan;
}

/* The scanner at idx goes back to the state table, or is freed now when
 * its buffers grew past SCANNER_KEEP_BYTES. */
static void give_back(lua_State *L, int idx)
{
	scanner *s = lua_touserdata(L, idx);

	if (s->scan && gc_jscan_capacity(s->scan) <= SCANNER_KEEP_BYTES) {
		lua_pushvalue(L, idx);
		lua_setfield(L, GC_STATE, "scanner");
	} else if (s->scan) {
		gc_jscan_free(s->scan);
		s->scan = NULL;
	}
}

/* The reference pass: the whole body decoded by lua-cjson. */
static int slow_parse(lua_State *L, int body_idx)
{
	lua_Integer n = 0;
	int top, value, list;

	lua_pushvalue(L, body_idx);
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
		push_notification(L, 0, 0);
		lua_rawseti(L, list, i);
		lua_settop(L, list);
	}
	push_box(L, GC_NOTIFICATIONS_MT);
	return 1;
}

/* core.parse_notifications(body [, max_bytes]) -> notifications | nil, err */
int gc_l_parse_notifications(lua_State *L)
{
	size_t len, bad;
	const char *body = luaL_checklstring(L, 1, &len);
	lua_Integer max = luaL_optinteger(L, 2, GC_NOTIFY_MAX_BYTES_DEFAULT);
	const char *nul;
	gc_jscan *scan;

	luaL_argcheck(L, max > 0, 2, "max_bytes must be positive");
	if (len == 0)
		return gc_fail(L, "bad_notification", "empty body");
	if ((lua_Integer)len > max)
		return gc_fail(L, "bad_notification",
		               "body of %I bytes is over the limit of %I bytes",
		               (lua_Integer)len, max);

	/* A body simdjson accepts is well-formed UTF-8 without NUL bytes:
	 * simdjson checks both, so the checks below only run for the rest. */
	lua_settop(L, 1);
	scan = take_scanner(L, len);     /* at 2 */
	if (scan) {
		gc_jdoc doc;
		if (gc_jscan_parse(scan, body, len, GC_NOTIFY_MAX_ITEMS, &doc) == GC_JSCAN_OK) {
			int r = fast_parse(L, &doc, 1);
			give_back(L, 2);
			return r;
		}
	}
	give_back(L, 2);
	lua_settop(L, 1);

	if ((nul = memchr(body, '\0', len)))
		return gc_fail(L, "bad_notification", "NUL byte at offset %I",
		               (lua_Integer)(nul - body));
	if (!gc_utf8_valid(body, len, &bad))
		return gc_fail(L, "bad_notification", "invalid UTF-8 at byte %I",
		               (lua_Integer)bad + 1);
	return slow_parse(L, 1);
}

/* Decode the resourceData of the notification at ud on first use, into its
 * fields table (at fields). Its text was validated with the whole body, so
 * lua-cjson takes it. */
static void load_data(lua_State *L, int ud, int fields)
{
	notification *n = lua_touserdata(L, ud);
	pending_data *pd;
	const char *body;
	size_t len;

	if (!n->pending)
		return;
	lua_getiuservalue(L, ud, 2);
	pd = lua_touserdata(L, -1);
	lua_getiuservalue(L, -1, 1);
	body = lua_tolstring(L, -1, &len);
	if (!pd->located) {
		if (!gc_jscan_locate(body, len, pd->value_field, pd->spans, pd->n))
			luaL_error(L, "graphcall.notification: resource_data not found");
		pd->located = 1;
	}
	lua_pushlstring(L, body + pd->spans[n->item].off, pd->spans[n->item].len);
	if (!gc_json_call(L, "decode"))
		luaL_error(L, "graphcall.notification: resource_data: %s", lua_tostring(L, -1));
	lua_setfield(L, fields, "resource_data");
	lua_pop(L, 2);
	n->pending = 0;
	lua_pushnil(L);
	lua_setiuservalue(L, ud, 2);
}

static int notification_index(lua_State *L)
{
	size_t len;
	const char *key;

	luaL_checkudata(L, 1, GC_NOTIFICATION_MT);
	lua_settop(L, 2);
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, 2);
	if (lua_rawget(L, 3) != LUA_TNIL || lua_type(L, 2) != LUA_TSTRING)
		return 1;
	key = lua_tolstring(L, 2, &len);
	if (len == 13 && memcmp(key, "resource_data", 13) == 0) {
		load_data(L, 1, 3);
		lua_getfield(L, 3, "resource_data");
	}
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
	lua_getiuservalue(L, 1, 1);
	load_data(L, 1, lua_gettop(L));  /* pairs lists resource_data */
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

/* Expects the module state table on top of the stack: the metamethods get
 * it as upvalue (GC_STATE), to decode resource_data with its lua-cjson. */
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

	static const luaL_Reg scan[] = {
		{ "__gc", scanner_close },
		{ "__close", scanner_close },
		{ NULL, NULL }
	};

	luaL_newmetatable(L, GC_NOTIFICATION_MT);
	lua_pushvalue(L, -2);
	luaL_setfuncs(L, one, 1);
	luaL_newmetatable(L, GC_NOTIFICATIONS_MT);
	luaL_setfuncs(L, many, 0);
	luaL_newmetatable(L, GC_SCANNER_MT);
	luaL_setfuncs(L, scan, 0);
	lua_pop(L, 3);
}
