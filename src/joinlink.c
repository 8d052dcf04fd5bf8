/* Teams join links, parsed with libcurl's URL API:
 *
 *   https://teams.microsoft.com/l/meetup-join/<thread>/<message>?context={"Tid":..,"Oid":..}
 *     -> chat_info + organizer (user Oid in tenant Tid) + tenant
 *   https://teams.microsoft.com/meet/<meeting id>?p=<passcode>
 *     -> meeting_id + passcode
 *
 * Each path segment and query value is percent-decoded once, so fully and
 * partially encoded links (users paste both) give the same result. */
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "graphcall.h"

static const char *const teams_hosts[] = {
	"teams.microsoft.com", "gov.teams.microsoft.us", "dod.teams.microsoft.us", NULL
};

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

/* Percent-decode s[0..len) and push it; 0 (nothing pushed) when it does not
 * decode to clean text. */
static int push_decoded(lua_State *L, const char *s, size_t len)
{
	int outlen = 0;
	char *out = curl_easy_unescape(NULL, s, (int)len, &outlen);
	int ok = out && clean(out, (size_t)outlen);

	if (ok)
		lua_pushlstring(L, out, (size_t)outlen);
	curl_free(out);
	return ok;
}

/* Find name=value in a raw query string; pointer to the value or NULL. */
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

/* Decode the context JSON and fill the classic link's table at t. */
static const char *classic_context(lua_State *L, int t, const char *raw, size_t len)
{
	int ctx;

	if (!push_decoded(L, raw, len))
		return "context is not valid percent-encoded UTF-8";
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
	lua_getfield(L, t, "chat_info");
	switch (lua_getfield(L, ctx, "MessageId")) {
	case LUA_TNIL:
		lua_pop(L, 1);
		break;
	case LUA_TSTRING:
		if (!clean(lua_tostring(L, -1), lua_rawlen(L, -1)))
			return "context has an invalid MessageId";
		lua_setfield(L, -2, "reply_chain_message_id");
		break;
	default:
		return "context has an invalid MessageId";
	}
	lua_settop(L, t);
	return NULL;
}

static const char *parse(lua_State *L, CURLU *u, const char *url)
{
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL;
	const char *err = NULL, *p, *seg, *raw;
	size_t len, rawlen;
	int known = 0, t;

	if (strlen(url) > GC_URL_MAX || !clean(url, strlen(url)))
		return "not a valid URL";
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		return "not a valid URL";
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	if (!scheme || strcmp(scheme, "https") != 0) {
		err = "not an https link";
		goto done;
	}
	for (int i = 0; host && teams_hosts[i]; i++)
		known |= strcasecmp(host, teams_hosts[i]) == 0;
	if (!known) {
		err = "not a Teams link (host must be teams.microsoft.com)";
		goto done;
	}

	lua_createtable(L, 0, 4);
	t = lua_gettop(L);
	p = path ? path : "";
	seg = next_segment(&p, &len);
	if (seg && len == 1 && seg[0] == 'l' && (seg = next_segment(&p, &len)) &&
	    len == 11 && strncmp(seg, "meetup-join", 11) == 0) {
		lua_pushliteral(L, "meetup_join");
		lua_setfield(L, t, "kind");
		lua_createtable(L, 0, 3);
		if (!(seg = next_segment(&p, &len)) || !push_decoded(L, seg, len)) {
			err = "meetup-join link has no thread id";
			goto done;
		}
		lua_setfield(L, -2, "thread_id");
		if (!(seg = next_segment(&p, &len)) || !push_decoded(L, seg, len)) {
			err = "meetup-join link has no message id";
			goto done;
		}
		lua_setfield(L, -2, "message_id");
		lua_setfield(L, t, "chat_info");
		if (*p && strcmp(p, "/") != 0) {
			err = "meetup-join link has extra path segments";
			goto done;
		}
		if (!(raw = query_param(query, "context", &rawlen))) {
			err = "meetup-join link has no context parameter";
			goto done;
		}
		err = classic_context(L, t, raw, rawlen);
	} else if (seg && len == 4 && strncmp(seg, "meet", 4) == 0) {
		lua_pushliteral(L, "meeting_id");
		lua_setfield(L, t, "kind");
		if (!(seg = next_segment(&p, &len)) || !push_decoded(L, seg, len) || *p) {
			err = "meet link has no meeting id";
			goto done;
		}
		lua_setfield(L, t, "meeting_id");
		if ((raw = query_param(query, "p", &rawlen))) {
			if (!push_decoded(L, raw, rawlen)) {
				err = "meet link has an invalid passcode";
				goto done;
			}
			lua_setfield(L, t, "passcode");
		}
	} else {
		err = "not a meeting join link (expected /l/meetup-join/... or /meet/...)";
	}
	if (!err)
		lua_settop(L, t);
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	return err;
}

int gc_parse_join_url(lua_State *L, const char *url)
{
	int top = lua_gettop(L);
	CURLU *u = curl_url();
	const char *err = u ? parse(L, u, url) : "out of memory";

	curl_url_cleanup(u);
	if (err) {
		lua_settop(L, top);
		lua_pushstring(L, err);
		return 0;
	}
	return 1;
}

/* core.parse_join_url(url) -> table | nil, err */
int gc_l_parse_join_url(lua_State *L)
{
	const char *url = luaL_checkstring(L, 1);

	if (!gc_parse_join_url(L, url))
		return gc_fail(L, "bad_join_url", "join link: %s", lua_tostring(L, -1));
	return 1;
}
