/* libFuzzer harness: request construction, core.build_request(app_id, spec,
 * mode, callback_uri, graph_url, endpoint) and core.build_parts(app_id,
 * spec), with the client's values from a config table, from spec tables that a small
 * interpreter builds out of the input bytes.
 *
 * Input: byte 0 configures the call:
 *   bit 0     mode "join" (else "call")
 *   bits 1-2  config.endpoint: v1.0, beta, beta/app, beta/applications
 *   bit 3     config.callback_uri is set
 *   bit 4     also core.build_parts(config, spec)
 *   bit 5     config.graph_url is the loopback emulator (else Graph)
 * then one table (the spec) in this encoding:
 *   table   count byte (mod 16), then count times: key, value
 *   key     b < 0xC0: KEYS[b % #KEYS] (every key of request.c's key lists)
 *           0xC0..0xDF: the integer b - 0xC0 (0..31)
 *           0xE0..0xFF: a string (see below) as the key
 *   value   a tag byte (mod 12), then:
 *            0 string: length byte (255: two more bytes, big-endian), bytes
 *            1 WORDS[byte % #WORDS]
 *            2 integer: one signed byte
 *            3 integer: eight bytes, big-endian
 *            4 float: eight bytes, an IEEE double (NaN, inf included)
 *            5 boolean: byte & 1
 *            6 table (as above)
 *            7 array: count byte (mod 16), then count values
 *            8 core.null
 *            9 a table made earlier in this input: byte % count (shared/cyclic)
 *           10 a function (an unsupported value)
 *           11 WORDS[byte % #WORDS] followed by a string
 * A table below depth 8 becomes the empty string; missing bytes read as 0.
 * Bad specs raise (expected), but never "cannot encode the body": what
 * passes validation must encode. A built request must have method POST, a
 * url on graph_url, a path, a body that decodes to a JSON object, and kind,
 * and every value of spec.extra must come back from the body unchanged.
 * core.build_body(app_id, spec, mode, callback_uri), the same builder writing Lua tables,
 * must fail with the same message, or give what the written body decodes
 * to. */
#include "fuzz.h"

#define MAX_DEPTH 8

static int build_ref, body_ref, parts_ref, null_ref, check_ref, fn_ref;

/* Every key of the key lists in src/request.c (spec_keys, identity_keys,
 * target_keys, media_keys, prompt_keys, chat_info_keys, call_option_keys,
 * build_parts' keys) and of the config table. */
static const char *const KEYS[] = {
	/* spec_keys */
	"targets", "source", "guest", "subject", "modalities", "media", "tenant",
	"language_id", "region", "callback_uri", "chat_info", "organizer",
	"allow_conversation_without_host", "meeting_id", "passcode",
	"meeting_token", "url", "call_options", "extra",
	/* identity_keys, target_keys */
	"type", "id", "name", "identity_provider", "replaces_call_id",
	/* media_keys, prompt_keys */
	"prompts", "blob", "remove_from_default_audio_group", "uri", "resource_id",
	/* chat_info_keys */
	"thread_id", "message_id", "reply_chain_message_id",
	/* call_option_keys */
	"hide_bot_after_escalation", "is_content_sharing_notification_enabled",
	"is_delta_roster_enabled",
	/* Graph names an extra may collide with */
	"callbackUri", "requestedModalities", "mediaConfig", "tenantId", "@odata.type",
};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

