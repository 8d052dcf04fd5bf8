/* JWT verification (graphcall.jwt_verifier) and signing (graphcall.jwt_signer)
 * with OpenSSL 3.
 *
 * The verifier checks the Bearer tokens Graph sends with every callback:
 * RS256/RS384/RS512 only, keys from a JWKS document selected by `kid`, exact
 * issuer and audience, tenant, exp/nbf with leeway. Every rejection is
 * nil, err with err.kind "unauthorized" and a stable err.reason. The checks
 * run in a fixed order (size, structure, alg, kid, signature, claims), so
 * claims are never looked at before the signature has been verified.
 *
 * The signer makes a fresh RSA key pair and signs tokens with it: the
 * emulator signs its callbacks with it, and the specs craft hostile tokens.
 *
 * Memory discipline: OpenSSL objects live either inside one C section that
 * makes no Lua call (temporaries), or are owned by a userdata with __gc
 * created before the object (keys). Buffers are Lua strings or userdata. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "graphcall.h"

#define GC_KEYSET_MT "graphcall.jwt_keyset"

#define JWKS_MAX_BYTES (1024 * 1024)
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define JWK_N_MAX_CHARS 2732     /* base64url of a 16384-bit modulus */
#define JWK_E_MAX_CHARS 12       /* 64-bit exponent */
#define X5C_MAX_CHARS (64 * 1024)
#define CLAIM_TIME_MAX 1e11      /* year 5138: anything later is absurd */

/* --- algorithms ----------------------------------------------------------- */

enum { ALG_RS256 = 1, ALG_RS384 = 2, ALG_RS512 = 4, ALG_ALL = 7 };

static const struct {
	const char *name;
	unsigned bit;
} algs[] = {
	{ "RS256", ALG_RS256 },
	{ "RS384", ALG_RS384 },
	{ "RS512", ALG_RS512 },
};

/* The bit of an allowed algorithm name (compared with its length, so an
 * embedded NUL never matches), or 0. */
static unsigned alg_bit(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		if (len == 5 && memcmp(s, algs[i].name, 5) == 0)
			return algs[i].bit;
	return 0;
}

static const EVP_MD *alg_md(unsigned bit)
{
	switch (bit) {
	case ALG_RS384: return EVP_sha384();
	case ALG_RS512: return EVP_sha512();
	default: return EVP_sha256();
	}
}

/* --- base64 around OpenSSL's codec ---------------------------------------- */

static int is_b64url_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int is_b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Scratch space b64_decode needs for an input of len characters:
 * the padded copy, then the output. */
static size_t b64_scratch_size(size_t len)
{
	return 2 * (len + 4);
}

/* Decode len characters of base64url (url = 1: no padding, canonical
 * trailing bits) or standard base64 (url = 0: optional '=' padding) with
 * EVP_DecodeBlock. scratch holds b64_scratch_size(len) bytes; the result is
 * at *out, *outlen bytes. 0 when the input is not acceptable. Makes no Lua
 * call. */
