/* json/scanner: the reusable simdjson scanner of a module state (json.h).
 * A userdata owns the gc_jscan (json/scan.h), so a scanner lost to an
 * error is freed by the collector. */
#include "graphcall.h"
#include "common/udata.h"
#include "json/scan.h"

#define GC_SCANNER_MT "graphcall.json_scanner"

/* Bodies up to this size reuse the state's scanner, whose buffers grow to
 * the largest of them; a larger body gets a scanner of its own, freed after
 * the parse. */
#define SCANNER_KEEP_BYTES (64 * 1024)

typedef struct {
	gc_jscan *scan;          /* NULL once closed */
} scanner;

static const char scanner_key = 's';   /* its address: the scanner's key in the state */

/* __gc, __close: free the scanner. Idempotent. */
static int scanner_close(lua_State *L)
{
	scanner *s = luaL_checkudata(L, 1, GC_SCANNER_MT);

	if (s->scan) {
		gc_jscan_free(s->scan);
		s->scan = NULL;
	}
	return 0;
}

gc_jscan *gc_scanner_take(lua_State *L, int state, size_t len)
{
	scanner *s;

	if (len <= SCANNER_KEEP_BYTES) {
		if (lua_rawgetp(L, state, &scanner_key) == LUA_TUSERDATA) {
			lua_pushboolean(L, 0);
			lua_rawsetp(L, state, &scanner_key);
			s = lua_touserdata(L, -1);
			if (s->scan)
				return s->scan;
		}
		lua_pop(L, 1);
	}
	s = lua_newuserdatauv(L, sizeof *s, 0);  /* the box before the scanner */
	s->scan = NULL;
	luaL_setmetatable(L, GC_SCANNER_MT);
	s->scan = gc_jscan_new(GC_NOTIFY_MAX_DEPTH);
	return s->scan;
}

void gc_scanner_give_back(lua_State *L, int state, int idx)
{
	scanner *s = lua_touserdata(L, idx);

	if (s->scan && gc_jscan_capacity(s->scan) <= SCANNER_KEEP_BYTES) {
		lua_pushvalue(L, idx);
		lua_rawsetp(L, state, &scanner_key);
	} else if (s->scan) {
		gc_jscan_free(s->scan);
		s->scan = NULL;
	}
}

void gc_open_scanner(lua_State *L)
{
	static const luaL_Reg metameth[] = {
		{ "__gc", scanner_close },
		{ "__close", scanner_close },
		{ NULL, NULL }
	};

	gc_register_type(L, GC_SCANNER_MT, NULL, metameth, 0);
}
