/* common/options: the one reader of option tables in the C core.
 *
 * A constructor that takes an options table ({ port = 8443, ... }) describes
 * its options once, in a table of gc_opt specs, and reads the caller's table
 * with one call of gc_opts_read. One pass over the table:
 *
 *  - rejects a key that is not a string, or that no spec names, naming it:
 *      graphcall.server: unknown key 'prot'
 *  - checks each value given against its spec (type, range, length),
 *    naming the option and what it must be:
 *      graphcall.server: option 'port' must be an integer in 0..65535
 *      graphcall.jwt_verifier: option 'issuers': issuers[2] must be a non-empty string
 *  - applies the documented default of each option not given, and raises
 *    for a required one that is missing:
 *      graphcall.jwt_verifier: option 'audience' is required
 *
 * Every message starts with `where`, by convention "graphcall.<function>"
 * (the README's error-prefix rule). Nothing is allocated outside the Lua
 * heap and no metamethod runs (raw reads only), so reading options before
 * any resource exists makes raising free: read first, allocate after.
 *
 * Use:
 *
 *   enum { O_PORT, O_HOST, O_PATHS, O_COUNT };
 *   static const gc_opt specs[O_COUNT] = {
 *       [O_PORT]  = { "port", GC_OPT_INTEGER, 0, 0, 65535, 8443 },
 *       [O_HOST]  = { "host", GC_OPT_STRING, GC_OPT_NO_NUL, 7, 15, 0, "an IPv4 address" },
 *       [O_PATHS] = { "paths", GC_OPT_STRINGS, GC_OPT_NO_NUL, 1, 2048 },
 *   };
 *   gc_optval v[O_COUNT];
 *
 *   gc_opts_read(L, 1, "graphcall.server", specs, O_COUNT, v);
 *   port = v[O_PORT].i;                      (the default when not given)
 *   if (v[O_HOST].set) use(v[O_HOST].s, v[O_HOST].len);
 *   for (lua_Integer i = 1; i <= (lua_Integer)v[O_PATHS].len; i++)
 *       path = gc_opts_item(L, 1, &specs[O_PATHS], i, &len);
 *
 * Checks the specs cannot express (an IPv4 address, a method token, an
 * algorithm name) stay with the caller, which raises them with
 * gc_opts_error so that every message reads the same. Strings are not
 * copied: s and the items point into the caller's table, which keeps them
 * alive while it is on the stack and unchanged; copy what must outlive the
 * call (into the userdata), after any allocation re-reading nothing.
 *
 * Spec tables inside a call spec (call targets, media, ...) are not
 * options: they are checked by the request builder, field by field, with
 * gc_check_keys (below) for their key sets. */
#ifndef GC_COMMON_OPTIONS_H
#define GC_COMMON_OPTIONS_H

#include <stddef.h>

#include <lua.h>

enum gc_opt_type {
	GC_OPT_INTEGER,   /* an integral number in min..max (2.0 counts, 2.5 and "2" do not) */
	GC_OPT_NUMBER,    /* a number in min..max (NaN never is) */
	GC_OPT_STRING,    /* a string of min..max bytes */
	GC_OPT_STRINGS,   /* a non-empty array (1..n, no other keys) of strings of
	                     min..max bytes each */
	GC_OPT_BOOLEAN    /* true or false */
};

/* gc_opt.flags */
enum {
	GC_OPT_REQUIRED = 1,  /* absent (or nil) raises */
	GC_OPT_NO_NUL = 2     /* STRING, STRINGS: no NUL byte (the value goes to C APIs) */
};

typedef struct {
	const char *key;
	unsigned char type;   /* enum gc_opt_type */
	unsigned char flags;  /* GC_OPT_* */
	lua_Number min, max;  /* INTEGER, NUMBER: the range; STRING(S): the length range */
	lua_Number def;       /* INTEGER, NUMBER: the value when absent; BOOLEAN: 0 or 1 */
	const char *what;     /* NULL, or what a good value is, for the message:
	                         "option 'host' must be an IPv4 address" */
} gc_opt;

typedef struct {
	int set;              /* the table gave this option */
	lua_Integer i;        /* INTEGER, BOOLEAN (default applied) */
	lua_Number n;         /* NUMBER, INTEGER (default applied) */
	const char *s;        /* STRING: its bytes (NULL when not set) */
	size_t len;           /* STRING: its length; STRINGS: the number of items (0: not set) */
	size_t bytes;         /* STRINGS: the bytes of all items plus a NUL each */
} gc_optval;

/* Read the options table at idx (nil or none: no options; another non-table
 * raises "bad argument") against specs[0..n); out[k] receives the value of
 * specs[k]. Raises, as above, for any bad or unknown option. */
void gc_opts_read(lua_State *L, int idx, const char *where, const gc_opt *specs, size_t n,
                  gc_optval *out);

/* Item i (1-based, up to out.len) of the STRINGS option spec of the options
 * table at idx, which gc_opts_read accepted; *len receives its length.
 * Pushes nothing. */
const char *gc_opts_item(lua_State *L, int idx, const gc_opt *spec, lua_Integer i, size_t *len);

/* Raise "<where>: option '<key>' <message>" (message formatted as by
 * lua_pushfstring), for a check the spec table cannot express. */
int gc_opts_error(lua_State *L, const char *where, const char *key, const char *fmt, ...);

/* Raise "<where>: unknown key '<k>'" when the table at idx has a string
 * key that is not in the NULL-terminated list allowed, and "<where>:
 * unexpected <type> key" for a key that is not a string. For the spec
 * tables of the request builder, whose values it checks itself. */
void gc_check_keys(lua_State *L, int idx, const char *where, const char *const allowed[]);

#endif
