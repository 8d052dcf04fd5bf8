/* in/jwk: key sets, the keys of one JWKS document (RFC 7517) that a
 * verifier may check signatures with: RSA keys (kty RSA, use sig when
 * given, alg RS256/RS384/RS512 when given) of 2048 to 16384 bits that pass
 * OpenSSL's public-key checks, from n/e or the first x5c certificate,
 * selected by kid. A key set is a userdata (graphcall.jwt_keyset) that
 * owns its EVP_PKEYs; its user value maps kid -> slot (1-based) of a
 * usable key. */
#ifndef GC_IN_JWK_H
#define GC_IN_JWK_H

#include <stddef.h>

#include <openssl/evp.h>

#include <lua.h>

#define GC_KEYSET_MT "graphcall.jwt_keyset"

typedef struct {
	size_t cap;
	size_t usable;           /* keys[] that are not NULL */
	EVP_PKEY *keys[];
} gc_keyset;

/* Parse the JWKS document (the string at text; the JSON state at state):
 * push the new key set and return 1, or push nil, err (kind "bad_keys")
 * and return 2. A document of over 1 MiB, that is not a JSON object with
 * unique member names, has no "keys" array, repeats a kid or has no usable
 * key is refused; unusable keys are skipped. */
int gc_jwk_load(lua_State *L, int state, int text);

/* Free the keys of ks now (close). Idempotent. */
void gc_keyset_release(gc_keyset *ks);

/* Push user value uv of the userdata at self (a key set, or nil); return
 * the key set or NULL. */
gc_keyset *gc_keyset_get(lua_State *L, int self, int uv);

/* The slot (1-based) of the kid (the string at idx) in the key set at ksi,
 * or 0. */
lua_Integer gc_keyset_slot(lua_State *L, int ksi, int idx);

/* Register graphcall.jwt_keyset. */
void gc_open_jwk(lua_State *L);

#endif
