/* graphcall.core: the C half of graphcall. The Lua layer (lua/graphcall)
 * is the public API; this module gives it the userdata types. */
#include <curl/curl.h>

#include "graphcall.h"

GC_EXPORT int luaopen_graphcall_core(lua_State *L)
{
	static int curl_ready;
	static const luaL_Reg funcs[] = {
		{ "build_request", gc_l_build_request },
		{ "build_body", gc_l_build_body },
		{ "check_url", gc_l_check_url },
		{ "calls_path", gc_l_calls_path },
		{ "build_parts", gc_l_build_parts },
		{ "check_guid", gc_l_check_guid },
		{ "parse_notifications", gc_l_parse_notifications },
		{ "json_fields", gc_l_json_fields },
		{ "parse_join_url", gc_l_parse_join_url },
		{ "new_error", gc_l_new_error },
		{ "http", gc_l_http },
		{ "server", gc_l_server },
		{ "jwt_verifier", gc_l_jwt_verifier },
		{ "redis_connect", gc_l_redis_connect },
		{ "redis_sha1", gc_l_redis_sha1 },
		{ "signals", gc_l_signals },
		{ "uuid", gc_l_uuid },
		{ "url_encode", gc_l_url_encode },
		{ "url_decode", gc_l_url_decode },
		{ "http_date", gc_l_http_date },
		{ "monotonic", gc_l_monotonic },
		{ NULL, NULL }
	};

	/* Not thread-safe before libcurl 7.84; Lua states load modules from
	 * one thread in practice. Never cleaned up: other states may use it. */
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return luaL_error(L, "graphcall.core: curl_global_init failed");
		gc_uuid_init();
		curl_ready = 1;
	}
	gc_open_util(L);
	gc_open_request(L);
	gc_open_http(L);
	gc_open_server(L);
	gc_open_jwt(L);
	gc_open_redis(L);
	gc_open_signals(L);
	gc_open_scanner(L);

	luaL_newlibtable(L, funcs);
	gc_json_push_state(L, GC_NOTIFY_MAX_DEPTH, GC_SPEC_MAX_DEPTH + 8);
	gc_open_notification(L);         /* its metamethods share the state */
	lua_getfield(L, -1, "null");
	lua_setfield(L, -3, "null");
	luaL_setfuncs(L, funcs, 1);
	lua_pushliteral(L, GC_VERSION);
	lua_setfield(L, -2, "_VERSION");
	/* curl_version_info, not curl_version: the latter initialises LDAP and
	 * SASL, which keep allocations until exit. */
	lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
	lua_setfield(L, -2, "curl_version");
	return 1;
}