static int b64_decode(const char *in, size_t len, int url, unsigned char *scratch,
                      unsigned char **out, size_t *outlen)
{
	unsigned char *padded = scratch, *dec = scratch + len + 4;
	size_t pad = 0, body = len, full;
	int n;

	if (!url) {
		while (body > 0 && in[body - 1] == '=' && len - body < 2)
			body--;
	}
	if (body == 0 || body % 4 == 1 || len > (size_t)0x3FFFFFF0)
		return 0;
	if (!url && len != body && len % 4 != 0)
		return 0;              /* padding present but wrong */
	for (size_t i = 0; i < body; i++) {
		unsigned char c = (unsigned char)in[i];
		if (url ? !is_b64url_char(c) : !is_b64_char(c))
			return 0;
		padded[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while ((body + pad) % 4)
		padded[body + pad++] = '=';
	full = body + pad;
	n = EVP_DecodeBlock(dec, padded, (int)full);
	if (n < 0 || (size_t)n < pad) {
		ERR_clear_error();
		return 0;
	}
	*out = dec;
	*outlen = (size_t)n - pad;
	if (url && pad) {
		/* Canonical: re-encoding the last group must give it back, so
		 * the unused trailing bits are zero. */
		unsigned char again[5];
		size_t tail = 3 - pad;
		EVP_EncodeBlock(again, dec + *outlen - tail, (int)tail);
		if (memcmp(again, padded + full - 4, 4) != 0)
			return 0;
	}
	return 1;
}

/* Push the base64url (no padding) encoding of in[0..n). */
static void push_b64url(lua_State *L, const unsigned char *in, size_t n)
{
	luaL_Buffer b;
	char *out;
	int m;

	if (n > (size_t)0x3FFFFFF0)
		luaL_error(L, "graphcall.jwt: value too large to encode");
	out = luaL_buffinitsize(L, &b, 4 * ((n + 2) / 3) + 1);
	m = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (m > 0 && out[m - 1] == '=')
		m--;
	for (int i = 0; i < m; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	luaL_pushresultsize(&b, (size_t)m);
}

/* --- JSON helpers ----------------------------------------------------------- */

/* gc_json_call for functions whose module state is at stack index `state`
 * (methods keep it in a user value: they have no GC_STATE upvalue). */
static int json_call(lua_State *L, int state, const char *name)
{
	lua_getfield(L, state, name);
	lua_insert(L, -2);
	lua_call(L, 1, 2);
	if (lua_isnil(L, -2)) {
		lua_remove(L, -2);
		if (!lua_isstring(L, -1)) {
			lua_pop(L, 1);
			lua_pushliteral(L, "empty input");
		}
		return 0;
	}
	lua_pop(L, 1);
	return 1;
}

/* Members of all objects plus elements of all arrays in a JSON text that
 * lua-cjson accepted: separators plus non-empty containers. */
static size_t json_text_entries(const char *s, size_t len)
{
	size_t count = 0;
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == ',') {
			count++;
		} else if (c == '{' || c == '[') {
			size_t j = i + 1;
			while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
				j++;
			if (j < len && s[j] != '}' && s[j] != ']')
				count++;
		}
	}
	return count;
}

/* Entries of the decoded table at idx and of the tables inside it. */
static size_t table_entries(lua_State *L, int idx, int depth)
{
	size_t count = 0;

	luaL_checkstack(L, 3, "graphcall.jwt: JSON");
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		count++;
		if (lua_type(L, -1) == LUA_TTABLE && depth < 64)
			count += table_entries(L, -1, depth + 1);
		lua_pop(L, 1);
	}
	return count;
}

/* lua-cjson keeps the last of duplicate member names, so a duplicate shows
 * as a decoded table with fewer entries than the text has. */
static int json_has_duplicates(lua_State *L, int decoded, const char *text, size_t len)
{
	return table_entries(L, decoded, 0) != json_text_entries(text, len);
}

static int json_is_object_text(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i < len && s[i] == '{';
}

/* Decode the JSON object text at idx; push the table and return 1, or
 * push nothing and return 0 when it is not one JSON object with unique
 * member names (at every level), valid UTF-8 and no NUL. */
static int decode_object(lua_State *L, int state, int idx)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);

	if (memchr(s, '\0', len) || !gc_utf8_valid(s, len, NULL) ||
	    !json_is_object_text(s, len))
		return 0;
	lua_pushvalue(L, idx);
	if (!json_call(L, state, "decode") || !lua_istable(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	if (json_has_duplicates(L, -1, s, len)) {
		lua_pop(L, 1);
		return 0;
	}
	return 1;
}

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

/* --- key sets -------------------------------------------------------------- */

/* The keys of one JWKS document. Its user value maps kid -> index (1-based)
 * of a usable key. Owns the EVP_PKEYs; __gc frees them. */
typedef struct {
	size_t cap;
	size_t usable;
	EVP_PKEY *keys[];
} keyset;

static void keyset_release(keyset *ks)
{
	for (size_t i = 0; i < ks->cap; i++) {
		EVP_PKEY_free(ks->keys[i]);
		ks->keys[i] = NULL;
	}
	ks->usable = 0;
}

static int keyset_gc(lua_State *L)
{
	keyset_release(luaL_checkudata(L, 1, GC_KEYSET_MT));
	return 0;
}

/* Push a new, empty key set with room for cap keys and its kid map. */
static keyset *keyset_new(lua_State *L, size_t cap)
{
	keyset *ks = lua_newuserdatauv(L, sizeof *ks + cap * sizeof ks->keys[0], 1);

	ks->cap = cap;
	ks->usable = 0;
	for (size_t i = 0; i < cap; i++)
		ks->keys[i] = NULL;
	luaL_setmetatable(L, GC_KEYSET_MT);
	lua_newtable(L);
	lua_setiuservalue(L, -2, 1);
	return ks;
}

/* An RSA key that is good enough to verify with: at least 2048 bits and a
 * public key that passes OpenSSL's checks (odd n, odd e > 1, no small
 * factors, not a prime power). Frees it and returns NULL otherwise. */
static EVP_PKEY *usable_rsa(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx;
	int ok;

	if (!pkey)
		return NULL;
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS || EVP_PKEY_get_bits(pkey) > RSA_MAX_BITS) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	ok = ctx && EVP_PKEY_public_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		ERR_clear_error();
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

/* An RSA public key from the decoded modulus and exponent. No Lua call. */
static EVP_PKEY *rsa_from_ne(const unsigned char *n, size_t nlen,
                             const unsigned char *e, size_t elen)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (bld && bn && be &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) &&
	    EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
		/* done */
	} else {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	ERR_clear_error();
	return usable_rsa(pkey);
}

