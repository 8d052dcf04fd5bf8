/* HTTP dispatch and the loop's one descriptor: a graphcall.http userdata
 * owns one libcurl multi handle, so every request of a client shares its
 * connections (keep-alive, HTTP/2 over TLS when the server offers it), and
 * many requests can be in flight at once, up to a bound; the rest wait in
 * submission order.
 *
 * It also owns the event loop's epoll descriptor. libcurl puts its sockets
 * there itself (CURLMOPT_SOCKETFUNCTION, driven by
 * curl_multi_socket_action), and the Lua loop adds the other descriptors
 * it waits on (h:watch: the receivers' epoll fds, Redis connections), so
 * one epoll_wait covers everything and a wake-up costs what became ready,
 * not what is open. A host event loop waits on h:fd() for reading.
 *
 * libcurl calls back only into C (body and header accounting); Lua values
 * are built after curl_multi_* has returned. Finished transfers move to a
 * done list first, so a Lua memory error while building results loses
 * nothing that close() would not free.
 *
 * Size (over 600 lines): the transfers, libcurl's callbacks and the epoll
 * set share one struct and its invariants (which list a transfer is in,
 * what each socket is registered for), which every function here keeps. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>

#include <curl/curl.h>

#include "graphcall.h"
#include "common/list.h"

#define MAX_HEADER_LINES 200
#define MAX_HEADER_BYTES (64 * 1024)
#define EASY_POOL 64
#define MAX_EVENTS 64
/* epoll data of libcurl's sockets; the Lua loop's watches carry small tokens */
#define CURL_TAG (UINT64_C(1) << 63)
#define URL_CACHE 8
#define READ_HEADERS_MAX 16
#define HEADER_NAME_MAX 127

/* A URL parsed by libcurl's URL API. libcurl parses a CURLOPT_URL string
 * again for every transfer (a twentieth of a create request); given a
 * parsed handle (CURLOPT_CURLU, which it only reads) it does not. A bot's
 * URLs repeat (every create goes to one), so gc_http keeps the last few,
 * each shared by the transfers in flight that use it. */
typedef struct {
	char *url;
	CURLU *u;
	int users;                  /* transfers holding u */
	unsigned long used;         /* when last taken: the least recent goes first */
} parsed_url;

typedef struct transfer {
	CURL *easy;
	struct curl_slist *headers;
	parsed_url *url;            /* NULL: libcurl parses the URL string */
	char *read;                 /* names of the headers to read, "a\0b\0\0"; NULL: all */
	char *body;
	size_t len, cap, max;
	size_t header_lines, header_bytes;
	int too_large, too_many_headers;
	int create;                 /* a create request: failures after sending are unknown outcomes */
	int attempts;               /* times the request was about to be sent */
	int retry_refused;          /* libcurl wanted to resend a create request */
	CURLcode result;
	lua_Integer id;
	struct gc_link link;        /* in waiting, active or done */
} transfer;

typedef struct {
	CURLM *multi;
	struct gc_list waiting, active, done;
	CURL *pool[EASY_POOL];
	int pooled;
	int max_in_flight;
	long connect_timeout_ms, timeout_ms;
	size_t max_response;
	lua_Integer next_id;
	parsed_url urls[URL_CACHE];
	unsigned long url_clock;
	int epfd;                   /* the loop's one descriptor */
	unsigned char *socks;       /* by descriptor: SOCK_* of libcurl's sockets */
	int nsocks;
	long long timer_at;         /* libcurl's timer, monotonic ms; -1: none */
	int closed;
} gc_http;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The state of one of libcurl's sockets in the epoll set (h->socks[fd]).
 * libcurl says REMOVE for a kept-alive connection after every request and
 * asks for it again with the next one; the registration stays meanwhile,
 * so a sequential request costs no epoll_ctl. An event for a socket
 * libcurl no longer waits on removes it then (a server closing an idle
 * connection), and closing a socket (on_close) removes it first. */
#define SOCK_IN 1       /* registered for reading */
#define SOCK_OUT 2      /* for writing */
#define SOCK_ADDED 4    /* in the epoll set */
#define SOCK_WANTED 8   /* libcurl waits on it */

static int sock_slot(gc_http *h, curl_socket_t fd)
{
	if (fd < 0)
		return 0;
	if (fd >= h->nsocks) {
		int n = h->nsocks ? h->nsocks : 64;
		unsigned char *socks;
		while (n <= fd)
			n *= 2;
		if (!(socks = realloc(h->socks, (size_t)n)))
			return 0;
		memset(socks + h->nsocks, 0, (size_t)(n - h->nsocks));
		h->socks = socks;
		h->nsocks = n;
	}
	return 1;
}

