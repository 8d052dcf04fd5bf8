/* graphcall.server: the libmicrohttpd receiver for Graph callbacks.
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
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "graphcall.h"

#define WHERE "graphcall.server"

/* Bytes of an oversized chunked body read and thrown away (to answer 413
 * instead of resetting the connection) before the connection is closed. */
#define DISCARD_SLACK 65536

/* libmicrohttpd's memory pool per connection (its default, 32 KiB). The
 * request line and headers must fit in it (MHD answers 431 otherwise), and
 * the body is read through what they leave free. */
#define GC_POOL_BYTES (32 * 1024)

/* Header bytes (names and values) a request may carry: a 16 KiB bearer
 * token (the verifier's limit) and 4 KiB of others. Larger get 431 and
 * the connection closed: headers that nearly fill the pool would leave a
 * read buffer of a few bytes, and the body would cost a system call for
 * every few bytes (a 200 KB body took ~18,000 reads). */
#define GC_MAX_HEADER_BYTES (20 * 1024)

/* 413 (MHD renamed the constant across versions) */
#define GC_HTTP_CONTENT_TOO_LARGE 413

enum phase {
	RQ_RECEIVING,  /* headers or body still arriving */
	RQ_REJECTED,   /* answered in C (404, 405, 413, 415) */
	RQ_QUEUED,     /* complete, suspended, waiting for srv:next() */
	RQ_TAKEN,      /* handed to Lua, suspended, waiting for srv:respond() */
	RQ_ANSWERED,   /* response stored, connection resumed */
	RQ_ABORTED     /* server closing: connection resumed to be closed */
};

struct hdr {
	const char *name;
	size_t nlen;
	const char *value;
	size_t vlen;
};

struct server;

struct rq {
	struct server *srv;
	struct rq *aprev, *anext;   /* the server's list of live requests */
	struct rq *lprev, *lnext;   /* queue (RQ_QUEUED) or pending (RQ_TAKEN) */
	struct MHD_Connection *conn;
	enum phase phase;
	lua_Integer id;
	int started;                /* first access-handler call done */
	int too_large;              /* chunked body grew past max_body */
	long long deadline_ms;      /* monotonic; 0 = none */
	int expired;                /* deadline passed: socket shut down */
	char *uri;                  /* raw request target */
	size_t path_len;            /* uri[0..path_len) is the path */
	const char *query;          /* after '?', inside uri, or NULL */
	void *meta;                 /* one block: hdrs, names, values, method */
	struct hdr *hdrs;
	size_t nhdrs;
	const char *method;
	char *body;
	size_t body_len, body_cap, discarded;
	struct MHD_Response *response;
	unsigned int status;
	char remote[INET6_ADDRSTRLEN];
	char uri_chars[];           /* uri points here (one allocation) */
};

struct rqlist {
	struct rq *head, *tail;
	size_t n;
};

struct server {
	struct MHD_Daemon *d;
	int closed;
	int closing;
	unsigned int port;
	lua_Integer next_id;
	struct rq *all;             /* live requests (doubly linked via a*) */
	struct rqlist queue;        /* complete, not taken (FIFO) */
	struct rqlist pending;      /* taken, not answered */
	size_t resumed;             /* answered, response not yet queued */
	int running;                /* inside MHD_run: it may not be re-entered */
	int close_deferred;         /* srv:close() from a handler: after MHD_run */
	int rerun;                  /* a connection was resumed inside MHD_run */
	lua_State *L;               /* srv:run(wait, handler): where it runs */
	struct rq *current;         /* the request whose handler is running */
	lua_Integer handled;        /* requests handed to the handler this run */

	/* options, copied into the userdata after this struct */
	char host[INET_ADDRSTRLEN];
	struct sockaddr_in addr;
	const char **paths;
	size_t npaths;
	const char **methods;
	size_t nmethods;
	const char **ctypes;
	size_t nctypes;
	const char *allow;          /* "POST, GET" for 405 */
	size_t max_body;
	unsigned int max_connections, max_per_ip, idle_timeout;
	long long request_timeout_ms;
	const char *tls_cert, *tls_key;
};

/* --- small helpers ------------------------------------------------------ */

