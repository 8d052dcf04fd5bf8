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
 * Two passes do the same job. The fast one (json/scan.cpp, simdjson)
 * validates the whole body and reads only the fields a notification
 * exposes: they are checked and normalised at once, kept as bytes in the
 * notification and made Lua values when first read. Each entry's
 * resourceData stays JSON text in the body until n.resource_data is first
 * read; then lua-cjson decodes it (it cannot fail: the text was validated)
 * and the table is kept. Any body simdjson does not accept goes through the
 * reference pass, which decodes it all with lua-cjson and fills every field
 * at once: lua-cjson alone decides what is invalid and words the error, and
 * it takes a few things simdjson does not (1e999, "1.", control characters
 * in strings), which must keep parsing as before.
 *
 * Size (over 600 lines): the two passes must give the same fields, checked
 * and normalised alike (spec/fuzz/notifications.c holds them to it), so
 * they stay in one file beside the one field table both fill. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graphcall.h"
#include "json/scan.h"

/* The fields of a notification, as Lua sees them. */
enum {
	F_CHANGE_TYPE, F_RESOURCE, F_RESOURCE_URL, F_CALLBACK_URI, F_CALL_ID, F_KIND,
	F_OPERATION_ID, F_ODATA_TYPE, F_ETAG, F_STATE, F_DIRECTION, F_STATUS,
	F_CLIENT_CONTEXT, F_RESULT_INFO, F_RESOURCE_DATA, F_COUNT
};

static const struct {
	const char *name;
	size_t len;
} field_names[F_COUNT] = {
#define NAME(s) { s, sizeof s - 1 }
	NAME("change_type"), NAME("resource"), NAME("resource_url"), NAME("callback_uri"),
	NAME("call_id"), NAME("kind"), NAME("operation_id"), NAME("odata_type"), NAME("etag"),
	NAME("state"), NAME("direction"), NAME("status"), NAME("client_context"),
	NAME("result_info"), NAME("resource_data"),
#undef NAME
};

/* result_info's parts */
enum { RI_CODE = 1, RI_SUBCODE = 2, RI_MESSAGE = 4 };

typedef struct {
	size_t off, len;
} span;

/* A notification. User value 1 is its fields table (nil until a field is
 * read). The fields whose bit is set in `lazy` are not in that table yet:
 * strings are in buf (span s[F_*]; F_RESULT_INFO's is its message), kind is
 * a static string. While resourceData is not decoded, user value 2 is the
 * body (a batch of one) or the batch's pending data. A notification from
 * the reference pass has every field in its table and lazy == 0. */
typedef struct {
	unsigned lazy;           /* bit 1 << F_* */
	unsigned ri;             /* RI_* */
	lua_Integer code, subcode;
	const char *kind;
	size_t item;             /* its index in value, from 0 */
	size_t value_field, data_field;  /* for a batch of one */
	span s[F_COUNT];
	char buf[];
} notification;

/* The pending data of a batch of several notifications from the fast pass,
 * shared by them: user value 1 is the body. The first notification whose
 * resource_data is read locates every entry's resourceData in one pass. */
typedef struct {
	size_t n, value_field;
	int located;
	gc_jspan spans[];        /* n entries */
} pending_data;

/* A batch: user value i is notification i; n of them. */
typedef struct {
	size_t n;
} batch;

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
 * /communications/calls/{id}/operations/{op} or the legacy /app/calls/{id}
 * (a NUL-terminated string). id_len and op_len are 0 when absent. */
typedef struct {
	const char *kind;
	size_t id_off, id_len, op_off, op_len;
} url_parts;

