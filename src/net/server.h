/* net/server.h: the state graphcall.server's three files share.
 *
 *   server.c          the userdata: options, listening, run, close
 *   server_read.c     reading requests: the libmicrohttpd callbacks, the
 *                     checks answered in C, handing a request to Lua
 *   server_respond.c  answering: srv:respond, srv:abort
 *
 * How a request moves through them is told at the top of server.c. */
#ifndef GC_NET_SERVER_H
#define GC_NET_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "graphcall.h"
#include "common/list.h"

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
	struct gc_link alive;       /* in the server's list of live requests */
	struct gc_link waiting;     /* in queue (RQ_QUEUED) or pending (RQ_TAKEN) */
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

struct server {
	struct MHD_Daemon *d;
	int closed;
	int closing;
	unsigned int port;
	lua_Integer next_id;
	struct gc_list all;         /* live requests (struct rq.alive) */
	struct gc_list queue;       /* complete, not taken (FIFO; rq.waiting) */
	struct gc_list pending;     /* taken, not answered (rq.waiting) */
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

/* srv:run's stack: 1 server, 2 wait, 3 handler, 4 the first error a
 * handler raised (nil when none). */
#define RUN_HANDLER 3
#define RUN_ERROR 4

/* --- small helpers ------------------------------------------------------ */

static inline long long gc_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int gc_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static inline int gc_caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (gc_lower((unsigned char)a[i]) != gc_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* RFC 9110 tchar */
static inline int gc_is_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* server_read.c: the libmicrohttpd callbacks (C only, but for the handler
 * of srv:run, which runs under lua_pcall) */
void *gc_server_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void gc_server_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                            enum MHD_RequestTerminationCode toe);
enum MHD_Result gc_server_on_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **req_cls);
/* Unlink r from whatever lists hold it and free it with what it owns. */
void gc_server_rq_free(struct rq *r);
/* Cut off the requests past their deadline; the milliseconds until the
 * next deadline, or -1. */
long long gc_server_expire(struct server *s);
/* Push a request as the table {id, method, path, query, headers, body,
 * remote, token}. */
void gc_server_push_request(lua_State *L, struct rq *r);

/* server.c: the server at index 1, open (raises otherwise) */
struct server *gc_server_check(lua_State *L);

/* server_respond.c: srv:respond, srv:abort */
int gc_server_respond(lua_State *L);
int gc_server_abort(lua_State *L);

#endif
