/* Request construction: a call or join spec (Lua table, snake_case) becomes a
 * graphcall.request userdata holding method, url, path and the JSON body of
 * a Graph `call`.
 *
 * Everything is validated before anything could be sent; a bad spec raises
 * an error that names the field ("targets[2].id: required"). One builder
 * writes a body through out_* to one of two outputs: JSON text (a request's
 * body, written directly: encoding tables with lua-cjson cost a create
 * request a third of its CPU) or Lua tables (the parts call operations
 * merge, and the reference the specs compare the text with). Both live in
 * Lua memory, so no C heap memory is live when an error is raised.
 *
 * Size (over 600 lines): every part of a call (targets, source, media,
 * prompts, chat and meeting info, call options) is checked and written by
 * the same builder in one pass, so the parts share its out_* writers and
 * its error paths; they follow in the order of a call's JSON. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "graphcall.h"

#define FIELD_MAX 160

enum { UV_URL = 1, UV_PATH, UV_BODY, UV_KIND, UV_COUNT = UV_KIND };

typedef struct {
	const char *method;
} gc_request;

/* The builder's outputs. */
enum { OUT_JSON, OUT_TABLE };

#define NEST_MAX 8   /* deepest body: targets[i].identity.user (5 levels) */
#define TOP_MAX 16   /* members of a body: extra must not set them again */

typedef struct {
	const char *key; /* OUT_TABLE: the member name in the parent (NULL: element) */
	int idx;         /* OUT_TABLE: stack index of the table */
	int n;           /* members or elements written so far */
	int array;
} frame;

/* The spec being built, and where the pieces sit on the Lua stack. Spec
 * tables pushed while an object is open are popped before it closes, so
 * an OUT_TABLE object being closed is always at the top. */
typedef struct {
	lua_State *L;
	int spec;        /* the caller's spec table */
	const char *app_id;        /* the client's, checked */
	const char *callback_uri;  /* the client's default, checked; or NULL */
	int out;         /* OUT_JSON or OUT_TABLE */
	int buf;         /* OUT_JSON: stack index of the buffer userdata */
	char *p;         /* OUT_JSON: its bytes */
	size_t len, cap;
	frame nest[NEST_MAX];
	int depth;
	const char *top[TOP_MAX];
	int ntop;
} builder;

/* Format a field path for error messages; very deep paths end in "...". */
static const char *path_printf(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, FIELD_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= FIELD_MAX)
		memcpy(buf + FIELD_MAX - 4, "...", 4);
	return buf;
}

/* "name[i]" for the element i of a list the spec names (a field path for
 * error messages, formatted for every element: no printf). */
static const char *indexed(char *buf, const char *name, lua_Integer i)
{
	char digits[24];
	size_t n = strlen(name), d = 0;

	do
		digits[d++] = (char)('0' + i % 10);
	while ((i /= 10) > 0);
	memcpy(buf, name, n);           /* names are the builder's own, short */
	buf[n++] = '[';
	while (d > 0)
		buf[n++] = digits[--d];
	buf[n++] = ']';
	buf[n] = '\0';
	return buf;
}

/* "where.key", or "key" at the top level. */
static const char *field(char *buf, const char *where, const char *key)
{
	return where[0] ? path_printf(buf, "%s.%s", where, key)
	                : path_printf(buf, "%s", key);
}

/* Can s travel in a Graph body or a header? (check_text says why not.) */
static inline int text_ok(const char *s, size_t len)
{
	unsigned char high = 0;
	size_t bad;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 && c != '\t')
			return 0;
		high |= c;
	}
	return high < 0x80 || gc_utf8_valid(s, len, &bad); /* ASCII is UTF-8 */
}

/* Reject strings that cannot travel in a Graph body or a header. */
static void check_text(lua_State *L, int idx, const char *name)
{
	size_t len, bad;
	const char *s = lua_tolstring(L, idx, &len);

	if (!gc_utf8_valid(s, len, &bad))
		luaL_error(L, "%s: invalid UTF-8 at byte %d", name, (int)bad + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n')
			luaL_error(L, "%s: contains CR/LF", name);
		if (c < 0x20 && c != '\t') {
			char hex[8]; /* lua_pushfstring has no %x */
			snprintf(hex, sizeof hex, "0x%02x", (unsigned)c);
			luaL_error(L, "%s: contains control character %s", name, hex);
		}
	}
}

/* Push t[key] without metamethods: no user code runs while a spec is
 * built, so the strings read stay anchored in the caller's tables. */
static int raw_field(lua_State *L, int t, const char *key)
{
	lua_pushstring(L, key);
	return lua_rawget(L, t);
}

/* t[key] as a checked string; NULL when absent. */
static const char *opt_string(lua_State *L, int t, const char *where,
                              const char *key, int required)
{
	char buf[FIELD_MAX];
	const char *s;
	size_t len;
	int type = raw_field(L, t, key);

	if (type == LUA_TNIL) {
		lua_pop(L, 1);
		if (required)
			luaL_error(L, "%s: required", field(buf, where, key));
		return NULL;
	}
	if (type != LUA_TSTRING)
		luaL_error(L, "%s: expected string, got %s", field(buf, where, key),
		           lua_typename(L, type));
	/* the field's name is formatted only for an error: most specs are fine */
	s = lua_tolstring(L, -1, &len);
	if (!text_ok(s, len))
		check_text(L, -1, field(buf, where, key));
	if (len == 0)
		luaL_error(L, "%s: must not be empty", field(buf, where, key));
	lua_pop(L, 1);
	return s;
}

