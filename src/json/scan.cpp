/* json/scan: simdjson's DOM parser behind the C interface of scan.h.
 *
 * The only C++ file of the module. It validates a notification body with
 * simdjson (which reads the whole document: it is not on-demand) and reads
 * the fields the notification parser needs; later, when a resource_data is
 * first read, it finds where the entries' resourceData lie in the body. Errors are
 * codes, never exceptions: every exported function is noexcept and catches
 * everything, so nothing unwinds into the C and Lua frames that call it.
 * (About 640 lines: all of the module's C++ stays in this one file.) */
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "scan.h"

using namespace simdjson;

#define GC_HIDDEN __attribute__((visibility("hidden")))

struct gc_jscan {
	dom::parser parser;
	char *buf = nullptr;    /* the body, copied with simdjson's padding */
	size_t buf_size = 0;
	std::vector<gc_jitem> items;

	~gc_jscan() { std::free(buf); }
};

/* The value of e, as the notification parser sees it. */
static void read_value(gc_jval *v, dom::element e) noexcept
{
	switch (e.type()) {
	case dom::element_type::STRING: {
		std::string_view s = e.get_string().value_unsafe();
		v->type = GC_JT_STRING;
		v->str = s.data();
		v->len = s.size();
		break;
	}
	case dom::element_type::INT64:
		v->type = GC_JT_NUMBER;
		v->num_ok = 1;
		v->num = e.get_int64().value_unsafe();
		break;
	case dom::element_type::UINT64:
		/* only values over INT64_MAX are stored as uint64 */
		v->type = GC_JT_NUMBER;
		v->num_ok = 0;
		break;
	case dom::element_type::DOUBLE: {
		/* lua-cjson gives a float; lua_tointegerx takes it when it is
		 * integral and in range: the same test. */
		double d = e.get_double().value_unsafe();
		v->type = GC_JT_NUMBER;
		v->num_ok = std::floor(d) == d && d >= -9223372036854775808.0 &&
		            d < 9223372036854775808.0;
		v->num = v->num_ok ? (long long)d : 0;
		break;
	}
	case dom::element_type::NULL_VALUE:
		v->type = GC_JT_ABSENT;
		break;
	case dom::element_type::OBJECT:
		v->type = GC_JT_OBJECT;
		break;
	case dom::element_type::ARRAY:
		v->type = GC_JT_ARRAY;
		v->len = e.get_array().value_unsafe().size();
		break;
	default:
		v->type = GC_JT_OTHER;
		break;
	}
}

/* key == lit, for a literal: by length first, then a memcmp of a constant
 * size, which the compiler inlines (most keys are rejected on length). */
template <size_t N>
static inline bool is(std::string_view key, const char (&lit)[N]) noexcept
{
	return key.size() == N - 1 && std::memcmp(key.data(), lit, N - 1) == 0;
}

static void read_result_info(gc_jitem *it, dom::object o) noexcept
{
	for (dom::key_value_pair kv : o) {
		std::string_view k = kv.key;
		if (is(k, "code"))
			read_value(&it->f[GC_JF_CODE], kv.value);
		else if (is(k, "subcode"))
			read_value(&it->f[GC_JF_SUBCODE], kv.value);
		else if (is(k, "subCode"))
			read_value(&it->f[GC_JF_SUBCODE_CAMEL], kv.value);
		else if (is(k, "message"))
			read_value(&it->f[GC_JF_MESSAGE], kv.value);
	}
}

static void read_data(gc_jitem *it, dom::object o) noexcept
{
	dom::element ri;

	for (dom::key_value_pair kv : o) {
		std::string_view k = kv.key;
		if (is(k, "@odata.type"))
			read_value(&it->f[GC_JF_ODATA_TYPE], kv.value);
		else if (is(k, "@odata.etag"))
			read_value(&it->f[GC_JF_ETAG], kv.value);
		else if (is(k, "state"))
			read_value(&it->f[GC_JF_STATE], kv.value);
		else if (is(k, "direction"))
			read_value(&it->f[GC_JF_DIRECTION], kv.value);
		else if (is(k, "status"))
			read_value(&it->f[GC_JF_STATUS], kv.value);
		else if (is(k, "clientContext"))
			read_value(&it->f[GC_JF_CLIENT_CONTEXT], kv.value);
		else if (is(k, "resultInfo")) {
			read_value(&it->f[GC_JF_RESULT_INFO], kv.value);
			ri = kv.value;
		}
	}
	if (it->f[GC_JF_RESULT_INFO].type == GC_JT_OBJECT)
		read_result_info(it, ri.get_object().value_unsafe());
}