static void split_url(const char *url, url_parts *u)
{
	const char *p = strstr(url, "/calls/"), *id, *rest;

	u->kind = "other";
	u->id_len = u->op_len = 0;
	if (!p)
		return;
	id = p + 7;
	rest = strchr(id, '/');
	if (!rest)
		rest = id + strlen(id);
	if (rest == id)
		return;
	u->id_off = (size_t)(id - url);
	u->id_len = (size_t)(rest - id);
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		u->kind = "call";
	} else if (strncmp(rest, "/participants", 13) == 0 &&
	           (rest[13] == '\0' || rest[13] == '/')) {
		u->kind = "participants";
	} else if (strncmp(rest, "/operations/", 12) == 0 && rest[12]) {
		u->kind = "operation";
		u->op_off = (size_t)(rest + 12 - url);
		u->op_len = strlen(rest + 12);
	} else if (strncasecmp(rest, "/contentsharingsessions", 23) == 0) {
		u->kind = "content_sharing";
	}
}

static void split_resource(lua_State *L, const char *url, int dst)
{
	url_parts u;

	split_url(url, &u);
	if (u.id_len) {
		lua_pushlstring(L, url + u.id_off, u.id_len);
		lua_setfield(L, dst, "call_id");
	}
	if (u.op_len) {
		lua_pushlstring(L, url + u.op_off, u.op_len);
		lua_setfield(L, dst, "operation_id");
	}
	lua_pushstring(L, u.kind);
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

/* What a fast notification will hold: the checks of extract(), in its
 * order, without Lua values. */
typedef struct {
	const gc_jval *str[F_COUNT];   /* the source of each string field */
	int lower[F_COUNT];
	lua_Integer code, subcode;
	unsigned ri;
	int has_data;
	size_t bytes;                  /* buf: each string and a NUL */
} plan;

static int plan_string(plan *pl, int field, const gc_jval *v, int lower,
                       const char *path, problem *p)
{
	if (v->type == GC_JT_ABSENT)
		return 1;
	if (v->type != GC_JT_STRING)
		return bad(p, path, "expected a string");
	if (memchr(v->str, '\0', v->len))
		return bad(p, path, "contains a NUL byte");
	pl->str[field] = v;
	pl->lower[field] = lower;
	pl->bytes += v->len + 1;
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

static int plan_result_info(plan *pl, const gc_jitem *it, problem *p)
{
	static const struct {
		int field;
		unsigned part;
		const char *path;
	} codes[] = {
		{ GC_JF_CODE, RI_CODE, "resourceData.resultInfo.code" },
		{ GC_JF_SUBCODE, RI_SUBCODE, "resourceData.resultInfo.subcode" },
		{ GC_JF_SUBCODE_CAMEL, RI_SUBCODE, "resourceData.resultInfo.subCode" },
	};
	int t = it->f[GC_JF_RESULT_INFO].type;

	if (t == GC_JT_ABSENT)
		return 1;
	if (t != GC_JT_OBJECT && t != GC_JT_ARRAY)
		return bad(p, "resourceData.resultInfo", "expected an object");
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		const gc_jval *v = &it->f[codes[i].field];
		lua_Integer c;
		if (v->type == GC_JT_ABSENT)
			continue;
		if (!fast_code(v, &c))
			return bad(p, codes[i].path, "expected an integer code");
		if (codes[i].part == RI_CODE)
			pl->code = c;
		else
			pl->subcode = c;
		pl->ri |= codes[i].part;
	}
	pl->ri |= 0x80;                /* present, maybe empty */
	if (!plan_string(pl, F_RESULT_INFO, &it->f[GC_JF_MESSAGE], KEEP,
	                 "resourceData.resultInfo.message", p))
		return 0;
	if (pl->str[F_RESULT_INFO])
		pl->ri |= RI_MESSAGE;
	return 1;
}

/* extract() for an entry read by json_scan: the same checks in the same
 * order. 0 (and *p filled) when the entry is unusable. */
static int plan_entry(plan *pl, const gc_jitem *it, problem *p)
{
	const gc_jval *f = it->f, *data;

	memset(pl, 0, sizeof *pl);
	if (f[GC_JF_CHANGE_TYPE].type == GC_JT_ABSENT)
		return bad(p, "changeType", "missing");
	if (!plan_string(pl, F_CHANGE_TYPE, &f[GC_JF_CHANGE_TYPE], LOWER_ALL, "changeType", p) ||
	    !plan_string(pl, F_RESOURCE, &f[GC_JF_RESOURCE], KEEP, "resource", p) ||
	    !plan_string(pl, F_RESOURCE_URL, &f[GC_JF_RESOURCE_URL], KEEP, "resourceUrl", p) ||
	    !plan_string(pl, F_CALLBACK_URI, &f[GC_JF_CALLBACK_URI], KEEP, "callbackUri", p))
		return 0;
	/* The legacy `resource` stands in when resourceUrl is missing. */
	if (!pl->str[F_RESOURCE_URL]) {
		if (!pl->str[F_RESOURCE])
			return bad(p, "resourceUrl", "missing (and no legacy resource)");
		pl->str[F_RESOURCE_URL] = pl->str[F_RESOURCE];
		pl->bytes += pl->str[F_RESOURCE]->len + 1;
	}

	data = &f[GC_JF_RESOURCE_DATA];
	if (data->type == GC_JT_ABSENT)
		return 1;
	if (data->type != GC_JT_OBJECT && data->type != GC_JT_ARRAY)
		return bad(p, "resourceData", "expected an object or an array");
	pl->has_data = 1;
	if (data->type == GC_JT_ARRAY && data->len > 0)
		/* a collection (participants, content sharing sessions) */
		return plan_string(pl, F_ODATA_TYPE, &f[GC_JF_FIRST_ODATA_TYPE], KEEP,
		                   "resourceData[1].@odata.type", p);
	return plan_string(pl, F_ODATA_TYPE, &f[GC_JF_ODATA_TYPE], KEEP,
	                   "resourceData.@odata.type", p) &&
	       plan_string(pl, F_ETAG, &f[GC_JF_ETAG], KEEP, "resourceData.@odata.etag", p) &&
	       plan_string(pl, F_STATE, &f[GC_JF_STATE], LOWER_FIRST, "resourceData.state", p) &&
	       plan_string(pl, F_DIRECTION, &f[GC_JF_DIRECTION], LOWER_FIRST,
	                   "resourceData.direction", p) &&
	       plan_string(pl, F_STATUS, &f[GC_JF_STATUS], LOWER_FIRST, "resourceData.status", p) &&
	       plan_string(pl, F_CLIENT_CONTEXT, &f[GC_JF_CLIENT_CONTEXT], KEEP,
	                   "resourceData.clientContext", p) &&
	       plan_result_info(pl, it, p);
}

/* Push a notification made from a plan; nmt is its metatable. With
 * pending_idx (not 0), its resourceData is decoded on first use from what
 * is at pending_idx (the body or the batch's pending data). */
static void push_planned(lua_State *L, const plan *pl, int nmt, int pending_idx, size_t item,
                         size_t value_field, size_t data_field)
{
	notification *n = lua_newuserdatauv(L, sizeof *n + pl->bytes, 2);
	size_t off = 0;
	url_parts u;

	n->lazy = 0;
	for (int f = 0; f < F_COUNT; f++) {
		const gc_jval *v = pl->str[f];
		char *out;
		if (!v)
			continue;
		out = n->buf + off;
		if (pl->lower[f]) {
			for (size_t i = 0; i < v->len; i++)
				out[i] = (pl->lower[f] == LOWER_ALL || i == 0) ?
				         (char)tolower((unsigned char)v->str[i]) : v->str[i];
		} else {
			memcpy(out, v->str, v->len);
		}
		out[v->len] = '\0';
		n->s[f].off = off;
		n->s[f].len = v->len;
		off += v->len + 1;
		n->lazy |= 1u << f;
	}
	n->ri = pl->ri;
	n->code = pl->code;
	n->subcode = pl->subcode;
	if (pl->ri)
		n->lazy |= 1u << F_RESULT_INFO;
	split_url(n->buf + n->s[F_RESOURCE_URL].off, &u);
	n->kind = u.kind;
	n->lazy |= 1u << F_KIND;
	if (u.id_len) {
		n->s[F_CALL_ID].off = n->s[F_RESOURCE_URL].off + u.id_off;
		n->s[F_CALL_ID].len = u.id_len;
		n->lazy |= 1u << F_CALL_ID;
	}
	if (u.op_len) {
		n->s[F_OPERATION_ID].off = n->s[F_RESOURCE_URL].off + u.op_off;
		n->s[F_OPERATION_ID].len = u.op_len;
		n->lazy |= 1u << F_OPERATION_ID;
	}
	n->item = item;
	n->value_field = value_field;
	n->data_field = data_field;
	lua_pushvalue(L, nmt);
	lua_setmetatable(L, -2);
	if (pending_idx) {
		n->lazy |= 1u << F_RESOURCE_DATA;
		lua_pushvalue(L, pending_idx);
		lua_setiuservalue(L, -2, 2);
	}
}

/* The envelope checks of the reference pass, on what json_scan read. */
static int fast_parse(lua_State *L, const gc_jdoc *doc, int body_idx)
{
	const gc_jval *top = &doc->top, *value = &doc->value;
	pending_data *pd = NULL;
	batch *b;
	size_t n;
	int nmt, list, pending = 0;

	if (top->type != GC_JT_OBJECT && !(top->type == GC_JT_ARRAY && top->len == 0))
		return gc_fail(L, "bad_notification", "body is not a JSON object");
	/* lua-cjson decodes [] as an empty table, which passes for an object */
	if (top->type == GC_JT_ARRAY || (value->type != GC_JT_OBJECT && value->type != GC_JT_ARRAY))
		return gc_fail(L, "bad_notification", "value: missing or not an array");
	if (value->type == GC_JT_OBJECT || value->len == 0)
		return gc_fail(L, "bad_notification", "value: must be a non-empty array");
	n = value->len;
	if (n > GC_NOTIFY_MAX_ITEMS)
		return gc_fail(L, "bad_notification", "value: %I notifications, over the "
		               "limit of %d", (lua_Integer)n, GC_NOTIFY_MAX_ITEMS);
	if (doc->nitems != n)
		return luaL_error(L, "graphcall.parse_notifications: %I of %I entries read",
		                  (lua_Integer)doc->nitems, (lua_Integer)n);

	luaL_getmetatable(L, GC_NOTIFICATION_MT);
	nmt = lua_gettop(L);
	if (n == 1) {
		pending = body_idx;
	} else {
		pd = lua_newuserdatauv(L, sizeof *pd + n * sizeof pd->spans[0], 1);
		pending = lua_gettop(L);
		pd->n = n;
		pd->value_field = doc->value_field;
		pd->located = 0;
		lua_pushvalue(L, body_idx);
		lua_setiuservalue(L, pending, 1);
	}

	b = lua_newuserdatauv(L, sizeof *b, (int)n);
	b->n = n;
	list = lua_gettop(L);
	for (size_t i = 0; i < n; i++) {
		const gc_jitem *it = &doc->items[i];
		problem p;
		plan pl;
		if (it->item.type != GC_JT_OBJECT && !(it->item.type == GC_JT_ARRAY && it->item.len == 0))
			return gc_fail(L, "bad_notification", "value[%I]: not an object",
			               (lua_Integer)i + 1);
		if (!plan_entry(&pl, it, &p))
			return gc_fail(L, "bad_notification", "value[%I].%s: %s", (lua_Integer)i + 1,
			               p.field, p.why);
		if (pd)
			pd->spans[i].field = pl.has_data ? it->data_field : GC_JSPAN_NONE;
		push_planned(L, &pl, nmt, pl.has_data ? pending : 0, i, doc->value_field,
		             it->data_field);
		lua_setiuservalue(L, list, (int)i + 1);
	}
	luaL_setmetatable(L, GC_NOTIFICATIONS_MT);
	return 1;
}

/* The reference pass: the whole body decoded by lua-cjson. */
static int slow_parse(lua_State *L, int body_idx)
{
	lua_Integer n = 0;
	int top, value, list;
	batch *b;

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

	b = lua_newuserdatauv(L, sizeof *b, (int)n);
	b->n = (size_t)n;
	list = lua_gettop(L);
	for (lua_Integer i = 1; i <= n; i++) {
		notification *nt;
		problem p;
		if (lua_rawgeti(L, value, i) != LUA_TTABLE || lua_rawlen(L, -1) > 0)
			return gc_fail(L, "bad_notification", "value[%I]: not an object", i);
		if (!extract(L, lua_gettop(L), &p))
			return gc_fail(L, "bad_notification", "value[%I].%s: %s", i, p.field, p.why);
		lua_settop(L, list + 2);         /* item fields */
		nt = lua_newuserdatauv(L, sizeof *nt, 2);
		nt->lazy = 0;
		luaL_setmetatable(L, GC_NOTIFICATION_MT);
		lua_insert(L, -2);
		lua_setiuservalue(L, -2, 1);
		lua_setiuservalue(L, list, (int)i);
		lua_settop(L, list);
	}
	luaL_setmetatable(L, GC_NOTIFICATIONS_MT);
	return 1;
}

static int parse(lua_State *L, int fast)
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
	if (fast) {
		scan = gc_scanner_take(L, GC_STATE, len);     /* at 2 */
		if (scan) {
			gc_jdoc doc;
			if (gc_jscan_parse(scan, body, len, GC_NOTIFY_MAX_ITEMS, &doc) == GC_JSCAN_OK) {
				int r = fast_parse(L, &doc, 1);
				gc_scanner_give_back(L, GC_STATE, 2);
				return r;
			}
		}
		gc_scanner_give_back(L, GC_STATE, 2);
		lua_settop(L, 1);
	}

	if ((nul = memchr(body, '\0', len)))
		return gc_fail(L, "bad_notification", "NUL byte at offset %I",
		               (lua_Integer)(nul - body));
	if (!gc_utf8_valid(body, len, &bad))
		return gc_fail(L, "bad_notification", "invalid UTF-8 at byte %I",
		               (lua_Integer)bad + 1);
	return slow_parse(L, 1);
}

