/* common/udata: userdata types registered as liolib.c does (udata.h). */
#include "common/udata.h"

void gc_register_type(lua_State *L, const char *name, const luaL_Reg *meth,
                      const luaL_Reg *metameth, int nup)
{
	int mt;

	luaL_checkstack(L, nup + 3, name);
	luaL_newmetatable(L, name);
	mt = lua_gettop(L);
	for (int i = 0; i < nup; i++)
		lua_pushvalue(L, mt - nup);
	luaL_setfuncs(L, metameth, nup);  /* "__index" = false (placeholder) */
	if (meth) {
		int n = 0;

		while (meth[n].name)
			n++;
		lua_createtable(L, 0, n);
		for (int i = 0; i < nup; i++)
			lua_pushvalue(L, mt - nup);
		luaL_setfuncs(L, meth, nup);
		lua_setfield(L, mt, "__index");
	}
	lua_settop(L, mt - nup - 1);
}
