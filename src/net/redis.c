/* graphcall.redis: one Redis connection on hiredis's async API, as a pure
 * handle. It knows nothing of graphcall's event loop: the caller asks
 * r:events() what hiredis waits for, polls r:fd() for it, and calls
 * r:handle(readable, writable), which returns the replies that finished.
 *
 * No Lua error crosses a hiredis frame. hiredis calls the reply callback
 * from inside redisAsyncHandleRead/Write (and with a NULL reply for every
 * pending command when the connection drops); the callback turns the reply
 * into a Lua value under lua_pcall, on the lua_State r:handle was called
 * with, and appends it to the results table. A failure that even the
 * fallback cannot record is raised once hiredis has returned.
 *
 * hiredis frees the context itself when the connection breaks: ev.cleanup
 * is the one signal that it is going, so it clears b->ac and keeps the
 * reason. Timeouts are the caller's: hiredis 0.14 has no async timers. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <hiredis/async.h>
#include <openssl/evp.h>

#include "graphcall.h"

#define WHERE "graphcall.redis"

/* Room for one number argument: "%.17g" needs at most 24 bytes. */
#define NUM_BYTES 32
/* A command's argument buffer larger than this is not kept between calls. */
#define KEEP_BYTES (64 * 1024)

struct rbox {
	redisAsyncContext *ac;  /* NULL once closed or dropped */
	lua_State *L;           /* the state inside r:handle, else NULL */
	int results;            /* stack index of its results table */
	lua_Integer nresults;
	lua_Integer next_id;
	lua_Integer pending;
	unsigned lost;          /* replies no entry could be made for (OOM) */
	unsigned want_read : 1, want_write : 1, connected : 1;
	unsigned closed : 1;    /* by r:close() or __gc: use raises */
	unsigned in_handle : 1, close_deferred : 1;
	void *scratch;          /* argv and lengths of the command being sent */
	size_t scratch_size;
	char why[128];          /* why the connection ended, "" if it did not */
};

/* --- hiredis's event hooks: only record what it wants -------------------- */

static void ev_add_read(void *p) { ((struct rbox *)p)->want_read = 1; }
static void ev_del_read(void *p) { ((struct rbox *)p)->want_read = 0; }
static void ev_add_write(void *p) { ((struct rbox *)p)->want_write = 1; }
static void ev_del_write(void *p) { ((struct rbox *)p)->want_write = 0; }

/* The context is being freed (by us or by hiredis after an error): after
 * this returns, b->ac must never be touched again. */
static void ev_cleanup(void *p)
{
	struct rbox *b = p;

	if (b->ac && b->ac->c.err && !b->why[0])
		snprintf(b->why, sizeof b->why, "%s", b->ac->c.errstr[0] ? b->ac->c.errstr
		                                                          : "connection lost");
	b->ac = NULL;
	b->want_read = b->want_write = 0;
	b->connected = 0;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rbox *b = ac->data;

	if (status == REDIS_OK)
		b->connected = 1;
}

/* --- replies to Lua values (always under lua_pcall) ----------------------- */

