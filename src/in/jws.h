/* in/jws: the JOSE encodings JWT verification and signing share (RFC 7515,
 * 7518): the RSA algorithms graphcall allows and base64url, on top of
 * OpenSSL's codec. Used by in/jwt_verify.c, in/jwk.c and the test-only
 * signer (testing/jwt_sign.c). No Lua call but gc_push_b64url's. */
#ifndef GC_IN_JWS_H
#define GC_IN_JWS_H

#include <stddef.h>

#include <openssl/evp.h>

#include <lua.h>

/* The algorithms, as bits of a set. */
enum { ALG_RS256 = 1, ALG_RS384 = 2, ALG_RS512 = 4, ALG_ALL = 7 };

/* The bit of an allowed algorithm name (compared with its length, so an
 * embedded NUL never matches), or 0. */
unsigned gc_jws_alg(const char *s, size_t len);

/* The digest of an algorithm bit. */
const EVP_MD *gc_jws_md(unsigned bit);

/* Scratch space gc_b64_decode needs for an input of len characters. */
size_t gc_b64_scratch_size(size_t len);

/* Decode len characters of base64url (url = 1: no padding, canonical
 * trailing bits) or standard base64 (url = 0: optional '=' padding).
 * scratch holds gc_b64_scratch_size(len) bytes; the result is at *out,
 * *outlen bytes. 0 when the input is not acceptable. No Lua call. */
int gc_b64_decode(const char *in, size_t len, int url, unsigned char *scratch,
                  unsigned char **out, size_t *outlen);

/* Push the base64url (no padding) encoding of in[0..n). */
void gc_push_b64url(lua_State *L, const unsigned char *in, size_t n);

#endif
