/* net/server_read.c: how graphcall.server reads a request, in the
 * libmicrohttpd callbacks: the request state (struct rq) starts in the URI
 * callback; the first access-handler call checks the headers and answers
 * 400/404/405/413/415/431 in C; the body is copied as it arrives; and a
 * complete request goes to srv:run's handler (under lua_pcall) or waits,
 * suspended, for srv:next(). No Lua API is used here but for that handler
 * call and gc_server_push_request. See server.c for the whole picture.
 * (About 620 lines: libmicrohttpd's callbacks for a request, in the order
 * they run.) */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>

#include "net/server.h"

/* Unlink r from whatever lists hold it and free it with what it owns. */
void gc_server_rq_free(struct rq *r)
{
	struct server *s = r->srv;

	if (r->phase == RQ_QUEUED)
		gc_list_remove(&s->queue, &r->waiting);
	else if (r->phase == RQ_TAKEN)
		gc_list_remove(&s->pending, &r->waiting);
	gc_list_remove(&s->all, &r->alive);
	if (r->response) {
		MHD_destroy_response(r->response);
		s->resumed--;
	}
	free(r->meta);
	free(r->body);
	free(r);
}

/* --- MHD callbacks (C only: no Lua API in here) -------------------------- */

/* Called once per request with the raw request target, before MHD splits
 * and unescapes it: the request state starts here so the raw path and
 * query survive. The return value becomes *req_cls. */
void *gc_server_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct server *s = cls;
	struct rq *r;
	size_t len = strlen(uri);
	const char *q;

	if (len > SIZE_MAX - sizeof *r - 1)
		return NULL;
	r = malloc(sizeof *r + len + 1);
	if (!r)
		return NULL;
	memset(r, 0, sizeof *r);
	r->uri = r->uri_chars;
	memcpy(r->uri, uri, len + 1);
	q = memchr(r->uri, '?', len);
	r->path_len = q ? (size_t)(q - r->uri) : len;
	r->query = q ? q + 1 : NULL;
	r->srv = s;
	r->conn = conn;
	r->phase = RQ_RECEIVING;
	if (s->request_timeout_ms > 0)
		r->deadline_ms = gc_now_ms() + s->request_timeout_ms;
	gc_list_push(&s->all, &r->alive);
	return r;
}

void gc_server_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct rq *r = *req_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (r)
		gc_server_rq_free(r);
	*req_cls = NULL;
}

struct hdr_walk {
	size_t count, bytes;        /* counting pass */
	struct hdr *out;            /* copying pass */
	char *chars;
	size_t i;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind,
                                    const char *key, size_t key_size,
                                    const char *value, size_t value_size)
{
	struct hdr_walk *w = cls;

	(void)kind;
	(void)key;
	w->count++;
	w->bytes += key_size + 1 + (value ? value_size : 0) + 1;
	return MHD_YES;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
	struct hdr_walk *w = cls;
	struct hdr *h;

	(void)kind;
	if (w->i >= w->count)
		return MHD_NO;
	h = &w->out[w->i++];
	for (size_t k = 0; k < key_size; k++)
		w->chars[k] = (char)gc_lower((unsigned char)key[k]);
	w->chars[key_size] = '\0';
	h->name = w->chars;
	h->nlen = key_size;
	w->chars += key_size + 1;
	if (!value)
		value_size = 0;
	if (value_size)
		memcpy(w->chars, value, value_size);
	w->chars[value_size] = '\0';
	h->value = w->chars;
	h->vlen = value_size;
	w->chars += value_size + 1;
	return MHD_YES;
}

/* Copy the request headers (names lowercased) and the method into one
 * block; w holds the counting pass (count_header). 0 on allocation
 * failure. */
static int collect_headers(struct rq *r, struct hdr_walk *counted, const char *method)
{
	struct hdr_walk w = *counted;
	size_t mlen = strlen(method);
	char *block;

	block = malloc(w.count * sizeof(struct hdr) + w.bytes + mlen + 1);
	if (!block)
		return 0;
	w.out = (struct hdr *)(void *)block;
	w.chars = block + w.count * sizeof(struct hdr);
	MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, copy_header, &w);
	memcpy(w.chars, method, mlen + 1);
	r->meta = block;
	r->hdrs = w.out;
	r->nhdrs = w.i;
	r->method = w.chars;
	return 1;
}

