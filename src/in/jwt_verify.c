/* in/jwt_verify: graphcall.jwt_verifier, which checks the Bearer tokens
 * Graph sends with every callback (OpenSSL 3): RS256/RS384/RS512 only,
 * keys from a JWKS document (in/jwk.c) selected by `kid`, exact issuer and
 * audience, tenant, exp/nbf with leeway. Every rejection is nil, err with
 * err.kind "unauthorized" and a stable err.reason. The checks run in a
 * fixed order (size, structure, alg, kid, signature, claims), so claims
 * are never looked at before the signature has been verified. Verified
 * tokens are cached (the token string is the key) until they expire.
 *
 * Memory discipline: OpenSSL objects live inside one C section that makes
 * no Lua call (the digest context), or in the key set userdata, which
 * owns its keys. Buffers are Lua strings or userdata.
 *
 * Size (about 650 lines): the checks are one sequence in a fixed order,
 * read top to bottom here; the JWK and JWS codecs are in jwk.c and jws.c. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "graphcall.h"
#include "common/udata.h"
#include "in/jwk.h"
#include "in/jws.h"

#define CLAIM_TIME_MAX 1e11      /* year 5138: anything later is absurd */


/* A copy of the table at idx and of the tables in it (decoded JSON: no
 * cycles, bounded depth), so callers cannot change cached claims. */
static void copy_table(lua_State *L, int idx, int depth)
{
	int n = 0;

	luaL_checkstack(L, 4, "graphcall.jwt: claims");
	idx = lua_absindex(L, idx);
	/* count first: a table sized once is cheaper than one rehashed as it
	 * grows (claims are a handful of fields) */
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		n++;
		lua_pop(L, 1);
	}
	lua_createtable(L, 0, n);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -1) == LUA_TTABLE && depth < 64) {
			copy_table(L, -1, depth + 1);
			lua_replace(L, -2);
		}
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -4);
	}
}

/* User values of a verifier. */
enum { UV_STATE = 1, UV_KEYS, UV_CACHE, UV_ISSUERS, UV_TENANTS, UV_AUDIENCE,
       UV_LAST_KEY, UV_LAST_ENTRY, UV_COUNT = UV_LAST_ENTRY };

typedef struct {
	int closed;
	unsigned algs;
	lua_Number skew;
	size_t max_bytes;
	lua_Integer cache_size, cache_count, cache_hits;
	/* The last cache hit: its token (the bytes of the string held in
	 * UV_LAST_KEY) and its entry (UV_LAST_ENTRY), checked with one memcmp
	 * before the token is hashed for a table lookup. NULL when none. */
	const char *last_tok;
	size_t last_len;
	unsigned char scratch[];   /* gc_b64_scratch_size(max_bytes) */
} verifier;

static verifier *check_verifier(lua_State *L)
{
	verifier *v = luaL_checkudata(L, 1, GC_VERIFIER_MT);

	if (v->closed)
		luaL_error(L, GC_VERIFIER_MT " is closed");
	return v;
}

/* Return nil, err for a rejected token: kind "unauthorized", the stable
 * reason, and a message. */
static int reject(lua_State *L, const char *reason, const char *fmt, ...)
{
	va_list ap;
	const char *msg;

	va_start(ap, fmt);
	msg = lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	gc_fail(L, "unauthorized", "token rejected (%s): %s", reason, msg);
	lua_pushstring(L, reason);
	lua_setfield(L, -2, "reason");
	return 2;
}

static void forget_last(lua_State *L, verifier *v, int self)
{
	v->last_tok = NULL;
	v->last_len = 0;
	lua_pushnil(L);
	lua_setiuservalue(L, self, UV_LAST_KEY);
	lua_pushnil(L);
	lua_setiuservalue(L, self, UV_LAST_ENTRY);
}

static void new_cache(lua_State *L, verifier *v, int self)
{
	lua_newtable(L);
	lua_setiuservalue(L, self, UV_CACHE);
	v->cache_count = 0;
	forget_last(L, v, self);
}

/* --- core.jwt_verifier(opts) ------------------------------------------------ */

enum {
	O_AUDIENCE, O_ISSUERS, O_TENANTS, O_SKEW, O_MAX_BYTES, O_ALGORITHMS, O_CACHE_SIZE,
	O_COUNT
};