/* core.parse_notifications(body [, max_bytes]) -> notifications | nil, err */
int gc_l_parse_notifications(lua_State *L)
{
	return parse(L, 1);
}

/* The same with the reference pass alone, for the differential fuzz
 * harness (spec/fuzz/notifications.c); not in the module's table. */
int gc_l_parse_notifications_reference(lua_State *L)
{
	return parse(L, 0);
}

/* --- the notification and batch types -------------------------------------- */

/* The notification at index 1, checked against the metatable in upvalue 2
 * (a registry look-up by name costs more than the rest of a field read). */
static notification *check_notification(lua_State *L)
{
	notification *n = lua_touserdata(L, 1);

	if (!n || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(2)))
		luaL_typeerror(L, 1, GC_NOTIFICATION_MT);
	lua_pop(L, 1);
	return n;
}

/* Find the text of n's resourceData (n at ud, not decoded yet): *body and
 * the span [*off, *off + *len). Pushes what keeps the body alive (one or
 * two values). */
static void locate_data(lua_State *L, int ud, notification *n, const char **body, size_t *off,
                        size_t *len)
{
	size_t blen;

	if (lua_getiuservalue(L, ud, 2) == LUA_TSTRING) {   /* a batch of one */
		gc_jspan sp = { n->data_field, 0, 0 };
		*body = lua_tolstring(L, -1, &blen);
		if (!gc_jscan_locate(*body, blen, n->value_field, &sp, 1))
			luaL_error(L, "graphcall.notification: resource_data not found");
		*off = sp.off;
		*len = sp.len;
	} else {
		pending_data *pd = lua_touserdata(L, -1);
		lua_getiuservalue(L, -1, 1);
		*body = lua_tolstring(L, -1, &blen);
		if (!pd->located) {
			if (!gc_jscan_locate(*body, blen, pd->value_field, pd->spans, pd->n))
				luaL_error(L, "graphcall.notification: resource_data not found");
			pd->located = 1;
		}
		*off = pd->spans[n->item].off;
		*len = pd->spans[n->item].len;
	}
}

