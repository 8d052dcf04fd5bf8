/* Teams join links, parsed with libcurl's URL API:
 *
 *   https://teams.microsoft.com/l/meetup-join/<thread>/<message>?context={"Tid":..,"Oid":..}
 *     -> chat_info + organizer (user Oid in tenant Tid) + tenant
 *   https://teams.microsoft.com/meet/<meeting id>?p=<passcode>
 *     -> meeting_id + passcode
 *
 * Each path segment and query value is percent-decoded once, so fully and
 * partially encoded links (users paste both) give the same result.
 *
 * Two phases, so that no libcurl memory is live while Lua may raise: first
 * everything libcurl gives is copied into a scratch buffer on the Lua heap
 * and freed; then the Lua table is built from the scratch buffer. */
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "graphcall.h"

static const char *const teams_hosts[] = {
	"teams.microsoft.com", "gov.teams.microsoft.us", "dod.teams.microsoft.us", NULL
};

typedef struct {
	const char *s;
	size_t len;
} text;

typedef struct {
	char *scratch, *end;        /* the scratch buffer, and its free part */
	int classic;                /* meetup-join (1) or meet (0) */
	text thread, message, context, meeting_id, passcode;
} link;

/* Printable UTF-8 without control characters. */
static int clean(const char *s, size_t len)
{
	if (len == 0 || !gc_utf8_valid(s, len, NULL))
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Percent-decode s[0..len) into the scratch buffer; 0 when it is empty or
 * does not decode to clean text. */
static int decode(link *k, const char *s, size_t len, text *out)
{
	int outlen = 0;
	char *dec;
	int ok;

	if (len == 0)
		return 0;
	dec = curl_easy_unescape(NULL, s, (int)len, &outlen);
	ok = dec && clean(dec, (size_t)outlen);
	if (ok) {
		/* decoding never lengthens, and the buffer holds five URL lengths */
		memcpy(k->end, dec, (size_t)outlen);
		out->s = k->end;
		out->len = (size_t)outlen;
		k->end += outlen;
	}
	curl_free(dec);
	return ok;
}

/* Find name=value in a raw query string; the value (possibly empty) or NULL. */
static const char *query_param(const char *q, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);

	while (q && *q) {
		const char *end = strchr(q, '&');
		size_t plen = end ? (size_t)(end - q) : strlen(q);
		if (plen > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
			*vlen = plen - nlen - 1;
			return q + nlen + 1;
		}
		q = end ? end + 1 : NULL;
	}
	return NULL;
}

/* The next '/'-separated segment of *p (advancing it); length in *len. */
static const char *next_segment(const char **p, size_t *len)
{
	const char *s = *p, *end;

	if (*s != '/')
		return NULL;
	s++;
	end = strchr(s, '/');
	*len = end ? (size_t)(end - s) : strlen(s);
	*p = s + *len;
	return *len ? s : NULL;
}

static int is_segment(const char *seg, size_t len, const char *word)
{
	return seg && len == strlen(word) && strncmp(seg, word, len) == 0;
}

/* Phase 1: libcurl only. NULL, or what is wrong. */
static const char *split(CURLU *u, const char *url, link *k)
{
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *user = NULL,
	     *port = NULL;
	const char *err = NULL, *p, *seg, *raw;
	size_t len, rawlen;
	int known = 0;

	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		return "not a valid URL";
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	for (int i = 0; host && teams_hosts[i]; i++)
		known |= strcasecmp(host, teams_hosts[i]) == 0;
	if (!scheme || strcmp(scheme, "https") != 0)
		err = "not an https link";
	else if (!known)
		err = "not a Teams link (host must be teams.microsoft.com)";
	else if (user || port)
		err = "a Teams link has no user name or port";
	if (err)
		goto done;

	p = path ? path : "";
	seg = next_segment(&p, &len);
	if (is_segment(seg, len, "l") && (seg = next_segment(&p, &len)) &&
	    is_segment(seg, len, "meetup-join")) {
		k->classic = 1;
		if (!(seg = next_segment(&p, &len)) || !decode(k, seg, len, &k->thread))
			err = "meetup-join link has no thread id";
		else if (!(seg = next_segment(&p, &len)) || !decode(k, seg, len, &k->message))
			err = "meetup-join link has no message id";
		else if (*p && strcmp(p, "/") != 0)
			err = "meetup-join link has extra path segments";
		else if (!(raw = query_param(query, "context", &rawlen)))
			err = "meetup-join link has no context parameter";
		else if (!decode(k, raw, rawlen, &k->context))
			err = "context is not valid percent-encoded UTF-8";
	} else if (is_segment(seg, len, "meet")) {
		k->classic = 0;
		if (!(seg = next_segment(&p, &len)) || !decode(k, seg, len, &k->meeting_id) ||
		    (*p && strcmp(p, "/") != 0))
			err = "meet link has no meeting id";
		else if ((raw = query_param(query, "p", &rawlen)) && rawlen > 0 &&
		         !decode(k, raw, rawlen, &k->passcode))
			err = "meet link has an invalid passcode";
	} else {
		err = "not a meeting join link (expected /l/meetup-join/... or /meet/...)";
	}
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_free(port);
	return err;
}