static const gc_opt verifier_opts[O_COUNT] = {
	[O_AUDIENCE] = { "audience", GC_OPT_STRING, GC_OPT_REQUIRED, 1, 1 << 20, 0,
	                 "a non-empty string (the bot's app id)" },
	[O_ISSUERS] = { "issuers", GC_OPT_STRINGS, 0, 1, 1 << 20, 0, NULL },
	[O_TENANTS] = { "tenants", GC_OPT_STRINGS, 0, 1, 1 << 20, 0, NULL },
	[O_SKEW] = { "skew", GC_OPT_NUMBER, 0, 0, 3600, 300, NULL },
	[O_MAX_BYTES] = { "max_token_bytes", GC_OPT_INTEGER, 0, 64, 1024 * 1024, 16384, NULL },
	[O_ALGORITHMS] = { "algorithms", GC_OPT_STRINGS, 0, 1, 16, 0, NULL },
	[O_CACHE_SIZE] = { "cache_size", GC_OPT_INTEGER, 0, 0, 1000000, 1024, NULL },
};

/* Push the set {[s] = true} of the items of option o; of def when it was
 * not given; or nil when neither. */
static void push_set(lua_State *L, const gc_optval *v, int o, const char *const def[])
{
	lua_createtable(L, 0, (int)v[o].len + 2);
	if (v[o].len == 0 && !def) {
		lua_pop(L, 1);
		lua_pushnil(L);
		return;
	}
	for (lua_Integer i = 1; i <= (lua_Integer)v[o].len; i++) {
		size_t len;
		const char *s = gc_opts_item(L, 1, &verifier_opts[o], i, &len);

		lua_pushlstring(L, s, len);
		lua_pushboolean(L, 1);
		lua_rawset(L, -3);
	}
	for (int i = 0; v[o].len == 0 && def[i]; i++) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, def[i]);
	}
}

/* core.jwt_verifier(opts) -> verifier. Raises on bad options. */
int gc_l_jwt_verifier(lua_State *L)
{
	static const char *const default_issuers[] = {
		"https://api.botframework.com", "https://graph.microsoft.com", NULL
	};
	gc_optval o[O_COUNT];
	unsigned allowed = ALG_ALL;
	verifier *v;
	int base;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	gc_opts_read(L, 1, GC_VERIFIER_MT, verifier_opts, O_COUNT, o);
	if (o[O_ALGORITHMS].set) {
		allowed = 0;
		for (lua_Integer i = 1; i <= (lua_Integer)o[O_ALGORITHMS].len; i++) {
			size_t len;
			const char *s = gc_opts_item(L, 1, &verifier_opts[O_ALGORITHMS], i, &len);
			unsigned bit = gc_jws_alg(s, len);

			if (!bit)
				gc_opts_error(L, GC_VERIFIER_MT, "algorithms", "must name RS256, RS384 "
				              "or RS512: algorithms[%I] does not", i);
			allowed |= bit;
		}
	}
	lua_pushlstring(L, o[O_AUDIENCE].s, o[O_AUDIENCE].len);   /* 2 */
	push_set(L, o, O_ISSUERS, default_issuers);             /* 3 */
	push_set(L, o, O_TENANTS, NULL);                        /* 4 */

	v = lua_newuserdatauv(L, sizeof *v + gc_b64_scratch_size((size_t)o[O_MAX_BYTES].i),
	                      UV_COUNT);
	base = lua_gettop(L);
	memset(v, 0, sizeof *v);
	v->algs = allowed;
	v->skew = o[O_SKEW].n;
	v->max_bytes = (size_t)o[O_MAX_BYTES].i;
	v->cache_size = o[O_CACHE_SIZE].i;
	luaL_setmetatable(L, GC_VERIFIER_MT);
	lua_pushvalue(L, GC_STATE);
	lua_setiuservalue(L, base, UV_STATE);
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, base, UV_AUDIENCE);
	lua_pushvalue(L, 3);
	lua_setiuservalue(L, base, UV_ISSUERS);
	lua_pushvalue(L, 4);
	lua_setiuservalue(L, base, UV_TENANTS);
	new_cache(L, v, base);
	return 1;
}