static long long now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* RFC 9110 tchar */
static int is_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static void list_push(struct rqlist *l, struct rq *r)
{
	r->lnext = NULL;
	r->lprev = l->tail;
	if (l->tail)
		l->tail->lnext = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void list_remove(struct rqlist *l, struct rq *r)
{
	if (r->lprev)
		r->lprev->lnext = r->lnext;
	else
		l->head = r->lnext;
	if (r->lnext)
		r->lnext->lprev = r->lprev;
	else
		l->tail = r->lprev;
	r->lprev = r->lnext = NULL;
	l->n--;
}

/* Unlink r from whatever lists hold it and free it with what it owns. */
static void rq_free(struct rq *r)
{
	struct server *s = r->srv;

	if (r->phase == RQ_QUEUED)
		list_remove(&s->queue, r);
	else if (r->phase == RQ_TAKEN)
		list_remove(&s->pending, r);
	if (r->aprev)
		r->aprev->anext = r->anext;
	else
		s->all = r->anext;
	if (r->anext)
		r->anext->aprev = r->aprev;
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
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
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
		r->deadline_ms = now_ms() + s->request_timeout_ms;
	r->anext = s->all;
	if (s->all)
		s->all->aprev = r;
	s->all = r;
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct rq *r = *req_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (r)
		rq_free(r);
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
		w->chars[k] = (char)lower((unsigned char)key[k]);
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
		if (caseeq(s->ctypes[i], strlen(s->ctypes[i]), value, (size_t)(end - value)))
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

/* srv:run's stack: 1 server, 2 wait, 3 handler, 4 the first error a
 * handler raised (nil when none). */
#define RUN_HANDLER 3
#define RUN_ERROR 4

static void push_request(lua_State *L, struct rq *r);

/* Under lua_pcall: handler(request). 1: the handler, 2: the struct rq. */
static int call_handler(lua_State *L)
{
	struct rq *r = lua_touserdata(L, 2);

	push_request(L, r);
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
	list_push(&s->pending, r);
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
		list_remove(&s->pending, r);
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
		list_push(&s->pending, r);
		MHD_suspend_connection(r->conn);
		return MHD_YES;
	default:  /* aborted by the handler */
		return MHD_NO;
	}
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
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
	if (r->deadline_ms && now_ms() > r->deadline_ms)
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
	list_push(&s->queue, r);
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
static long long expire_requests(struct server *s)
{
	long long now, next = -1;

	if (s->request_timeout_ms <= 0)
		return -1;
	now = now_ms();
	for (struct rq *r = s->all; r; r = r->anext) {
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

/* --- Lua side ------------------------------------------------------------ */

static struct server *check_server(lua_State *L)
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
	while ((r = s->queue.head) || (r = s->pending.head)) {
		list_remove(r->phase == RQ_QUEUED ? &s->queue : &s->pending, r);
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
	while (s->all)
		rq_free(s->all);
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
	struct server *s = check_server(L);

	lua_pushinteger(L, s->port);
	return 1;
}

/* srv:fd(): the epoll fd; readable when srv:run() has network work. */
static int srv_fd(lua_State *L)
{
	struct server *s = check_server(L);
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
	struct server *s = check_server(L);
	MHD_UNSIGNED_LONG_LONG t = 0;

	long long ms;

	if (s->running) {  /* from a handler: the server runs after it */
		lua_pushinteger(L, -1);
		return 1;
	}
	ms = expire_requests(s);
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
	struct server *s = check_server(L);
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
		expire_requests(s);
	if (!lua_isnil(L, RUN_ERROR)) {
		lua_settop(L, RUN_ERROR);
		return lua_error(L);
	}
	if (ok != MHD_YES && !s->closed)
		return gc_fail(L, "server", "libmicrohttpd could not run");
	lua_pushinteger(L, s->handled + (lua_Integer)s->queue.n);
	return 1;
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
static void push_request(lua_State *L, struct rq *r)
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

/* srv:next(): the oldest complete request not yet taken (push_request's
 * table), or nil. */
static int srv_next(lua_State *L)
{
	struct server *s = check_server(L);
	struct rq *r = s->queue.head;

	if (!r) {
		lua_pushnil(L);
		return 1;
	}
	/* Build the whole table first: if it raises (memory), the request
	 * stays queued. */
	push_request(L, r);
	list_remove(&s->queue, r);
	r->phase = RQ_TAKEN;
	list_push(&s->pending, r);
	/* the body is in the Lua string now */
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
	return 1;
}

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
	struct rq *r;

	for (r = s->pending.head; r; r = r->lnext)
		if (r->id == id)
			return r;
	luaL_error(L, WHERE ": %s: unknown or already answered request id %I", what, id);
	return NULL;
}

/* srv:respond(id, status [, body [, headers [, how]]]): answer a taken
 * request and resume its connection; how = "truncate" sends half of the
 * body and breaks the connection. Raises for an unknown or answered id and
 * for bad arguments; returns true, or nil, err when out of memory. */
static int srv_respond(lua_State *L)
{
	struct server *s = check_server(L);
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
				if (!is_tchar((unsigned char)name[i]))
					return luaL_error(L, WHERE ": respond: bad header name '%s'", name);
			if (!header_value_ok(value, vlen))
				return luaL_error(L, WHERE ": respond: bad value for header '%s'", name);
			if (caseeq(name, nlen, "content-length", 14) ||
			    caseeq(name, nlen, "transfer-encoding", 17))
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
	list_remove(&s->pending, r);
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
static int srv_abort(lua_State *L)
{
	struct server *s = check_server(L);
	struct rq *r = find_pending(L, s, luaL_checkinteger(L, 2), "abort");

	list_remove(&s->pending, r);
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

/* srv:pending(): requests taken but not yet answered. */
static int srv_pending(lua_State *L)
{
	struct server *s = check_server(L);

	lua_pushinteger(L, (lua_Integer)s->pending.n);
	return 1;
}

/* --- core.server(opts) ---------------------------------------------------- */

static const char *const server_keys[] = {
	"host", "port", "paths", "methods", "content_types", "max_body",
	"max_connections", "max_per_ip", "idle_timeout", "request_timeout",
	"tls_cert", "tls_key", NULL
};

/* Raw field of the options table (index 1) pushed; its type returned. */
static int get_opt(lua_State *L, const char *key)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushnil(L);
		return LUA_TNIL;
	}
	lua_pushstring(L, key);
	return lua_rawget(L, 1);
}

static lua_Integer opt_integer(lua_State *L, const char *key, lua_Integer def,
                               lua_Integer min, lua_Integer max)
{
	lua_Integer v = def;
	int t = get_opt(L, key);

	if (t != LUA_TNIL) {
		int ok = 0;

		if (t == LUA_TNUMBER)
			v = lua_tointegerx(L, -1, &ok);
		if (!ok || v < min || v > max)
			luaL_error(L, WHERE ": option '%s' must be an integer in %I..%I",
			           key, min, max);
	}
	lua_pop(L, 1);
	return v;
}

/* Validate an optional string option; return its length + 1 (0 if nil). */
static size_t opt_string_size(lua_State *L, const char *key)
{
	int t = get_opt(L, key);
	size_t len = 0;

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (t != LUA_TSTRING)
		luaL_error(L, WHERE ": option '%s' must be a string", key);
	lua_tolstring(L, -1, &len);
	if (len == 0 || strlen(lua_tostring(L, -1)) != len)
		luaL_error(L, WHERE ": option '%s' must be a non-empty string without NUL", key);
	lua_pop(L, 1);
	return len + 1;
}

enum list_kind { LIST_PATHS, LIST_METHODS, LIST_CTYPES };

/* Validate an optional array of strings; count its items and string bytes. */
static void opt_list_size(lua_State *L, const char *key, enum list_kind kind,
                          size_t *count, size_t *bytes)
{
	int t = get_opt(L, key);
	lua_Integer n = 0;

	*count = 0;
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	if (t != LUA_TTABLE || !gc_is_array(L, -1, &n))
		luaL_error(L, WHERE ": option '%s' must be a non-empty array of strings", key);
	for (lua_Integer i = 1; i <= n; i++) {
		size_t len;
		const char *v;

		if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
			luaL_error(L, WHERE ": option '%s' must be a non-empty array of strings", key);
		v = lua_tolstring(L, -1, &len);
		if (len == 0 || strlen(v) != len)
			luaL_error(L, WHERE ": option '%s': empty string or NUL in item %I", key, i);
		if (kind == LIST_PATHS && v[0] != '/')
			luaL_error(L, WHERE ": option 'paths': '%s' does not start with '/'", v);
		for (size_t k = 0; k < len; k++) {
			unsigned char c = (unsigned char)v[k];
			int ok = kind == LIST_METHODS ? is_tchar(c) : (c > 0x20 && c < 0x7f);

			if (!ok)
				luaL_error(L, WHERE ": option '%s': bad character in '%s'", key, v);
		}
		*bytes += len + 1;
		lua_pop(L, 1);
	}
	*count = (size_t)n;
	lua_pop(L, 1);
}

/* Second pass: copy what the first pass validated. Raw reads of the same
 * table with no Lua code run in between give the same strings. */
static const char **copy_list(lua_State *L, const char *key, size_t n,
                              const char ***ptrs, char **chars)
{
	const char **out = *ptrs;

	if (n == 0)
		return NULL;
	get_opt(L, key);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *v;

		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		v = lua_tolstring(L, -1, &len);
		memcpy(*chars, v, len + 1);
		out[i] = *chars;
		*chars += len + 1;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	*ptrs += n;
	return out;
}

static const char *copy_string(lua_State *L, const char *key, char **chars)
{
	size_t len;
	const char *v;
	char *out = *chars;

	if (get_opt(L, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	v = lua_tolstring(L, -1, &len);
	memcpy(out, v, len + 1);
	*chars += len + 1;
	lua_pop(L, 1);
	return out;
}

/* core.server([opts]): start a receiver. Raises for bad options; returns
 * nil, err (kind "listen", or "tls" for an unusable certificate) when the
 * daemon cannot start. */
int gc_l_server(lua_State *L)
{
	struct sockaddr_in addr;
	char host[INET_ADDRSTRLEN] = "127.0.0.1";
	size_t npaths, nmethods, nctypes, bytes = 0, allow_len = 0, cert_len, key_len;
	lua_Integer port, max_body, max_conn, max_ip, idle;
	double req_timeout = 30;
	struct server *s;
	const char **ptrs;
	char *chars;
	unsigned int flags;
	struct MHD_OptionItem tls[3] = {
		{ MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
		{ MHD_OPTION_END, 0, NULL }
	};

	/* 1. validate everything (raising is free: nothing allocated yet) */
	if (!lua_isnoneornil(L, 1)) {
		luaL_checktype(L, 1, LUA_TTABLE);
		gc_check_keys(L, 1, WHERE, server_keys);
	}
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	switch (get_opt(L, "host")) {
	case LUA_TNIL:
		break;
	case LUA_TSTRING: {
		size_t len;
		const char *h = lua_tolstring(L, -1, &len);

		if (len >= sizeof host)
			luaL_error(L, WHERE ": option 'host' must be an IPv4 address, got '%s'", h);
		memcpy(host, h, len + 1);
		break;
	}
	default:
		luaL_error(L, WHERE ": option 'host' must be a string");
	}
	lua_pop(L, 1);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		luaL_error(L, WHERE ": option 'host' must be an IPv4 address, got '%s'", host);
	port = opt_integer(L, "port", 0, 0, 65535);
	addr.sin_port = htons((uint16_t)port);
	max_body = opt_integer(L, "max_body", 262144, 0, (lua_Integer)1 << 30);
	max_conn = opt_integer(L, "max_connections", 64, 1, 65536);
	max_ip = opt_integer(L, "max_per_ip", 16, 0, 65536);
	idle = opt_integer(L, "idle_timeout", 10, 0, 86400);
	switch (get_opt(L, "request_timeout")) {
	case LUA_TNIL:
		break;
	case LUA_TNUMBER:
		req_timeout = lua_tonumber(L, -1);
		if (req_timeout >= 0 && req_timeout <= 86400)
			break;
		/* fall through */
	default:
		luaL_error(L, WHERE ": option 'request_timeout' must be a number of seconds "
		           "in 0..86400");
	}
	lua_pop(L, 1);
	opt_list_size(L, "paths", LIST_PATHS, &npaths, &bytes);
	opt_list_size(L, "methods", LIST_METHODS, &nmethods, &bytes);
	opt_list_size(L, "content_types", LIST_CTYPES, &nctypes, &bytes);
	if (nmethods) {
		get_opt(L, "methods");
		for (size_t i = 1; i <= nmethods; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			allow_len += lua_rawlen(L, -1) + 2;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		bytes += allow_len;
	}
	cert_len = opt_string_size(L, "tls_cert");
	key_len = opt_string_size(L, "tls_key");
	if ((cert_len == 0) != (key_len == 0))
		luaL_error(L, WHERE ": options 'tls_cert' and 'tls_key' go together");
	bytes += cert_len + key_len;

	/* 2. the userdata owns every copy (Lua memory: nothing to leak) */
	s = lua_newuserdatauv(L, sizeof *s + (npaths + nmethods + nctypes) * sizeof(char *) +
	                      bytes, 0);
	memset(s, 0, sizeof *s);
	s->closed = 1;  /* until the daemon runs */
	luaL_setmetatable(L, GC_SERVER_MT);
	ptrs = (const char **)(void *)(s + 1);
	chars = (char *)(ptrs + npaths + nmethods + nctypes);
	memcpy(s->host, host, sizeof host);
	s->addr = addr;
	s->paths = copy_list(L, "paths", npaths, &ptrs, &chars);
	s->npaths = npaths;
	s->methods = copy_list(L, "methods", nmethods, &ptrs, &chars);
	s->nmethods = nmethods;
	s->ctypes = copy_list(L, "content_types", nctypes, &ptrs, &chars);
	s->nctypes = nctypes;
	if (nmethods) {
		char *a = chars;

		for (size_t i = 0; i < nmethods; i++) {
			size_t len = strlen(s->methods[i]);

			if (i) {
				memcpy(chars, ", ", 2);
				chars += 2;
			}
			memcpy(chars, s->methods[i], len);
			chars += len;
		}
		*chars++ = '\0';
		s->allow = a;
		chars = a + allow_len;
	}
	s->tls_cert = copy_string(L, "tls_cert", &chars);
	s->tls_key = copy_string(L, "tls_key", &chars);
	s->max_body = (size_t)max_body;
	s->max_connections = (unsigned int)max_conn;
	s->max_per_ip = (unsigned int)max_ip;
	s->idle_timeout = (unsigned int)idle;
	s->request_timeout_ms = (long long)(req_timeout * 1000.0);
	if (req_timeout > 0 && s->request_timeout_ms == 0)
		s->request_timeout_ms = 1;

	/* 3. the daemon: external polling through epoll, no logging */
	flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
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
	s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_access, s,
	                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&s->addr,
	                        MHD_OPTION_CONNECTION_LIMIT, s->max_connections,
	                        MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->max_per_ip,
	                        MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout,
	                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)GC_POOL_BYTES,
	                        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	                        MHD_OPTION_ARRAY, tls,
	                        MHD_OPTION_END);
	if (!s->d) {
		int e = errno;

		/* A socket call that failed left errno set; GnuTLS rejecting the
		 * certificate or key does not. */
		if (e)
			return gc_fail(L, "listen", "cannot listen on %s:%d: %s", host,
			               (int)port, strerror(e));
		if (s->tls_cert)
			return gc_fail(L, "tls", "cannot start HTTPS on %s:%d: unusable "
			               "certificate or key", host, (int)port);
		return gc_fail(L, "listen", "cannot listen on %s:%d", host, (int)port);
	}
	{
		const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);

		s->port = di && di->port ? di->port : (unsigned int)port;
	}
	s->closed = 0;
	return 1;
}

void gc_open_server(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "port", srv_port },
		{ "fd", srv_fd },
		{ "timeout", srv_timeout },
		{ "run", srv_run },
		{ "next", srv_next },
		{ "respond", srv_respond },
		{ "abort", srv_abort },
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