/* One entry of value. */
static void read_item(gc_jitem *it, dom::element e) noexcept
{
	dom::element data;
	size_t i = 0;

	std::memset(it, 0, sizeof *it);
	read_value(&it->item, e);
	if (it->item.type != GC_JT_OBJECT)
		return;
	dom::object o = e.get_object().value_unsafe();
	for (dom::key_value_pair kv : o) {
		std::string_view k = kv.key;
		if (is(k, "changeType"))
			read_value(&it->f[GC_JF_CHANGE_TYPE], kv.value);
		else if (is(k, "resource"))
			read_value(&it->f[GC_JF_RESOURCE], kv.value);
		else if (is(k, "resourceUrl"))
			read_value(&it->f[GC_JF_RESOURCE_URL], kv.value);
		else if (is(k, "callbackUri"))
			read_value(&it->f[GC_JF_CALLBACK_URI], kv.value);
		else if (is(k, "resourceData")) {
			read_value(&it->f[GC_JF_RESOURCE_DATA], kv.value);
			data = kv.value;
			it->data_field = i;
		}
		i++;
	}
	const gc_jval *d = &it->f[GC_JF_RESOURCE_DATA];
	if (d->type == GC_JT_OBJECT) {
		read_data(it, data.get_object().value_unsafe());
	} else if (d->type == GC_JT_ARRAY && d->len > 0) {
		dom::array a = data.get_array().value_unsafe();
		dom::element first = *a.begin();
		if (first.type() == dom::element_type::OBJECT) {
			dom::object fo = first.get_object().value_unsafe();
			for (dom::key_value_pair kv : fo)
				if (is(kv.key, "@odata.type"))
					read_value(&it->f[GC_JF_FIRST_ODATA_TYPE], kv.value);
		}
	}
}

/* --- locating resourceData in the body ------------------------------------
 *
 * The DOM keeps no offsets into the source, so a second, plain pass over
 * the body (already validated by simdjson) finds the text of each
 * resourceData by position: field k of the top-level object, element i of
 * that array, field j of that object. Every step stays within the body; a
 * body that does not have the expected shape makes the pass fail. */

struct cursor {
	const char *p, *end;
	bool ok;
};

/* JSON white space, and the form feed lua-cjson also takes (simdjson
 * does not: a text it validated has none). */
static bool is_ws(char c) noexcept
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f';
}

static void skip_ws(cursor *c) noexcept
{
	while (c->p < c->end && is_ws(*c->p))
		c->p++;
}

/* Consume the character ch (after white space). */
static void expect(cursor *c, char ch) noexcept
{
	skip_ws(c);
	if (c->p < c->end && *c->p == ch)
		c->p++;
	else
		c->ok = false;
}

static bool at(cursor *c, char ch) noexcept
{
	skip_ws(c);
	return c->p < c->end && *c->p == ch;
}

/* c->p at the opening quote. */
static void skip_string(cursor *c) noexcept
{
	const char *p = c->p + 1;

	while (p < c->end) {
		const char *q = static_cast<const char *>(std::memchr(p, '"', (size_t)(c->end - p)));
		const char *b;
		if (!q)
			break;
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if (((q - b) & 1) == 0) {
			c->p = q + 1;
			return;
		}
		p = q + 1;
	}
	c->ok = false;
	c->p = c->end;
}

static void skip_value(cursor *c) noexcept
{
	skip_ws(c);
	if (c->p >= c->end) {
		c->ok = false;
		return;
	}
	if (*c->p == '"') {
		skip_string(c);
	} else if (*c->p == '{' || *c->p == '[') {
		size_t depth = 0;
		while (c->p < c->end) {
			char ch = *c->p;
			if (ch == '"') {
				skip_string(c);
				continue;
			}
			c->p++;
			if (ch == '{' || ch == '[') {
				depth++;
			} else if (ch == '}' || ch == ']') {
				if (--depth == 0)
					return;
			}
		}
		c->ok = false;
	} else {
		while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' &&
		       !is_ws(*c->p))
			c->p++;
	}
}

/* c->p just inside an object, before a key: skip to the value of the
 * key at position k (0-based), leaving c->p at that value. */
static void to_field(cursor *c, size_t k) noexcept
{
	for (size_t i = 0; c->ok; i++) {
		skip_ws(c);
		if (c->p >= c->end || *c->p != '"') {
			c->ok = false;
			return;
		}
		skip_string(c);
		expect(c, ':');
		skip_ws(c);
		if (i == k)
			return;
		skip_value(c);
		expect(c, ',');
	}
}

/* c->p after a value inside an object or array: skip to after its close. */
static void to_close(cursor *c, bool object) noexcept
{
	while (c->ok && at(c, ',')) {
		c->p++;
		if (object) {
			skip_ws(c);
			if (c->p >= c->end || *c->p != '"') {
				c->ok = false;
				return;
			}
			skip_string(c);
			expect(c, ':');
		}
		skip_value(c);
	}
	expect(c, object ? '}' : ']');
}