static void sock_forget(gc_http *h, curl_socket_t fd)
{
	if (fd < 0 || fd >= h->nsocks)
		return;
	if (h->socks[fd] & SOCK_ADDED)
		epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
	h->socks[fd] = 0;
}

/* CURLMOPT_SOCKETFUNCTION: libcurl says which of its sockets to wait on, for what. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *socketp)
{
	gc_http *h = ud;
	struct epoll_event ev = { 0 };
	int want, was, op;

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		if (fd >= 0 && fd < h->nsocks)
			h->socks[fd] &= (unsigned char)~SOCK_WANTED;
		return 0;
	}
	if (!sock_slot(h, fd))
		return -1;
	want = (what & CURL_POLL_IN ? SOCK_IN : 0) | (what & CURL_POLL_OUT ? SOCK_OUT : 0);
	was = h->socks[fd];
	if ((was & SOCK_ADDED) && (was & (SOCK_IN | SOCK_OUT)) == want) {
		h->socks[fd] = (unsigned char)(was | SOCK_WANTED);
		return 0;
	}
	ev.events = (want & SOCK_IN ? EPOLLIN : 0) | (want & SOCK_OUT ? EPOLLOUT : 0);
	ev.data.u64 = CURL_TAG | (uint64_t)(unsigned)fd;
	op = was & SOCK_ADDED ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(h->epfd, op, fd, &ev) != 0 &&
	    epoll_ctl(h->epfd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
		return -1;
	h->socks[fd] = (unsigned char)(want | SOCK_ADDED | SOCK_WANTED);
	return 0;
}

/* CURLOPT_CLOSESOCKETFUNCTION: out of the epoll set before it is closed
 * (a child process holding a copy would keep the registration alive). */
static int on_close(void *ud, curl_socket_t fd)
{
	sock_forget(ud, fd);
	return close(fd);
}

/* CURLMOPT_TIMERFUNCTION: when libcurl next wants to run for its own sake. */
static int on_timer(CURLM *multi, long ms, void *ud)
{
	gc_http *h = ud;

	(void)multi;
	h->timer_at = ms < 0 ? -1 : now_ms() + ms;
	return 0;
}

static void list_push(struct gc_list *l, transfer *t)
{
	gc_list_push(l, &t->link);
}

static void list_remove(struct gc_list *l, transfer *t)
{
	gc_list_remove(l, &t->link);
}

/* The first transfer of l, or NULL. */
static transfer *list_first(struct gc_list *l)
{
	return GC_LIST_FIRST(l, transfer, link);
}

/* Give the easy handle back to the pool, or clean it up. A pooled handle
 * keeps the options every request shares (new_easy); submit sets the rest. */
static void transfer_free(gc_http *h, transfer *t)
{
	if (t->url)
		t->url->users--;
	if (t->easy) {
		if (h->pooled < EASY_POOL) {
			/* freed below, or by the URL cache once no transfer holds it */
			curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
			curl_easy_setopt(t->easy, CURLOPT_CURLU, NULL);
			h->pool[h->pooled++] = t->easy;
		} else {
			curl_easy_cleanup(t->easy);
		}
	}
	curl_slist_free_all(t->headers);
	free(t->read);
	free(t->body);
	free(t);
}

/* The parsed form of url, from the cache or parsed now into the entry no
 * transfer holds that was used least recently; NULL when every entry is
 * held, or libcurl cannot parse url with the flags it parses CURLOPT_URL
 * with (then the transfer gives it the string, and reports its error). */
