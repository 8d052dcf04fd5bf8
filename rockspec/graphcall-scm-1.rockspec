-- graphcall from the main branch. Releases have their own rockspec,
-- graphcall-<version>-1.rockspec, which builds the same way from a tag.
rockspec_format = "3.0"
package = "graphcall"
version = "scm-1"
source = {
  url = "git+https://github.com/graphcall/graphcall.git",
  branch = "main",
}
description = {
  summary = "Place and control Microsoft Graph calls (Teams calling bots) from Lua 5.4",
  detailed = [[
    A Lua 5.4 library in C with a thin Lua layer: builds Graph create-call and
    join-meeting requests, sends them over libcurl, receives and verifies the
    notifications Graph posts back (libmicrohttpd, OpenSSL), and ships a local
    emulator of Graph's calling service for tests.
  ]],
  homepage = "https://github.com/graphcall/graphcall",
  issues_url = "https://github.com/graphcall/graphcall/issues",
  license = "MIT",
  labels = { "microsoft-graph", "teams", "voip", "bot" },
}
-- The receiver's loop uses epoll.
supported_platforms = { "linux" }
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1.0",
}
-- Found by their libraries: on Debian curl's header sits in a multiarch
-- directory (/usr/include/x86_64-linux-gnu) that LuaRocks' header search
-- misses but the compiler finds by itself.
external_dependencies = {
  CURL = { library = "curl" },
  MICROHTTPD = { header = "microhttpd.h", library = "microhttpd" },
  CRYPTO = { header = "openssl/rand.h", library = "crypto" },
  SIMDJSON = { header = "simdjson.h", library = "simdjson" },
  HIREDIS = { header = "hiredis/async.h", library = "hiredis" },
}

-- The sources of graphcall.core, one per line: a new src/ file goes here
-- (spec/rockspec_spec.lua fails while one is missing). .cpp files are C++.
local sources = {
  "src/core.c",
  "src/common/options.c",
  "src/common/udata.c",
  "src/common/url.c",
  "src/common/util.c",
  "src/common/uuid.c",
  "src/in/jwk.c",
  "src/in/jws.c",
  "src/in/jwt_verify.c",
  "src/in/notification.c",
  "src/json/cjson.c",
  "src/json/fields.c",
  "src/json/object.c",
  "src/json/scan.cpp",
  "src/json/scanner.c",
  "src/net/http.c",
  "src/net/redis.c",
  "src/net/server.c",
  "src/net/server_read.c",
  "src/net/server_respond.c",
  "src/net/signal.c",
  "src/out/joinlink.c",
  "src/out/request.c",
}
local c, cxx = "", ""
for i = 1, #sources do -- (a rockspec runs without the standard library)
  local f = sources[i]
  if f:match("%.cpp$") then cxx = cxx .. " " .. f else c = c .. " " .. f end
end

build = {
  -- The project's Makefile, given this list and the directories LuaRocks
  -- found: the same compiler flags as `make` (-fvisibility=hidden: the
  -- module exports luaopen_graphcall_core only), without -Werror.
  type = "make",
  build_target = "all",
  build_variables = {
    SRC = c, CXXSRC = cxx,
    OBJDIR = "build/rock", MODULE = "build/rock/graphcall/core.so",
    CC = "$(CC)", CFLAGS = "$(CFLAGS)", CXXFLAGS = "$(CFLAGS)", WERROR = "",
    PKG_CFLAGS = "-I$(LUA_INCDIR) -I$(CURL_INCDIR) -I$(MICROHTTPD_INCDIR) -I$(CRYPTO_INCDIR) -I$(SIMDJSON_INCDIR) -I$(HIREDIS_INCDIR)",
    PKG_LIBS = "-L$(CURL_LIBDIR) -L$(MICROHTTPD_LIBDIR) -L$(CRYPTO_LIBDIR) -L$(SIMDJSON_LIBDIR) -L$(HIREDIS_LIBDIR) "
      .. "-lcurl -lmicrohttpd -lcrypto -lsimdjson -lhiredis -lstdc++",
    -- the test-only module the emulator signs its notifications with
    TESTING = "build/rock/graphcall/testing.so", CRYPTO_LIBS = "-L$(CRYPTO_LIBDIR) -lcrypto",
  },
  install_pass = false,
  install = {
    lua = {
      ["graphcall.adapters.cqueues"] = "lua/graphcall/adapters/cqueues.lua",
      ["graphcall.adapters.luv"] = "lua/graphcall/adapters/luv.lua",
      ["graphcall.call"] = "lua/graphcall/call.lua",
      ["graphcall.client"] = "lua/graphcall/client.lua",
      ["graphcall.control"] = "lua/graphcall/control.lua",
      ["graphcall.emulator.actions"] = "lua/graphcall/emulator/actions.lua",
      ["graphcall.emulator.calls"] = "lua/graphcall/emulator/calls.lua",
      ["graphcall.emulator.dashboard"] = "lua/graphcall/emulator/dashboard.lua",
      ["graphcall.emulator.faults"] = "lua/graphcall/emulator/faults.lua",
      ["graphcall.emulator.identity"] = "lua/graphcall/emulator/identity.lua",
      ["graphcall.emulator"] = "lua/graphcall/emulator/init.lua",
      ["graphcall.emulator.records"] = "lua/graphcall/emulator/records.lua",
      ["graphcall.emulator.resources"] = "lua/graphcall/emulator/resources.lua",
      ["graphcall.events"] = "lua/graphcall/events.lua",
      ["graphcall.fleet"] = "lua/graphcall/fleet.lua",
      ["graphcall"] = "lua/graphcall/init.lua",
      ["graphcall.keys"] = "lua/graphcall/keys.lua",
      ["graphcall.log"] = "lua/graphcall/log.lua",
      ["graphcall.loop"] = "lua/graphcall/loop.lua",
      ["graphcall.operation"] = "lua/graphcall/operation.lua",
      ["graphcall.options"] = "lua/graphcall/options.lua",
      ["graphcall.participant"] = "lua/graphcall/participant.lua",
      ["graphcall.receiver"] = "lua/graphcall/receiver.lua",
      ["graphcall.redis"] = "lua/graphcall/redis.lua",
      ["graphcall.token"] = "lua/graphcall/token.lua",
      ["graphcall.transport"] = "lua/graphcall/transport.lua",
    },
    lib = {
      ["graphcall.core"] = "build/rock/graphcall/core.so",
      ["graphcall.testing"] = "build/rock/graphcall/testing.so",
    },
    bin = { ["graphcall-emulator"] = "bin/graphcall-emulator" },
  },
  copy_directories = { "doc", "examples" },
}
test_dependencies = { "busted" }
test = { type = "busted" }