/* Push the decoded resourceData of n (at ud); its text was validated with
 * the whole body, so lua-cjson takes it. */
static void push_data(lua_State *L, int ud, notification *n)
{
	const char *body;
	size_t off, dlen;
	int base = lua_gettop(L);

	locate_data(L, ud, n, &body, &off, &dlen);
	lua_pushlstring(L, body + off, dlen);
	if (!gc_json_call(L, "decode"))
		luaL_error(L, "graphcall.notification: resource_data: %s", lua_tostring(L, -1));
	lua_replace(L, base + 1);
	lua_settop(L, base + 1);
	lua_pushnil(L);
	lua_setiuservalue(L, ud, 2);
}

/* n.resource_json (n at ud): resourceData as the JSON text Graph sent,
 * while it is not decoded, so that a call can tell a repeated notification
 * that carries no etag without encoding again what was just decoded; once
 * decoded (or from the reference pass), lua-cjson's encoding of the table;
 * nil when there is none, or when lua-cjson cannot write it. Not a field:
 * pairs() does not list it. */
static void push_json(lua_State *L, int ud, notification *n)
{
	const char *body;
	size_t off, dlen;
	int base = lua_gettop(L);

	if (n->lazy & (1u << F_RESOURCE_DATA)) {
		locate_data(L, ud, n, &body, &off, &dlen);
		lua_pushlstring(L, body + off, dlen);
	} else if (lua_getiuservalue(L, ud, 1) != LUA_TTABLE ||
	           lua_getfield(L, -1, "resource_data") == LUA_TNIL) {
		lua_pushnil(L);
	} else if (!gc_json_call(L, "encode")) {
		lua_pushnil(L);          /* 1e999: a body only the reference pass took */
	}
	lua_replace(L, base + 1);
	lua_settop(L, base + 1);
}