static parsed_url *parsed(gc_http *h, const char *url)
{
	parsed_url *e = NULL;
	CURLU *u;
	char *copy;

	for (int i = 0; i < URL_CACHE; i++) {
		parsed_url *c = &h->urls[i];
		if (c->url && strcmp(c->url, url) == 0) {
			c->used = ++h->url_clock;
			return c;
		}
		if (c->users == 0 && (!e || c->used < e->used))
			e = c;
	}
	if (!e)
		return NULL;
	u = curl_url();
	copy = strdup(url);
	if (!u || !copy || curl_url_set(u, CURLUPART_URL, url,
	                                CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		curl_url_cleanup(u);
		free(copy);
		return NULL;
	}
	curl_url_cleanup(e->u);
	free(e->url);
	e->u = u;
	e->url = copy;
	e->used = ++h->url_clock;
	return e;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	transfer *t = ud;
	size_t add = size * n;

	if (add > t->max - t->len) {
		t->too_large = 1;
		return 0; /* abort: the cap holds for chunked bodies too */
	}
	if (t->len + add > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		char *p;
		while (cap < t->len + add)
			cap *= 2;
		if (cap > t->max)
			cap = t->max;
		if (!(p = realloc(t->body, cap)))
			return 0;
		t->body = p;
		t->cap = cap;
	}
	memcpy(t->body + t->len, data, add);
	t->len += add;
	return add;
}

/* libcurl keeps the headers (read back with curl_easy_nextheader); this only
 * bounds how many a server may send. */
static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	transfer *t = ud;
	size_t add = size * n;

	(void)data;
	t->header_lines++;
	t->header_bytes += add;
	if (t->header_lines > MAX_HEADER_LINES || t->header_bytes > MAX_HEADER_BYTES) {
		t->too_many_headers = 1;
		return 0;
	}
	return add;
}

/* Runs before each attempt to send. libcurl silently resends a request
 * whose reused connection closed without a byte of answer; for a create
 * request that closing may have come after Graph created the call, so the
 * resend is refused and the outcome reported as unknown. */
static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip,
                     int conn_primary_port, int conn_local_port)
{
	transfer *t = ud;

	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	if (++t->attempts > 1 && t->create) {
		t->retry_refused = 1;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* Let libcurl act on one socket (or on its timer: CURL_SOCKET_TIMEOUT). */
static void act(gc_http *h, curl_socket_t fd, int flags)
{
	int running;

	curl_multi_socket_action(h->multi, fd, flags, &running);
}

static void start_waiting(gc_http *h)
{
	while (h->waiting.head && (int)h->active.n < h->max_in_flight) {
		transfer *t = list_first(&h->waiting);
		list_remove(&h->waiting, t);
		if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK) {
			t->result = CURLE_OUT_OF_MEMORY;
			list_push(&h->done, t);
			continue;
		}
		list_push(&h->active, t);
	}
}

static gc_http *check_http(lua_State *L)
{
	gc_http *h = luaL_checkudata(L, 1, GC_HTTP_MT);

	luaL_argcheck(L, !h->closed, 1, GC_HTTP_MT " is closed");
	return h;
}

/* core.http{ connect_timeout_ms=, timeout_ms=, max_response_bytes=, max_in_flight=,
 *            ca_file= } -- ca_file: PEM bundle trusted instead of the system's */
int gc_l_http(lua_State *L)
{
	enum { O_CONNECT, O_TIMEOUT, O_MAX_RESPONSE, O_IN_FLIGHT, O_CA_FILE, O_COUNT };
	static const gc_opt specs[O_COUNT] = {
		[O_CONNECT] = { "connect_timeout_ms", GC_OPT_INTEGER, 0, 1, 600000, 10000, NULL },
		[O_TIMEOUT] = { "timeout_ms", GC_OPT_INTEGER, 0, 1, 3600000, 30000, NULL },
		[O_MAX_RESPONSE] = { "max_response_bytes", GC_OPT_INTEGER, 0, 1, 1 << 30, 4 * 1024 * 1024, NULL },
		[O_IN_FLIGHT] = { "max_in_flight", GC_OPT_INTEGER, 0, 1, 1024, 32, NULL },
		[O_CA_FILE] = { "ca_file", GC_OPT_STRING, GC_OPT_NO_NUL, 1, 4096, 0, "a path" },
	};
	gc_optval v[O_COUNT];
	gc_http *h;

	gc_opts_read(L, 1, "graphcall.http", specs, O_COUNT, v);
	if (v[O_CA_FILE].set)
		lua_pushlstring(L, v[O_CA_FILE].s, v[O_CA_FILE].len);
	else
		lua_pushnil(L);

	h = lua_newuserdatauv(L, sizeof *h, 1);
	memset(h, 0, sizeof *h);
	h->closed = 1; /* until the multi handle exists */
	luaL_setmetatable(L, GC_HTTP_MT);
	lua_insert(L, -2);
	lua_setiuservalue(L, -2, 1);        /* the CA file path, kept by the userdata */
	h->epfd = -1;
	h->timer_at = -1;
	h->multi = curl_multi_init();
	if (!h->multi)
		return luaL_error(L, "graphcall.http: out of memory");
	if ((h->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		curl_multi_cleanup(h->multi);
		h->multi = NULL;
		return luaL_error(L, "graphcall.http: epoll_create1: %s", strerror(errno));
	}
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)v[O_IN_FLIGHT].i);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	h->closed = 0;
	h->connect_timeout_ms = (long)v[O_CONNECT].i;
	h->timeout_ms = (long)v[O_TIMEOUT].i;
	h->max_response = (size_t)v[O_MAX_RESPONSE].i;
	h->max_in_flight = (int)v[O_IN_FLIGHT].i;
	return 1;
}