/* The public key of a DER certificate. No Lua call. */
static EVP_PKEY *rsa_from_der_cert(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	EVP_PKEY *pkey = NULL;

	if (x && p == der + len)
		pkey = X509_get_pubkey(x);
	X509_free(x);
	ERR_clear_error();
	return usable_rsa(pkey);
}

/* The string field `name` of the table at idx, or NULL when absent or not
 * a string. Leaves the value on the stack. */
static const char *string_field(lua_State *L, int idx, const char *name, size_t *len)
{
	if (lua_getfield(L, idx, name) != LUA_TSTRING)
		return NULL;
	return lua_tolstring(L, -1, len);
}

/* Build the key of the JWK at stack index jwk into ks->keys[slot]. Returns
 * 1 when a usable key was stored. Raises only from the Lua calls made
 * before any OpenSSL object exists. */
static int load_jwk(lua_State *L, int jwk, keyset *ks, size_t slot)
{
	int top = lua_gettop(L);
	size_t nlen = 0, elen = 0, clen = 0, len;
	const char *n, *e, *cert = NULL, *s;
	unsigned char *scratch, *nb, *eb, *der;
	size_t nblen, eblen, derlen;
	EVP_PKEY *pkey = NULL;

	s = string_field(L, jwk, "kty", &len);
	if (!s || len != 3 || memcmp(s, "RSA", 3) != 0)
		goto unusable;
	if (lua_getfield(L, jwk, "use") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			goto unusable;
		s = lua_tolstring(L, -1, &len);
		if (len != 3 || memcmp(s, "sig", 3) != 0)
			goto unusable;
	}
	if (lua_getfield(L, jwk, "alg") != LUA_TNIL) {
		/* a key declared for another algorithm (RSA-OAEP, PS256...) */
		if (lua_type(L, -1) != LUA_TSTRING)
			goto unusable;
		s = lua_tolstring(L, -1, &len);
		if (!alg_bit(s, len))
			goto unusable;
	}
	n = string_field(L, jwk, "n", &nlen);
	e = string_field(L, jwk, "e", &elen);
	if (!n || !e) {
		n = e = NULL;
		if (lua_getfield(L, jwk, "x5c") == LUA_TTABLE &&
		    lua_rawgeti(L, -1, 1) == LUA_TSTRING)
			cert = lua_tolstring(L, -1, &clen);
		if (!cert || clen > X5C_MAX_CHARS)
			goto unusable;
	} else if (nlen > JWK_N_MAX_CHARS || elen > JWK_E_MAX_CHARS) {
		goto unusable;
	}
	/* Lua allocation first; from here on no Lua call until the key is
	 * stored in the key set. */
	scratch = lua_newuserdatauv(L, cert ? b64_scratch_size(clen)
	                                    : b64_scratch_size(nlen) + b64_scratch_size(elen), 0);
	if (cert) {
		if (b64_decode(cert, clen, 0, scratch, &der, &derlen))
			pkey = rsa_from_der_cert(der, derlen);
	} else if (b64_decode(n, nlen, 1, scratch, &nb, &nblen) &&
	           b64_decode(e, elen, 1, scratch + b64_scratch_size(nlen), &eb, &eblen)) {
		pkey = rsa_from_ne(nb, nblen, eb, eblen);
	}
	ks->keys[slot] = pkey;
	lua_settop(L, top);
	return pkey != NULL;
unusable:
	lua_settop(L, top);
	return 0;
}