/* Pushes t[key] when it is a table and returns its index; 0 when absent. */
static int opt_table(lua_State *L, int t, const char *where, const char *key)
{
	char buf[FIELD_MAX];
	int type = raw_field(L, t, key);

	if (type == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (type != LUA_TTABLE)
		luaL_error(L, "%s: expected table, got %s", field(buf, where, key),
		           lua_typename(L, type));
	return lua_gettop(L);
}

/* -1 when absent, else 0/1. */
static int opt_boolean(lua_State *L, int t, const char *where, const char *key)
{
	char buf[FIELD_MAX];
	int type = raw_field(L, t, key);
	int v = lua_toboolean(L, -1);

	lua_pop(L, 1);
	if (type == LUA_TNIL)
		return -1;
	if (type != LUA_TBOOLEAN)
		luaL_error(L, "%s: expected boolean, got %s", field(buf, where, key),
		           lua_typename(L, type));
	return v;
}

/* https, or http on loopback (the local emulator); NULL when acceptable,
 * else the reason. */
static const char *url_problem(const char *url)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *user = NULL;
	const char *reason = NULL;

	if (strlen(url) > GC_URL_MAX)
		return "longer than 8192 bytes";
	u = curl_url();
	if (!u)
		return "out of memory";
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		reason = "not a valid absolute URL";
		goto done;
	}
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		reason = "must not carry credentials";
		goto done;
	}
	if (!host || !host[0]) {
		reason = "has no host";
	} else if (scheme && strcmp(scheme, "https") == 0) {
		reason = NULL;
	} else if (scheme && strcmp(scheme, "http") == 0 &&
	           (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
	            strcmp(host, "[::1]") == 0)) {
		reason = NULL; /* loopback: the local emulator and its callbacks */
	} else {
		reason = "must be an https URL (http is accepted only on loopback)";
	}
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_url_cleanup(u);
	return reason;
}

/* The URLs a bot sends repeat (its callback, its prompts, Graph's own), so
 * accepted ones are remembered in a table of the module state rather than
 * parsed again; [1] counts them, and a full table starts over. */
#define URL_CACHE_MAX 256

static void check_url(lua_State *L, const char *url, const char *where, const char *key)
{
	char name[FIELD_MAX];
	const char *reason;
	lua_Integer n;

	if (lua_getfield(L, GC_STATE, "accepted_urls") != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, GC_STATE, "accepted_urls");
	}
	if (lua_getfield(L, -1, url) == LUA_TBOOLEAN) {
		lua_pop(L, 2);
		return;
	}
	lua_pop(L, 1);
	if ((reason = url_problem(url)))
		luaL_error(L, "%s: %s", field(name, where, key), reason);
	lua_rawgeti(L, -1, 1);
	n = lua_tointeger(L, -1) + 1;
	lua_pop(L, 1);
	if (n > URL_CACHE_MAX) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, GC_STATE, "accepted_urls");
		n = 1;
	}
	lua_pushinteger(L, n);
	lua_rawseti(L, -2, 1);
	lua_pushboolean(L, 1);
	lua_setfield(L, -2, url);
	lua_pop(L, 1);
}

/* Application ids are GUIDs; they also go into URL paths. */
static void check_guid(lua_State *L, const char *s, const char *name)
{
	int ok = strlen(s) == 36;

	for (int i = 0; ok && i < 36; i++)
		ok = (i == 8 || i == 13 || i == 18 || i == 23) ? s[i] == '-'
		                                               : isxdigit((unsigned char)s[i]);
	if (!ok)
		luaL_error(L, "%s: expected a GUID, got '%s'", name, s);
}

/* core.check_guid(s, name): raise unless s is a GUID. */
int gc_l_check_guid(lua_State *L)
{
	check_guid(L, luaL_checkstring(L, 1), luaL_optstring(L, 2, "id"));
	return 0;
}

/* core.check_url(url, name): raise unless url is acceptable for name. */
int gc_l_check_url(lua_State *L)
{
	const char *url = luaL_checkstring(L, 1);
	const char *name = luaL_optstring(L, 2, "url");

	check_text(L, 1, name);
	check_url(L, url, "", name);
	return 0;
}

/* --- output: JSON text or Lua tables --------------------------------------- */

/* The JSON output's buffer is a userdata kept in the module state between
 * requests; it is taken out while in use, so a body built by a finalizer in
 * the middle of this one gets its own, and an error midway loses it to the
 * collector. One that grew past BUFFER_KEEP is not kept. */
#define BUFFER_FIRST 4096
#define BUFFER_KEEP (64 * 1024)

static const char buffer_key = 'b';

static void buffer_take(builder *b)
{
	lua_State *L = b->L;

	if (lua_rawgetp(L, GC_STATE, &buffer_key) == LUA_TUSERDATA) {
		lua_pushboolean(L, 0);
		lua_rawsetp(L, GC_STATE, &buffer_key);
	} else {
		lua_pop(L, 1);
		lua_newuserdatauv(L, BUFFER_FIRST, 0);
	}
	b->buf = lua_gettop(L);
	b->p = lua_touserdata(L, -1);
	b->cap = lua_rawlen(L, -1);
	b->len = 0;
}

static void buffer_give_back(builder *b)
{
	if (b->cap <= BUFFER_KEEP) {
		lua_pushvalue(b->L, b->buf);
		lua_rawsetp(b->L, GC_STATE, &buffer_key);
	}
}

/* A buffer with room for n more bytes replaces the full one. */
static void grow(builder *b, size_t n)
{
	size_t cap = b->cap * 2;
	char *p;

	if (n > (size_t)-1 / 2 - b->len)
		luaL_error(b->L, "request body too large");
	while (cap < b->len + n)
		cap *= 2;
	p = lua_newuserdatauv(b->L, cap, 0);
	memcpy(p, b->p, b->len);
	lua_replace(b->L, b->buf);
	b->p = p;
	b->cap = cap;
}