/* allow: the Allow header of a 405, or "close" to end the connection. */
static enum MHD_Result queue_error(struct MHD_Connection *conn, unsigned int status,
                                   const char *code, const char *message,
                                   const char *allow)
{
	int close_it = allow && strcmp(allow, "close") == 0;

	char buf[256];
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int n;

	n = snprintf(buf, sizeof buf, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
	             code, message);
	if (n < 0 || (size_t)n >= sizeof buf)
		return MHD_NO;
	resp = MHD_create_response_from_buffer((size_t)n, buf, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                            "application/json") != MHD_YES ||
	    (allow && !close_it &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES) ||
	    (close_it &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reject(struct rq *r, unsigned int status, const char *code,
                               const char *message, const char *allow)
{
	r->phase = RQ_REJECTED;
	return queue_error(r->conn, status, code, message, allow);
}

static int path_allowed(const struct server *s, const struct rq *r)
{
	if (!s->paths)
		return 1;
	for (size_t i = 0; i < s->npaths; i++)
		if (strlen(s->paths[i]) == r->path_len &&
		    memcmp(s->paths[i], r->uri, r->path_len) == 0)
			return 1;
	return 0;
}

static int method_allowed(const struct server *s, const char *method)
{
	if (!s->methods)
		return 1;
	for (size_t i = 0; i < s->nmethods; i++)
		if (strcmp(s->methods[i], method) == 0)
			return 1;
	return 0;
}

/* Media type of a Content-Type value: the part before ';', trimmed. */
static int ctype_allowed(const struct server *s, const char *value)
{
	const char *end;

	if (!s->ctypes)
		return 1;
	if (!value)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	end = strchr(value, ';');
	if (!end)
		end = value + strlen(value);
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (size_t i = 0; i < s->nctypes; i++)
		if (gc_caseeq(s->ctypes[i], strlen(s->ctypes[i]), value, (size_t)(end - value)))
			return 1;
	return 0;
}

/* The Content-Length value (MHD has already rejected malformed ones);
 * SIZE_MAX when it overflows. *present tells whether the header exists. */
static size_t content_length(struct MHD_Connection *conn, int *present)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_CONTENT_LENGTH);
	size_t n = 0;

	*present = v != NULL;
	if (!v)
		return 0;
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (n > (SIZE_MAX - 9) / 10)
			return SIZE_MAX;
		n = n * 10 + (size_t)(*v - '0');
	}
	return n;
}

/* First handler call: headers are complete. Answers 404/405/415/413 in C or
 * prepares the request for its body. */
/* Counts Content-Length headers (C only: an MHD iterator). */
static enum MHD_Result count_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
	int *n = cls;

	(void)kind;
	(void)value;
	if (key && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		(*n)++;
	return MHD_YES;
}

static enum MHD_Result first_call(struct server *s, struct rq *r, const char *method)
{
	int has_cl;
	size_t cl = content_length(r->conn, &has_cl);
	int chunked = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                          MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	char msg[96];
	struct hdr_walk headers = { 0 };
	int lengths = 0;

	r->started = 1;
	MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, count_header, &headers);
	if (headers.bytes > GC_MAX_HEADER_BYTES) {
		snprintf(msg, sizeof msg, "request headers exceed %d bytes", GC_MAX_HEADER_BYTES);
		return reject(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
		              "requestHeaderFieldsTooLarge", msg, "close");
	}
	/* Ambiguous framing (two lengths, or a length and chunks) is how
	 * requests are smuggled past a proxy: refuse it and close. */
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_length, &lengths);
	if (lengths > 1 || (lengths && chunked))
		return reject(r, MHD_HTTP_BAD_REQUEST, "badRequest",
		              lengths > 1 ? "more than one Content-Length"
		                          : "Content-Length with Transfer-Encoding", "close");
	if (!path_allowed(s, r))
		return reject(r, MHD_HTTP_NOT_FOUND, "notFound", "no such path", NULL);
	if (!method_allowed(s, method))
		return reject(r, MHD_HTTP_METHOD_NOT_ALLOWED, "methodNotAllowed",
		              "method not allowed", s->allow);
	if ((chunked || (has_cl && cl > 0)) &&
	    !ctype_allowed(s, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                                  MHD_HTTP_HEADER_CONTENT_TYPE)))
		return reject(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupportedMediaType",
		              "unsupported content type", NULL);
	if (!chunked && has_cl && cl > s->max_body) {
		snprintf(msg, sizeof msg, "request body exceeds %zu bytes", s->max_body);
		return reject(r, GC_HTTP_CONTENT_TOO_LARGE, "payloadTooLarge", msg, NULL);
	}
	if (!collect_headers(r, &headers, method))
		return MHD_NO;
	if (!chunked && has_cl && cl > 0) {
		r->body = malloc(cl);
		if (!r->body)
			return MHD_NO;
		r->body_cap = cl;
	}
	return MHD_YES;
}