static void set_text(lua_State *L, int t, const char *key, text v)
{
	if (v.s) {
		lua_pushlstring(L, v.s, v.len);
		lua_setfield(L, t, key);
	}
}

/* Phase 2: the Lua table. NULL, or what is wrong with the context. */
static const char *build(lua_State *L, link *k)
{
	int t, ctx;

	lua_createtable(L, 0, 4);
	t = lua_gettop(L);
	if (!k->classic) {
		lua_pushliteral(L, "meeting_id");
		lua_setfield(L, t, "kind");
		set_text(L, t, "meeting_id", k->meeting_id);
		set_text(L, t, "passcode", k->passcode);
		return NULL;
	}
	lua_pushliteral(L, "meetup_join");
	lua_setfield(L, t, "kind");
	lua_createtable(L, 0, 3);
	set_text(L, t + 1, "thread_id", k->thread);
	set_text(L, t + 1, "message_id", k->message);

	lua_pushlstring(L, k->context.s, k->context.len);
	if (!gc_json_call(L, "decode") || !lua_istable(L, -1))
		return "context is not a JSON object";
	ctx = lua_gettop(L);
	if (lua_getfield(L, ctx, "Tid") != LUA_TSTRING || !clean(lua_tostring(L, -1), lua_rawlen(L, -1)))
		return "context has no tenant id (Tid)";
	if (lua_getfield(L, ctx, "Oid") != LUA_TSTRING || !clean(lua_tostring(L, -1), lua_rawlen(L, -1)))
		return "context has no organizer id (Oid)";
	lua_createtable(L, 0, 3);                   /* organizer */
	lua_pushliteral(L, "user");
	lua_setfield(L, -2, "type");
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "id");
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "tenant");
	lua_setfield(L, t, "organizer");
	lua_pop(L, 1);                              /* Oid */
	lua_setfield(L, t, "tenant");               /* Tid */

	/* A channel meeting's context names the reply chain. */
	switch (lua_getfield(L, ctx, "MessageId")) {
	case LUA_TNIL:
		lua_pop(L, 1);
		break;
	case LUA_TSTRING:
		if (!clean(lua_tostring(L, -1), lua_rawlen(L, -1)))
			return "context has an invalid MessageId";
		lua_setfield(L, t + 1, "reply_chain_message_id");
		break;
	default:
		return "context has an invalid MessageId";
	}
	lua_settop(L, t + 1);
	lua_setfield(L, t, "chat_info");
	return NULL;
}

int gc_parse_join_url(lua_State *L, const char *url, size_t len)
{
	int top = lua_gettop(L);
	const char *err;
	link k;
	CURLU *u;

	if (len > GC_URL_MAX || strlen(url) != len || !clean(url, len)) {
		lua_pushliteral(L, "not a valid URL");
		return 0;
	}
	memset(&k, 0, sizeof k);
	k.scratch = k.end = lua_newuserdatauv(L, 5 * len + 16, 0);
	if (!(u = curl_url()))
		return luaL_error(L, "graphcall: out of memory");
	err = split(u, url, &k);
	curl_url_cleanup(u);
	if (!err)
		err = build(L, &k);
	if (err) {
		lua_settop(L, top);
		lua_pushstring(L, err);
		return 0;
	}
	lua_replace(L, top + 1); /* the table, over the scratch buffer */
	lua_settop(L, top + 1);
	return 1;
}

/* core.parse_join_url(url) -> table | nil, err */
int gc_l_parse_join_url(lua_State *L)
{
	size_t len;
	const char *url = luaL_checklstring(L, 1, &len);

	if (!gc_parse_join_url(L, url, len))
		return gc_fail(L, "bad_join_url", "join link: %s", lua_tostring(L, -1));
	return 1;
}
