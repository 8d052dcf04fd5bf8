/* graphcall.signals: process signals as a descriptor the event loop waits
 * on (signalfd), so that SIGTERM can start a graceful hand-off from the
 * loop, in Lua, instead of in an asynchronous handler where no Lua may run.
 *
 *   local s = core.signals { "TERM", "INT" }  -- blocks them, opens the fd
 *   s:fd()      -- readable when one is pending
 *   s:read()    -- { "TERM", ... }: the pending ones (each standard signal
 *                  is pending once at most, read in signal-number order)
 *   s:close()   -- closes the fd and unblocks the signals it blocked
 *
 * The signals are blocked in the calling thread (sigprocmask), which is
 * how signalfd must be used: a blocked signal stays pending until read.
 * A signal that was already blocked before stays blocked after close. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/udata.h"
#include "graphcall.h"

#define WHERE "graphcall.signals"

struct sbox {
	int fd;          /* -1 once closed */
	sigset_t added;  /* the signals this handle blocked (to unblock on close) */
};

static const struct {
	const char *name;
	int sig;
} NAMES[] = {
	{ "TERM", SIGTERM }, { "INT", SIGINT }, { "HUP", SIGHUP },
	{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "QUIT", SIGQUIT },
};
#define NNAMES (sizeof NAMES / sizeof NAMES[0])

static const char *sig_name(int sig)
{
	for (size_t i = 0; i < NNAMES; i++)
		if (NAMES[i].sig == sig)
			return NAMES[i].name;
	return "?";
}

static struct sbox *check_open(lua_State *L)
{
	struct sbox *b = luaL_checkudata(L, 1, GC_SIGNALS_MT);

	if (b->fd < 0)
		luaL_error(L, WHERE ": the handle is closed");
	return b;
}

/* core.signals { "TERM", ... } -> handle; raises on an unknown name or when
 * the kernel refuses (no descriptor left). */
int gc_l_signals(lua_State *L)
{
	sigset_t want, old;
	struct sbox *b;
	lua_Integer n;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = luaL_len(L, 1);
	if (n < 1 || n > (lua_Integer)NNAMES)
		return luaL_error(L, WHERE ": expected a list of 1 to %d signal names", (int)NNAMES);
	sigemptyset(&want);
	for (lua_Integer i = 1; i <= n; i++) {
		const char *name;
		size_t k;

		lua_rawgeti(L, 1, i);
		name = lua_tostring(L, -1);
		if (lua_type(L, -1) != LUA_TSTRING)
			return luaL_error(L, WHERE ": signal %d: expected a name such as \"TERM\"", (int)i);
		for (k = 0; k < NNAMES && strcmp(NAMES[k].name, name) != 0; k++)
			;
		if (k == NNAMES)
			return luaL_error(L, WHERE ": unknown signal '%s' (TERM, INT, HUP, USR1, USR2, QUIT)",
			                  name);
		sigaddset(&want, NAMES[k].sig);
		lua_pop(L, 1);
	}
	/* the closed box first: a failure below leaves nothing to leak */
	b = lua_newuserdatauv(L, sizeof *b, 0);
	b->fd = -1;
	sigemptyset(&b->added);
	luaL_setmetatable(L, GC_SIGNALS_MT);
	if (sigprocmask(SIG_BLOCK, &want, &old) != 0)
		return luaL_error(L, WHERE ": sigprocmask: %s", strerror(errno));
	for (size_t k = 0; k < NNAMES; k++)
		if (sigismember(&want, NAMES[k].sig) && !sigismember(&old, NAMES[k].sig))
			sigaddset(&b->added, NAMES[k].sig);
	b->fd = signalfd(-1, &want, SFD_NONBLOCK | SFD_CLOEXEC);
	if (b->fd < 0) {
		int e = errno;

		sigprocmask(SIG_UNBLOCK, &b->added, NULL);
		sigemptyset(&b->added);
		return luaL_error(L, WHERE ": signalfd: %s", strerror(e));
	}
	return 1;
}

static int s_fd(lua_State *L)
{
	lua_pushinteger(L, check_open(L)->fd);
	return 1;
}

/* s:read() -> the list of signals pending (empty when none) */
static int s_read(lua_State *L)
{
	struct sbox *b = check_open(L);
	struct signalfd_siginfo si[8];
	lua_Integer n = 0;

	lua_newtable(L);
	for (;;) {
		ssize_t got = read(b->fd, si, sizeof si);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		for (size_t i = 0; i < (size_t)got / sizeof si[0]; i++) {
			lua_pushstring(L, sig_name((int)si[i].ssi_signo));
			lua_rawseti(L, -2, ++n);
		}
	}
	return 1;
}

/* close, __gc and __close */
static int s_close(lua_State *L)
{
	struct sbox *b = luaL_checkudata(L, 1, GC_SIGNALS_MT);

	if (b->fd >= 0) {
		close(b->fd);
		b->fd = -1;
		sigprocmask(SIG_UNBLOCK, &b->added, NULL);
		sigemptyset(&b->added);
	}
	return 0;
}

static int s_tostring(lua_State *L)
{
	struct sbox *b = luaL_checkudata(L, 1, GC_SIGNALS_MT);

	if (b->fd < 0)
		lua_pushliteral(L, WHERE " (closed)");
	else
		lua_pushfstring(L, WHERE " (fd %d)", b->fd);
	return 1;
}

void gc_open_signals(lua_State *L)
{
	static const luaL_Reg meth[] = {
		{ "fd", s_fd }, { "read", s_read }, { "close", s_close }, { NULL, NULL }
	};
	static const luaL_Reg metameth[] = {
		{ "__index", NULL }, { "__gc", s_close }, { "__close", s_close },
		{ "__tostring", s_tostring }, { NULL, NULL }
	};

	gc_register_type(L, GC_SIGNALS_MT, meth, metameth, 0);
}