static int body_append(struct server *s, struct rq *r, const char *data, size_t n)
{
	if (r->too_large || n > s->max_body - r->body_len) {
		/* past the cap: keep reading (bounded) to answer 413 */
		if (!r->too_large) {
			r->too_large = 1;
			r->discarded = r->body_len;
			free(r->body);
			r->body = NULL;
			r->body_len = r->body_cap = 0;
		}
		if (n > s->max_body + DISCARD_SLACK - r->discarded)
			return 0;
		r->discarded += n;
		return 1;
	}
	if (r->body_len + n > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 1024;
		char *nb;

		while (cap < r->body_len + n)
			cap = cap > s->max_body / 2 ? s->max_body : cap * 2;
		if (cap > s->max_body)
			cap = s->max_body;
		nb = realloc(r->body, cap);
		if (!nb)
			return 0;
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	return 1;
}

static void fill_remote(struct rq *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	r->remote[0] = '\0';
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		/* dotted quad by hand: glibc's inet_ntop goes through sprintf
		 * (~1.5k instructions per request) */
		const unsigned char *b = (const unsigned char *)(const void *)
			&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		char *o = r->remote;

		for (int i = 0; i < 4; i++) {
			unsigned v = b[i];

			if (i)
				*o++ = '.';
			if (v >= 100)
				*o++ = (char)('0' + v / 100);
			if (v >= 10)
				*o++ = (char)('0' + v / 10 % 10);
			*o++ = (char)('0' + v % 10);
		}
		*o = '\0';
	} else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          r->remote, sizeof r->remote);
}

/* Under lua_pcall: handler(request). 1: the handler, 2: the struct rq. */
static int call_handler(lua_State *L)
{
	struct rq *r = lua_touserdata(L, 2);

	gc_server_push_request(L, r);
	/* the body is in the Lua string now */
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
	lua_replace(L, 2);
	lua_call(L, 1, 0);
	return 0;
}

/* A complete request in srv:run(wait, handler): run the handler now and
 * queue its answer if it gave one; suspend the connection if not. */
static enum MHD_Result run_handler(struct server *s, struct rq *r)
{
	lua_State *L = s->L;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int failed;

	r->phase = RQ_TAKEN;
	gc_list_push(&s->pending, &r->waiting);
	s->current = r;
	s->handled++;
	lua_pushcfunction(L, call_handler);
	lua_pushvalue(L, RUN_HANDLER);
	lua_pushlightuserdata(L, r);
	failed = lua_pcall(L, 2, 0, 0) != LUA_OK;
	if (failed) {
		if (lua_isnil(L, RUN_ERROR))
			lua_replace(L, RUN_ERROR);
		else
			lua_pop(L, 1);
	}
	s->current = NULL;
	if (r->phase == RQ_TAKEN)
		gc_list_remove(&s->pending, &r->waiting);
	if (s->closing) {  /* the handler closed the server */
		if (r->response) {
			MHD_destroy_response(r->response);
			r->response = NULL;
		}
		r->phase = RQ_ABORTED;
		return MHD_NO;
	}
	switch (r->phase) {
	case RQ_ANSWERED:
		resp = r->response;
		r->response = NULL;
		ret = MHD_queue_response(r->conn, r->status, resp);
		MHD_destroy_response(resp);
		return ret;
	case RQ_TAKEN:
		if (failed)  /* the handler raised and left it unanswered */
			return reject(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "handlerError",
			              "the request handler failed", NULL);
		/* answered later: wait suspended, as a queued request does */
		gc_list_push(&s->pending, &r->waiting);
		MHD_suspend_connection(r->conn);
		return MHD_YES;
	default:  /* aborted by the handler */
		return MHD_NO;
	}
}

