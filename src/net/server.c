/* graphcall.server: the libmicrohttpd receiver for Graph callbacks. This
 * file is the userdata (options, listening, run, close); reading requests
 * is server_read.c, answering them server_respond.c (net/server.h).
 *
 * Single-threaded, external polling: MHD runs with MHD_USE_EPOLL and
 * MHD_ALLOW_SUSPEND_RESUME, and only inside srv:run() (and close). The MHD
 * callbacks copy what they need into C memory owned by the request (struct
 * rq). A complete request goes one of two ways:
 *  - srv:run(wait, handler): the access handler calls handler(request)
 *    under lua_pcall, on the lua_State srv:run was called with. An answer
 *    given before the handler returns is queued there and then: no suspend
 *    and resume (two epoll_ctl calls) for the usual quick 202. A request
 *    still unanswered when the handler returns is suspended, as below. No
 *    Lua error crosses MHD: the first one is raised once MHD_run returns.
 *  - srv:run() without a handler: the request is suspended and queued, and
 *    srv:next() turns it into a Lua table after MHD_run has returned.
 * srv:respond() stores the response; for a suspended request it resumes
 * the connection, and MHD then calls the access handler again, which
 * queues the stored response. MHD cannot be re-entered: while it runs
 * (a handler is running), srv:run() does nothing and srv:close() waits
 * until MHD_run has returned.
 *
 * Memory: the server (struct server) and its copied options live in the
 * userdata. Each request's state (struct rq) is malloc'd in the URI log
 * callback, linked into the server's list of live requests, and freed in
 * the request-completed callback; whatever MHD_stop_daemon left behind is
 * freed by close. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "net/server.h"

/* --- Lua side ------------------------------------------------------------ */

struct server *gc_server_check(lua_State *L)
{
	struct server *s = luaL_checkudata(L, 1, GC_SERVER_MT);

	if (s->closed)
		luaL_error(L, WHERE " is closed");
	return s;
}

/* Stop the daemon and free every request still waiting, answering none
 * of them. */
static void shut_down(struct server *s)
{
	struct rq *r;

	s->closing = 1;
	/* No connection may stay suspended through MHD_stop_daemon: resume
	 * every waiting one marked aborted, so the handler closes it. */
	while ((r = GC_LIST_FIRST(&s->queue, struct rq, waiting)) ||
	       (r = GC_LIST_FIRST(&s->pending, struct rq, waiting))) {
		gc_list_remove(r->phase == RQ_QUEUED ? &s->queue : &s->pending, &r->waiting);
		r->phase = RQ_ABORTED;
		MHD_resume_connection(r->conn);
	}
	if (s->d) {
		s->running = 1;
		MHD_run(s->d);
		s->running = 0;
		MHD_stop_daemon(s->d);
		s->d = NULL;
	}
	while (s->all.head)
		gc_server_rq_free(GC_CONTAINER(s->all.head, struct rq, alive));
	s->closed = 1;
}

/* srv:close(): also __gc and __close. Idempotent. From a handler (inside
 * MHD_run) the server closes at once for Lua and stops when MHD_run has
 * returned. */
static int srv_close(lua_State *L)
{
	struct server *s = luaL_checkudata(L, 1, GC_SERVER_MT);

	if (s->closed)
		return 0;
	if (s->running) {
		s->closing = 1;
		s->closed = 1;
		s->close_deferred = 1;
		return 0;
	}
	shut_down(s);
	return 0;
}

/* tostring(srv): "graphcall.server: 127.0.0.1:8443" or "... (closed)" */
static int srv_tostring(lua_State *L)
{
	struct server *s = luaL_checkudata(L, 1, GC_SERVER_MT);

	if (s->closed)
		lua_pushliteral(L, WHERE ": (closed)");
	else
		lua_pushfstring(L, WHERE ": %s:%d", s->host, (int)s->port);
	return 1;
}

/* srv:port(): the bound port, also when port 0 was asked. */
static int srv_port(lua_State *L)
{
	struct server *s = gc_server_check(L);

	lua_pushinteger(L, s->port);
	return 1;
}