/* Room for n more bytes. */
static inline char *reserve(builder *b, size_t n)
{
	if (n > b->cap - b->len)
		grow(b, n);
	return b->p + b->len;
}

static void put(builder *b, const char *s, size_t n)
{
	memcpy(reserve(b, n), s, n);
	b->len += n;
}

static void put_char(builder *b, char c)
{
	*reserve(b, 1) = c;
	b->len++;
}

/* Bytes a JSON string cannot hold as they are: control characters, the
 * quote and the backslash. */
static const unsigned char escaped[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1,
};

/* s as a JSON string. Everything written was checked to be UTF-8 text, so
 * only the quote, the backslash and control characters (tab; others for
 * safety) are escaped; runs of other bytes are copied whole. */
static void put_string(builder *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run;

	put_char(b, '"');
	for (;;) {
		char esc[6] = { '\\', 0, '0', '0', 0, 0 };
		size_t n = 2;
		for (run = i; i < len && !escaped[u[i]]; i++)
			;
		put(b, s + run, i - run);
		if (i == len)
			break;
		switch (u[i]) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\t': esc[1] = 't'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		default:
			esc[1] = 'u';
			esc[4] = hex[u[i] >> 4];
			esc[5] = hex[u[i] & 15];
			n = 6;
		}
		put(b, esc, n);
		i++;
	}
	put_char(b, '"');
}

/* Start a member (key) or an element (key NULL) of the open object or
 * array; JSON: its separator and name. */
static void member(builder *b, const char *key)
{
	frame *f = &b->nest[b->depth - 1];

	if (b->depth == 1 && key) {
		if (b->ntop == TOP_MAX) /* never: the builder's own shapes */
			luaL_error(b->L, "graphcall: request has too many members");
		b->top[b->ntop++] = key;
	}
	if (b->out == OUT_JSON) {
		if (f->n > 0)
			put_char(b, ',');
		if (key) {          /* the builder's own names: nothing to escape */
			size_t len = strlen(key);
			char *o = reserve(b, len + 3);
			o[0] = '"';
			memcpy(o + 1, key, len);
			o[len + 1] = '"';
			o[len + 2] = ':';
			b->len += len + 3;
		}
	}
	f->n++;
}

/* The value at the top of the stack (popped) becomes the new member. */
static void set_member(builder *b, const char *key)
{
	frame *f = &b->nest[b->depth - 1];

	if (f->array)
		lua_rawseti(b->L, f->idx, f->n);
	else
		lua_setfield(b->L, f->idx, key);
}

/* Open an object or array: the body (first), or a member of the open one. */
static void out_begin(builder *b, const char *key, int array)
{
	frame *f;

	if (b->depth == NEST_MAX)
		luaL_error(b->L, "graphcall: request nested too deep"); /* never: the builder's own shapes */
	if (b->depth > 0)
		member(b, key);
	f = &b->nest[b->depth++];
	f->key = key;
	f->n = 0;
	f->array = array;
	if (b->out == OUT_JSON) {
		put_char(b, array ? '[' : '{');
	} else {
		lua_createtable(b->L, array ? 4 : 0, array ? 0 : 4);
		f->idx = lua_gettop(b->L);
	}
}

/* Close the open object or array. OUT_TABLE: the body stays on the stack. */
static void out_end(builder *b)
{
	frame *f = &b->nest[--b->depth];

	if (b->out == OUT_JSON) {
		put_char(b, f->array ? ']' : '}');
	} else if (b->depth > 0) {
		if (lua_gettop(b->L) != f->idx)
			luaL_error(b->L, "graphcall: request builder stack out of order");
		set_member(b, f->key);
	}
}

/* A string member; nothing when v is NULL (an absent optional field). */
static void out_string(builder *b, const char *key, const char *v)
{
	if (!v)
		return;
	member(b, key);
	if (b->out == OUT_JSON) {
		put_string(b, v, strlen(v));
	} else {
		lua_pushstring(b->L, v);
		set_member(b, key);
	}
}

static void out_boolean(builder *b, const char *key, int v)
{
	member(b, key);
	if (b->out == OUT_JSON) {
		if (v)
			put(b, "true", 4);
		else
			put(b, "false", 5);
	} else {
		lua_pushboolean(b->L, v);
		set_member(b, key);
	}
}

/* A member of the body from spec.extra: the key and the checked value at
 * the stack indexes k and v. JSON: the value is encoded by lua-cjson. */
static void out_extra(builder *b, int k, int v)
{
	lua_State *L = b->L;
	size_t len;
	const char *key = lua_tolstring(L, k, &len);
	frame *f = &b->nest[0];

	if (b->out == OUT_TABLE) {
		lua_pushvalue(L, k);
		lua_pushvalue(L, v);
		lua_rawset(L, f->idx);
		return;
	}
	if (f->n++ > 0)
		put_char(b, ',');
	put_string(b, key, len);
	put_char(b, ':');
	lua_pushvalue(L, v);
	if (!gc_json_call(L, "encode"))
		luaL_error(L, "cannot encode the body: %s", lua_tostring(L, -1));
	key = lua_tolstring(L, -1, &len);
	put(b, key, len);
	lua_pop(L, 1);
}

/* --- identities ------------------------------------------------------------ */

static const char *const identity_keys[] = {
	"type", "id", "name", "tenant", "identity_provider", NULL
};
static const char *const target_keys[] = {
	"type", "id", "name", "tenant", "identity_provider", "replaces_call_id",
	"participant_id", "endpoint_type", NULL
};

