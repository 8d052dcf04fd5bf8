/* net/server_respond.c: how graphcall.server answers a request taken by
 * Lua: srv:respond stores the response and resumes the suspended
 * connection (libmicrohttpd then calls the access handler again, which
 * queues it); srv:abort closes the connection without an answer. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "net/server.h"

static int header_value_ok(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* A body sent only in part: the response announces the whole length,
 * sends the first half and then breaks the connection (fault injection for
 * the emulator: a truncated answer). */
struct partial {
	size_t len, cut;
	char data[];
};

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct partial *p = cls;
	size_t n;

	if (pos >= p->cut)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = p->cut - (size_t)pos;
	if (n > max)
		n = max;
	memcpy(buf, p->data + pos, n);
	return (ssize_t)n;
}

static struct MHD_Response *partial_response(const char *body, size_t len)
{
	struct partial *p = malloc(sizeof *p + len + 1);
	struct MHD_Response *resp;

	if (!p)
		return NULL;
	p->len = len;
	p->cut = len / 2;
	memcpy(p->data, body, len);
	resp = MHD_create_response_from_callback(len, 4096, partial_read, p, free);
	if (!resp)
		free(p);
	return resp;
}

static struct rq *find_pending(lua_State *L, struct server *s, lua_Integer id, const char *what)
{
	for (struct gc_link *k = s->pending.head; k; k = k->next) {
		struct rq *r = GC_CONTAINER(k, struct rq, waiting);

		if (r->id == id)
			return r;
	}
	luaL_error(L, WHERE ": %s: unknown or already answered request id %I", what, id);
	return NULL;
}

/* srv:respond(id, status [, body [, headers [, how]]]): answer a taken
 * request and resume its connection; how = "truncate" sends half of the
 * body and breaks the connection. Raises for an unknown or answered id and
 * for bad arguments; returns true, or nil, err when out of memory. */
int gc_server_respond(lua_State *L)
{
	struct server *s = gc_server_check(L);
	lua_Integer id = luaL_checkinteger(L, 2);
	lua_Integer status = luaL_checkinteger(L, 3);
	size_t blen = 0;
	const char *body = luaL_optlstring(L, 4, "", &blen);
	static const char *const hows[] = { "whole", "truncate", NULL };
	int truncate = luaL_checkoption(L, 6, "whole", hows);
	struct MHD_Response *resp;
	struct rq *r;

	luaL_argcheck(L, status >= 200 && status <= 599, 3, "status must be in 200..599");
	if (!lua_isnoneornil(L, 5)) {
		luaL_checktype(L, 5, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 5)) {
			size_t nlen, vlen;
			const char *name, *value;

			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, WHERE ": respond: headers must map strings to strings");
			name = lua_tolstring(L, -2, &nlen);
			value = lua_tolstring(L, -1, &vlen);
			if (nlen == 0)
				return luaL_error(L, WHERE ": respond: empty header name");
			for (size_t i = 0; i < nlen; i++)
				if (!gc_is_tchar((unsigned char)name[i]))
					return luaL_error(L, WHERE ": respond: bad header name '%s'", name);
			if (!header_value_ok(value, vlen))
				return luaL_error(L, WHERE ": respond: bad value for header '%s'", name);
			if (gc_caseeq(name, nlen, "content-length", 14) ||
			    gc_caseeq(name, nlen, "transfer-encoding", 17))
				return luaL_error(L, WHERE ": respond: header '%s' is set by the server",
				                  name);
			lua_pop(L, 1);
		}
	}
	r = find_pending(L, s, id, "respond");

	/* Nothing below raises while resp is live. */
	resp = truncate ? partial_response(body, blen)
	                : MHD_create_response_from_buffer(blen, (void *)(uintptr_t)body,
	                                                  MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return gc_fail(L, "server", "cannot create the response (out of memory)");
	if (!lua_isnoneornil(L, 5)) {
		lua_pushnil(L);
		while (lua_next(L, 5)) {
			if (MHD_add_response_header(resp, lua_tostring(L, -2),
			                            lua_tostring(L, -1)) != MHD_YES) {
				lua_pop(L, 2);
				MHD_destroy_response(resp);
				return gc_fail(L, "server", "cannot add a response header");
			}
			lua_pop(L, 1);
		}
	}
	gc_list_remove(&s->pending, &r->waiting);
	r->phase = RQ_ANSWERED;
	r->response = resp;
	r->status = (unsigned int)status;
	if (r != s->current) {  /* suspended: the resumed access handler queues it */
		s->resumed++;
		MHD_resume_connection(r->conn);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* srv:abort(id): close a taken request's connection without an answer
 * (fault injection: a connection reset). */
int gc_server_abort(lua_State *L)
{
	struct server *s = gc_server_check(L);
	struct rq *r = find_pending(L, s, luaL_checkinteger(L, 2), "abort");

	gc_list_remove(&s->pending, &r->waiting);
	r->phase = RQ_ABORTED;
	if (r == s->current)  /* its handler is running: closed when it returns */
		return 0;
	MHD_resume_connection(r->conn);
	/* close it now: a resumed connection does not wake the loop */
	if (s->running)
		s->rerun = 1;
	else
		MHD_run(s->d);
	return 0;
}