static int http_close(lua_State *L)
{
	gc_http *h = luaL_checkudata(L, 1, GC_HTTP_MT);
	struct gc_list *lists[] = { &h->waiting, &h->active, &h->done };

	if (h->closed)
		return 0;
	h->closed = 1;
	for (int i = 0; i < 3; i++) {
		while (lists[i]->head) {
			transfer *t = list_first(lists[i]);
			list_remove(lists[i], t);
			if (lists[i] == &h->active)
				curl_multi_remove_handle(h->multi, t->easy);
			curl_easy_cleanup(t->easy);
			t->easy = NULL;
			transfer_free(h, t);
		}
	}
	while (h->pooled > 0)
		curl_easy_cleanup(h->pool[--h->pooled]);
	for (int i = 0; i < URL_CACHE; i++) {
		curl_url_cleanup(h->urls[i].u);
		free(h->urls[i].url);
		h->urls[i].u = NULL;
		h->urls[i].url = NULL;
	}
	curl_multi_cleanup(h->multi);       /* closes sockets through on_close */
	h->multi = NULL;
	free(h->socks);
	h->socks = NULL;
	h->nsocks = 0;
	close(h->epfd);
	h->epfd = -1;
	return 0;
}

/* A new easy handle with the options every request of h shares. */
static CURL *new_easy(gc_http *h, const char *ca_file)
{
	CURL *easy = curl_easy_init();

	if (!easy)
		return NULL;
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	/* wait for a connection being set up to say whether it multiplexes
	 * (ALPN) rather than open one per request in flight: 1000 requests at
	 * once were 1000 TLS handshakes, more than a server takes at once */
	curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_response);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, h);
	return easy;
}

static void check_header_text(lua_State *L, int idx, const char *what)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			luaL_error(L, "graphcall.http: header %s contains a control character", what);
}

/* The names of read_headers (the table at idx) as "a\0b\0\0" in buf, which
 * has room for READ_HEADERS_MAX names; raises unless they are lower-case
 * header names. */
static size_t read_names(lua_State *L, int idx, char *buf)
{
	size_t at = 0, n = lua_rawlen(L, idx);

	luaL_argcheck(L, n >= 1 && n <= READ_HEADERS_MAX, 2,
	              "read_headers must list 1 to 16 header names");
	for (size_t i = 1; i <= n; i++) {
		size_t len;
		const char *name;
		int ok = lua_rawgeti(L, idx, (lua_Integer)i) == LUA_TSTRING;
		name = lua_tolstring(L, -1, &len);
		ok = ok && len >= 1 && len <= HEADER_NAME_MAX;
		for (size_t k = 0; ok && k < len; k++)
			ok = (name[k] >= 'a' && name[k] <= 'z') || (name[k] >= '0' && name[k] <= '9') ||
			     name[k] == '-' || name[k] == '_';
		luaL_argcheck(L, ok, 2, "read_headers must list lower-case header names");
		memcpy(buf + at, name, len + 1);
		at += len + 1;
		lua_pop(L, 1);
	}
	buf[at++] = '\0';
	return at;
}

/* h:submit{ method=, url=, headers={name=value}, body=?, create=?, urgent=?,
 *           read_headers=? } -> id
 * urgent: start at once, outside the bound on requests in flight (key and
 * token fetches that other requests wait for must not queue behind them).
 * read_headers: the lower-case names of the only response headers the
 * result needs (default: all of them; copying every header out of libcurl
 * was a tenth of a create request). */
static void collect(gc_http *h);
static void run_timer(gc_http *h);