/* --- the methods ------------------------------------------------------------- */

/* v:set_keys(jwks_json) -> number of usable keys | nil, err ("bad_keys").
 * Atomic: on failure the previous keys stay. */
static int v_set_keys(lua_State *L)
{
	verifier *v = check_verifier(L);
	gc_keyset *ks;

	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	lua_getiuservalue(L, 1, UV_STATE);        /* 3 */
	if (gc_jwk_load(L, 3, 2) != 1)
		return 2;
	ks = lua_touserdata(L, -1);
	/* Swap: free the old keys now, forget every verified token. */
	if (lua_getiuservalue(L, 1, UV_KEYS) == LUA_TUSERDATA)
		gc_keyset_release(lua_touserdata(L, -1));
	lua_pop(L, 1);
	lua_setiuservalue(L, 1, UV_KEYS);
	new_cache(L, v, 1);
	lua_pushinteger(L, (lua_Integer)ks->usable);
	return 1;
}

static int v_key_count(lua_State *L)
{
	gc_keyset *ks;

	check_verifier(L);
	ks = gc_keyset_get(L, 1, UV_KEYS);
	lua_pushinteger(L, ks ? (lua_Integer)ks->usable : 0);
	return 1;
}

static int v_has_key(lua_State *L)
{
	gc_keyset *ks;

	check_verifier(L);
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	ks = gc_keyset_get(L, 1, UV_KEYS);
	lua_pushboolean(L, ks && gc_keyset_slot(L, 3, 2) > 0);
	return 1;
}

static int v_cache_hits(lua_State *L)
{
	verifier *v = check_verifier(L);

	lua_pushinteger(L, v->cache_hits);
	return 1;
}

static int v_clear_cache(lua_State *L)
{
	verifier *v = check_verifier(L);

	new_cache(L, v, 1);
	return 0;
}

/* Read a time claim. 1: absent, 2: a valid number (*out), 0: present but
 * not a number, -1: a number out of range. */
static int time_claim(lua_State *L, int claims, const char *name, lua_Number *out)
{
	int t = lua_getfield(L, claims, name);
	lua_Number x = lua_tonumber(L, -1);

	lua_pop(L, 1);
	if (t == LUA_TNIL)
		return 1;
	if (t != LUA_TNUMBER)
		return 0;
	if (!isfinite(x) || x < 0 || x > CLAIM_TIME_MAX)
		return -1;
	*out = x;
	return 2;
}

/* Check the claims table at idx after the signature has been verified.
 * Returns NULL when good, else the reason; *exp receives exp and *nbf nbf
 * (-HUGE_VAL when absent). */
static const char *check_claims(lua_State *L, verifier *v, int claims, lua_Number now,
                                lua_Number *exp, lua_Number *nbf)
{
	int r;
	lua_Number iat;

	lua_getiuservalue(L, 1, UV_ISSUERS);
	if (lua_getfield(L, claims, "iss") != LUA_TSTRING || lua_rawget(L, -2) == LUA_TNIL)
		return "issuer";
	lua_pop(L, 2);

	lua_getiuservalue(L, 1, UV_AUDIENCE);
	if (lua_getfield(L, claims, "aud") != LUA_TSTRING || !lua_rawequal(L, -1, -2))
		return "audience";
	lua_pop(L, 2);

	r = time_claim(L, claims, "exp", exp);
	if (r == 1 || r == 0)
		return "missing_exp";
	if (r < 0)
		return "claims";
	r = time_claim(L, claims, "nbf", nbf);
	if (r == 1)
		*nbf = -HUGE_VAL;
	else if (r <= 0)
		return "claims";
	r = time_claim(L, claims, "iat", &iat);
	if (r <= 0)
		return "claims";
	if (now > *exp + v->skew)
		return "expired";
	if (*nbf > now + v->skew)
		return "not_yet_valid";

	if (lua_getfield(L, claims, "tid") != LUA_TSTRING)
		return "tenant";
	if (lua_getiuservalue(L, 1, UV_TENANTS) == LUA_TTABLE) {
		lua_pushvalue(L, -2);
		if (lua_rawget(L, -2) == LUA_TNIL)
			return "tenant";
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
	return NULL;
}

static const char *const reason_text[][2] = {
	{ "issuer", "iss is not an allowed issuer" },
	{ "audience", "aud is not this bot's app id" },
	{ "missing_exp", "exp is missing or not a number" },
	{ "claims", "exp, nbf or iat is not a valid time" },
	{ "expired", "the token has expired" },
	{ "not_yet_valid", "the token is not valid yet (nbf)" },
	{ "tenant", "tid is missing or not an allowed tenant" },
};

static const char *describe(const char *reason)
{
	for (size_t i = 0; i < sizeof reason_text / sizeof reason_text[0]; i++)
		if (strcmp(reason, reason_text[i][0]) == 0)
			return reason_text[i][1];
	return reason;
}

/* A cache entry keeps the claims flattened: {k1, v1, k2, v2, ...} (the
 * values of nested tables are copied on the way out), so a hit copies them
 * with array reads instead of walking a hash table with lua_next. */
static void push_flat(lua_State *L, int claims)
{
	lua_Integer i = 0;

	claims = lua_absindex(L, claims);
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, claims)) {
		lua_pushvalue(L, -2);
		lua_rawseti(L, -4, ++i);
		lua_rawseti(L, -3, ++i);
	}
}

