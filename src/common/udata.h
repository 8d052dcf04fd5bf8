/* common/udata: how every userdata type of graphcall is registered and
 * closed, after Lua's own liolib.c.
 *
 * A type lists its methods in meth[] and its metamethods in metameth[],
 * whose "__index" entry is a placeholder (NULL function) that becomes the
 * table of meth[]:
 *
 *   static const luaL_Reg meth[] = { { "verify", v_verify }, ..., { "close", v_close },
 *                                    { NULL, NULL } };
 *   static const luaL_Reg metameth[] = { { "__index", NULL },  (placeholder)
 *                                        { "__gc", v_close }, { "__close", v_close },
 *                                        { "__tostring", v_tostring }, { NULL, NULL } };
 *   gc_register_type(L, GC_VERIFIER_MT, meth, metameth, 0);
 *
 * A type whose fields are computed (notifications) passes meth = NULL and
 * a real __index function in metameth[].
 *
 * The rules every type follows:
 *  - one idempotent function serves close, __gc and __close: it frees what
 *    the userdata owns once and marks it closed; other methods raise
 *    "<type> is closed" after it;
 *  - the userdata (the "closed box", marked closed) is made before the
 *    resource it owns, so that a failed allocation of the resource leaves
 *    nothing to leak and the collector frees whatever was made;
 *  - Lua values a userdata owns live in its user values, never in
 *    registry references. */
#ifndef GC_COMMON_UDATA_H
#define GC_COMMON_UDATA_H

#include <lua.h>
#include <lauxlib.h>

/* Register the type `name` (its metatable, registry["name"], with __name
 * = name): metameth's functions on the metatable, and, unless meth is
 * NULL, meth's in a method table that replaces the "__index" placeholder.
 * Every function gets the nup values on top of the stack as upvalues;
 * they are popped. An existing metatable of that name is filled, not
 * replaced. */
void gc_register_type(lua_State *L, const char *name, const luaL_Reg *meth,
                      const luaL_Reg *metameth, int nup);

#endif
