/* Shared host for the libFuzzer harnesses in spec/fuzz/: one Lua state per
 * process, with graphcall.core linked in (built with ASan + UBSan) and
 * registered in package.preload (and graphcall.testing, the test-only
 * module), so require "graphcall.core" and the Lua
 * layer (GC_FUZZ_ROOT/lua) see the sanitized module.
 *
 * Every harness calls fz_begin() before an input and fz_end() after it:
 * the Lua stack must be back where it started (a leak of stack slots is a
 * bug); every FZ_GC_EVERY inputs (GC_FUZZ_GC_EVERY in the environment) a
 * full collection runs; and every FZ_HEAP_CHECK_EVERY inputs the Lua heap
 * must be within FZ_HEAP_MAX_KB of where it was (a growing registry or
 * cache is a bug).
 *
 * Leaks: libFuzzer runs LSan after an input that made more mallocs than
 * frees, and gives that up after 1000 such inputs; LSan runs again at
 * exit, where a leak shows its stack but not its input. A full collection
 * after every input (the default) returns the Lua heap to balance, so the
 * per-input check stays on and names the leaking input; it costs 10-40 %
 * of the speed of the fast harnesses (GC_FUZZ_GC_EVERY=256 to trade).
 *
 * An oracle failure (a function that must not raise raised, a result of the
 * wrong shape) is reported with fz_fail(), which aborts, so libFuzzer saves
 * the input as a crash. GC_FUZZ_VERBOSE=1 prints what every input gave. */
#ifndef GC_FUZZ_H
#define GC_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef GC_FUZZ_ROOT
#error "build with -DGC_FUZZ_ROOT=\"/path/to/the/project\""
#endif

/* Each harness uses only some of the helpers below. */
#pragma clang diagnostic ignored "-Wunused-function"

#define FZ_GC_EVERY 1
#define FZ_HEAP_CHECK_EVERY 4096
#define FZ_HEAP_MAX_KB (64 * 1024)