static bool locate(const char *body, size_t len, size_t value_field, gc_jspan *spans,
                   size_t n) noexcept
{
	cursor c = { body, body + len, true };

	expect(&c, '{');
	to_field(&c, value_field);
	expect(&c, '[');
	for (size_t i = 0; i < n && c.ok; i++) {
		gc_jspan *sp = &spans[i];
		if (i > 0)
			expect(&c, ',');
		if (sp->field != GC_JSPAN_NONE) {
			const char *start;
			expect(&c, '{');
			to_field(&c, sp->field);
			start = c.p;
			skip_value(&c);
			sp->off = (size_t)(start - body);
			sp->len = (size_t)(c.p - start);
			to_close(&c, true);
		} else {
			skip_value(&c);
		}
	}
	return c.ok;
}

/* --- duplicate member names ------------------------------------------------
 *
 * A plain pass over a JSON text that lua-cjson accepted (so well-formed),
 * with the cursor above: for each object, its member names are collected
 * unescaped ("a" and "\u0061" are one name), sorted and compared neighbour
 * to neighbour (O(n log n) whatever the names); then its values are
 * visited. Depth is bounded by the decoder's (the text was decoded). */

static unsigned hex4(const char *p) noexcept
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

static void put_utf8(std::string *out, unsigned cp)
{
	if (cp < 0x80) {
		out->push_back((char)cp);
	} else if (cp < 0x800) {
		out->push_back((char)(0xC0 | cp >> 6));
		out->push_back((char)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		out->push_back((char)(0xE0 | cp >> 12));
		out->push_back((char)(0x80 | (cp >> 6 & 0x3F)));
		out->push_back((char)(0x80 | (cp & 0x3F)));
	} else {
		out->push_back((char)(0xF0 | cp >> 18));
		out->push_back((char)(0x80 | (cp >> 12 & 0x3F)));
		out->push_back((char)(0x80 | (cp >> 6 & 0x3F)));
		out->push_back((char)(0x80 | (cp & 0x3F)));
	}
}

/* The name of the string s[0..len) (between its quotes), unescaped. */
static std::string unescape(const char *s, size_t len)
{
	std::string out;

	out.reserve(len);
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\\' || i + 1 >= len) {
			out.push_back(s[i]);
			continue;
		}
		char e = s[++i];
		switch (e) {
		case 'b': out.push_back('\b'); break;
		case 'f': out.push_back('\f'); break;
		case 'n': out.push_back('\n'); break;
		case 'r': out.push_back('\r'); break;
		case 't': out.push_back('\t'); break;
		case 'u': {
			unsigned cp;
			if (i + 4 >= len) {   /* never in a decoded text */
				out.push_back(e);
				break;
			}
			cp = hex4(s + i + 1);
			i += 4;
			if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < len && s[i + 1] == '\\' &&
			    s[i + 2] == 'u') {
				unsigned lo = hex4(s + i + 3);
				if (lo >= 0xDC00 && lo < 0xE000) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					i += 6;
				}
			}
			put_utf8(&out, cp);
			break;
		}
		default: out.push_back(e); break;   /* " \ / */
		}
	}
	return out;
}

static bool unique_value(cursor *c);

/* c->p at '{'. */
static bool unique_object(cursor *c)
{
	std::vector<std::string> names;

	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return true;
	}
	while (c->ok) {
		const char *start;

		skip_ws(c);
		if (c->p >= c->end || *c->p != '"') {
			c->ok = false;
			break;
		}
		start = c->p + 1;
		skip_string(c);
		if (!c->ok)
			break;
		names.push_back(unescape(start, (size_t)(c->p - 1 - start)));
		expect(c, ':');
		if (!unique_value(c))
			return false;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		expect(c, '}');
		break;
	}
	std::sort(names.begin(), names.end());
	return std::adjacent_find(names.begin(), names.end()) == names.end();
}

/* c->p before a value: skip it, checking the objects in it. */
static bool unique_value(cursor *c)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == '{')
		return unique_object(c);
	if (c->p < c->end && *c->p == '[') {
		c->p++;
		skip_ws(c);
		if (c->p < c->end && *c->p == ']') {
			c->p++;
			return true;
		}
		while (c->ok) {
			if (!unique_value(c))
				return false;
			skip_ws(c);
			if (c->p < c->end && *c->p == ',') {
				c->p++;
				continue;
			}
			expect(c, ']');
			break;
		}
		return true;
	}
	skip_value(c);
	return true;
}

/* --- the C interface -------------------------------------------------------- */