/* Push a fresh claims table from the flat array at idx. */
static void push_flat_copy(lua_State *L, int idx)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx);

	luaL_checkstack(L, 4, "graphcall.jwt: claims");
	lua_createtable(L, 0, (int)(n / 2));
	for (lua_Integer i = 1; i < n; i += 2) {
		lua_rawgeti(L, idx, i);
		if (lua_rawgeti(L, idx, i + 1) == LUA_TTABLE) {
			copy_table(L, -1, 1);
			lua_replace(L, -2);
		}
		lua_rawset(L, -3);
	}
}

/* Look the token (at key) up in the cache; push a copy of the claims
 * and return 1 on a hit. The last hit is tried first, by memcmp. */
static int cache_lookup(lua_State *L, verifier *v, int key, lua_Number now)
{
	lua_Number exp, nbf;
	size_t len;
	const char *tok = lua_tolstring(L, key, &len);
	int last = v->last_tok && len == v->last_len && memcmp(tok, v->last_tok, len) == 0;

	if (lua_getiuservalue(L, 1, UV_CACHE) != LUA_TTABLE) {
		lua_pop(L, 1);
		return 0;
	}
	if (last) {
		lua_getiuservalue(L, 1, UV_LAST_ENTRY);
	} else {
		lua_pushvalue(L, key);
		if (lua_rawget(L, -2) != LUA_TTABLE) {
			lua_pop(L, 2);
			return 0;
		}
	}
	lua_rawgeti(L, -1, 2);
	lua_rawgeti(L, -2, 3);
	exp = lua_tonumber(L, -2);
	nbf = lua_tonumber(L, -1);
	lua_pop(L, 2);
	if (now > exp + v->skew) {
		lua_pushvalue(L, key);
		lua_pushnil(L);
		lua_rawset(L, -4);
		v->cache_count--;
		lua_pop(L, 2);
		forget_last(L, v, 1);
		return 0;
	}
	if (nbf > now + v->skew) {            /* the clock went back */
		lua_pop(L, 2);
		return 0;
	}
	if (!last) {
		lua_pushvalue(L, key);
		v->last_tok = lua_tolstring(L, -1, &v->last_len);
		lua_setiuservalue(L, 1, UV_LAST_KEY);   /* keeps last_tok alive */
		lua_pushvalue(L, -1);
		lua_setiuservalue(L, 1, UV_LAST_ENTRY);
	}
	lua_rawgeti(L, -1, 1);
	push_flat_copy(L, lua_gettop(L));
	v->cache_hits++;
	return 1;
}