static int http_submit(lua_State *L)
{
	static const char *const keys[] = { "method", "url", "headers", "body", "create", "urgent",
	                                    "read_headers", NULL };
	char names[READ_HEADERS_MAX * (HEADER_NAME_MAX + 1) + 1];
	size_t names_len = 0;
	gc_http *h = check_http(L);
	const char *method, *url, *body = NULL;
	size_t body_len = 0;
	int create, urgent;
	transfer *t;
	CURL *easy;

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	gc_check_keys(L, 2, "submit", keys);
	lua_getfield(L, 2, "method");
	lua_getfield(L, 2, "url");
	lua_getfield(L, 2, "headers");
	lua_getfield(L, 2, "body");
	lua_getfield(L, 2, "create");
	method = luaL_checkstring(L, 3);
	url = luaL_checkstring(L, 4);
	luaL_argcheck(L, strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 ||
	              strcmp(method, "DELETE") == 0 || strcmp(method, "PATCH") == 0 ||
	              strcmp(method, "PUT") == 0, 2, "method must be GET, POST, PUT, PATCH or DELETE");
	if (!lua_isnil(L, 5)) {
		luaL_checktype(L, 5, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 5)) {
			luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING,
			              2, "headers must map names to strings");
			check_header_text(L, -2, "name");
			check_header_text(L, -1, "value");
			lua_pop(L, 1);
		}
	}
	if (!lua_isnil(L, 6))
		body = luaL_checklstring(L, 6, &body_len);
	luaL_argcheck(L, !body || strcmp(method, "GET") != 0, 2, "a GET has no body");
	create = lua_toboolean(L, 7);
	lua_getiuservalue(L, 1, 1);         /* ca_file or nil, at index 8 */
	lua_getfield(L, 2, "urgent");       /* at index 9 */
	urgent = lua_toboolean(L, 9);
	if (lua_getfield(L, 2, "read_headers") != LUA_TNIL) { /* at index 10 */
		luaL_argcheck(L, lua_type(L, 10) == LUA_TTABLE, 2, "read_headers must be a list of names");
		names_len = read_names(L, 10, names);
	}

	/* From here on nothing raises until the transfer is queued. */
	if (!(t = calloc(1, sizeof *t)))
		return luaL_error(L, "graphcall.http: out of memory");
	easy = h->pooled ? h->pool[--h->pooled]
	                 : new_easy(h, lua_type(L, 8) == LUA_TSTRING ? lua_tostring(L, 8) : NULL);
	if (!easy) {
		free(t);
		return luaL_error(L, "graphcall.http: out of memory");
	}
	t->easy = easy;
	if (names_len && !(t->read = malloc(names_len))) {
		transfer_free(h, t);
		return luaL_error(L, "graphcall.http: out of memory");
	}
	if (names_len)
		memcpy(t->read, names, names_len);
	t->max = h->max_response;
	t->create = create;
	t->id = ++h->next_id;
	/* No "Expect: 100-continue" round trip for bodies over 1 KB. */
	if (!(t->headers = curl_slist_append(NULL, "Expect:"))) {
		transfer_free(h, t);
		return luaL_error(L, "graphcall.http: out of memory");
	}
	if (!lua_isnil(L, 5)) {
		lua_pushnil(L);
		while (lua_next(L, 5)) {
			char line[1024];
			struct curl_slist *more = NULL;
			size_t nlen, vlen;
			const char *name = lua_tolstring(L, -2, &nlen);
			const char *value = lua_tolstring(L, -1, &vlen);
			/* "name: value" (snprintf was a tenth of submit) */
			int fits = nlen + vlen + 3 <= sizeof line;
			if (fits) {
				memcpy(line, name, nlen);
				memcpy(line + nlen, ": ", 2);
				memcpy(line + nlen + 2, value, vlen);
				line[nlen + 2 + vlen] = '\0';
			}
			lua_pop(L, 1);
			if (!fits || !(more = curl_slist_append(t->headers, line))) {
				lua_pop(L, 1);
				transfer_free(h, t);
				return luaL_error(L, "graphcall.http: header too long (over 1023 bytes)");
			}
			t->headers = more;
		}
	}

	/* The string too: libcurl reports it (CURLINFO_EFFECTIVE_URL) and
	 * does not have to make it again from the parsed handle. */
	if ((t->url = parsed(h, url)))
		t->url->users++;
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_CURLU, t->url ? t->url->u : NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, t);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
	if (body || strcmp(method, "POST") == 0) {
		/* libcurl copies the body, so the Lua string may go. */
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body ? body : "");
	} else {
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L); /* no body left from a pooled POST */
	}
	curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST,
	                 strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 ? method : NULL);
	if (urgent && curl_multi_add_handle(h->multi, easy) == CURLM_OK) {
		list_push(&h->active, t);
	} else {
		list_push(&h->waiting, t);
		start_waiting(h);
	}
	/* Start it now (connect, or write it on a kept-alive connection): the
	 * epoll descriptor then wakes whoever waits on it when the answer
	 * comes, even a host loop that did not expect this request. An answer
	 * read already (a fast server) is collected, so the next wait returns
	 * it without asking the kernel again. */
	h->timer_at = now_ms();
	run_timer(h);
	collect(h);
	lua_pushinteger(L, t->id);
	return 1;
}