static void push_reply(lua_State *L, const redisReply *r, int depth)
{
	luaL_checkstack(L, 4, "redis reply");
	switch (r->type) {
	case REDIS_REPLY_STRING:
		lua_pushlstring(L, r->str, r->len);
		break;
	case REDIS_REPLY_INTEGER:
		lua_pushinteger(L, (lua_Integer)r->integer);
		break;
	case REDIS_REPLY_NIL:
		lua_pushboolean(L, 0);
		break;
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
		lua_createtable(L, 0, 1);
		lua_pushlstring(L, r->str, r->len);
		lua_setfield(L, -2, r->type == REDIS_REPLY_STATUS ? "ok" : "err");
		break;
	case REDIS_REPLY_ARRAY:
		if (depth >= GC_REDIS_MAX_DEPTH)
			luaL_error(L, "reply nested deeper than %d levels", GC_REDIS_MAX_DEPTH);
		if (r->elements > (size_t)INT_MAX)
			luaL_error(L, "reply array too large");
		lua_createtable(L, (int)r->elements, 0);
		for (size_t i = 0; i < r->elements; i++) {
			push_reply(L, r->element[i], depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	default:
		luaL_error(L, "unknown reply type %d", r->type);
	}
}

struct finished {
	struct rbox *b;
	lua_Integer id;
	const redisReply *reply;  /* NULL: err */
	const char *err;
};

/* pcall'd with (results, finished): results[#+1] = {id=, reply=|err=} */
static int push_finished(lua_State *L)
{
	struct finished *f = lua_touserdata(L, 2);

	lua_createtable(L, 0, 2);
	lua_pushinteger(L, f->id);
	lua_setfield(L, -2, "id");
	if (f->reply) {
		push_reply(L, f->reply, 0);
		lua_setfield(L, -2, "reply");
	} else {
		lua_pushstring(L, f->err);
		lua_setfield(L, -2, "err");
	}
	lua_rawseti(L, 1, f->b->nresults + 1);
	f->b->nresults++;
	return 0;
}

static int deliver(struct rbox *b, struct finished *f)
{
	lua_State *L = b->L;

	if (!lua_checkstack(L, 4))
		return 0;
	lua_pushcfunction(L, push_finished);
	lua_pushvalue(L, b->results);
	lua_pushlightuserdata(L, f);
	if (lua_pcall(L, 2, 0, 0) == LUA_OK)
		return 1;
	return 0;  /* the error message stays on the stack */
}

/* hiredis's reply callback. Replies are freed by hiredis when it returns. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rbox *b = ac->data;
	struct finished f = { b, (lua_Integer)(uintptr_t)privdata, reply, NULL };
	int top;

	b->pending--;
	if (!b->L || b->closed)
		return;  /* closing: the caller dropped these commands */
	if (!reply)
		f.err = ac->c.err && ac->c.errstr[0] ? ac->c.errstr : "connection closed";
	top = lua_gettop(b->L);
	if (!deliver(b, &f)) {
		/* Report why on this command instead (too deep, out of memory). */
		const char *msg = lua_tostring(b->L, -1);

		f.reply = NULL;
		f.err = msg ? msg : "reply could not be converted";
		if (!deliver(b, &f))
			b->lost++;
	}
	lua_settop(b->L, top);
}

/* --- the userdata --------------------------------------------------------- */

static struct rbox *check_open(lua_State *L)
{
	struct rbox *b = luaL_checkudata(L, 1, GC_REDIS_MT);

	if (b->closed)
		luaL_error(L, WHERE ": used after close");
	return b;
}

static void free_context(struct rbox *b)
{
	if (b->ac)
		redisAsyncFree(b->ac);  /* NULL replies for the pending; cleanup */
	b->ac = NULL;
	free(b->scratch);
	b->scratch = NULL;
	b->scratch_size = 0;
}

/* r:close(), also __gc and __close. Idempotent. Pending commands are
 * dropped: they never finish. */
static int r_close(lua_State *L)
{
	struct rbox *b = luaL_checkudata(L, 1, GC_REDIS_MT);

	if (b->closed)
		return 0;
	b->closed = 1;
	if (b->in_handle)  /* a finalizer inside r:handle: free it afterwards */
		b->close_deferred = 1;
	else
		free_context(b);
	return 0;
}

/* r:fd() -> the socket, or nil once the connection has dropped. */
static int r_fd(lua_State *L)
{
	struct rbox *b = check_open(L);

	if (!b->ac)
		return 0;
	lua_pushinteger(L, b->ac->c.fd);
	return 1;
}

/* r:events() -> "r", "w", "rw" or "": what hiredis waits for. */
static int r_events(lua_State *L)
{
	struct rbox *b = check_open(L);
	static const char *const names[] = { "", "r", "w", "rw" };

	lua_pushstring(L, names[b->want_read | (b->want_write << 1)]);
	return 1;
}

/* r:pending() -> commands sent or queued that have not finished. */
static int r_pending(lua_State *L)
{
	struct rbox *b = check_open(L);

	lua_pushinteger(L, b->pending);
	return 1;
}

/* r:status() -> "connecting" | "connected" | "closed" [, why]. Also after
 * close, so a caller can tell why a handle ended. */
static int r_status(lua_State *L)
{
	struct rbox *b = luaL_checkudata(L, 1, GC_REDIS_MT);

	if (b->closed) {
		lua_pushliteral(L, "closed");
		return 1;
	}
	if (!b->ac) {
		lua_pushliteral(L, "closed");
		lua_pushstring(L, b->why[0] ? b->why : "connection closed");
		return 2;
	}
	lua_pushstring(L, b->connected ? "connected" : "connecting");
	return 1;
}

/* The shortest of %.15g..%.17g that reads back as d: 0.1 is "0.1". */
static size_t format_float(char *buf, double d)
{
	int w = 0;

	for (int prec = 15; prec <= 17; prec++) {
		w = snprintf(buf, NUM_BYTES, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return (size_t)w;
}

/* Check args (arg 2) and lay out argv, lengths and number text in the
 * scratch buffer; raises only before anything is sent. */
static int build_argv(lua_State *L, struct rbox *b, const char ***argv, size_t **lens)
{
	lua_Integer n;
	size_t nums = 0, need;
	char *num;

	luaL_checktype(L, 2, LUA_TTABLE);
	if (!gc_is_array(L, 2, &n))
		return luaL_argerror(L, 2, "expected a non-empty array of strings and numbers");
	if (n > INT_MAX)
		return luaL_argerror(L, 2, "too many arguments");
	for (lua_Integer i = 1; i <= n; i++) {
		int t = lua_rawgeti(L, 2, i);

		if (t == LUA_TNUMBER)
			nums++;
		else if (t != LUA_TSTRING)
			return luaL_error(L, "bad argument #2: element %d is a %s (expected string or number)",
			                  (int)i, luaL_typename(L, -1));
		lua_pop(L, 1);
	}
	need = (size_t)n * (sizeof(char *) + sizeof(size_t)) + nums * NUM_BYTES;
	if (need > b->scratch_size) {
		void *p = realloc(b->scratch, need);

		if (!p)
			return luaL_error(L, WHERE ": out of memory");
		b->scratch = p;
		b->scratch_size = need;
	}
	*argv = b->scratch;
	*lens = (size_t *)(*argv + n);
	num = (char *)(*lens + n);
	for (lua_Integer i = 1; i <= n; i++) {
		size_t k = (size_t)i - 1;

		lua_rawgeti(L, 2, i);
		if (lua_type(L, -1) == LUA_TSTRING) {
			/* borrowed: the table keeps the string alive */
			(*argv)[k] = lua_tolstring(L, -1, &(*lens)[k]);
		} else {
			(*argv)[k] = num;
			(*lens)[k] = lua_isinteger(L, -1) ? (size_t)snprintf(num, NUM_BYTES,
			             LUA_INTEGER_FMT, lua_tointeger(L, -1))
			             : format_float(num, (double)lua_tonumber(L, -1));
			num += NUM_BYTES;
		}
		lua_pop(L, 1);
	}
	return (int)n;
}

/* r:command(args) -> id | nil, err. args: an array of strings (binary-safe)
 * and numbers (integers as such, floats in the fewest digits that read back exactly). */
static int r_command(lua_State *L)
{
	struct rbox *b = check_open(L);
	const char **argv = NULL;
	size_t *lens = NULL;
	int argc = build_argv(L, b, &argv, &lens);
	lua_Integer id = b->next_id + 1;
	int rc;

	if (!b->ac || (b->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
		rc = REDIS_ERR;
	else
		rc = redisAsyncCommandArgv(b->ac, on_reply, (void *)(uintptr_t)id, argc, argv, lens);
	if (b->scratch_size > KEEP_BYTES) {
		free(b->scratch);
		b->scratch = NULL;
		b->scratch_size = 0;
	}
	if (rc != REDIS_OK)
		return gc_fail(L, "closed", WHERE ": %s", b->why[0] ? b->why : "not connected");
	b->next_id = id;
	b->pending++;
	lua_pushinteger(L, id);
	return 1;
}

/* hiredis writes with write(2): a peer that went away would raise SIGPIPE,
 * whose default kills the process. Block it around the write and take a
 * SIGPIPE this write caused; one that was pending before is left alone. */
static void handle_write(redisAsyncContext *ac)
{
	sigset_t pipe, old, pending;
	int was_pending;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	redisAsyncHandleWrite(ac);
	if (!was_pending) {
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE)) {
			struct timespec zero = { 0, 0 };

			sigtimedwait(&pipe, NULL, &zero);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* r:handle(readable, writable) -> { {id=, reply=} | {id=, err=}, ... } in
 * completion order. */
static int r_handle(lua_State *L)
{
	struct rbox *b = check_open(L);
	int readable = lua_toboolean(L, 2), writable = lua_toboolean(L, 3);
	unsigned lost;

	if (b->in_handle)
		return luaL_error(L, WHERE ": handle re-entered");
	lua_settop(L, 3);
	lua_newtable(L);
	b->L = L;
	b->results = lua_gettop(L);
	b->nresults = 0;
	b->in_handle = 1;
	if (readable && b->ac)
		redisAsyncHandleRead(b->ac);
	if (writable && b->ac)
		handle_write(b->ac);
	b->in_handle = 0;
	b->L = NULL;
	lost = b->lost;
	b->lost = 0;
	if (b->close_deferred) {
		b->close_deferred = 0;
		free_context(b);
	}
	if (lost)
		return luaL_error(L, WHERE ": out of memory (%d replies lost)", (int)lost);
	return 1;
}

/* tostring(r): "graphcall.redis: connected" and so on. */
static int r_tostring(lua_State *L)
{
	struct rbox *b = luaL_checkudata(L, 1, GC_REDIS_MT);

	lua_pushfstring(L, WHERE ": %s", b->closed ? "closed" : !b->ac ? "dropped"
	                : b->connected ? "connected" : "connecting");
	return 1;
}

/* --- core.redis_connect ---------------------------------------------------- */

/* The error of a TCP connect the kernel has already settled (a closed
 * loopback port is refused at once), 0 while it is in progress or done. */
static int settled_error(int fd)
{
	struct pollfd p = { fd, POLLOUT, 0 };
	int err = 0;
	socklen_t len = sizeof err;

	if (poll(&p, 1, 0) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return 0;
	return err;
}

/* core.redis_connect{ host = "127.0.0.1", port = 6379 } or { path = sock }
 * -> r | nil, err (kind "connect"). Does not wait: r:status() says
 * "connecting" until the first write event; a refusal known at once is an
 * error here, a later one ends the handle (r:status()). host must be an address or a
 * name the resolver answers at once (hiredis resolves it synchronously). */
int gc_l_redis_connect(lua_State *L)
{
	enum { O_HOST, O_PORT, O_PATH, O_COUNT };
	static const gc_opt specs[O_COUNT] = {
		[O_HOST] = { "host", GC_OPT_STRING, GC_OPT_NO_NUL, 1, 255, 0, "an address or a host name" },
		[O_PORT] = { "port", GC_OPT_INTEGER, 0, 1, 65535, 6379, NULL },
		[O_PATH] = { "path", GC_OPT_STRING, GC_OPT_NO_NUL, 1,
		             sizeof(((struct sockaddr_un *)0)->sun_path) - 1, 0, "a socket path shorter than 108 bytes" },
	};
	gc_optval v[O_COUNT];
	const char *host, *path;
	lua_Integer port;
	struct rbox *b;
	redisAsyncContext *ac;
	int err;

	luaL_checktype(L, 1, LUA_TTABLE);
	gc_opts_read(L, 1, WHERE "_connect", specs, O_COUNT, v);
	if (v[O_PATH].set && (v[O_HOST].set || v[O_PORT].set))
		return gc_opts_error(L, WHERE "_connect", "path", "goes alone: give either path or host and port");
	host = v[O_HOST].set ? v[O_HOST].s : "127.0.0.1";
	path = v[O_PATH].s;
	port = v[O_PORT].i;

	/* The box first, closed, so a failure below leaves nothing to free. */
	b = lua_newuserdatauv(L, sizeof *b, 0);
	memset(b, 0, sizeof *b);
	b->closed = 1;
	luaL_setmetatable(L, GC_REDIS_MT);

	ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, (int)port);
	if (!ac)
		return gc_fail(L, "connect", WHERE ": out of memory");
	if (ac->err) {
		lua_pushnil(L);
		if (path)
			gc_push_error(L, "connect", WHERE ": %s: %s", path, ac->errstr);
		else
			gc_push_error(L, "connect", WHERE ": %s:%d: %s", host, (int)port, ac->errstr);
		redisAsyncFree(ac);
		return 2;
	}
	if (!path && (err = settled_error(ac->c.fd)) != 0) {
		lua_pushnil(L);
		gc_push_error(L, "connect", WHERE ": %s:%d: %s", host, (int)port, strerror(err));
		redisAsyncFree(ac);
		return 2;
	}
	ac->data = b;
	ac->ev.data = b;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	b->ac = ac;
	b->closed = 0;
	redisAsyncSetConnectCallback(ac, on_connect);  /* asks for a write event */
	return 1;
}

/* core.redis_sha1(script) -> its SHA-1 in hex: the name EVALSHA knows it by. */
int gc_l_redis_sha1(lua_State *L)
{
	size_t len;
	const char *src = luaL_checklstring(L, 1, &len);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE];

	if (!EVP_Digest(src, len, md, &mdlen, EVP_sha1(), NULL))
		return luaL_error(L, WHERE ": SHA-1 failed");
	for (unsigned int i = 0; i < mdlen; i++) {
		hex[2 * i] = "0123456789abcdef"[md[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	lua_pushlstring(L, hex, 2 * (size_t)mdlen);
	return 1;
}

void gc_open_redis(lua_State *L)
{
	static const luaL_Reg meth[] = {
		{ "fd", r_fd },
		{ "events", r_events },
		{ "command", r_command },
		{ "handle", r_handle },
		{ "pending", r_pending },
		{ "status", r_status },
		{ "close", r_close },
		{ NULL, NULL }
	};
	static const luaL_Reg metameth[] = {
		{ "__index", NULL },  /* placeholder: the method table */
		{ "__gc", r_close },
		{ "__close", r_close },
		{ "__tostring", r_tostring },
		{ NULL, NULL }
	};

	luaL_newmetatable(L, GC_REDIS_MT);
	luaL_setfuncs(L, metameth, 0);
	luaL_newlibtable(L, meth);
	luaL_setfuncs(L, meth, 0);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}
