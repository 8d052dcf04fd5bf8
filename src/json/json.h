/* json/json.h: the JSON seam of the module, as C sees it. Every JSON text
 * the C core reads or writes goes through here (or through json/scan.h,
 * the simdjson pass these functions use):
 *
 *   cjson.c    the module's private lua-cjson instance (decode, encode,
 *              null) and calls of it from C
 *   scanner.c  the reusable simdjson scanner userdata
 *   object.c   untrusted JSON objects decoded strictly (JWT header,
 *              claims, JWKS): one object, unique member names
 *   fields.c   core.json_fields: a few members of a Graph answer
 *
 * `state` is the stack index (or upvalue pseudo-index) of a module state
 * table made by gc_json_push_state: module functions have it as GC_STATE,
 * methods of userdata keep it in a user value. Nothing here raises for bad
 * data; out of memory raises, as any Lua allocation does. */
#ifndef GC_JSON_JSON_H
#define GC_JSON_JSON_H

#include <stddef.h>

#include <lua.h>

struct gc_jscan;

/* Push a new module state table holding a private lua-cjson instance
 * configured for untrusted input (bounded depth, no NaN/Infinity/hex
 * numbers; encoding with 14 significant digits): "encode", "decode",
 * "null". Other users of cjson keep their own settings. */
void gc_json_push_state(lua_State *L, int decode_depth, int encode_depth);

/* Call the cjson function `name` ("encode"/"decode") of the state at
 * `state` on the value at the top of the stack (popped). Pushes the result
 * and returns 1, or pushes cjson's error message and returns 0. */
int gc_json_call_at(lua_State *L, int state, const char *name);

/* gc_json_call_at with the module state upvalue (GC_STATE). */
int gc_json_call(lua_State *L, const char *name);

/* The state's reusable simdjson scanner, for a body of len bytes: pushes
 * its holder and returns the scanner (NULL: out of memory; the holder is
 * pushed anyway). It is taken out of the state while in use, so that a
 * parse run by a finalizer in the middle of this one makes its own, and an
 * error thrown midway only loses it to the collector; a body over 64 KiB
 * gets a scanner of its own, freed after use. */
struct gc_jscan *gc_scanner_take(lua_State *L, int state, size_t len);

/* Give the scanner whose holder is at idx back to the state (or free it,
 * when its buffers grew past 64 KiB). */
void gc_scanner_give_back(lua_State *L, int state, int idx);

/* Decode the JSON text at idx, which must be one JSON object with unique
 * member names at every level (a duplicate is how one signed claim is read
 * two ways), in valid UTF-8: push the table and return 1, or push nothing
 * and return 0. */
int gc_json_decode_object(lua_State *L, int state, int idx);

/* Register the scanner's metatable. */
void gc_open_scanner(lua_State *L);

#endif