/* srv:fd(): the epoll fd; readable when srv:run() has network work. */
static int srv_fd(lua_State *L)
{
	struct server *s = gc_server_check(L);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);

	if (!di)
		return gc_fail(L, "server", "no epoll file descriptor");
	lua_pushinteger(L, di->epoll_fd);
	return 1;
}

/* srv:timeout(): milliseconds until srv:run() is due for the server's own
 * timers (idle timeouts, request deadlines, resumed connections), or -1. */
static int srv_timeout(lua_State *L)
{
	struct server *s = gc_server_check(L);
	MHD_UNSIGNED_LONG_LONG t = 0;

	long long ms;

	if (s->running) {  /* from a handler: the server runs after it */
		lua_pushinteger(L, -1);
		return 1;
	}
	ms = gc_server_expire(s);
	/* libmicrohttpd 0.9.75 neither wakes its epoll fd nor shortens its
	 * timeout for a resumed connection: run again at once. */
	if (s->resumed || s->rerun) {
		lua_pushinteger(L, 0);
		return 1;
	}
	if (MHD_get_timeout(s->d, &t) == MHD_YES) {
		if (t > (MHD_UNSIGNED_LONG_LONG)INT_MAX)
			t = INT_MAX;
		if (ms < 0 || (long long)t < ms)
			ms = (long long)t;
	}
	lua_pushinteger(L, ms < 0 ? -1 : (lua_Integer)ms);
	return 1;
}

/* The connections libmicrohttpd has open. */
static unsigned int connections(const struct server *s)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return di ? di->num_connections : 0;
}

/* srv:run([wait_ms [, handler]]): one round of MHD work, waiting up to
 * wait_ms for activity when wait_ms > 0. With a handler, each request that
 * completes is handed to handler(request) at once (see the top of this
 * file); without, it waits for srv:next(). Returns the number of requests
 * handed to the handler plus those waiting for srv:next(); 0 at once when
 * called from one of this server's handlers. The first error a handler
 * raised is raised again when MHD_run has returned. */
static int srv_run(lua_State *L)
{
	struct server *s = gc_server_check(L);
	lua_Integer wait = luaL_optinteger(L, 2, 0);
	int has_handler = !lua_isnoneornil(L, RUN_HANDLER);
	int at_limit;
	enum MHD_Result ok;

	if (has_handler)
		luaL_checktype(L, RUN_HANDLER, LUA_TFUNCTION);
	if (s->running) {
		lua_pushinteger(L, 0);
		return 1;
	}
	lua_settop(L, RUN_HANDLER);
	lua_pushnil(L);  /* RUN_ERROR */
	luaL_checkstack(L, 8, WHERE ": run");
	s->L = has_handler ? L : NULL;
	s->handled = 0;
	s->rerun = 0;
	s->running = 1;
	at_limit = connections(s) >= s->max_connections;
	if (wait > 0)
		ok = MHD_run_wait(s->d, wait > INT32_MAX ? INT32_MAX : (int32_t)wait);
	else
		ok = MHD_run(s->d);
	s->running = 0;
	/* At the connection limit libmicrohttpd takes its listening socket out
	 * of its epoll set, and puts it back only at the start of a later run:
	 * once a slot is free, run again at once, or waiting clients would
	 * wait for some other event. */
	if (at_limit && !s->closed && connections(s) < s->max_connections)
		s->rerun = 1;
	s->L = NULL;
	if (s->close_deferred)
		shut_down(s);
	else
		gc_server_expire(s);
	if (!lua_isnil(L, RUN_ERROR)) {
		lua_settop(L, RUN_ERROR);
		return lua_error(L);
	}
	if (ok != MHD_YES && !s->closed)
		return gc_fail(L, "server", "libmicrohttpd could not run");
	lua_pushinteger(L, s->handled + (lua_Integer)s->queue.n);
	return 1;
}

/* srv:next(): the oldest complete request not yet taken (gc_server_push_request's
 * table), or nil. */