static void check_phone(lua_State *L, const char *id, const char *where)
{
	size_t n = strlen(id);
	int ok = n >= 2 && n <= 16 && id[0] == '+';

	for (size_t i = 1; ok && i < n; i++)
		ok = id[i] >= '0' && id[i] <= '9';
	if (!ok)
		luaL_error(L, "%s.id: phone numbers are E.164: '+' and 1 to 15 digits", where);
}

/* The identitySet for the identity spec at t, as member key. */
static void out_identity_set(builder *b, const char *key, int t, const char *where)
{
	lua_State *L = b->L;
	const char *type = opt_string(L, t, where, "type", 1);
	const char *graph_type, *id, *provider;
	int guest = 0;

	if (strcmp(type, "user") == 0 || strcmp(type, "phone") == 0 ||
	    strcmp(type, "application") == 0)
		graph_type = type;
	else if (strcmp(type, "application_instance") == 0)
		graph_type = "applicationInstance";
	else if (strcmp(type, "guest") == 0)
		graph_type = "guest", guest = 1; /* the documented form since 2020 */
	else {
		luaL_error(L, "%s.type: unknown identity type '%s' "
		           "(user, phone, application, application_instance, guest)",
		           where, type);
		return;
	}

	id = opt_string(L, t, where, "id", !guest);
	if (!id)
		id = b->app_id; /* a guest joins under the bot's app id, as in the seed */
	if (strcmp(type, "phone") == 0)
		check_phone(L, id, where);
	provider = opt_string(L, t, where, "identity_provider", 0);

	out_begin(b, key, 0);                /* identitySet */
	out_begin(b, graph_type, 0);         /* identity */
	out_string(b, "id", id);
	out_string(b, "displayName", opt_string(L, t, where, "name", guest));
	out_string(b, "tenantId", opt_string(L, t, where, "tenant", 0));
	out_string(b, "identityProvider", provider);
	out_end(b);
	out_end(b);
}

/* An invitationParticipantInfo for a target: {identity = identitySet,
 * replacesCallId, participantId, endpointType}. */
static void out_target(builder *b, int t, const char *where)
{
	gc_check_keys(b->L, t, where, target_keys);
	out_begin(b, NULL, 0);
	out_identity_set(b, "identity", t, where);
	out_string(b, "replacesCallId", opt_string(b->L, t, where, "replaces_call_id", 0));
	out_string(b, "participantId", opt_string(b->L, t, where, "participant_id", 0));
	out_string(b, "endpointType", opt_string(b->L, t, where, "endpoint_type", 0));
	out_end(b);
}

/* --- the parts of a call ------------------------------------------------- */

static void build_source(builder *b)
{
	lua_State *L = b->L;
	int src = opt_table(L, b->spec, "", "source");
	const char *guest = opt_string(L, b->spec, "", "guest", 0);

	if (src && guest)
		luaL_error(L, "guest: cannot be combined with source");
	out_begin(b, "source", 0);           /* participantInfo */
	if (src) {
		gc_check_keys(L, src, "source", identity_keys);
		out_identity_set(b, "identity", src, "source");
	} else if (guest) {
		/* The seed's guest join: a user identity named by the bot, with
		 * identityProvider "None". */
		out_begin(b, "identity", 0);
		out_begin(b, "user", 0);
		out_string(b, "id", b->app_id);
		out_string(b, "displayName", guest);
		out_string(b, "identityProvider", "None");
		out_end(b);
		out_end(b);
	} else {
		out_begin(b, "identity", 0);
		out_begin(b, "application", 0);
		out_string(b, "id", b->app_id);
		out_end(b);
		out_end(b);
	}
	out_string(b, "languageId", opt_string(L, b->spec, "", "language_id", 0));
	out_string(b, "region", opt_string(L, b->spec, "", "region", 0));
	out_end(b);
	if (src)
		lua_pop(L, 1);
}

/* Returns the number of targets (0 when the spec has none). */
static lua_Integer build_targets(builder *b)
{
	lua_State *L = b->L;
	int t = opt_table(L, b->spec, "", "targets");
	lua_Integer n = 0;
	char where[FIELD_MAX];

	if (!t)
		return 0;
	if (lua_rawlen(L, t) == 0 && (lua_pushnil(L), !lua_next(L, t)))
		luaL_error(L, "targets: must not be empty (a call needs at least one target)");
	lua_settop(L, t);
	if (!gc_is_array(L, t, &n))
		luaL_error(L, "targets: expected an array of identities");
	out_begin(b, "targets", 1);
	for (lua_Integer i = 1; i <= n; i++) {
		indexed(where, "targets", i);
		if (lua_rawgeti(L, t, i) != LUA_TTABLE)
			luaL_error(L, "%s: expected table, got %s", where, luaL_typename(L, -1));
		out_target(b, lua_gettop(L), where);
		lua_pop(L, 1);
	}
	out_end(b);
	lua_pop(L, 1);
	return n;
}

static const char *const modalities[][2] = {
	{ "audio", "audio" }, { "video", "video" }, { "data", "data" },
	{ "unknown", "unknown" },
	{ "video_based_screen_sharing", "videoBasedScreenSharing" },
	{ "videoBasedScreenSharing", "videoBasedScreenSharing" },
};

