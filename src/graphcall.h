/* graphcall.core: internal declarations shared by the C files.
 *
 * Only luaopen_graphcall_core is exported (see GC_EXPORT); everything else is
 * built with -fvisibility=hidden. */
#ifndef GRAPHCALL_H
#define GRAPHCALL_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

#include "common/options.h"
#include "json/json.h"

#define GC_EXPORT __attribute__((visibility("default")))

#define GC_VERSION "0.1.0"

/* Metatable names: one per type, visible to users through __name. */
#define GC_REQUEST_MT "graphcall.request"
#define GC_NOTIFICATIONS_MT "graphcall.notifications"
#define GC_NOTIFICATION_MT "graphcall.notification"
#define GC_ERROR_MT "graphcall.error"
#define GC_HTTP_MT "graphcall.http"
#define GC_SERVER_MT "graphcall.server"
#define GC_VERIFIER_MT "graphcall.jwt_verifier"
#define GC_SIGNER_MT "graphcall.jwt_signer"
#define GC_REDIS_MT "graphcall.redis"
#define GC_SIGNALS_MT "graphcall.signals"

/* Limits of the notification parser (documented in the README). */
#define GC_NOTIFY_MAX_BYTES_DEFAULT (1024 * 1024)
#define GC_NOTIFY_MAX_DEPTH 32
#define GC_NOTIFY_MAX_ITEMS 1000

/* Limits of request construction. */
#define GC_SPEC_MAX_DEPTH 16
#define GC_EXTRA_MAX_NODES 10000
#define GC_URL_MAX 8192
#define GC_CALLBACK_MAX 2048

/* Nesting a Redis reply may have (hiredis itself stops at 7). */
#define GC_REDIS_MAX_DEPTH 16

/* Every module function gets the module state table as upvalue 1; it holds
 * the private lua-cjson instance ("encode", "decode") and the "null"
 * sentinel. */
#define GC_STATE lua_upvalueindex(1)

/* --- common/util.c ------------------------------------------------------------- */

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF); otherwise 0 and *bad is the offset of the first
 * bad byte. */
int gc_utf8_valid(const char *s, size_t len, size_t *bad);

/* Push a graphcall.error table {kind=..., message=...}. */
void gc_push_error(lua_State *L, const char *kind, const char *fmt, ...);

/* Return nil, err (two results) for a runtime failure. */
int gc_fail(lua_State *L, const char *kind, const char *fmt, ...);

/* 1 when the table at idx is a non-empty sequence 1..n with no other keys;
 * *n receives its length. */
int gc_is_array(lua_State *L, int idx, lua_Integer *n);

/* Join-link parsing, shared by request construction and the module. Parses
 * a Teams join URL; on success pushes a table in the spec vocabulary
 * ({chat_info=..., organizer=..., tenant=...} or {meeting_id=..., passcode=...})
 * and returns 1; on failure pushes an error message string and returns 0. */
int gc_parse_join_url(lua_State *L, const char *url, size_t len);

/* --- module registration -------------------------------------------------- */

GC_EXPORT int luaopen_graphcall_core(lua_State *L);

void gc_open_util(lua_State *L);
void gc_open_request(lua_State *L);
void gc_open_notification(lua_State *L);  /* the state table on top */
void gc_open_http(lua_State *L);
void gc_open_server(lua_State *L);
void gc_open_jwt(lua_State *L);
void gc_open_redis(lua_State *L);
void gc_open_signals(lua_State *L);

int gc_l_build_request(lua_State *L);
int gc_l_build_body(lua_State *L);
int gc_l_check_url(lua_State *L);
int gc_l_calls_path(lua_State *L);
int gc_l_build_parts(lua_State *L);
int gc_l_check_guid(lua_State *L);
int gc_l_parse_notifications(lua_State *L);
int gc_l_parse_notifications_reference(lua_State *L);  /* fuzzing only */
int gc_l_json_fields(lua_State *L);
int gc_l_parse_join_url(lua_State *L);
int gc_l_new_error(lua_State *L);
int gc_l_http(lua_State *L);
int gc_l_server(lua_State *L);
int gc_l_jwt_verifier(lua_State *L);
int gc_l_redis_connect(lua_State *L);
int gc_l_redis_sha1(lua_State *L);
int gc_l_signals(lua_State *L);
int gc_l_uuid(lua_State *L);
void gc_uuid_init(void);
int gc_l_url_encode(lua_State *L);
int gc_l_url_decode(lua_State *L);
int gc_l_http_date(lua_State *L);
int gc_l_monotonic(lua_State *L);

#endif