static const char *failure_kind(transfer *t)
{
	if (t->too_large)
		return "too_large";
	if (t->too_many_headers)
		return "too_many_headers";
	if (t->retry_refused)
		return "network";
	switch (t->result) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return "connect";
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return "tls";
	case CURLE_PARTIAL_FILE:
		return "truncated";
	case CURLE_FILESIZE_EXCEEDED:
		return "too_large";
	default:
		return "network";
	}
}

/* Push the result table of a finished transfer. */
static void push_result(lua_State *L, transfer *t)
{
	long status = 0, sent = 0;
	struct curl_header *hdr, *prev = NULL;

	lua_createtable(L, 0, 8);
	lua_pushinteger(L, t->id);
	lua_setfield(L, -2, "id");
	curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent);
	lua_pushboolean(L, sent > 0 || t->attempts > 1);
	lua_setfield(L, -2, "sent");
	if (t->result != CURLE_OK || t->too_large || t->too_many_headers) {
		lua_pushstring(L, failure_kind(t));
		lua_setfield(L, -2, "failure");
		lua_pushstring(L, t->too_large ? "response body over the size cap"
		               : t->too_many_headers ? "too many response headers"
		               : t->retry_refused ? "the connection closed after the request was sent"
		               : curl_easy_strerror(t->result));
		lua_setfield(L, -2, "message");
	}
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status > 0) {
		long version = 0;
		lua_pushinteger(L, status);
		lua_setfield(L, -2, "status");
		/* for the trace (graphcall.log): the protocol the answer came in */
		curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
		lua_pushstring(L, version == CURL_HTTP_VERSION_1_0 ? "HTTP/1.0"
		               : version == CURL_HTTP_VERSION_2_0 ? "HTTP/2"
		               : version == CURL_HTTP_VERSION_3 ? "HTTP/3" : "HTTP/1.1");
		lua_setfield(L, -2, "http_version");
	}
	lua_createtable(L, 0, t->read ? 4 : 16);
	/* the last of each name, as a table of all of them keeps it */
	for (const char *name = t->read; name && *name; name += strlen(name) + 1) {
		if (curl_easy_header(t->easy, name, 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK)
			continue;
		if (hdr->amount > 1 &&
		    curl_easy_header(t->easy, name, hdr->amount - 1, CURLH_HEADER, -1, &hdr) != CURLHE_OK)
			continue;
		lua_pushstring(L, hdr->value);
		lua_setfield(L, -2, name);
	}
	while (!t->read && (hdr = curl_easy_nextheader(t->easy, CURLH_HEADER, -1, prev))) {
		size_t n = strlen(hdr->name);
		char lower[128];
		if (n < sizeof lower) {
			for (size_t i = 0; i <= n; i++)
				lower[i] = (char)((hdr->name[i] >= 'A' && hdr->name[i] <= 'Z')
				                  ? hdr->name[i] + 32 : hdr->name[i]);
			lua_pushstring(L, hdr->value);
			lua_setfield(L, -2, lower);
		}
		prev = hdr;
	}
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, t->body ? t->body : "", t->len);
	lua_setfield(L, -2, "body");
}

/* An HTTP/2 server may send its complete response, and end the stream,
 * before it has read the whole request body (RFC 9113, 8.1; nginx does so
 * whenever the answer does not depend on the body: a `return`, an early
 * 401, 413 or 429). libcurl 7.88 sends an HTTP/2 request body in DATA
 * frames in a later step than the HEADERS; if the answer and the end of
 * the stream were read first, the step that sends the body finds the
 * stream closed and fails the transfer with CURLE_HTTP2_STREAM ("stream N
 * closed"; later libcurl releases keep the response instead). http_wait
 * makes that gap as short as libcurl allows; this keeps what still falls
 * into it: when the whole answer was delivered (a final status and, if it
 * carries a body, exactly Content-Length bytes of it), the exchange
 * succeeded and so does the transfer. When libcurl dropped the answer (its
 * send step consumed the end of the stream before the answer was read: no
 * status), the failure stands, and a create reports an unknown outcome
 * (sent, no status): it is never resent. */
