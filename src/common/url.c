/* Text codecs of HTTP that libcurl provides: percent-encoding of form and
 * query values, and the three date formats (Retry-After). */
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "graphcall.h"

/* core.url_encode(s) -> s percent-encoded for a form or a query
 * (application/x-www-form-urlencoded values: the token request). */
int gc_l_url_encode(lua_State *L)
{
	size_t len, n;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *out, *enc;

	luaL_argcheck(L, len <= 65536, 1, "longer than 64 KiB");
	/* Room first: no libcurl memory is live while Lua may raise. */
	out = luaL_buffinitsize(L, &b, 3 * len + 1);
	if (!(enc = curl_easy_escape(NULL, s, (int)len)))
		return luaL_error(L, "graphcall.url_encode: out of memory");
	n = strlen(enc);
	memcpy(out, enc, n);
	curl_free(enc);
	luaL_pushresultsize(&b, n);
	return 1;
}

/* core.url_decode(s) -> s with %XX decoded and '+' as a space (a form
 * value), or nil when the result is not clean UTF-8 text. */
int gc_l_url_decode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *out, *dec;
	int outlen = 0;

	luaL_argcheck(L, len <= 65536, 1, "longer than 64 KiB");
	if (len == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	out = luaL_buffinitsize(L, &b, len); /* decoding never lengthens */
	for (size_t i = 0; i < len; i++) /* '+' is a space, "%2B" a plus */
		out[i] = s[i] == '+' ? ' ' : s[i];
	if (!(dec = curl_easy_unescape(NULL, out, (int)len, &outlen)))
		return luaL_error(L, "graphcall.url_decode: out of memory");
	memcpy(out, dec, (size_t)outlen);
	curl_free(dec);
	if (!gc_utf8_valid(out, (size_t)outlen, NULL) || memchr(out, 0, (size_t)outlen)) {
		lua_pushnil(L);
		return 1;
	}
	luaL_pushresultsize(&b, (size_t)outlen);
	return 1;
}

/* core.http_date(s) -> seconds since the epoch, or nil: the three date
 * formats of HTTP (IMF-fixdate, RFC 850, asctime), e.g. in Retry-After. */
int gc_l_http_date(lua_State *L)
{
	const char *s = luaL_checkstring(L, 1);
	time_t t = curl_getdate(s, NULL);

	if (t == -1)
		lua_pushnil(L);
	else
		lua_pushinteger(L, (lua_Integer)t);
	return 1;
}
