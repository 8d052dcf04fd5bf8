/* libFuzzer harness: core.parse_join_url(url), the Teams join-link parser
 * (libcurl's URL API, percent-decoding, the JSON context).
 *
 * The input is the link. The parser must never raise for a string: it
 * returns a table in the spec vocabulary or nil plus a graphcall.error of
 * kind "bad_join_url". A parsed link is checked for the fields each kind
 * guarantees. */
#include "fuzz.h"

static int parse_ref, check_ref;

static const char check_src[] =
	"local link = ...\n"
	"local function text(s, what)\n"
	"  assert(type(s) == 'string' and #s > 0, what)\n"
	"  assert(utf8.len(s), what .. ': invalid UTF-8')\n"
	"  assert(not s:find('[%z\\1-\\31\\127]'), what .. ': control character')\n"
	"end\n"
	"if link.kind == 'meeting_id' then\n"
	"  text(link.meeting_id, 'meeting_id')\n"
	"  if link.passcode ~= nil then text(link.passcode, 'passcode') end\n"
	"  assert(link.chat_info == nil and link.organizer == nil)\n"
	"elseif link.kind == 'meetup_join' then\n"
	"  text(link.chat_info.thread_id, 'thread_id')\n"
	"  text(link.chat_info.message_id, 'message_id')\n"
	"  if link.chat_info.reply_chain_message_id ~= nil then\n"
	"    text(link.chat_info.reply_chain_message_id, 'reply_chain_message_id')\n"
	"  end\n"
	"  text(link.tenant, 'tenant')\n"
	"  assert(link.organizer.type == 'user')\n"
	"  text(link.organizer.id, 'organizer.id')\n"
	"  assert(link.organizer.tenant == link.tenant)\n"
	"else\n"
	"  error('unknown kind ' .. tostring(link.kind))\n"
	"end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	lua_State *L = fz_state();

	(void)argc;
	(void)argv;
	fz_core_field(L, "parse_join_url");
	parse_ref = fz_ref(L);
	if (luaL_loadbuffer(L, check_src, sizeof check_src - 1, "=check") != LUA_OK)
		fz_fail("check: %s", lua_tostring(L, -1));
	check_ref = fz_ref(L);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fz_state();
	int top;

	fz_begin(L);
	top = lua_gettop(L);
	fz_push(L, parse_ref);
	lua_pushlstring(L, (const char *)data, size);
	if (fz_pcall(L, 1, 2) != LUA_OK)
		fz_fail("parse_join_url raised for a string: %s", lua_tostring(L, -1));
	if (lua_isnil(L, top + 1)) {
		fz_check_error(L, top + 2, "bad_join_url", "parse_join_url");
	} else {
		if (!lua_istable(L, top + 1))
			fz_fail("parse_join_url returned a %s", luaL_typename(L, top + 1));
		fz_push(L, check_ref);
		lua_pushvalue(L, top + 1);
		if (fz_pcall(L, 1, 0) != LUA_OK)
			fz_fail("a parsed link breaks a guarantee: %s", lua_tostring(L, -1));
		fz_log("parse_join_url: ok");
	}
	lua_settop(L, top);
	fz_end(L);
	return 0;
}