static void build_modalities(builder *b)
{
	lua_State *L = b->L;
	int t = opt_table(L, b->spec, "", "modalities");
	lua_Integer n = 0;
	const char *seen[8];

	if (!t)
		return;
	if (!gc_is_array(L, t, &n))
		luaL_error(L, "modalities: expected a non-empty array of strings");
	if (n > 8)
		luaL_error(L, "modalities: too many entries (%d)", (int)n);
	out_begin(b, "requestedModalities", 1);
	for (lua_Integer i = 1; i <= n; i++) {
		const char *m, *graph = NULL;
		if (lua_rawgeti(L, t, i) != LUA_TSTRING)
			luaL_error(L, "modalities[%d]: expected string, got %s", (int)i,
			           luaL_typename(L, -1));
		m = lua_tostring(L, -1);
		for (size_t k = 0; k < sizeof modalities / sizeof modalities[0]; k++)
			if (strcmp(m, modalities[k][0]) == 0)
				graph = modalities[k][1];
		if (!graph)
			luaL_error(L, "modalities[%d]: unknown modality '%s' (audio, video, "
			           "video_based_screen_sharing, data)", (int)i, m);
		for (lua_Integer k = 1; k < i; k++)
			if (strcmp(seen[k - 1], graph) == 0)
				luaL_error(L, "modalities[%d]: duplicate '%s'", (int)i, m);
		seen[i - 1] = graph;
		lua_pop(L, 1);
		out_string(b, NULL, graph);
	}
	out_end(b);
	lua_pop(L, 1);
}

static const char *const media_keys[] = {
	"type", "prompts", "blob", "remove_from_default_audio_group", NULL
};
static const char *const prompt_keys[] = { "uri", "resource_id", NULL };

/* mediaConfig.preFetchMedia from media.prompts. */
static void build_prompts(builder *b, int media)
{
	lua_State *L = b->L;
	int t = opt_table(L, media, "media", "prompts");
	lua_Integer n = 0;
	char where[FIELD_MAX];

	if (!t)
		return;
	if (lua_rawlen(L, t) == 0 && (lua_pushnil(L), !lua_next(L, t))) {
		lua_settop(L, t - 1);
		return; /* no prompts to prefetch */
	}
	lua_settop(L, t);
	if (!gc_is_array(L, t, &n))
		luaL_error(L, "media.prompts: expected an array of {uri=, resource_id=}");
	out_begin(b, "preFetchMedia", 1);
	for (lua_Integer i = 1; i <= n; i++) {
		int p;
		const char *uri;
		indexed(where, "media.prompts", i);
		if (lua_rawgeti(L, t, i) != LUA_TTABLE)
			luaL_error(L, "%s: expected table, got %s", where, luaL_typename(L, -1));
		p = lua_gettop(L);
		gc_check_keys(L, p, where, prompt_keys);
		uri = opt_string(L, p, where, "uri", 1);
		check_url(L, uri, where, "uri");
		out_begin(b, NULL, 0);
		out_string(b, "uri", uri);
		out_string(b, "resourceId", opt_string(L, p, where, "resource_id", 0));
		out_end(b);
		lua_pop(L, 1);
	}
	out_end(b);
	lua_pop(L, 1);
}

static void build_media(builder *b)
{
	lua_State *L = b->L;
	int m = opt_table(L, b->spec, "", "media");
	const char *type = "service_hosted";

	if (m) {
		gc_check_keys(L, m, "media", media_keys);
		type = opt_string(L, m, "media", "type", 1);
	}
	if (strcmp(type, "service_hosted") == 0) {
		int keep;
		out_begin(b, "mediaConfig", 0);
		out_string(b, "@odata.type", "#microsoft.graph.serviceHostedMediaConfig");
		if (m) {
			if (opt_string(L, m, "media", "blob", 0))
				luaL_error(L, "media.blob: only for app_hosted media");
			build_prompts(b, m);
			keep = opt_boolean(L, m, "media", "remove_from_default_audio_group");
			if (keep >= 0)
				out_boolean(b, "removeFromDefaultAudioGroup", keep);
		}
		out_end(b);
	} else if (strcmp(type, "app_hosted") == 0) {
		int keep;
		if (raw_field(L, m, "prompts") != LUA_TNIL)
			luaL_error(L, "media.prompts: only for service_hosted media");
		lua_pop(L, 1);
		out_begin(b, "mediaConfig", 0);
		out_string(b, "@odata.type", "#microsoft.graph.appHostedMediaConfig");
		out_string(b, "blob", opt_string(L, m, "media", "blob", 1));
		/* a mediaConfig property, so app-hosted media has it too */
		keep = opt_boolean(L, m, "media", "remove_from_default_audio_group");
		if (keep >= 0)
			out_boolean(b, "removeFromDefaultAudioGroup", keep);
		out_end(b);
	} else {
		luaL_error(L, "media.type: unknown media type '%s' (service_hosted, app_hosted)",
		           type);
	}
	if (m)
		lua_pop(L, 1);
}

static const char *const chat_info_keys[] = {
	"thread_id", "message_id", "reply_chain_message_id", NULL
};

/* chat_info from the spec table at t (or from a parsed join link). */
static void build_chat_info(builder *b, int t)
{
	lua_State *L = b->L;
	const char *msg;

	gc_check_keys(L, t, "chat_info", chat_info_keys);
	out_begin(b, "chatInfo", 0);
	out_string(b, "threadId", opt_string(L, t, "chat_info", "thread_id", 1));
	msg = opt_string(L, t, "chat_info", "message_id", 0);
	out_string(b, "messageId", msg ? msg : "0");
	out_string(b, "replyChainMessageId",
	           opt_string(L, t, "chat_info", "reply_chain_message_id", 0));
	out_end(b);
}

/* The meeting to join, from explicit keys or a join link. Returns 1 when the
 * spec names a meeting. */