/* Push field f of n (at ud), a lazy one, and move it to the fields table. */
static void materialise(lua_State *L, int ud, notification *n, int f)
{
	const char *buf = n->buf;
	int fields;

	if (lua_getiuservalue(L, ud, 1) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_createtable(L, 0, 16);
		lua_pushvalue(L, -1);
		lua_setiuservalue(L, ud, 1);
	}
	fields = lua_gettop(L);
	switch (f) {
	case F_KIND:
		lua_pushstring(L, n->kind);
		break;
	case F_RESULT_INFO:
		lua_createtable(L, 0, 3);
		if (n->ri & RI_CODE) {
			lua_pushinteger(L, n->code);
			lua_setfield(L, -2, "code");
		}
		if (n->ri & RI_SUBCODE) {
			lua_pushinteger(L, n->subcode);
			lua_setfield(L, -2, "subcode");
		}
		if (n->ri & RI_MESSAGE) {
			lua_pushlstring(L, buf + n->s[f].off, n->s[f].len);
			lua_setfield(L, -2, "message");
		}
		break;
	case F_RESOURCE_DATA:
		push_data(L, ud, n);
		break;
	default:
		lua_pushlstring(L, buf + n->s[f].off, n->s[f].len);
		break;
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, fields, field_names[f].name);
	n->lazy &= ~(1u << f);
	lua_remove(L, fields);
}

