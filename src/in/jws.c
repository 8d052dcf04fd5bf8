/* in/jws: RSA algorithm names and base64url (jws.h). */
#include <string.h>

#include <openssl/err.h>

#include <lauxlib.h>

#include "in/jws.h"


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
unsigned gc_jws_alg(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		if (len == 5 && memcmp(s, algs[i].name, 5) == 0)
			return algs[i].bit;
	return 0;
}

const EVP_MD *gc_jws_md(unsigned bit)
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

/* Scratch space gc_b64_decode needs for an input of len characters:
 * the padded copy, then the output. */
size_t gc_b64_scratch_size(size_t len)
{
	return 2 * (len + 4);
}

/* Decode len characters of base64url (url = 1: no padding, canonical
 * trailing bits) or standard base64 (url = 0: optional '=' padding) with
 * EVP_DecodeBlock. scratch holds gc_b64_scratch_size(len) bytes; the result is
 * at *out, *outlen bytes. 0 when the input is not acceptable. Makes no Lua
 * call. */
int gc_b64_decode(const char *in, size_t len, int url, unsigned char *scratch,
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
void gc_push_b64url(lua_State *L, const unsigned char *in, size_t n)
{
	luaL_Buffer b;
	char *out;
	int m;

	if (n > (size_t)0x3FFFFFF0)
		luaL_error(L, "graphcall: value too large to encode");
	out = luaL_buffinitsize(L, &b, 4 * ((n + 2) / 3) + 1);
	m = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (m > 0 && out[m - 1] == '=')
		m--;
	for (int i = 0; i < m; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	luaL_pushresultsize(&b, (size_t)m);
}