static int srv_next(lua_State *L)
{
	struct server *s = gc_server_check(L);
	struct rq *r = GC_LIST_FIRST(&s->queue, struct rq, waiting);

	if (!r) {
		lua_pushnil(L);
		return 1;
	}
	/* Build the whole table first: if it raises (memory), the request
	 * stays queued. */
	gc_server_push_request(L, r);
	gc_list_remove(&s->queue, &r->waiting);
	r->phase = RQ_TAKEN;
	gc_list_push(&s->pending, &r->waiting);
	/* the body is in the Lua string now */
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
	return 1;
}

/* srv:pending(): requests taken but not yet answered. */
static int srv_pending(lua_State *L)
{
	struct server *s = gc_server_check(L);

	lua_pushinteger(L, (lua_Integer)s->pending.n);
	return 1;
}

/* --- core.server(opts) ---------------------------------------------------- */

enum {
	O_HOST, O_PORT, O_PATHS, O_METHODS, O_CTYPES, O_MAX_BODY, O_MAX_CONN, O_MAX_IP,
	O_IDLE, O_REQ_TIMEOUT, O_TLS_CERT, O_TLS_KEY, O_COUNT
};

#define PEM_MAX (1 << 24)

static const gc_opt server_opts[O_COUNT] = {
	[O_HOST] = { "host", GC_OPT_STRING, GC_OPT_NO_NUL, 1, INET_ADDRSTRLEN - 1, 0,
	             "an IPv4 address" },
	[O_PORT] = { "port", GC_OPT_INTEGER, 0, 0, 65535, 0, NULL },
	[O_PATHS] = { "paths", GC_OPT_STRINGS, GC_OPT_NO_NUL, 1, GC_URL_MAX, 0, NULL },
	[O_METHODS] = { "methods", GC_OPT_STRINGS, GC_OPT_NO_NUL, 1, 64, 0, NULL },
	[O_CTYPES] = { "content_types", GC_OPT_STRINGS, GC_OPT_NO_NUL, 1, 255, 0, NULL },
	[O_MAX_BODY] = { "max_body", GC_OPT_INTEGER, 0, 0, 1 << 30, 262144, NULL },
	[O_MAX_CONN] = { "max_connections", GC_OPT_INTEGER, 0, 1, 65536, 64, NULL },
	[O_MAX_IP] = { "max_per_ip", GC_OPT_INTEGER, 0, 0, 65536, 16, NULL },
	[O_IDLE] = { "idle_timeout", GC_OPT_INTEGER, 0, 0, 86400, 10, NULL },
	[O_REQ_TIMEOUT] = { "request_timeout", GC_OPT_NUMBER, 0, 0, 86400, 30,
	                    "a number of seconds in 0..86400" },
	[O_TLS_CERT] = { "tls_cert", GC_OPT_STRING, GC_OPT_NO_NUL, 1, PEM_MAX, 0, NULL },
	[O_TLS_KEY] = { "tls_key", GC_OPT_STRING, GC_OPT_NO_NUL, 1, PEM_MAX, 0, NULL },
};

/* The options of core.server, read and checked; nothing allocated. */
typedef struct {
	gc_optval v[O_COUNT];
	struct sockaddr_in addr;
	size_t allow_len;           /* "POST, GET" */
	size_t bytes;               /* every string copied into the userdata */
} server_config;

/* The items of the list option o must be made of characters that pass ok. */
static void check_items(lua_State *L, const server_config *c, int o, int (*ok)(int))
{
	for (lua_Integer i = 1; i <= (lua_Integer)c->v[o].len; i++) {
		size_t len;
		const char *v = gc_opts_item(L, 1, &server_opts[o], i, &len);

		if (o == O_PATHS && v[0] != '/')
			gc_opts_error(L, WHERE, "paths", "must start with '/': '%s' does not", v);
		for (size_t k = 0; k < len; k++)
			if (!ok((unsigned char)v[k]))
				gc_opts_error(L, WHERE, server_opts[o].key, "must be %s: '%s' is not",
				              o == O_METHODS ? "method names" : "visible ASCII", v);
	}
}

static int is_visible(int c)
{
	return c > 0x20 && c < 0x7f;
}