static int answered_early(transfer *t)
{
	long status = 0, version = 0;
	curl_off_t length = -1;

	if ((t->result != CURLE_HTTP2_STREAM && t->result != CURLE_SEND_ERROR) ||
	    t->too_large || t->too_many_headers || t->retry_refused)
		return 0;
	curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (version != CURL_HTTP_VERSION_2_0 || status < 200)
		return 0;
	if (status == 204 || status == 304)
		return t->len == 0;
	curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
	return length >= 0 && (curl_off_t)t->len == length;
}

/* Move finished transfers from libcurl to the done list. */
static void collect(gc_http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left))) {
		transfer *t = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		t->result = msg->data.result;
		if (answered_early(t))
			t->result = CURLE_OK;
		curl_multi_remove_handle(h->multi, t->easy);
		list_remove(&h->active, t);
		list_push(&h->done, t);
	}
	start_waiting(h);
}

/* Run libcurl's timer when it is due, then ask libcurl when it next wants
 * to run. Its timer callback reports a new expiry only when it differs
 * from the last one it reported: a timer_at left in the past would make
 * every later wait return at once (an idle loop spinning on epoll_wait),
 * and one cleared here could lose a timer. curl_multi_timeout is the
 * authoritative answer. */
static void run_timer(gc_http *h)
{
	long ms;

	if (h->timer_at < 0 || h->timer_at > now_ms())
		return;
	act(h, CURL_SOCKET_TIMEOUT, 0);
	if (curl_multi_timeout(h->multi, &ms) == CURLM_OK)
		h->timer_at = ms < 0 ? -1 : now_ms() + ms;
}

static int ready_mask(uint32_t events)
{
	return (events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? 1 : 0) | (events & (EPOLLOUT | EPOLLERR) ? 2 : 0);
}

/* h:wait(timeout_ms) -> results, ready: wait up to timeout_ms (less when
 * libcurl's timer is due sooner) for any descriptor of the epoll set; let
 * libcurl act on its own sockets; return the transfers that finished, in
 * completion order, and the watched descriptors that became ready as a flat
 * list { token1, mask1, token2, mask2, ... } (mask: 1 readable, 2 writable),
 * or nil when none did. */
static int http_wait(lua_State *L)
{
	gc_http *h = check_http(L);
	lua_Integer timeout = luaL_checkinteger(L, 2);
	struct epoll_event evs[MAX_EVENTS];
	int n, nready = 0, i = 0;

	if (timeout < 0)
		timeout = 0;
	if (timeout > 60000)
		timeout = 60000;
	if (h->done.head)
		timeout = 0;
	if (h->timer_at >= 0) {
		long long due = h->timer_at - now_ms();
		if (due < timeout)
			timeout = due < 0 ? 0 : due;
	}
	lua_settop(L, 1);
	lua_createtable(L, 0, 0);           /* 2: results, filled below */
	lua_pushnil(L);                     /* 3: ready, made when one is */
	/* Finished transfers are returned without a look at the descriptors:
	 * those stay ready (level-triggered) for the next wait. */
	n = h->done.head ? 0 : epoll_wait(h->epfd, evs, MAX_EVENTS, (int)timeout);
	/* The ready list is made before libcurl runs: a Lua error (no memory)
	 * before then leaves every event to the next wait. */
	for (int k = 0; k < n; k++) {
		if (evs[k].data.u64 & CURL_TAG)
			continue;
		if (!nready) {
			lua_createtable(L, 8, 0);
			lua_replace(L, 3);
		}
		lua_pushinteger(L, (lua_Integer)evs[k].data.u64);
		lua_rawseti(L, 3, ++nready);
		lua_pushinteger(L, ready_mask(evs[k].events));
		lua_rawseti(L, 3, ++nready);
	}
	for (int k = 0; k < n; k++) {
		int flags = 0;
		curl_socket_t fd;
		if (!(evs[k].data.u64 & CURL_TAG))
			continue;
		/* Writable, always: libcurl 7.88 keeps these bits per connection
		 * and hands them to the first transfer of the connection that runs,
		 * which may be one that has just sent its HTTP/2 HEADERS in this
		 * same call; told only "readable", it would not send its body
		 * until a later wake-up, and a server answering before the body
		 * (see answered_early) made libcurl fail it. A socket that is not
		 * writable after all costs one send that returns EAGAIN. */
		flags |= evs[k].events & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0;
		flags |= CURL_CSELECT_OUT;
		flags |= evs[k].events & EPOLLERR ? CURL_CSELECT_ERR : 0;
		fd = (curl_socket_t)(evs[k].data.u64 & ~CURL_TAG);
		if (fd < h->nsocks && !(h->socks[fd] & SOCK_WANTED)) {
			/* left registered after libcurl's REMOVE: out now */
			sock_forget(h, fd);
			continue;
		}
		act(h, fd, flags);
	}
	run_timer(h);
	collect(h);
	while (h->done.head) {
		transfer *t = list_first(&h->done);
		push_result(L, t);
		lua_rawseti(L, 2, ++i);
		list_remove(&h->done, t);
		transfer_free(h, t);
	}
	return 2;
}