enum MHD_Result gc_server_on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
	struct server *s = cls;
	struct rq *r = *req_cls;

	(void)url;
	(void)version;
	if (!r)
		return MHD_NO;  /* the URI callback could not allocate */
	if (r->phase == RQ_ANSWERED && r->response) {
		struct MHD_Response *resp = r->response;
		enum MHD_Result ret;

		r->response = NULL;
		s->resumed--;
		ret = MHD_queue_response(conn, r->status, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (r->phase != RQ_RECEIVING)
		return MHD_NO;  /* aborted by close, or an unexpected call */
	if (r->deadline_ms && gc_now_ms() > r->deadline_ms)
		return MHD_NO;
	if (!r->started)
		return first_call(s, r, method);
	if (*upload_data_size) {
		int ok = body_append(s, r, upload_data, *upload_data_size);

		*upload_data_size = 0;
		return ok ? MHD_YES : MHD_NO;
	}
	/* the request is complete */
	if (r->too_large) {
		char msg[96];

		snprintf(msg, sizeof msg, "request body exceeds %zu bytes", s->max_body);
		return reject(r, GC_HTTP_CONTENT_TOO_LARGE, "payloadTooLarge", msg, NULL);
	}
	if (s->closing)
		return MHD_NO;
	fill_remote(r);
	r->id = ++s->next_id;
	if (s->L)
		return run_handler(s, r);
	r->phase = RQ_QUEUED;
	gc_list_push(&s->queue, &r->waiting);
	MHD_suspend_connection(conn);
	return MHD_YES;
}

/* --- request deadline ------------------------------------------------------ */

/* The access handler closes a request past its deadline when data arrives.
 * A client that stays silent, or is still trickling headers (before the
 * handler ever runs), is cut off here: shutdown() of the socket, which MHD
 * still owns, makes MHD's next read fail and close the connection the
 * usual way (completion callback included). Returns the milliseconds until
 * the next deadline still to enforce, or -1. */
long long gc_server_expire(struct server *s)
{
	long long now, next = -1;

	if (s->request_timeout_ms <= 0)
		return -1;
	now = gc_now_ms();
	for (struct gc_link *k = s->all.head; k; k = k->next) {
		struct rq *r = GC_CONTAINER(k, struct rq, alive);

		if (r->phase != RQ_RECEIVING || r->expired || !r->deadline_ms)
			continue;
		if (now >= r->deadline_ms) {
			const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
				r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

			r->expired = 1;
			if (ci && ci->connect_fd != MHD_INVALID_SOCKET)
				shutdown(ci->connect_fd, SHUT_RDWR);
		} else if (next < 0 || r->deadline_ms - now < next) {
			next = r->deadline_ms - now;
		}
	}
	return next;
}

/* The token of an "Authorization: Bearer <token>" header, exactly that
 * form: the scheme "Bearer" (case-sensitive), one space, then one or more
 * characters none of which is white space. NULL when the request has no
 * such header, or more than one Authorization header. */
static const char *bearer_token(const struct rq *r, size_t *len)
{
	const struct hdr *auth = NULL;
	const char *t;
	size_t n;

	for (size_t i = 0; i < r->nhdrs; i++) {
		const struct hdr *h = &r->hdrs[i];

		if (h->nlen == 13 && memcmp(h->name, "authorization", 13) == 0) {
			if (auth)
				return NULL;
			auth = h;
		}
	}
	if (!auth || auth->vlen <= 7 || memcmp(auth->value, "Bearer ", 7) != 0)
		return NULL;
	t = auth->value + 7;
	n = auth->vlen - 7;
	/* no white space (isspace in the C locale) up to the terminating NUL
	 * copy_header wrote; strcspn is vectorised (an embedded NUL, which
	 * MHD does not deliver anyway, also refuses) */
	if (strcspn(t, " \t\n\v\f\r") != n)
		return NULL;
	*len = n;
	return t;
}

/* A request as the table {id, method, path, query, headers, body, remote,
 * token}; token is set only for a well-formed "Authorization: Bearer
 * <token>" (see bearer_token). */
void gc_server_push_request(lua_State *L, struct rq *r)
{
	const char *token;
	size_t token_len = 0;

	lua_createtable(L, 0, 8);
	lua_pushinteger(L, r->id);
	lua_setfield(L, -2, "id");
	lua_pushstring(L, r->method);
	lua_setfield(L, -2, "method");
	lua_pushlstring(L, r->uri, r->path_len);
	lua_setfield(L, -2, "path");
	if (r->query) {
		lua_pushstring(L, r->query);
		lua_setfield(L, -2, "query");
	}
	lua_createtable(L, 0, (int)(r->nhdrs < 64 ? r->nhdrs : 64));
	for (size_t i = 0; i < r->nhdrs; i++) {
		const struct hdr *h = &r->hdrs[i];

		lua_pushlstring(L, h->name, h->nlen);
		lua_pushvalue(L, -1);
		if (lua_rawget(L, -3) == LUA_TSTRING) {
			/* repeated header: join the values, as RFC 9110 allows */
			lua_pushliteral(L, ", ");
			lua_pushlstring(L, h->value, h->vlen);
			lua_concat(L, 3);
		} else {
			lua_pop(L, 1);
			lua_pushlstring(L, h->value, h->vlen);
		}
		lua_rawset(L, -3);
	}
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, r->body ? r->body : "", r->body_len);
	lua_setfield(L, -2, "body");
	lua_pushstring(L, r->remote);
	lua_setfield(L, -2, "remote");
	token = bearer_token(r, &token_len);
	if (token) {
		lua_pushlstring(L, token, token_len);
		lua_setfield(L, -2, "token");
	}
}
