/* Version 4 UUIDs (client-request-id, client contexts) from OpenSSL's
 * random bytes. */
#include <pthread.h>
#include <string.h>

#include <openssl/rand.h>

#include "graphcall.h"

/* Random bytes for UUIDs come from a pool refilled 4 KiB at a time: each
 * RAND_bytes call costs a getpid system call (OpenSSL's fork check), one
 * per request otherwise. A forked child must not reuse its parent's pool:
 * an atfork handler bumps the generation, and a pool of another
 * generation is refilled. */
#define UUID_POOL 4096

typedef struct {
	unsigned generation;
	size_t used;
	unsigned char bytes[UUID_POOL];
} uuid_pool;

static volatile unsigned fork_generation;

static void after_fork(void)
{
	fork_generation++;
}

void gc_uuid_init(void)
{
	pthread_atfork(NULL, NULL, after_fork);
}

/* core.uuid() -> a random (version 4) UUID, e.g. for client-request-id */
int gc_l_uuid(lua_State *L)
{
	uuid_pool *pool;
	unsigned char b[16];
	char s[36];

	if (lua_getfield(L, GC_STATE, "uuid_pool") != LUA_TUSERDATA) {
		lua_pop(L, 1);
		pool = lua_newuserdatauv(L, sizeof *pool, 0);
		pool->used = UUID_POOL;
		lua_pushvalue(L, -1);
		lua_setfield(L, GC_STATE, "uuid_pool");
	}
	pool = lua_touserdata(L, -1);
	if (pool->used + sizeof b > UUID_POOL || pool->generation != fork_generation) {
		if (RAND_bytes(pool->bytes, UUID_POOL) != 1)
			return luaL_error(L, "graphcall.uuid: no randomness available");
		pool->used = 0;
		pool->generation = fork_generation;
	}
	memcpy(b, pool->bytes + pool->used, sizeof b);
	memset(pool->bytes + pool->used, 0, sizeof b); /* used once */
	pool->used += sizeof b;
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
	for (size_t i = 0, o = 0; i < sizeof b; i++) {
		static const char hex[] = "0123456789abcdef";
		if (i == 4 || i == 6 || i == 8 || i == 10)
			s[o++] = '-';
		s[o++] = hex[b[i] >> 4];
		s[o++] = hex[b[i] & 15];
	}
	lua_pushlstring(L, s, sizeof s);
	return 1;
}
