/* in/jwk: JWKS documents loaded into key sets (jwk.h).
 *
 * Memory discipline: an EVP_PKEY is made only after the key set userdata
 * that owns it exists and after the last Lua call of its JWK, and it is
 * stored in the key set at once; temporaries (BIGNUMs, X509, contexts)
 * live inside one C section that makes no Lua call. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "graphcall.h"
#include "common/udata.h"
#include "in/jwk.h"
#include "in/jws.h"

#define JWKS_MAX_BYTES (1024 * 1024)
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define JWK_N_MAX_CHARS 2732     /* base64url of a 16384-bit modulus */
#define JWK_E_MAX_CHARS 12       /* 64-bit exponent */
#define X5C_MAX_CHARS (64 * 1024)

void gc_keyset_release(gc_keyset *ks)
{
	for (size_t i = 0; i < ks->cap; i++) {
		EVP_PKEY_free(ks->keys[i]);
		ks->keys[i] = NULL;
	}
	ks->usable = 0;
}

/* __gc, __close: free the keys. Idempotent. */
static int keyset_close(lua_State *L)
{
	gc_keyset_release(luaL_checkudata(L, 1, GC_KEYSET_MT));
	return 0;
}

/* Push a new, empty key set with room for cap keys and its kid map. */
static gc_keyset *keyset_new(lua_State *L, size_t cap)
{
	gc_keyset *ks = lua_newuserdatauv(L, sizeof *ks + cap * sizeof ks->keys[0], 1);

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
static int load_jwk(lua_State *L, int jwk, gc_keyset *ks, size_t slot)
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
		if (!gc_jws_alg(s, len))
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
	scratch = lua_newuserdatauv(L, cert ? gc_b64_scratch_size(clen)
	                                    : gc_b64_scratch_size(nlen) + gc_b64_scratch_size(elen), 0);
	if (cert) {
		if (gc_b64_decode(cert, clen, 0, scratch, &der, &derlen))
			pkey = rsa_from_der_cert(der, derlen);
	} else if (gc_b64_decode(n, nlen, 1, scratch, &nb, &nblen) &&
	           gc_b64_decode(e, elen, 1, scratch + gc_b64_scratch_size(nlen), &eb, &eblen)) {
		pkey = rsa_from_ne(nb, nblen, eb, eblen);
	}
	ks->keys[slot] = pkey;
	lua_settop(L, top);
	return pkey != NULL;
unusable:
	lua_settop(L, top);
	return 0;
}

/* core: parse a JWKS document (the string at text) into a new key set;
 * see jwk.h. */
int gc_jwk_load(lua_State *L, int state, int text)
{
	size_t len, usable = 0;
	lua_Integer n;
	int doc, list, kids, seen, ksi;
	gc_keyset *ks;

	state = lua_absindex(L, state);
	text = lua_absindex(L, text);
	lua_tolstring(L, text, &len);
	if (len > JWKS_MAX_BYTES)
		return gc_fail(L, "bad_keys", "JWKS document of %I bytes is over the limit of %d bytes",
		               (lua_Integer)len, JWKS_MAX_BYTES);
	if (!gc_json_decode_object(L, state, text))
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
			gc_keyset_release(ks);
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
		gc_keyset_release(ks);
		return gc_fail(L, "bad_keys", "JWKS has no usable RSA signing key "
		               "(kty RSA, 2048+ bits, with kid)");
	}
	lua_settop(L, ksi);
	lua_replace(L, doc);
	lua_settop(L, doc);
	return 1;
}

/* Push user value uv of the userdata at self, a key set or nil; return
 * the key set or NULL. */
gc_keyset *gc_keyset_get(lua_State *L, int self, int uv)
{
	if (lua_getiuservalue(L, self, uv) != LUA_TUSERDATA)
		return NULL;
	return lua_touserdata(L, -1);
}

/* The slot of kid (string at idx) in the key set at ksi, or 0. */
lua_Integer gc_keyset_slot(lua_State *L, int ksi, int idx)
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


void gc_open_jwk(lua_State *L)
{
	static const luaL_Reg metameth[] = {
		{ "__gc", keyset_close },
		{ "__close", keyset_close },
		{ NULL, NULL }
	};

	gc_register_type(L, GC_KEYSET_MT, NULL, metameth, 0);
}