/* 1. Read and check every option (raising is free: nothing allocated). */
static void read_config(lua_State *L, server_config *c)
{
	const char *host = "127.0.0.1";
	gc_optval *v = c->v;

	lua_settop(L, 1);
	gc_opts_read(L, 1, WHERE, server_opts, O_COUNT, v);
	memset(&c->addr, 0, sizeof c->addr);
	c->addr.sin_family = AF_INET;
	if (v[O_HOST].set)
		host = v[O_HOST].s;
	if (inet_pton(AF_INET, host, &c->addr.sin_addr) != 1)
		gc_opts_error(L, WHERE, "host", "must be an IPv4 address, got '%s'", host);
	c->addr.sin_port = htons((uint16_t)v[O_PORT].i);
	check_items(L, c, O_PATHS, is_visible);
	check_items(L, c, O_METHODS, gc_is_tchar);
	check_items(L, c, O_CTYPES, is_visible);
	if (v[O_TLS_CERT].set != v[O_TLS_KEY].set)
		luaL_error(L, WHERE ": options 'tls_cert' and 'tls_key' go together");
	/* the Allow header: each method and ", " (the last one's pays the NUL) */
	c->allow_len = v[O_METHODS].len ? v[O_METHODS].bytes + v[O_METHODS].len : 0;
	c->bytes = v[O_PATHS].bytes + v[O_METHODS].bytes + v[O_CTYPES].bytes +
	           c->allow_len + (v[O_TLS_CERT].set ? v[O_TLS_CERT].len + 1 : 0) +
	           (v[O_TLS_KEY].set ? v[O_TLS_KEY].len + 1 : 0);
}

/* A bump allocator over the bytes of the userdata after struct server. */
typedef struct {
	char *p, *end;
} arena;

static char *arena_copy(lua_State *L, arena *a, const char *s, size_t len)
{
	char *out = a->p;

	/* a finalizer run by the allocation changed the options table */
	if (len >= (size_t)(a->end - a->p))
		luaL_error(L, WHERE ": the options changed while they were read");
	memcpy(out, s, len);
	out[len] = '\0';
	a->p += len + 1;
	return out;
}

/* Copy the items of the list option o; NULL when it was not given. */
static const char **copy_items(lua_State *L, const server_config *c, int o,
                               const char ***ptrs, arena *a)
{
	const char **out = *ptrs;
	size_t n = c->v[o].len;

	if (n == 0)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *v = gc_opts_item(L, 1, &server_opts[o], (lua_Integer)i + 1, &len);

		out[i] = arena_copy(L, a, v, len);
	}
	*ptrs += n;
	return out;
}

/* 2. The server userdata, closed until its daemon runs, with its own copy
 * of every option (Lua memory: nothing to leak). */
static struct server *new_server(lua_State *L, const server_config *c)
{
	const gc_optval *v = c->v;
	size_t nptrs = v[O_PATHS].len + v[O_METHODS].len + v[O_CTYPES].len;
	struct server *s = lua_newuserdatauv(L, sizeof *s + nptrs * sizeof(char *) + c->bytes, 0);
	const char **ptrs = (const char **)(void *)(s + 1);
	arena a;

	memset(s, 0, sizeof *s);
	s->closed = 1;
	luaL_setmetatable(L, GC_SERVER_MT);
	a.p = (char *)(ptrs + nptrs);
	a.end = a.p + c->bytes;
	if (v[O_HOST].set)
		memcpy(s->host, v[O_HOST].s, v[O_HOST].len + 1);
	else
		memcpy(s->host, "127.0.0.1", sizeof "127.0.0.1");
	s->addr = c->addr;
	s->paths = copy_items(L, c, O_PATHS, &ptrs, &a);
	s->npaths = v[O_PATHS].len;
	s->methods = copy_items(L, c, O_METHODS, &ptrs, &a);
	s->nmethods = v[O_METHODS].len;
	s->ctypes = copy_items(L, c, O_CTYPES, &ptrs, &a);
	s->nctypes = v[O_CTYPES].len;
	if (s->nmethods) {
		char *allow = a.p;

		for (size_t i = 0; i < s->nmethods; i++) {
			size_t len = strlen(s->methods[i]);

			if (i) {
				memcpy(a.p, ", ", 2);
				a.p += 2;
			}
			memcpy(a.p, s->methods[i], len);
			a.p += len;
		}
		*a.p = '\0';
		s->allow = allow;
		a.p = allow + c->allow_len;
	}
	if (v[O_TLS_CERT].set) {
		s->tls_cert = arena_copy(L, &a, v[O_TLS_CERT].s, v[O_TLS_CERT].len);
		s->tls_key = arena_copy(L, &a, v[O_TLS_KEY].s, v[O_TLS_KEY].len);
	}
	s->max_body = (size_t)v[O_MAX_BODY].i;
	s->max_connections = (unsigned int)v[O_MAX_CONN].i;
	s->max_per_ip = (unsigned int)v[O_MAX_IP].i;
	s->idle_timeout = (unsigned int)v[O_IDLE].i;
	s->request_timeout_ms = (long long)(v[O_REQ_TIMEOUT].n * 1000.0);
	if (v[O_REQ_TIMEOUT].n > 0 && s->request_timeout_ms == 0)
		s->request_timeout_ms = 1;
	return s;
}

