/* json/scan: the fast pass of the notification parser (src/json/scan.cpp).
 *
 * A plain C interface over simdjson's DOM parser, which validates the whole
 * body (grammar, strings, numbers, depth, trailing data) and then reads the
 * few fields src/in/notification.c turns into a notification; it also
 * finds duplicate member names in JWT and JWKS objects (json/object.c). No Lua here and
 * nothing thrown across this interface: every function is noexcept C++.
 *
 * simdjson accepts a strict subset of what lua-cjson (the reference
 * decoder of the module) accepts: it rejects 1e999, "1.", "-.5", integers
 * over 64 bits, unescaped control characters in strings and form feeds as
 * white space, which lua-cjson takes. The caller therefore hands any body
 * this pass rejects to lua-cjson, and only that decides what is invalid. */
#ifndef GC_JSON_SCAN_H
#define GC_JSON_SCAN_H

#include <stddef.h>

#ifdef __cplusplus
#define GC_NOEXCEPT noexcept
extern "C" {
#else
#define GC_NOEXCEPT
#endif

/* Type of a value. GC_JT_ABSENT is a missing key or a JSON null. */
enum {
	GC_JT_ABSENT = 0,
	GC_JT_STRING,
	GC_JT_NUMBER,
	GC_JT_OBJECT,
	GC_JT_ARRAY,
	GC_JT_OTHER     /* true, false */
};

typedef struct {
	unsigned char type;
	unsigned char num_ok;   /* GC_JT_NUMBER: an integral value in long long */
	size_t len;             /* GC_JT_STRING: bytes; GC_JT_ARRAY: elements */
	const char *str;        /* GC_JT_STRING: unescaped, may hold NUL bytes */
	long long num;          /* GC_JT_NUMBER with num_ok */
} gc_jval;

/* The fields of one entry of `value`, by the last occurrence of each key
 * (lua-cjson's rule for duplicate keys). */
enum {
	GC_JF_CHANGE_TYPE,
	GC_JF_RESOURCE,
	GC_JF_RESOURCE_URL,
	GC_JF_CALLBACK_URI,
	GC_JF_RESOURCE_DATA,
	/* in resourceData when it is an object or an empty array */
	GC_JF_ODATA_TYPE,
	GC_JF_ETAG,
	GC_JF_STATE,
	GC_JF_DIRECTION,
	GC_JF_STATUS,
	GC_JF_CLIENT_CONTEXT,
	GC_JF_RESULT_INFO,
	/* in resourceData.resultInfo when it is an object */
	GC_JF_CODE,
	GC_JF_SUBCODE,
	GC_JF_SUBCODE_CAMEL,    /* subCode */
	GC_JF_MESSAGE,
	/* resourceData[1]["@odata.type"] when resourceData is a non-empty
	 * array whose first element is an object */
	GC_JF_FIRST_ODATA_TYPE,
	GC_JF_COUNT
};

typedef struct {
	gc_jval item;               /* the entry itself (type, array length) */
	gc_jval f[GC_JF_COUNT];
	size_t data_field;          /* position of (the last) resourceData
	                               among the entry's keys, from 0 */
} gc_jitem;

typedef struct {
	gc_jval top;                /* the document */
	gc_jval value;              /* its "value" (when top is an object) */
	size_t value_field;         /* position of (the last) "value" among
	                               the document's keys, from 0 */
	size_t nitems;              /* entries read: value's length when value
	                               is an array of at most max_items, else 0 */
	const gc_jitem *items;      /* valid until the next parse or free */
} gc_jdoc;

typedef struct gc_jscan gc_jscan;

enum { GC_JSCAN_OK, GC_JSCAN_REJECTED, GC_JSCAN_NOMEM };

/* A parser for documents nested at most max_depth levels; NULL when out of
 * memory. Reuse it: its buffers grow to the largest body seen. */
gc_jscan *gc_jscan_new(size_t max_depth) GC_NOEXCEPT;
void gc_jscan_free(gc_jscan *s) GC_NOEXCEPT;

/* Bytes of body the parser's buffers hold without growing. */
size_t gc_jscan_capacity(const gc_jscan *s) GC_NOEXCEPT;

/* Parse body[0..len) and fill *doc. GC_JSCAN_REJECTED when simdjson does not
 * accept the body (invalid, too deep, too large for it); GC_JSCAN_NOMEM when
 * out of memory. */
int gc_jscan_parse(gc_jscan *s, const char *body, size_t len, size_t max_items,
                   gc_jdoc *doc) GC_NOEXCEPT;

/* Parse body[0..len) and read the members keys[0..n) of its top-level
 * object into out[0..n) (the last occurrence of a key; GC_JT_ABSENT when
 * missing or null); *top gets the document's own type. Codes as for
 * gc_jscan_parse. */
int gc_jscan_members(gc_jscan *s, const char *body, size_t len, const char *const *keys,
                     size_t n, gc_jval *top, gc_jval *out) GC_NOEXCEPT;

/* 1 when no object in the JSON text[0..len) (a text lua-cjson decoded),
 * at any level, has two members of one name (names compared unescaped:
 * "a" and "\u0061" are one); 0 when one does (or the text is not
 * well-formed after all); -1 when out of memory. A plain pass over the
 * text, without simdjson (which refuses some texts lua-cjson takes). */
int gc_json_unique_members(const char *text, size_t len) GC_NOEXCEPT;

/* Where an entry's resourceData lies in the body: field is its position
 * among the entry's keys (GC_JSPAN_NONE: not wanted), off and len are
 * filled by gc_jscan_locate. */
#define GC_JSPAN_NONE ((size_t)-1)

typedef struct {
	size_t field, off, len;
} gc_jspan;

/* Fill spans[0..n) for the first n entries of the array at key position
 * value_field of the object body[0..len), a body gc_jscan_parse accepted
 * (simdjson keeps no offsets into the source; this is a plain pass over
 * the text). 0 when the body does not have that shape. */
int gc_jscan_locate(const char *body, size_t len, size_t value_field, gc_jspan *spans,
                    size_t n) GC_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