/* --- the verifier ------------------------------------------------------------ */

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
	unsigned char scratch[];   /* b64_scratch_size(max_bytes) */
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

/* Read an optional option field into the given range; raise naming it. */
static lua_Number opt_number(lua_State *L, const char *key, lua_Number def,
                             lua_Number lo, lua_Number hi, int integer)
{
	lua_Number x;

	if (lua_getfield(L, 1, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	if (integer ? !lua_isinteger(L, -1) : lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, GC_VERIFIER_MT ": %s must be %s", key,
		           integer ? "an integer" : "a number");
	x = lua_tonumber(L, -1);
	if (!(x >= lo && x <= hi))
		luaL_error(L, GC_VERIFIER_MT ": %s must be between %f and %f", key, lo, hi);
	lua_pop(L, 1);
	return x;
}

/* Push a set {[s] = true} of the non-empty strings in the array opts[key];
 * or nil when absent and def is NULL; or the set of def. */
static void opt_string_set(lua_State *L, const char *key, const char *const def[])
{
	lua_Integer n = 0;
	int arr;

	lua_getfield(L, 1, key);
	arr = lua_gettop(L);
	if (lua_isnil(L, arr)) {
		lua_pop(L, 1);
		if (!def) {
			lua_pushnil(L);
			return;
		}
		lua_newtable(L);
		for (int i = 0; def[i]; i++) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, def[i]);
		}
		return;
	}
	if (!lua_istable(L, arr) || !gc_is_array(L, arr, &n))
		luaL_error(L, GC_VERIFIER_MT ": %s must be a non-empty array of strings", key);
	lua_newtable(L);
	for (lua_Integer i = 1; i <= n; i++) {
		if (lua_rawgeti(L, arr, i) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
			luaL_error(L, GC_VERIFIER_MT ": %s[%I] must be a non-empty string", key, i);
		lua_pushboolean(L, 1);
		lua_rawset(L, -3);
	}
	lua_remove(L, arr);
}

/* core.jwt_verifier(opts) -> verifier. Raises on bad options. */
int gc_l_jwt_verifier(lua_State *L)
{
	static const char *const keys[] = {
		"audience", "issuers", "tenants", "skew", "max_token_bytes",
		"algorithms", "cache_size", NULL
	};
	static const char *const default_issuers[] = {
		"https://api.botframework.com", "https://graph.microsoft.com", NULL
	};
	lua_Number skew, max_bytes, cache_size;
	unsigned allowed = 0;
	verifier *v;
	int base;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	gc_check_keys(L, 1, GC_VERIFIER_MT, keys);

	if (lua_getfield(L, 1, "audience") != LUA_TSTRING || lua_rawlen(L, -1) == 0)
		luaL_error(L, GC_VERIFIER_MT ": audience must be a non-empty string (the bot's app id)");
	skew = opt_number(L, "skew", 300, 0, 3600, 0);
	max_bytes = opt_number(L, "max_token_bytes", 16384, 64, 1024 * 1024, 1);
	cache_size = opt_number(L, "cache_size", 1024, 0, 1000000, 1);

	if (lua_getfield(L, 1, "algorithms") == LUA_TNIL) {
		allowed = ALG_ALL;
	} else {
		lua_Integer n = 0;
		if (!lua_istable(L, -1) || !gc_is_array(L, -1, &n))
			luaL_error(L, GC_VERIFIER_MT ": algorithms must be a non-empty array");
		for (lua_Integer i = 1; i <= n; i++) {
			size_t len;
			const char *s;
			unsigned bit = 0;
			if (lua_rawgeti(L, -1, i) == LUA_TSTRING) {
				s = lua_tolstring(L, -1, &len);
				bit = alg_bit(s, len);
			}
			if (!bit)
				luaL_error(L, GC_VERIFIER_MT ": algorithms[%I] must be one of "
				           "RS256, RS384, RS512", i);
			allowed |= bit;
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);                            /* 1 opts, 2 audience */
	opt_string_set(L, "issuers", default_issuers);   /* 3 */
	opt_string_set(L, "tenants", NULL);              /* 4 */

	v = lua_newuserdatauv(L, sizeof *v + b64_scratch_size((size_t)max_bytes), UV_COUNT);
	base = lua_gettop(L);
	memset(v, 0, sizeof *v);
	v->algs = allowed;
	v->skew = skew;
	v->max_bytes = (size_t)max_bytes;
	v->cache_size = (lua_Integer)cache_size;
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

/* v:set_keys(jwks_json) -> number of usable keys | nil, err ("bad_keys").
 * Atomic: on failure the previous keys stay. */
static int v_set_keys(lua_State *L)
{
	verifier *v = check_verifier(L);
	size_t len, usable = 0;
	lua_Integer n;
	int state, doc, list, kids, seen, ksi;
	keyset *ks;

	luaL_checklstring(L, 2, &len);
	lua_settop(L, 2);
	if (len > JWKS_MAX_BYTES)
		return gc_fail(L, "bad_keys", "JWKS document of %I bytes is over the limit of %d bytes",
		               (lua_Integer)len, JWKS_MAX_BYTES);
	lua_getiuservalue(L, 1, UV_STATE);
	state = lua_gettop(L);
	if (!decode_object(L, state, 2))
		return gc_fail(L, "bad_keys", "JWKS is not a JSON object with unique member names");
	doc = lua_gettop(L);
	if (lua_getfield(L, doc, "keys") != LUA_TTABLE)
		return gc_fail(L, "bad_keys", "JWKS has no \"keys\" array");
	list = lua_gettop(L);
	n = (lua_Integer)lua_rawlen(L, list);
	if (n == 0)
		return gc_fail(L, "bad_keys", "JWKS has no keys");

	ks = keyset_new(L, (size_t)n);
	ksi = lua_gettop(L);
	lua_getiuservalue(L, ksi, 1);
	kids = lua_gettop(L);
	lua_newtable(L);
	seen = lua_gettop(L);
	for (lua_Integer i = 1; i <= n; i++) {
		int jwk;
		if (lua_rawgeti(L, list, i) != LUA_TTABLE) {
			lua_pop(L, 1);
			continue;
		}
		jwk = lua_gettop(L);
		if (lua_getfield(L, jwk, "kid") != LUA_TSTRING) {
			lua_settop(L, seen);
			continue;                 /* no kid: cannot be selected */
		}
		lua_pushvalue(L, -1);
		if (lua_rawget(L, seen) != LUA_TNIL) {
			keyset_release(ks);
			return gc_fail(L, "bad_keys", "duplicate kid \"%s\" in JWKS",
			               lua_tostring(L, jwk + 1));
		}
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushboolean(L, 1);
		lua_rawset(L, seen);
		if (load_jwk(L, jwk, ks, (size_t)(i - 1))) {
			ks->usable = ++usable;
			lua_pushinteger(L, i);
			lua_rawset(L, kids);      /* kid -> slot */
		}
		lua_settop(L, seen);
	}
	if (usable == 0) {
		keyset_release(ks);
		return gc_fail(L, "bad_keys", "JWKS has no usable RSA signing key "
		               "(kty RSA, 2048+ bits, with kid)");
	}
	/* Swap: free the old keys now, forget every verified token. */
	if (lua_getiuservalue(L, 1, UV_KEYS) == LUA_TUSERDATA)
		keyset_release(lua_touserdata(L, -1));
	lua_pop(L, 1);
	lua_pushvalue(L, ksi);
	lua_setiuservalue(L, 1, UV_KEYS);
	new_cache(L, v, 1);
	lua_pushinteger(L, (lua_Integer)usable);
	return 1;
}

/* Push the key set (or nil); return it. */
static keyset *get_keys(lua_State *L, int self)
{
	if (lua_getiuservalue(L, self, UV_KEYS) != LUA_TUSERDATA)
		return NULL;
	return lua_touserdata(L, -1);
}

/* The slot of kid (string at idx) in the key set at ksi, or 0. */
static lua_Integer key_slot(lua_State *L, int ksi, int idx)
{
	lua_Integer slot;

	idx = lua_absindex(L, idx);
	lua_getiuservalue(L, ksi, 1);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	slot = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
	lua_pop(L, 2);
	return slot;
}

static int v_key_count(lua_State *L)
{
	keyset *ks;

	check_verifier(L);
	ks = get_keys(L, 1);
	lua_pushinteger(L, ks ? (lua_Integer)ks->usable : 0);
	return 1;
}

static int v_has_key(lua_State *L)
{
	keyset *ks;

	check_verifier(L);
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	ks = get_keys(L, 1);
	lua_pushboolean(L, ks && key_slot(L, 3, 2) > 0);
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

	if (!b64_decode(s, len, 1, v->scratch, &out, &outlen))
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
	         EVP_DigestVerifyInit(ctx, NULL, alg_md(alg), NULL, pkey) == 1 &&
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
	keyset *ks;
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
	if (!decode_object(L, state, state + 1))
		return reject(L, "malformed", "the header is not a JSON object with unique members");
	hdr = lua_gettop(L);
	if (!decode_object(L, state, state + 2))
		return reject(L, "malformed", "the payload is not a JSON object with unique members");
	claims = lua_gettop(L);
	if (lua_getfield(L, hdr, "crit") != LUA_TNIL)
		return reject(L, "malformed", "crit header: no extension is understood");
	lua_pop(L, 1);

	if (lua_getfield(L, hdr, "alg") != LUA_TSTRING)
		return reject(L, "algorithm", "alg is missing or not a string");
	alg_s = lua_tolstring(L, -1, &alen);
	alg = alg_bit(alg_s, alen);
	if (!(alg & v->algs))
		return reject(L, "algorithm", "alg is not one of the allowed algorithms");
	lua_pop(L, 1);

	if (lua_getfield(L, hdr, "kid") != LUA_TSTRING)
		return reject(L, "unknown_kid", "kid is missing or not a string");
	ks = get_keys(L, 1);
	ksi = lua_gettop(L);
	slot = ks ? key_slot(L, ksi, ksi - 1) : 0;
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
		keyset_release(lua_touserdata(L, -1));
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
	keyset *ks;

	if (v->closed) {
		lua_pushliteral(L, GC_VERIFIER_MT ": (closed)");
		return 1;
	}
	ks = get_keys(L, 1);
	lua_pushfstring(L, GC_VERIFIER_MT ": %I key(s)", ks ? (lua_Integer)ks->usable : 0);
	return 1;
}

/* --- the signer -------------------------------------------------------------- */

#define SIGNER_MAX_BYTES 512     /* modulus bytes of a 4096-bit key */
#define SIGNER_PEM_MAX 2048      /* PEM of its public key */

typedef struct {
	EVP_PKEY *pkey;      /* NULL once closed */
	int bits;
} signer;

static signer *check_signer(lua_State *L)
{
	signer *s = luaL_checkudata(L, 1, GC_SIGNER_MT);

	if (!s->pkey)
		luaL_error(L, GC_SIGNER_MT " is closed");
	return s;
}

/* core.jwt_signer([{ bits = 2048 }]) -> signer with a fresh RSA key pair. */
int gc_l_jwt_signer(lua_State *L)
{
	static const char *const keys[] = { "bits", NULL };
	lua_Integer bits = 2048;
	signer *s;

	if (!lua_isnoneornil(L, 1)) {
		luaL_checktype(L, 1, LUA_TTABLE);
		gc_check_keys(L, 1, GC_SIGNER_MT, keys);
		if (lua_getfield(L, 1, "bits") != LUA_TNIL) {
			if (!lua_isinteger(L, -1))
				luaL_error(L, GC_SIGNER_MT ": bits must be an integer");
			bits = lua_tointeger(L, -1);
			if (bits < 2048 || bits > 4096)
				luaL_error(L, GC_SIGNER_MT ": bits must be between 2048 and 4096");
		}
	}
	lua_settop(L, 0);
	s = lua_newuserdatauv(L, sizeof *s, 1);
	s->pkey = NULL;
	s->bits = (int)bits;
	luaL_setmetatable(L, GC_SIGNER_MT);
	lua_pushvalue(L, GC_STATE);
	lua_setiuservalue(L, 1, 1);
	s->pkey = EVP_RSA_gen((unsigned)bits);
	if (!s->pkey) {
		ERR_clear_error();
		return luaL_error(L, GC_SIGNER_MT ": RSA key generation failed");
	}
	return 1;
}

/* Push header_b64 "." payload_b64 "." signature_b64 for the header and
 * payload texts at hidx and pidx. */
static int sign_texts(lua_State *L, signer *s, int hidx, int pidx, unsigned alg)
{
	size_t hlen, plen, inlen, siglen;
	const char *h = lua_tolstring(L, hidx, &hlen), *p = lua_tolstring(L, pidx, &plen);
	const char *input;
	unsigned char *sig;
	EVP_MD_CTX *ctx;
	int ok, in;

	push_b64url(L, (const unsigned char *)h, hlen);
	lua_pushliteral(L, ".");
	push_b64url(L, (const unsigned char *)p, plen);
	lua_concat(L, 3);
	in = lua_gettop(L);
	input = lua_tolstring(L, in, &inlen);
	sig = lua_newuserdatauv(L, SIGNER_MAX_BYTES, 0);

	/* No Lua call until ctx is freed; the key is read here, after the
	 * last Lua call (a finalizer may have closed the signer). */
	siglen = SIGNER_MAX_BYTES;
	ctx = EVP_MD_CTX_new();
	ok = ctx && s->pkey && EVP_PKEY_get_size(s->pkey) <= SIGNER_MAX_BYTES &&
	     EVP_DigestSignInit(ctx, NULL, alg_md(alg), NULL, s->pkey) == 1 &&
	     EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, inlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		ERR_clear_error();
		return luaL_error(L, GC_SIGNER_MT ": signing failed");
	}
	lua_pushvalue(L, in);
	lua_pushliteral(L, ".");
	push_b64url(L, sig, siglen);
	lua_concat(L, 3);
	return 1;
}

/* s:sign(claims_json [, header]) -> token */
static int s_sign(lua_State *L)
{
	signer *s = check_signer(L);
	unsigned alg = ALG_RS256;
	int hdr;

	luaL_checkstring(L, 2);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	lua_settop(L, 3);
	lua_newtable(L);
	hdr = lua_gettop(L);
	if (lua_istable(L, 3)) {
		lua_pushnil(L);
		while (lua_next(L, 3)) {
			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, GC_SIGNER_MT ": header fields must be strings");
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_rawset(L, hdr);
		}
	}
	if (lua_getfield(L, hdr, "alg") == LUA_TSTRING) {
		size_t len;
		const char *a = lua_tolstring(L, -1, &len);
		alg = alg_bit(a, len);
		if (!alg)
			return luaL_error(L, GC_SIGNER_MT ": alg must be RS256, RS384 or RS512");
	} else {
		lua_pushliteral(L, "RS256");
		lua_setfield(L, hdr, "alg");
	}
	lua_pop(L, 1);
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, hdr);
	if (!json_call(L, lua_gettop(L) - 1, "encode"))
		return luaL_error(L, GC_SIGNER_MT ": cannot encode the header: %s", lua_tostring(L, -1));
	return sign_texts(L, s, lua_gettop(L), 2, alg);
}