static int build_meeting(builder *b)
{
	lua_State *L = b->L;
	int spec = b->spec, base = lua_gettop(L);
	int chat = opt_table(L, spec, "", "chat_info");
	int org = opt_table(L, spec, "", "organizer");
	const char *url = opt_string(L, spec, "", "url", 0);
	const char *meeting_id = opt_string(L, spec, "", "meeting_id", 0);
	const char *passcode = opt_string(L, spec, "", "passcode", 0);
	const char *token = opt_string(L, spec, "", "meeting_token", 0);
	const char *tenant = opt_string(L, spec, "", "tenant", 0);
	int no_host = opt_boolean(L, spec, "", "allow_conversation_without_host");
	int kinds = (org != 0) + (url != NULL) + (meeting_id != NULL) + (token != NULL);

	if (kinds > 1)
		luaL_error(L, "meeting: give only one of url, organizer, meeting_id, meeting_token");
	if (passcode && !meeting_id)
		luaL_error(L, "passcode: needs meeting_id");

	if (url) {
		int link;
		if (chat)
			luaL_error(L, "url: cannot be combined with chat_info");
		if (!gc_parse_join_url(L, url, strlen(url)))
			luaL_error(L, "url: %s", lua_tostring(L, -1));
		/* The link gives chat_info + organizer + tenant, or meeting_id +
		 * passcode; an explicit spec.tenant still wins. */
		link = lua_gettop(L);
		chat = opt_table(L, link, "url", "chat_info");
		org = opt_table(L, link, "url", "organizer");
		meeting_id = opt_string(L, link, "url", "meeting_id", 0);
		passcode = opt_string(L, link, "url", "passcode", 0);
		if (!tenant)
			tenant = opt_string(L, link, "url", "tenant", 0);
	}

	if (no_host >= 0 && !org)
		luaL_error(L, "allow_conversation_without_host: needs an organizer meeting");
	if (chat)
		build_chat_info(b, chat);
	if (org) {
		if (!chat)
			luaL_error(L, "organizer: needs chat_info (Graph joins an organizer "
			           "meeting by chat_info + organizer)");
		gc_check_keys(L, org, "organizer", identity_keys);
		out_begin(b, "meetingInfo", 0);
		out_string(b, "@odata.type", "#microsoft.graph.organizerMeetingInfo");
		out_identity_set(b, "organizer", org, "organizer");
		if (no_host >= 0)
			out_boolean(b, "allowConversationWithoutHost", no_host);
		out_end(b);
	} else if (meeting_id) {
		out_begin(b, "meetingInfo", 0);
		out_string(b, "@odata.type", "#microsoft.graph.joinMeetingIdMeetingInfo");
		out_string(b, "joinMeetingId", meeting_id);
		out_string(b, "passcode", passcode);
		out_end(b);
	} else if (token) {
		out_begin(b, "meetingInfo", 0);
		out_string(b, "@odata.type", "#microsoft.graph.tokenMeetingInfo");
		out_string(b, "token", token);
		out_end(b);
	}
	out_string(b, "tenantId", tenant);
	lua_settop(L, base);
	return org || meeting_id || token;
}

static const char *const call_option_keys[] = {
	"hide_bot_after_escalation", "is_content_sharing_notification_enabled",
	"is_delta_roster_enabled", NULL
};

static void build_call_options(builder *b)
{
	lua_State *L = b->L;
	int t = opt_table(L, b->spec, "", "call_options");

	if (!t)
		return;
	gc_check_keys(L, t, "call_options", call_option_keys);
	out_begin(b, "callOptions", 0);
	out_string(b, "@odata.type", "#microsoft.graph.outgoingCallOptions");
	for (int i = 0; call_option_keys[i]; i++) {
		static const char *const graph[] = {
			"hideBotAfterEscalation", "isContentSharingNotificationEnabled",
			"isDeltaRosterEnabled"
		};
		int v = opt_boolean(L, t, "call_options", call_option_keys[i]);
		if (v >= 0)
			out_boolean(b, graph[i], v);
	}
	out_end(b);
	lua_pop(L, 1);
}

/* A value of the escape hatch must survive JSON encoding unchanged, and
 * stay small: every table is visited once (shared or cyclic tables are
 * refused, so a few tables cannot expand into a huge body). */
typedef struct {
	int seen;       /* stack index of the visited set */
	int nodes;
} walk;