/* Remember verified claims (at claims) under the token (at key). */
static void cache_store(lua_State *L, verifier *v, int key, int claims, lua_Number now,
                        lua_Number exp, lua_Number nbf)
{
	int cache;

	if (lua_getiuservalue(L, 1, UV_CACHE) != LUA_TTABLE) {
		lua_pop(L, 1);                /* closed meanwhile */
		return;
	}
	cache = lua_gettop(L);
	if (v->cache_count >= v->cache_size) {
		/* drop the expired entries; if that is not enough, all */
		forget_last(L, v, 1);
		lua_pushnil(L);
		while (lua_next(L, cache)) {
			lua_rawgeti(L, -1, 2);
			if (now > lua_tonumber(L, -1) + v->skew) {
				lua_pushvalue(L, -3);
				lua_pushnil(L);
				lua_rawset(L, cache);
				v->cache_count--;
			}
			lua_pop(L, 2);
		}
		if (v->cache_count >= v->cache_size) {
			lua_pop(L, 1);
			new_cache(L, v, 1);
			lua_getiuservalue(L, 1, UV_CACHE);
		}
	}
	lua_pushvalue(L, key);
	lua_createtable(L, 3, 0);
	push_flat(L, claims);
	lua_rawseti(L, -2, 1);
	lua_pushnumber(L, exp);
	lua_rawseti(L, -2, 2);
	lua_pushnumber(L, nbf);
	lua_rawseti(L, -2, 3);
	lua_rawset(L, cache);
	v->cache_count++;
	lua_settop(L, cache - 1);
}

/* Decode one base64url token segment into a Lua string (pushed). 0 when
 * malformed. The scratch buffer is used only inside this call. */
static int push_segment(lua_State *L, verifier *v, const char *s, size_t len)
{
	unsigned char *out;
	size_t outlen;

	if (!gc_b64_decode(s, len, 1, v->scratch, &out, &outlen))
		return 0;
	lua_pushlstring(L, (const char *)out, outlen);
	return 1;
}

/* RSA PKCS#1 v1.5 verification of sig over data. No Lua call. */
static int rsa_verify(EVP_PKEY *pkey, unsigned alg, const char *data, size_t dlen,
                      const unsigned char *sig, size_t slen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx &&
	         EVP_DigestVerifyInit(ctx, NULL, gc_jws_md(alg), NULL, pkey) == 1 &&
	         EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)data, dlen) == 1;

	EVP_MD_CTX_free(ctx);
	if (!ok)
		ERR_clear_error();
	return ok;
}