/* s:sign_raw(header_json, claims_json) -> token */
static int s_sign_raw(lua_State *L)
{
	signer *s = check_signer(L);
	unsigned alg = ALG_RS256;

	luaL_checkstring(L, 2);
	luaL_checkstring(L, 3);
	lua_settop(L, 3);
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, 2);
	if (json_call(L, 4, "decode") && lua_istable(L, -1) &&
	    lua_getfield(L, -1, "alg") == LUA_TSTRING) {
		size_t len;
		const char *a = lua_tolstring(L, -1, &len);
		if (alg_bit(a, len))
			alg = alg_bit(a, len);
	}
	lua_settop(L, 3);
	return sign_texts(L, s, 2, 3, alg);
}

/* Push the base64url of the RSA parameter `name` of the key. */
static void push_rsa_param(lua_State *L, signer *s, const char *name)
{
	unsigned char *buf = lua_newuserdatauv(L, SIGNER_MAX_BYTES, 0);
	BIGNUM *bn = NULL;
	int n = -1;

	/* No Lua call while bn is live. */
	if (s->pkey && EVP_PKEY_get_bn_param(s->pkey, name, &bn) == 1 &&
	    BN_num_bytes(bn) <= SIGNER_MAX_BYTES)
		n = BN_bn2bin(bn, buf);
	BN_free(bn);
	if (n < 0) {
		ERR_clear_error();
		luaL_error(L, GC_SIGNER_MT ": cannot read the public key");
	}
	push_b64url(L, buf, (size_t)n);
	lua_remove(L, -2);
}