int luaopen_graphcall_core(lua_State *L);
int luaopen_graphcall_testing(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static lua_State *fz_L;
static unsigned long fz_inputs;
static int fz_base;
static int fz_verbose;

static void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("\n==graphcall-fuzz== ORACLE FAILURE: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void fz_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fz_log(const char *fmt, ...)
{
	va_list ap;

	if (!fz_verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Run a Lua chunk at set-up time; raise nothing, abort on error. Results
 * are left on the stack (nresults of them). */
static void fz_run(lua_State *L, const char *name, const char *src, int nargs, int nresults)
{
	if (luaL_loadbuffer(L, src, strlen(src), name) != LUA_OK)
		fz_fail("set-up chunk %s: %s", name, lua_tostring(L, -1));
	if (nargs)
		lua_insert(L, -(nargs + 1));
	if (lua_pcall(L, nargs, nresults, 0) != LUA_OK)
		fz_fail("set-up chunk %s: %s", name, lua_tostring(L, -1));
}

/* Keep the value on top of the stack in the registry; pops it. */
static int fz_ref(lua_State *L)
{
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void fz_push(lua_State *L, int ref)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
}

/* The Lua state, created once: standard libraries, package.path on the
 * project's Lua layer, the sanitized module preloaded, and the system
 * cpath (lua-cjson) without "./?.so". Leaves require("graphcall.core")
 * in the registry as FZ_CORE. */
static int fz_core_ref = LUA_NOREF;

static lua_State *fz_state(void)
{
	lua_State *L;

	if (fz_L)
		return fz_L;
	fz_verbose = getenv("GC_FUZZ_VERBOSE") && getenv("GC_FUZZ_VERBOSE")[0] == '1';
	L = luaL_newstate();
	if (!L)
		fz_fail("luaL_newstate failed");
	luaL_openlibs(L);
	lua_pushstring(L, GC_FUZZ_ROOT);
	lua_pushcfunction(L, luaopen_graphcall_core);
	lua_pushcfunction(L, luaopen_graphcall_testing);
	fz_run(L, "=fuzz-setup",
	       "local root, open, open_testing = ...\n"
	       "package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua'\n"
	       "package.cpath = package.cpath:gsub('%./%?%.so;?', ''):gsub(';$', '')\n"
	       "package.preload['graphcall.core'] = open\n"
	       "package.preload['graphcall.testing'] = open_testing\n"
	       "return require 'graphcall.core'\n",
	       3, 1);
	fz_core_ref = fz_ref(L);
	fz_L = L;
	return L;
}

/* Push core[name]. */
static void fz_core_field(lua_State *L, const char *name)
{
	fz_push(L, fz_core_ref);
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
}

static void fz_begin(lua_State *L)
{
	fz_base = lua_gettop(L);
}

static void fz_end(lua_State *L)
{
	static int heap_base = -1;
	static unsigned long every;

	if (!every) {
		const char *e = getenv("GC_FUZZ_GC_EVERY");
		every = e && atol(e) > 0 ? (unsigned long)atol(e) : FZ_GC_EVERY;
	}
	if (lua_gettop(L) != fz_base)
		fz_fail("the Lua stack is at %d after the input, was %d", lua_gettop(L), fz_base);
	fz_inputs++;
	if (fz_inputs % every == 0)
		lua_gc(L, LUA_GCCOLLECT);
	if (fz_inputs % FZ_HEAP_CHECK_EVERY == 0) {
		int kb;
		lua_gc(L, LUA_GCCOLLECT);
		lua_gc(L, LUA_GCCOLLECT);
		kb = lua_gc(L, LUA_GCCOUNT);
		if (heap_base < 0)
			heap_base = kb;
		if (kb - heap_base > FZ_HEAP_MAX_KB)
			fz_fail("the Lua heap grew from %d KB to %d KB after %lu inputs",
			        heap_base, kb, fz_inputs);
	}
}

/* Coverage of Lua code for libFuzzer: a line hook counts (function, line,
 * previous line) in libFuzzer's extra counters, so inputs that take new
 * paths through Lua code (graphcall.transport) are kept like inputs that
 * take new paths through C. Only the C of the module is instrumented by
 * the compiler; lua5.4 and lua-cjson are the system's. */
#define FZ_LUA_COUNTERS 8192

__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t fz_lua_counters[FZ_LUA_COUNTERS];
static uintptr_t fz_lua_prev;

static void fz_line_hook(lua_State *L, lua_Debug *ar)
{
	uintptr_t cur;

	if (!lua_getinfo(L, "S", ar))
		return;
	cur = (uintptr_t)ar->source * 31u ^ (uintptr_t)ar->currentline * 2654435761u;
	fz_lua_counters[(cur ^ fz_lua_prev >> 1) % FZ_LUA_COUNTERS]++;
	fz_lua_prev = cur;
}

static void fz_lua_coverage(lua_State *L, int on)
{
	fz_lua_prev = 0;
	lua_sethook(L, on ? fz_line_hook : NULL, on ? LUA_MASKLINE : 0, 0);
}

/* lua_pcall with a traceback; returns the status. */
static int fz_traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static int fz_pcall(lua_State *L, int nargs, int nresults)
{
	int h = lua_gettop(L) - nargs, status;

	lua_pushcfunction(L, fz_traceback);
	lua_insert(L, h);
	status = lua_pcall(L, nargs, nresults, h);
	lua_remove(L, h);
	return status;
}

/* 1 when the value at idx is a table with metatable __name name. */
static int fz_is_type(lua_State *L, int idx, const char *name)
{
	int ok;

	if (!lua_getmetatable(L, idx))
		return 0;
	lua_getfield(L, -1, "__name");
	ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0;
	lua_pop(L, 2);
	return ok;
}

/* Check that idx holds a graphcall.error whose kind is `kind` (or any string
 * when kind is NULL) and whose message is a string. */
static void fz_check_error(lua_State *L, int idx, const char *kind, const char *where)
{
	idx = lua_absindex(L, idx);
	if (!lua_istable(L, idx) || !fz_is_type(L, idx, "graphcall.error"))
		fz_fail("%s: the error is a %s, not a graphcall.error", where, luaL_typename(L, idx));
	lua_getfield(L, idx, "kind");
	if (lua_type(L, -1) != LUA_TSTRING || (kind && strcmp(lua_tostring(L, -1), kind) != 0))
		fz_fail("%s: error kind is %s, expected %s", where,
		        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1),
		        kind ? kind : "a string");
	lua_getfield(L, idx, "message");
	if (lua_type(L, -1) != LUA_TSTRING)
		fz_fail("%s: error message is a %s", where, luaL_typename(L, -1));
	fz_log("%s: %s: %s", where, lua_tostring(L, -2), lua_tostring(L, -1));
	lua_pop(L, 2);
}

#endif