static void check_json_value(lua_State *L, int idx, const char *where, int depth, walk *w)
{
	char name[FIELD_MAX];
	lua_Integer n;

	luaL_checkstack(L, 8, "extra");
	idx = lua_absindex(L, idx);
	if (++w->nodes > GC_EXTRA_MAX_NODES)
		luaL_error(L, "extra: more than %d values", GC_EXTRA_MAX_NODES);
	if (depth > GC_SPEC_MAX_DEPTH)
		luaL_error(L, "%s: nested deeper than %d levels", where, GC_SPEC_MAX_DEPTH);
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		check_text(L, idx, where);
		return;
	case LUA_TBOOLEAN:
		return;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			lua_Integer v = lua_tointeger(L, idx);
			if (v > 99999999999999LL || v < -99999999999999LL)
				luaL_error(L, "%s: integer too large to encode exactly "
				           "(pass it as a string)", where);
		} else {
			lua_Number v = lua_tonumber(L, idx);
			char text[32];
			if (!isfinite(v))
				luaL_error(L, "%s: must be a finite number", where);
			/* the body carries 14 significant digits */
			snprintf(text, sizeof text, "%.14g", v);
			if (strtod(text, NULL) != v)
				luaL_error(L, "%s: %f does not survive JSON's 14 significant "
				           "digits (pass it as a string)", where, v);
		}
		return;
	case LUA_TLIGHTUSERDATA:
		lua_getfield(L, GC_STATE, "null");
		if (!lua_rawequal(L, -1, idx))
			luaL_error(L, "%s: unsupported value (light userdata)", where);
		lua_pop(L, 1);
		return;
	case LUA_TTABLE:
		break;
	default:
		luaL_error(L, "%s: unsupported value (%s)", where, luaL_typename(L, idx));
	}
	lua_pushvalue(L, idx);
	if (lua_rawget(L, w->seen) != LUA_TNIL)
		luaL_error(L, "%s: the same table appears twice (shared or cyclic)", where);
	lua_pop(L, 1);
	lua_pushvalue(L, idx);
	lua_pushboolean(L, 1);
	lua_rawset(L, w->seen);
	if (gc_is_array(L, idx, &n)) {
		for (lua_Integer i = 1; i <= n; i++) {
			path_printf(name, "%s[%d]", where, (int)i);
			lua_rawgeti(L, idx, i);
			check_json_value(L, -1, name, depth + 1, w);
			lua_pop(L, 1);
		}
		return;
	}
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: mixes array and object keys, or is a sparse array", where);
		check_text(L, -2, where);
		check_json_value(L, -1, field(name, where, lua_tostring(L, -2)), depth + 1, w);
		lua_pop(L, 1);
	}
}

static void build_extra(builder *b)
{
	lua_State *L = b->L;
	int t = opt_table(L, b->spec, "", "extra");
	walk w = { 0, 0 };

	if (!t)
		return;
	lua_newtable(L);
	w.seen = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		char name[FIELD_MAX];
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "extra: keys must be Graph property names (strings)");
		field(name, "extra", lua_tostring(L, -2));
		check_text(L, -2, name);
		check_json_value(L, -1, name, 1, &w);
		for (int i = 0; i < b->ntop; i++)
			if (strcmp(b->top[i], lua_tostring(L, -2)) == 0)
				luaL_error(L, "%s: already set from the spec; use the spec key", name);
		out_extra(b, lua_gettop(L) - 1, lua_gettop(L));
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
}

/* --- the request userdata ------------------------------------------------ */

static const char *const spec_keys[] = {
	"targets", "source", "guest", "subject", "modalities", "media", "tenant",
	"language_id", "region", "callback_uri", "chat_info", "organizer",
	"allow_conversation_without_host", "meeting_id", "passcode",
	"meeting_token", "url", "call_options", "extra", NULL
};

/* The calls collection for the client's endpoint. */
static void push_calls_path(lua_State *L, const char *endpoint, const char *app_id)
{
	if (strcmp(endpoint, "v1.0") == 0)
		lua_pushliteral(L, "/v1.0/communications/calls");
	else if (strcmp(endpoint, "beta") == 0)
		lua_pushliteral(L, "/beta/communications/calls");
	else if (strcmp(endpoint, "beta/app") == 0)
		lua_pushliteral(L, "/beta/app/calls");
	else if (strcmp(endpoint, "beta/applications") == 0)
		lua_pushfstring(L, "/beta/applications/%s/calls", app_id);
	else
		luaL_error(L, "endpoint: unknown endpoint '%s' "
		           "(v1.0, beta, beta/app, beta/applications)", endpoint);
}

/* The client's values a request is built with are arguments (app_id at 1,
 * and the default callback_uri at cb when not 0), read and checked like
 * spec strings: the C core reads no table of the client. Arguments, not a
 * table: the Lua layer passes the client's current values on every
 * request, for no allocation. */
static const char *client_string(lua_State *L, int idx, const char *name, int required)
{
	size_t len;
	const char *s;

	if (!required && lua_isnoneornil(L, idx))
		return NULL;
	s = luaL_checklstring(L, idx, &len);
	if (!text_ok(s, len))
		check_text(L, idx, name);
	if (len == 0)
		luaL_error(L, "%s: must not be empty", name);
	return s;
}

static void read_client(builder *b, int cb)
{
	lua_State *L = b->L;

	b->app_id = client_string(L, 1, "app_id", 1);
	check_guid(L, b->app_id, "app_id");
	b->callback_uri = cb ? client_string(L, cb, "callback_uri", 0) : NULL;
}

/* core.build_parts(app_id, spec) -> table: the pieces of a call operation's
 * body (answer, redirect, transfer, invite), built and checked like a
 * call's: spec.targets -> targets, spec.media -> mediaConfig,
 * spec.modalities -> requestedModalities, spec.callback_uri -> callbackUri. */
int gc_l_build_parts(lua_State *L)
{
	static const char *const keys[] = { "targets", "media", "modalities", "callback_uri", NULL };
	builder b;
	const char *cb;

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	luaL_checkstack(L, 40, "build_parts");
	b.L = L;
	b.spec = 2;
	b.out = OUT_TABLE;
	b.depth = b.ntop = 0;
	read_client(&b, 0);
	gc_check_keys(L, 2, "operation", keys);
	out_begin(&b, NULL, 0);
	if ((cb = opt_string(L, 2, "", "callback_uri", 0))) {
		check_url(L, cb, "", "callback_uri");
		out_string(&b, "callbackUri", cb);
	}
	build_targets(&b);
	build_modalities(&b);
	if (raw_field(L, 2, "media") != LUA_TNIL) {
		lua_pop(L, 1);
		build_media(&b);
	} else {
		lua_pop(L, 1);
	}
	out_end(&b);
	return 1;
}