/* s:jwk(kid [, alg]) -> JWK JSON text of the public key */
static int s_jwk(lua_State *L)
{
	signer *s = check_signer(L);
	size_t len;
	const char *alg;

	luaL_checkstring(L, 2);
	alg = luaL_optlstring(L, 3, "RS256", &len);
	luaL_argcheck(L, alg_bit(alg, len), 3, "alg must be RS256, RS384 or RS512");
	lua_settop(L, 3);
	lua_getiuservalue(L, 1, 1);               /* 4 */
	lua_createtable(L, 0, 6);
	lua_pushliteral(L, "RSA");
	lua_setfield(L, -2, "kty");
	lua_pushliteral(L, "sig");
	lua_setfield(L, -2, "use");
	lua_pushvalue(L, 2);
	lua_setfield(L, -2, "kid");
	lua_pushstring(L, alg);
	lua_setfield(L, -2, "alg");
	push_rsa_param(L, s, OSSL_PKEY_PARAM_RSA_N);
	lua_setfield(L, -2, "n");
	push_rsa_param(L, s, OSSL_PKEY_PARAM_RSA_E);
	lua_setfield(L, -2, "e");
	if (!json_call(L, 4, "encode"))
		return luaL_error(L, GC_SIGNER_MT ": cannot encode the JWK: %s", lua_tostring(L, -1));
	return 1;
}