/* v:verify(token, now) -> claims | nil, err */
static int v_verify(lua_State *L)
{
	verifier *v = check_verifier(L);
	size_t len, hlen, plen, slen, sigl, alen;
	const char *tok = luaL_checklstring(L, 2, &len);
	lua_Number now = luaL_checknumber(L, 3);
	const char *d1, *d2, *end = tok + len, *alg_s;
	const unsigned char *sig;
	unsigned alg;
	int state, key = 0, hdr, claims, ksi;
	lua_Integer slot;
	gc_keyset *ks;
	EVP_PKEY *pkey;
	lua_Number exp = 0, nbf = 0;
	const char *why;

	luaL_argcheck(L, isfinite(now), 3, "now must be a finite number of seconds");
	lua_settop(L, 3);
	if (len > v->max_bytes)
		return reject(L, "too_large", "token of %I bytes is over the limit of %I bytes",
		              (lua_Integer)len, (lua_Integer)v->max_bytes);

	/* The cache is keyed by the token string itself: Lua hashes it once
	 * per lookup and compares it byte for byte on a hit (cheaper than a
	 * digest); only verified tokens (at most cache_size) are kept. */
	if (v->cache_size > 0) {
		key = 2;
		if (cache_lookup(L, v, key, now))
			return 1;
	}
	lua_getiuservalue(L, 1, UV_STATE);
	state = lua_gettop(L);

	/* Exactly three non-empty segments: at most three memchr calls. */
	d1 = memchr(tok, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
		return reject(L, "malformed", "a JWT has exactly three dot-separated segments");
	hlen = (size_t)(d1 - tok);
	plen = (size_t)(d2 - d1 - 1);
	slen = (size_t)(end - d2 - 1);
	if (hlen == 0 || plen == 0 || slen == 0)
		return reject(L, "malformed", "empty segment");
	if (!push_segment(L, v, tok, hlen) || !push_segment(L, v, d1 + 1, plen) ||
	    !push_segment(L, v, d2 + 1, slen))
		return reject(L, "malformed", "a segment is not canonical unpadded base64url");
	/* state+1 header text, state+2 payload text, state+3 signature */
	if (!gc_json_decode_object(L, state, state + 1))
		return reject(L, "malformed", "the header is not a JSON object with unique members");
	hdr = lua_gettop(L);
	if (!gc_json_decode_object(L, state, state + 2))
		return reject(L, "malformed", "the payload is not a JSON object with unique members");
	claims = lua_gettop(L);
	if (lua_getfield(L, hdr, "crit") != LUA_TNIL)
		return reject(L, "malformed", "crit header: no extension is understood");
	lua_pop(L, 1);

	if (lua_getfield(L, hdr, "alg") != LUA_TSTRING)
		return reject(L, "algorithm", "alg is missing or not a string");
	alg_s = lua_tolstring(L, -1, &alen);
	alg = gc_jws_alg(alg_s, alen);
	if (!(alg & v->algs))
		return reject(L, "algorithm", "alg is not one of the allowed algorithms");
	lua_pop(L, 1);

	if (lua_getfield(L, hdr, "kid") != LUA_TSTRING)
		return reject(L, "unknown_kid", "kid is missing or not a string");
	ks = gc_keyset_get(L, 1, UV_KEYS);
	ksi = lua_gettop(L);
	slot = ks ? gc_keyset_slot(L, ksi, ksi - 1) : 0;
	if (slot <= 0) {
		reject(L, "unknown_kid", "no key with this kid");
		lua_pushvalue(L, ksi - 1);
		lua_setfield(L, -2, "kid");
		return 2;
	}

	/* Signature: no Lua call from reading the key to the result. */
	sig = (const unsigned char *)lua_tolstring(L, state + 3, &sigl);
	pkey = ks->keys[slot - 1];
	if (!pkey)
		return reject(L, "unknown_kid", "the key set changed");
	if (sigl != (size_t)EVP_PKEY_get_size(pkey) ||
	    !rsa_verify(pkey, alg, tok, (size_t)(d2 - tok), sig, sigl))
		return reject(L, "signature", "bad signature");

	why = check_claims(L, v, claims, now, &exp, &nbf);
	if (why)
		return reject(L, why, "%s", describe(why));
	if (key)
		cache_store(L, v, key, claims, now, exp, nbf);
	copy_table(L, claims, 0);
	return 1;
}

/* v:close(), __gc, __close: free the keys. Idempotent. */
static int v_close(lua_State *L)
{
	verifier *v = luaL_checkudata(L, 1, GC_VERIFIER_MT);

	if (v->closed)
		return 0;
	v->closed = 1;
	if (lua_getiuservalue(L, 1, UV_KEYS) == LUA_TUSERDATA)
		gc_keyset_release(lua_touserdata(L, -1));
	lua_pop(L, 1);
	lua_pushnil(L);
	lua_setiuservalue(L, 1, UV_KEYS);
	lua_pushnil(L);
	lua_setiuservalue(L, 1, UV_CACHE);
	v->cache_count = 0;
	forget_last(L, v, 1);
	return 0;
}

static int v_tostring(lua_State *L)
{
	verifier *v = luaL_checkudata(L, 1, GC_VERIFIER_MT);
	gc_keyset *ks;

	if (v->closed) {
		lua_pushliteral(L, GC_VERIFIER_MT ": (closed)");
		return 1;
	}
	ks = gc_keyset_get(L, 1, UV_KEYS);
	lua_pushfstring(L, GC_VERIFIER_MT ": %I key(s)", ks ? (lua_Integer)ks->usable : 0);
	return 1;
}

void gc_open_jwt(lua_State *L)
{
	static const luaL_Reg meth[] = {
		{ "set_keys", v_set_keys },
		{ "key_count", v_key_count },
		{ "has_key", v_has_key },
		{ "verify", v_verify },
		{ "cache_hits", v_cache_hits },
		{ "clear_cache", v_clear_cache },
		{ "close", v_close },
		{ NULL, NULL }
	};
	static const luaL_Reg metameth[] = {
		{ "__index", NULL },  /* placeholder: meth */
		{ "__gc", v_close },
		{ "__close", v_close },
		{ "__tostring", v_tostring },
		{ NULL, NULL }
	};

	gc_register_type(L, GC_VERIFIER_MT, meth, metameth, 0);
	gc_open_jwk(L);
}