/* 3. The daemon: external polling through epoll, no logging. Returns 1
 * (the server on top, open) or nil, err. */
static int start_daemon(lua_State *L, struct server *s)
{
	unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	unsigned int port = ntohs(s->addr.sin_port);
	struct MHD_OptionItem tls[3] = {
		{ MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
		{ MHD_OPTION_END, 0, NULL }
	};
	const union MHD_DaemonInfo *di;

	if (s->tls_cert) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
			return gc_fail(L, "tls", "libmicrohttpd was built without TLS");
		flags |= MHD_USE_TLS;
		tls[0].option = MHD_OPTION_HTTPS_MEM_KEY;
		tls[0].ptr_value = (void *)(uintptr_t)s->tls_key;
		tls[1].option = MHD_OPTION_HTTPS_MEM_CERT;
		tls[1].ptr_value = (void *)(uintptr_t)s->tls_cert;
	}
	errno = 0;
	s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, gc_server_on_access, s,
	                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&s->addr,
	                        MHD_OPTION_CONNECTION_LIMIT, s->max_connections,
	                        MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->max_per_ip,
	                        MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout,
	                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)GC_POOL_BYTES,
	                        MHD_OPTION_URI_LOG_CALLBACK, gc_server_on_uri, s,
	                        MHD_OPTION_NOTIFY_COMPLETED, gc_server_on_completed, s,
	                        MHD_OPTION_ARRAY, tls,
	                        MHD_OPTION_END);
	if (!s->d) {
		int e = errno;

		/* A socket call that failed left errno set; GnuTLS rejecting the
		 * certificate or key does not. */
		if (e)
			return gc_fail(L, "listen", "cannot listen on %s:%d: %s", s->host,
			               (int)port, strerror(e));
		if (s->tls_cert)
			return gc_fail(L, "tls", "cannot start HTTPS on %s:%d: unusable "
			               "certificate or key", s->host, (int)port);
		return gc_fail(L, "listen", "cannot listen on %s:%d", s->host, (int)port);
	}
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di && di->port ? di->port : port;
	s->closed = 0;
	return 1;
}

/* core.server([opts]): start a receiver. Raises for bad options; returns
 * nil, err (kind "listen", or "tls" for an unusable certificate) when the
 * daemon cannot start. */
int gc_l_server(lua_State *L)
{
	server_config c;

	read_config(L, &c);
	new_server(L, &c);
	return start_daemon(L, lua_touserdata(L, -1));
}

void gc_open_server(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "port", srv_port },
		{ "fd", srv_fd },
		{ "timeout", srv_timeout },
		{ "run", srv_run },
		{ "next", srv_next },
		{ "respond", gc_server_respond },
		{ "abort", gc_server_abort },
		{ "pending", srv_pending },
		{ "close", srv_close },
		{ NULL, NULL }
	};

	if (luaL_newmetatable(L, GC_SERVER_MT)) {
		luaL_newlib(L, methods);
		lua_getfield(L, -1, "close");  /* one function for all three */
		lua_setfield(L, -3, "__gc");
		lua_getfield(L, -1, "close");
		lua_setfield(L, -3, "__close");
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, srv_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}