extern "C" GC_HIDDEN gc_jscan *gc_jscan_new(size_t max_depth) noexcept
{
	try {
		gc_jscan *s = new (std::nothrow) gc_jscan;
		if (!s)
			return nullptr;
		if (s->parser.allocate(16 * 1024, max_depth) != SUCCESS) {
			delete s;
			return nullptr;
		}
		return s;
	} catch (...) {
		return nullptr;
	}
}

extern "C" GC_HIDDEN void gc_jscan_free(gc_jscan *s) noexcept
{
	delete s;
}

extern "C" GC_HIDDEN size_t gc_jscan_capacity(const gc_jscan *s) noexcept
{
	return s->parser.capacity();
}

/* Copy body with simdjson's padding and parse it whole into root. */
static int parse_root(gc_jscan *s, const char *body, size_t len, dom::element *root) noexcept
{
	if (len > SIZE_MAX - SIMDJSON_PADDING)
		return GC_JSCAN_REJECTED;
	if (s->buf_size < len + SIMDJSON_PADDING) {
		char *nb = static_cast<char *>(std::realloc(s->buf, len + SIMDJSON_PADDING));
		if (!nb)
			return GC_JSCAN_NOMEM;
		s->buf = nb;
		s->buf_size = len + SIMDJSON_PADDING;
	}
	std::memcpy(s->buf, body, len);
	std::memset(s->buf + len, 0, SIMDJSON_PADDING);

	error_code err = s->parser.parse(s->buf, len, false).get(*root);
	if (err == MEMALLOC)
		return GC_JSCAN_NOMEM;
	return err ? GC_JSCAN_REJECTED : GC_JSCAN_OK;
}

extern "C" GC_HIDDEN int gc_jscan_members(gc_jscan *s, const char *body, size_t len,
                                          const char *const *keys, size_t n,
                                          gc_jval *top, gc_jval *out) noexcept
{
	try {
		dom::element root;
		int r;

		std::memset(top, 0, sizeof *top);
		std::memset(out, 0, n * sizeof *out);
		if ((r = parse_root(s, body, len, &root)) != GC_JSCAN_OK)
			return r;
		read_value(top, root);
		if (top->type != GC_JT_OBJECT)
			return GC_JSCAN_OK;
		dom::object o = root.get_object().value_unsafe();
		for (dom::key_value_pair kv : o)
			for (size_t i = 0; i < n; i++)
				if (kv.key == keys[i])
					read_value(&out[i], kv.value);
		return GC_JSCAN_OK;
	} catch (const std::bad_alloc &) {
		return GC_JSCAN_NOMEM;
	} catch (...) {
		return GC_JSCAN_REJECTED;
	}
}

extern "C" GC_HIDDEN int gc_jscan_parse(gc_jscan *s, const char *body, size_t len,
                                        size_t max_items, gc_jdoc *doc) noexcept
{
	try {
		dom::element root, value;
		size_t value_field = 0, i = 0;
		bool have_value = false;
		int r;

		std::memset(doc, 0, sizeof *doc);
		if ((r = parse_root(s, body, len, &root)) != GC_JSCAN_OK)
			return r;

		read_value(&doc->top, root);
		if (doc->top.type != GC_JT_OBJECT)
			return GC_JSCAN_OK;
		dom::object top = root.get_object().value_unsafe();
		for (dom::key_value_pair kv : top) {
			if (is(kv.key, "value")) {
				value = kv.value;
				value_field = i;
				have_value = true;
			}
			i++;
		}
		if (!have_value)
			return GC_JSCAN_OK;
		read_value(&doc->value, value);
		doc->value_field = value_field;
		if (doc->value.type != GC_JT_ARRAY || doc->value.len == 0 ||
		    doc->value.len > max_items)
			return GC_JSCAN_OK;

		size_t n = doc->value.len;
		s->items.resize(n);
		i = 0;
		dom::array entries = value.get_array().value_unsafe();
		for (dom::element e : entries) {
			if (i >= n)
				return GC_JSCAN_REJECTED;
			read_item(&s->items[i], e);
			i++;
		}
		if (i != n)
			return GC_JSCAN_REJECTED;
		doc->nitems = n;
		doc->items = s->items.data();
		return GC_JSCAN_OK;
	} catch (const std::bad_alloc &) {
		return GC_JSCAN_NOMEM;
	} catch (...) {
		return GC_JSCAN_REJECTED;
	}
}

extern "C" GC_HIDDEN int gc_json_unique_members(const char *text, size_t len) noexcept
{
	try {
		cursor c = { text, text + len, true };
		bool unique = unique_value(&c);
		return c.ok ? (unique ? 1 : 0) : 0;
	} catch (...) {
		return -1;
	}
}

extern "C" GC_HIDDEN int gc_jscan_locate(const char *body, size_t len, size_t value_field,
                                         gc_jspan *spans, size_t n) noexcept
{
	return locate(body, len, value_field, spans, n);
}
