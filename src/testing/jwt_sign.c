/* graphcall.testing: test-only C helpers, not part of graphcall.core.
 *
 * testing.jwt_signer makes a fresh RSA key pair (graphcall.jwt_signer) and
 * signs tokens with it as Graph signs its callbacks: the emulator signs
 * its notifications with one, and the specs and fuzzers craft hostile
 * tokens (sign_raw signs any header and claims text, valid JSON or not).
 * A bot has no use for it, so the shipped core cannot make tokens.
 *
 * Built as its own module (build/graphcall/testing.so; the rockspec's
 * second module), with its own private lua-cjson instance; only
 * luaopen_graphcall_testing is exported.
 *
 * Memory discipline: OpenSSL objects other than the key live inside one C
 * section that makes no Lua call; the key is owned by the signer
 * userdata, made before it. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "graphcall.h"
#include "common/udata.h"
#include "in/jws.h"

GC_EXPORT int luaopen_graphcall_testing(lua_State *L);

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

enum { O_BITS, O_COUNT };

static const gc_opt signer_opts[O_COUNT] = {
	[O_BITS] = { "bits", GC_OPT_INTEGER, 0, 2048, 4096, 2048, NULL },
};

/* testing.jwt_signer([{ bits = 2048 }]) -> signer with a fresh RSA key pair. */
static int l_jwt_signer(lua_State *L)
{
	gc_optval o[O_COUNT];
	signer *s;

	gc_opts_read(L, 1, GC_SIGNER_MT, signer_opts, O_COUNT, o);
	lua_settop(L, 0);
	s = lua_newuserdatauv(L, sizeof *s, 1);  /* the closed box first */
	s->pkey = NULL;
	s->bits = (int)o[O_BITS].i;
	luaL_setmetatable(L, GC_SIGNER_MT);
	lua_pushvalue(L, GC_STATE);
	lua_setiuservalue(L, 1, 1);
	s->pkey = EVP_RSA_gen((unsigned)s->bits);
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

	gc_push_b64url(L, (const unsigned char *)h, hlen);
	lua_pushliteral(L, ".");
	gc_push_b64url(L, (const unsigned char *)p, plen);
	lua_concat(L, 3);
	in = lua_gettop(L);
	input = lua_tolstring(L, in, &inlen);
	sig = lua_newuserdatauv(L, SIGNER_MAX_BYTES, 0);

	/* No Lua call until ctx is freed; the key is read here, after the
	 * last Lua call (a finalizer may have closed the signer). */
	siglen = SIGNER_MAX_BYTES;
	ctx = EVP_MD_CTX_new();
	ok = ctx && s->pkey && EVP_PKEY_get_size(s->pkey) <= SIGNER_MAX_BYTES &&
	     EVP_DigestSignInit(ctx, NULL, gc_jws_md(alg), NULL, s->pkey) == 1 &&
	     EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, inlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		ERR_clear_error();
		return luaL_error(L, GC_SIGNER_MT ": signing failed");
	}
	lua_pushvalue(L, in);
	lua_pushliteral(L, ".");
	gc_push_b64url(L, sig, siglen);
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
		alg = gc_jws_alg(a, len);
		if (!alg)
			return luaL_error(L, GC_SIGNER_MT ": alg must be RS256, RS384 or RS512");
	} else {
		lua_pushliteral(L, "RS256");
		lua_setfield(L, hdr, "alg");
	}
	lua_pop(L, 1);
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, hdr);
	if (!gc_json_call_at(L, lua_gettop(L) - 1, "encode"))
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
	if (gc_json_call_at(L, 4, "decode") && lua_istable(L, -1) &&
	    lua_getfield(L, -1, "alg") == LUA_TSTRING) {
		size_t len;
		const char *a = lua_tolstring(L, -1, &len);
		if (gc_jws_alg(a, len))
			alg = gc_jws_alg(a, len);
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
	gc_push_b64url(L, buf, (size_t)n);
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
	luaL_argcheck(L, gc_jws_alg(alg, len), 3, "alg must be RS256, RS384 or RS512");
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
	if (!gc_json_call_at(L, 4, "encode"))
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

GC_EXPORT int luaopen_graphcall_testing(lua_State *L)
{
	static const luaL_Reg meth[] = {
		{ "sign", s_sign },
		{ "sign_raw", s_sign_raw },
		{ "jwk", s_jwk },
		{ "public_pem", s_public_pem },
		{ "close", s_close },
		{ NULL, NULL }
	};
	static const luaL_Reg metameth[] = {
		{ "__index", NULL },  /* placeholder: meth */
		{ "__gc", s_close },
		{ "__close", s_close },
		{ "__tostring", s_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg funcs[] = {
		{ "jwt_signer", l_jwt_signer },
		{ NULL, NULL }
	};

	gc_register_type(L, GC_SIGNER_MT, meth, metameth, 0);
	luaL_newlibtable(L, funcs);
	gc_json_push_state(L, GC_NOTIFY_MAX_DEPTH, GC_SPEC_MAX_DEPTH + 8);
	luaL_setfuncs(L, funcs, 1);
	return 1;
}