/* s:public_pem() -> "-----BEGIN PUBLIC KEY-----..." */
static int s_public_pem(lua_State *L)
{
	signer *s = check_signer(L);
	char *buf = lua_newuserdatauv(L, SIGNER_PEM_MAX, 0);
	size_t n = 0;
	BIO *bio;
	int ok;

	/* No Lua call while bio is live. */
	bio = BIO_new(BIO_s_mem());
	ok = bio && s->pkey && PEM_write_bio_PUBKEY(bio, s->pkey) == 1 &&
	     BIO_read_ex(bio, buf, SIGNER_PEM_MAX, &n) == 1 && BIO_pending(bio) == 0;
	BIO_free(bio);
	if (!ok) {
		ERR_clear_error();
		return luaL_error(L, GC_SIGNER_MT ": cannot write the public key");
	}
	lua_pushlstring(L, buf, n);
	return 1;
}

/* s:close(), __gc, __close. Idempotent. */
static int s_close(lua_State *L)
{
	signer *s = luaL_checkudata(L, 1, GC_SIGNER_MT);

	EVP_PKEY_free(s->pkey);
	s->pkey = NULL;
	return 0;
}

static int s_tostring(lua_State *L)
{
	signer *s = luaL_checkudata(L, 1, GC_SIGNER_MT);

	if (!s->pkey)
		lua_pushliteral(L, GC_SIGNER_MT ": (closed)");
	else
		lua_pushfstring(L, GC_SIGNER_MT ": RSA %d", s->bits);
	return 1;
}

/* --- registration ------------------------------------------------------------ */

static void new_type(lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction close, lua_CFunction tostring)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, close);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, close);
	lua_setfield(L, -2, "__close");
	lua_pushcfunction(L, tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
}

void gc_open_jwt(lua_State *L)
{
	static const luaL_Reg verifier_methods[] = {
		{ "set_keys", v_set_keys },
		{ "key_count", v_key_count },
		{ "has_key", v_has_key },
		{ "verify", v_verify },
		{ "cache_hits", v_cache_hits },
		{ "clear_cache", v_clear_cache },
		{ "close", v_close },
		{ NULL, NULL }
	};
	static const luaL_Reg signer_methods[] = {
		{ "sign", s_sign },
		{ "sign_raw", s_sign_raw },
		{ "jwk", s_jwk },
		{ "public_pem", s_public_pem },
		{ "close", s_close },
		{ NULL, NULL }
	};

	new_type(L, GC_VERIFIER_MT, verifier_methods, v_close, v_tostring);
	new_type(L, GC_SIGNER_MT, signer_methods, s_close, s_tostring);
	if (luaL_newmetatable(L, GC_KEYSET_MT)) {
		lua_pushcfunction(L, keyset_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
}