/* h:watch(fd, events, token): wait on fd too ("r", "w" or "rw"; a watch of
 * the same fd is changed); h:wait reports it by token (a positive integer
 * below 2^53). h:unwatch(fd) stops. Returns true, or nil, err when the
 * kernel refuses the descriptor (closed, or one epoll cannot wait on). */
static int http_watch(lua_State *L)
{
	gc_http *h = check_http(L);
	int fd = (int)luaL_checkinteger(L, 2);
	const char *events = luaL_checkstring(L, 3);
	lua_Integer token = luaL_checkinteger(L, 4);
	struct epoll_event ev = { 0 };

	luaL_argcheck(L, fd >= 0, 2, "not a file descriptor");
	luaL_argcheck(L, token > 0 && token < ((lua_Integer)1 << 53), 4, "token must be a positive integer");
	luaL_argcheck(L, strcmp(events, "r") == 0 || strcmp(events, "w") == 0 || strcmp(events, "rw") == 0 ||
	              strcmp(events, "") == 0, 3, "events must be \"r\", \"w\", \"rw\" or \"\"");
	ev.events = (strchr(events, 'r') ? EPOLLIN : 0) | (strchr(events, 'w') ? EPOLLOUT : 0);
	ev.data.u64 = (uint64_t)token;
	if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
	    (errno != ENOENT || epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) != 0))
		return gc_fail(L, "watch", "cannot wait on fd %d: %s", fd, strerror(errno));
	lua_pushboolean(L, 1);
	return 1;
}

static int http_unwatch(lua_State *L)
{
	gc_http *h = check_http(L);
	int fd = (int)luaL_checkinteger(L, 2);

	lua_pushboolean(L, epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL) == 0);
	return 1;
}

/* h:fd() -> the epoll descriptor: readable when anything the loop waits on is */
static int http_fd(lua_State *L)
{
	gc_http *h = check_http(L);

	lua_pushinteger(L, h->epfd);
	return 1;
}

/* h:pending() -> transfers submitted and not yet returned by poll */
static int http_pending(lua_State *L)
{
	gc_http *h = check_http(L);

	lua_pushinteger(L, (lua_Integer)(h->waiting.n + h->active.n + h->done.n));
	return 1;
}

/* h:timeout() -> ms until libcurl needs to run for its own timers (0 when
 * finished transfers wait to be returned), or -1 */
static int http_timeout(lua_State *L)
{
	gc_http *h = check_http(L);
	long long ms = -1;

	if (h->done.head)
		ms = 0;
	else if (h->timer_at >= 0)
		ms = h->timer_at - now_ms() < 0 ? 0 : h->timer_at - now_ms();
	lua_pushinteger(L, (lua_Integer)ms);
	return 1;
}

static int http_tostring(lua_State *L)
{
	gc_http *h = luaL_checkudata(L, 1, GC_HTTP_MT);

	if (h->closed)
		lua_pushliteral(L, GC_HTTP_MT ": (closed)");
	else
		lua_pushfstring(L, GC_HTTP_MT ": %I in flight, %I waiting",
		                (lua_Integer)h->active.n, (lua_Integer)h->waiting.n);
	return 1;
}

void gc_open_http(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__gc", http_close },
		{ "__close", http_close },
		{ "__tostring", http_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg methods[] = {
		{ "submit", http_submit },
		{ "wait", http_wait },
		{ "watch", http_watch },
		{ "unwatch", http_unwatch },
		{ "fd", http_fd },
		{ "pending", http_pending },
		{ "timeout", http_timeout },
		{ "close", http_close },
		{ NULL, NULL }
	};

	luaL_newmetatable(L, GC_HTTP_MT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}