/* Lua interns strings of up to 40 bytes (LUAI_MAXSHORTLEN): pushing one
 * again finds the same string and allocates nothing, so such fields (and
 * kind) are pushed from the notification on every read instead of being
 * stored in a fields table. Tables and longer strings are stored, so that
 * they are made once. Either way a read gives the same value. */
#define SHORT_STRING 40

/* Push lazy field f of n (at ud). */
static void push_lazy(lua_State *L, int ud, notification *n, int f)
{
	if (f == F_KIND)
		lua_pushstring(L, n->kind);
	else if (f != F_RESULT_INFO && f != F_RESOURCE_DATA && n->s[f].len <= SHORT_STRING)
		lua_pushlstring(L, n->buf + n->s[f].off, n->s[f].len);
	else
		materialise(L, ud, n, f);
}

static void materialise_all(lua_State *L, int ud, notification *n)
{
	for (int f = 0; n->lazy && f < F_COUNT; f++)
		if (n->lazy & (1u << f)) {
			materialise(L, ud, n, f);
			lua_pop(L, 1);
		}
}

static int notification_index(lua_State *L)
{
	notification *n = check_notification(L);
	size_t len;
	const char *key;

	if (lua_type(L, 2) == LUA_TSTRING) {
		key = lua_tolstring(L, 2, &len);
		if (len == sizeof "resource_json" - 1 && memcmp(key, "resource_json", len) == 0) {
			push_json(L, 1, n);
			return 1;
		}
	}
	if (n->lazy && lua_type(L, 2) == LUA_TSTRING) {
		key = lua_tolstring(L, 2, &len);
		for (int f = 0; f < F_COUNT; f++)
			if (field_names[f].len == len && memcmp(field_names[f].name, key, len) == 0) {
				if (!(n->lazy & (1u << f)))
					break;
				push_lazy(L, 1, n, f);
				return 1;
			}
	}
	if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE)
		return 1;                /* nil */
	lua_pushvalue(L, 2);
	lua_rawget(L, -2);
	return 1;
}