/* core.calls_path(endpoint, app_id) -> "/v1.0/communications/calls", ... */
int gc_l_calls_path(lua_State *L)
{
	push_calls_path(L, luaL_checkstring(L, 1), luaL_checkstring(L, 2));
	return 1;
}

/* The arguments (app_id, spec, mode, callback_uri, ...) of build_request
 * and build_body: n of them are kept. */
static void check_call_args(lua_State *L, int n)
{
	const char *mode;

	luaL_checktype(L, 2, LUA_TTABLE);
	mode = luaL_checkstring(L, 3);
	luaL_argcheck(L, strcmp(mode, "call") == 0 || strcmp(mode, "join") == 0, 3,
	              "mode must be 'call' or 'join'");
	lua_settop(L, n);
	luaL_checkstack(L, 40, "build_request");
}

/* Write the body of the call (spec and mode at 2 and 3; the client's
 * values read into b). */
static void build_call(builder *b)
{
	lua_State *L = b->L;
	const char *mode = lua_tostring(L, 3), *cb;
	lua_Integer ntargets;
	int meeting;

	b->spec = 2;
	b->depth = b->ntop = 0;
	gc_check_keys(L, 2, mode, spec_keys);
	out_begin(b, NULL, 0);

	cb = opt_string(L, 2, "", "callback_uri", 0);
	if (!cb)
		cb = b->callback_uri;
	if (!cb)
		luaL_error(L, "callback_uri: required (in the spec or the client)");
	if (strlen(cb) > GC_CALLBACK_MAX)
		luaL_error(L, "callback_uri: longer than %d bytes", GC_CALLBACK_MAX);
	check_url(L, cb, "", "callback_uri");
	out_string(b, "callbackUri", cb);

	build_source(b);
	ntargets = build_targets(b);
	build_modalities(b);
	build_media(b);
	meeting = build_meeting(b);
	out_string(b, "subject", opt_string(L, 2, "", "subject", 0));
	build_call_options(b);
	build_extra(b);
	out_end(b);

	if (strcmp(mode, "join") == 0 && !meeting)
		luaL_error(L, "join needs a meeting: url, organizer + chat_info, "
		           "meeting_id or meeting_token");
	if (!meeting && ntargets == 0)
		luaL_error(L, "call needs targets, or meeting info to join a meeting");
}

/* core.build_body(app_id, spec, mode [, callback_uri]) -> table: the body build_request
 * writes, as Lua tables (the reference the specs and the fuzzer compare
 * the written JSON with). */
int gc_l_build_body(lua_State *L)
{
	builder b;

	check_call_args(L, 4);
	b.L = L;
	b.out = OUT_TABLE;
	read_client(&b, 4);
	build_call(&b);
	return 1;
}

/* core.build_request(app_id, spec, mode, callback_uri, graph_url, endpoint)
 * -> request: the client's values (callback_uri may be nil) and the spec;
 * mode "call" | "join". */
int gc_l_build_request(lua_State *L)
{
	builder b;
	const char *graph_url, *endpoint;
	size_t len;
	gc_request *req;

	check_call_args(L, 6);
	b.L = L;
	read_client(&b, 4);
	graph_url = client_string(L, 5, "graph_url", 1);
	endpoint = client_string(L, 6, "endpoint", 1);
	check_url(L, graph_url, "", "graph_url");
	b.out = OUT_JSON;
	buffer_take(&b);                /* at 7 */
	build_call(&b);

	req = lua_newuserdatauv(L, sizeof *req, UV_COUNT);
	req->method = "POST";
	luaL_setmetatable(L, GC_REQUEST_MT);

	push_calls_path(L, endpoint, b.app_id);
	lua_pushstring(L, graph_url);
	len = lua_rawlen(L, -1);
	if (len && graph_url[len - 1] == '/')
		lua_pushlstring(L, graph_url, len - 1), lua_replace(L, -2);
	lua_pushvalue(L, -2);
	lua_concat(L, 2);
	lua_setiuservalue(L, -3, UV_URL);
	lua_setiuservalue(L, -2, UV_PATH);

	lua_pushlstring(L, b.p, b.len);
	lua_setiuservalue(L, -2, UV_BODY);
	buffer_give_back(&b);
	lua_pushvalue(L, 3);
	lua_setiuservalue(L, -2, UV_KIND);
	return 1;
}

static int request_index(lua_State *L)
{
	gc_request *req = luaL_checkudata(L, 1, GC_REQUEST_MT);
	const char *k = luaL_checkstring(L, 2);

	if (strcmp(k, "method") == 0)
		lua_pushstring(L, req->method);
	else if (strcmp(k, "url") == 0)
		lua_getiuservalue(L, 1, UV_URL);
	else if (strcmp(k, "path") == 0)
		lua_getiuservalue(L, 1, UV_PATH);
	else if (strcmp(k, "body") == 0)
		lua_getiuservalue(L, 1, UV_BODY);
	else if (strcmp(k, "kind") == 0)
		lua_getiuservalue(L, 1, UV_KIND);
	else
		lua_pushnil(L);
	return 1;
}

static int request_tostring(lua_State *L)
{
	gc_request *req = luaL_checkudata(L, 1, GC_REQUEST_MT);

	lua_getiuservalue(L, 1, UV_URL);
	lua_pushfstring(L, GC_REQUEST_MT ": %s %s", req->method, lua_tostring(L, -1));
	return 1;
}

void gc_open_request(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__index", request_index },
		{ "__tostring", request_tostring },
		{ NULL, NULL }
	};

	luaL_newmetatable(L, GC_REQUEST_MT);
	luaL_setfuncs(L, meta, 0);
	lua_pop(L, 1);
}