static const char *const WORDS[] = {
	/* identity types, media types, modalities */
	"user", "phone", "application", "application_instance", "guest",
	"service_hosted", "app_hosted", "audio", "video", "data", "unknown",
	"video_based_screen_sharing", "videoBasedScreenSharing",
	/* ids */
	"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", "550fae72-d251-43ec-868c-373732c2704f",
	"72f988bf-86f1-41af-91ab-2d7cd011db47", "+12345678890", "Heidi Steen", "None",
	"19:meeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk@thread.v2", "0",
	"1D6DE2D4-CD51-4309-8DAA-70768651088E",
	/* URLs */
	"https://bot.contoso.com/api/calls", "https://cdn.contoso.com/beep.wav",
	"http://127.0.0.1:8080/cb", "http://localhost/x", "http://[::1]/x",
	"https://user:pw@cdn.contoso.com/a.wav", "http://cdn.contoso.com/a.wav",
	/* join links */
	("https://teams.microsoft.com/l/meetup-join/"
	 "19%3ameeting_NTg0NmQ3NTctZDVkZC00YzRhLThmNmEtOGQ3M2E0ODdmZDZk%40thread.v2/0"
	 "?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
	 "4b444206-207c-42f8-92a6-e332b41c88a2%22%7d"),
	"https://teams.microsoft.com/meet/2414128301281?p=NzhDLMLT8b07DrkwkE",
	("https://teams.microsoft.com/l/meetup-join/19:cd9ce3da56624fe69c9d7cd026f9126d@thread.skype/"
	 "1509579179399?context={\"Tid\":\"t\",\"Oid\":\"o\",\"MessageId\":\"1536978844957\"}"),
	/* text that must be refused */
	"", "a\r\nb", "\xff\xfe", "\x01", "\xed\xa0\x80", "a\tb",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

typedef struct {
	const uint8_t *p;
	size_t n;
	int arena;      /* stack index of the tables made so far */
	int tables;
} reader;

static unsigned byte(reader *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static void push_string(lua_State *L, reader *r)
{
	size_t len = byte(r);

	if (len == 255) {
		len = (size_t)byte(r) << 8;
		len |= byte(r);
	}
	if (len > r->n)
		len = r->n;
	lua_pushlstring(L, (const char *)r->p, len);
	r->p += len;
	r->n -= len;
}

static void push_value(lua_State *L, reader *r, int depth);

static void remember(lua_State *L, reader *r)
{
	lua_pushvalue(L, -1);
	lua_rawseti(L, r->arena, ++r->tables);
}

static void push_table(lua_State *L, reader *r, int depth)
{
	unsigned n = byte(r) % 16;

	if (depth > MAX_DEPTH) {
		lua_pushliteral(L, "");
		return;
	}
	luaL_checkstack(L, 8, "spec");
	lua_createtable(L, 0, (int)n);
	remember(L, r);
	for (unsigned i = 0; i < n; i++) {
		unsigned k = byte(r);
		if (k < 0xC0)
			lua_pushstring(L, KEYS[k % NKEYS]);
		else if (k < 0xE0)
			lua_pushinteger(L, (lua_Integer)(k - 0xC0));
		else
			push_string(L, r);
		push_value(L, r, depth + 1);
		lua_rawset(L, -3);
	}
}

static void push_array(lua_State *L, reader *r, int depth)
{
	unsigned n = byte(r) % 16;

	if (depth > MAX_DEPTH) {
		lua_pushliteral(L, "");
		return;
	}
	luaL_checkstack(L, 8, "spec");
	lua_createtable(L, (int)n, 0);
	remember(L, r);
	for (unsigned i = 1; i <= n; i++) {
		push_value(L, r, depth + 1);
		lua_rawseti(L, -2, (lua_Integer)i);
	}
}

static void push_value(lua_State *L, reader *r, int depth)
{
	uint64_t u = 0;
	double d;

	switch (byte(r) % 12) {
	case 0:
		push_string(L, r);
		break;
	case 1:
		lua_pushstring(L, WORDS[byte(r) % NWORDS]);
		break;
	case 2:
		lua_pushinteger(L, (lua_Integer)(int8_t)byte(r));
		break;
	case 3:
		for (int i = 0; i < 8; i++)
			u = u << 8 | byte(r);
		lua_pushinteger(L, (lua_Integer)u);
		break;
	case 4:
		for (int i = 0; i < 8; i++)
			u = u << 8 | byte(r);
		memcpy(&d, &u, sizeof d);
		lua_pushnumber(L, d);
		break;
	case 5:
		lua_pushboolean(L, byte(r) & 1);
		break;
	case 6:
		push_table(L, r, depth);
		break;
	case 7:
		push_array(L, r, depth);
		break;
	case 8:
		fz_push(L, null_ref);
		break;
	case 9:
		if (r->tables == 0) {
			unsigned skip = byte(r);
			(void)skip;
			lua_pushliteral(L, "no table yet");
		} else {
			lua_rawgeti(L, r->arena, (lua_Integer)(byte(r) % (unsigned)r->tables) + 1);
		}
		break;
	case 10:
		fz_push(L, fn_ref);
		break;
	default:
		lua_pushstring(L, WORDS[byte(r) % NWORDS]);
		push_string(L, r);
		lua_concat(L, 2);
		break;
	}
}

/* Checks a built request against the config; raises on a broken guarantee. */
static const char check_src[] =
	"local cjson = require('cjson.safe').new()\n"
	"local function same(a, b)\n"
	"  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end\n"
	"  for k, x in pairs(a) do if not same(x, b[k]) then return false end end\n"
	"  for k in pairs(b) do if a[k] == nil then return false end end\n"
	"  return true\n"
	"end\n"
	"return function(req, graph_url, mode, parts, spec, tables)\n"
	"  assert(getmetatable(req).__name == 'graphcall.request', 'not a request')\n"
	"  assert(req.method == 'POST', 'method')\n"
	"  assert(req.kind == mode, 'kind')\n"
	"  local base = graph_url:gsub('/$', '')\n"
	"  assert(req.url == base .. req.path, 'url ' .. tostring(req.url))\n"
	"  assert(req.path:find('/calls$'), 'path')\n"
	"  assert(type(req.body) == 'string', 'body')\n"
	"  local body = cjson.decode(req.body)\n"
	"  assert(type(body) == 'table', 'the body is not JSON: ' .. req.body)\n"
	"  assert(type(body.callbackUri) == 'string', 'callbackUri')\n"
	"  assert(type(body.source) == 'table' and type(body.mediaConfig) == 'table', 'source/mediaConfig')\n"
	"  assert(body.targets or body.meetingInfo, 'neither targets nor meetingInfo')\n"
	"  assert(type(tostring(req)) == 'string')\n"
	"  if parts ~= nil then assert(type(parts) == 'table', 'build_parts') end\n"
	"  assert(same(body, tables), 'the written body differs from build_body: ' .. req.body)\n"
	"  if type(rawget(spec, 'extra')) == 'table' then\n"
	"    for k, v in pairs(spec.extra) do\n"
	"      assert(same(body[k], v), 'extra.' .. k .. ' did not survive JSON: ' .. req.body)\n"
	"    end\n"
	"  end\n"
	"  return #req.body\n"
	"end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	lua_State *L = fz_state();

	(void)argc;
	(void)argv;
	fz_core_field(L, "build_request");
	build_ref = fz_ref(L);
	fz_core_field(L, "build_body");
	body_ref = fz_ref(L);
	fz_core_field(L, "build_parts");
	parts_ref = fz_ref(L);
	fz_core_field(L, "null");
	null_ref = fz_ref(L);
	fz_core_field(L, "uuid");
	fn_ref = fz_ref(L);
	fz_run(L, "=check", check_src, 0, 1);
	check_ref = fz_ref(L);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const endpoints[] = { "v1.0", "beta", "beta/app", "beta/applications" };
	lua_State *L = fz_state();
	reader r = { data, size, 0, 0 };
	unsigned b0 = byte(&r);
	const char *mode = (b0 & 1) ? "join" : "call";
	const char *graph_url = (b0 & 32) ? "http://127.0.0.1:8443/" : "https://graph.microsoft.com";
	int top, config, spec, parts = 0, body_ok, tables;

	fz_begin(L);
	top = lua_gettop(L);
	lua_newtable(L);
	r.arena = lua_gettop(L);

	lua_createtable(L, 0, 4);
	config = lua_gettop(L);
	lua_pushliteral(L, "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698");
	lua_setfield(L, config, "app_id");
	lua_pushstring(L, graph_url);
	lua_setfield(L, config, "graph_url");
	lua_pushstring(L, endpoints[(b0 >> 1) & 3]);
	lua_setfield(L, config, "endpoint");
	if (b0 & 8) {
		lua_pushliteral(L, "https://bot.contoso.com/api/calls");
		lua_setfield(L, config, "callback_uri");
	}

	push_table(L, &r, 0);
	spec = lua_gettop(L);

	if (b0 & 16) {
		fz_push(L, parts_ref);
		lua_getfield(L, config, "app_id");
		lua_pushvalue(L, spec);
		if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
			if (!lua_istable(L, -1))
				fz_fail("build_parts returned a %s", luaL_typename(L, -1));
			parts = lua_gettop(L);
			fz_log("build_parts: ok");
		} else {
			fz_log("build_parts: %s", lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	}

	fz_push(L, body_ref);
	lua_getfield(L, config, "app_id");
	lua_pushvalue(L, spec);
	lua_pushstring(L, mode);
	lua_getfield(L, config, "callback_uri");
	body_ok = lua_pcall(L, 4, 1, 0) == LUA_OK;
	tables = lua_gettop(L);

	fz_push(L, build_ref);
	lua_getfield(L, config, "app_id");
	lua_pushvalue(L, spec);
	lua_pushstring(L, mode);
	lua_getfield(L, config, "callback_uri");
	lua_getfield(L, config, "graph_url");
	lua_getfield(L, config, "endpoint");
	if (lua_pcall(L, 6, 1, 0) == LUA_OK) {
		int req = lua_gettop(L);
		if (!body_ok)
			fz_fail("build_request accepted what build_body refused: %s",
			        lua_tostring(L, tables));
		fz_push(L, check_ref);
		lua_pushvalue(L, req);
		lua_pushstring(L, graph_url);
		lua_pushstring(L, mode);
		if (parts)
			lua_pushvalue(L, parts);
		else
			lua_pushnil(L);
		lua_pushvalue(L, spec);
		lua_pushvalue(L, tables);
		if (fz_pcall(L, 6, 1) != LUA_OK)
			fz_fail("a built request breaks a guarantee: %s", lua_tostring(L, -1));
		fz_log("build_request(%s): ok, body of %d bytes", mode, (int)lua_tointeger(L, -1));
		if (fz_verbose) {
			lua_getfield(L, req, "body");
			fz_log("  %s", lua_tostring(L, -1));
		}
	} else {
		const char *msg = lua_tostring(L, -1);
		/* A spec that passed validation must encode. */
		if (msg && strncmp(msg, "cannot encode the body", 22) == 0)
			fz_fail("build_request: %s", msg);
		if (body_ok || !msg || !lua_isstring(L, tables) || strcmp(msg, lua_tostring(L, tables)) != 0)
			fz_fail("build_request refused (%s), build_body %s", msg ? msg : "?",
			        body_ok ? "accepted" : lua_tostring(L, tables));
		fz_log("build_request(%s): %s", mode, msg);
	}
	lua_settop(L, top);
	fz_end(L);
	return 0;
}