/* Iterates the fields with the userdata as state, so the fields table
 * itself never reaches Lua code and stays read-only. */
static int fields_next(lua_State *L)
{
	check_notification(L);
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
	notification *n = check_notification(L);

	materialise_all(L, 1, n);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushcclosure(L, fields_next, 2);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

/* Push field f (a string or nil) of the notification at 1. */
static const char *field_string(lua_State *L, notification *n, int f)
{
	if (n->lazy & (1u << f)) {
		push_lazy(L, 1, n, f);
	} else if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
		lua_getfield(L, -1, field_names[f].name);
		lua_remove(L, -2);
	}
	return lua_tostring(L, -1);
}

static int notification_tostring(lua_State *L)
{
	notification *n = check_notification(L);
	const char *change = field_string(L, n, F_CHANGE_TYPE);
	const char *url = field_string(L, n, F_RESOURCE_URL);
	const char *state = field_string(L, n, F_STATE);

	lua_pushfstring(L, GC_NOTIFICATION_MT ": %s %s%s%s", change, url,
	                state ? " " : "", state ? state : "");
	return 1;
}

/* The batch at index 1, checked against the metatable in upvalue 1. */
static batch *check_batch(lua_State *L)
{
	batch *b = lua_touserdata(L, 1);

	if (!b || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
		luaL_typeerror(L, 1, GC_NOTIFICATIONS_MT);
	lua_pop(L, 1);
	return b;
}

static int notifications_index(lua_State *L)
{
	batch *b = check_batch(L);
	lua_Integer i;
	int isnum = 0;

	i = lua_type(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, 2, &isnum) : 0;
	if (isnum && i >= 1 && (lua_Unsigned)i <= b->n)
		lua_getiuservalue(L, 1, (int)i);
	else
		lua_pushnil(L);
	return 1;
}

static int notifications_len(lua_State *L)
{
	batch *b = check_batch(L);

	lua_pushinteger(L, (lua_Integer)b->n);
	return 1;
}

static int notifications_tostring(lua_State *L)
{
	batch *b = check_batch(L);

	lua_pushfstring(L, GC_NOTIFICATIONS_MT ": %I notification(s)", (lua_Integer)b->n);
	return 1;
}

/* Expects the module state table on top of the stack: the notification
 * metamethods get it as upvalue 1 (GC_STATE, to decode resource_data with
 * its lua-cjson) and their metatable as upvalue 2; the batch metamethods
 * get theirs as upvalue 1. */
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
	lua_pushvalue(L, -2);
	lua_pushvalue(L, -2);
	luaL_setfuncs(L, one, 2);
	luaL_newmetatable(L, GC_NOTIFICATIONS_MT);
	lua_pushvalue(L, -1);
	luaL_setfuncs(L, many, 1);
	lua_pop(L, 2);
}
