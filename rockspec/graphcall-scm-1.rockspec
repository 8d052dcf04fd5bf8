rockspec_format = "3.0"
package = "graphcall"
version = "scm-1"
source = {
  url = "git+https://example.invalid/graphcall.git",
}
description = {
  summary = "Place and control Microsoft Graph calls (Teams calling bots) from Lua 5.4",
  detailed = [[
    A Lua 5.4 library in C with a thin Lua layer: builds Graph create-call and
    join-meeting requests, parses the notifications Graph sends back, and
    (with libcurl) talks to Graph's calling service.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1.0",
}
-- Found by its library: on Debian the header sits in a multiarch directory
-- (/usr/include/x86_64-linux-gnu) that LuaRocks' header search misses but
-- the compiler finds by itself.
external_dependencies = {
  CURL = { library = "curl" },
  MICROHTTPD = { header = "microhttpd.h", library = "microhttpd" },
  CRYPTO = { header = "openssl/rand.h", library = "crypto" },
  SIMDJSON = { header = "simdjson.h", library = "simdjson" },
  HIREDIS = { header = "hiredis/async.h", library = "hiredis" },
}
build = {
  type = "builtin",
  modules = {
    ["graphcall.core"] = {
      sources = {
        "src/core.c",
        "src/common/util.c", "src/common/url.c", "src/common/uuid.c",
        "src/common/options.c", "src/common/udata.c",
        "src/json/cjson.c", "src/json/scanner.c", "src/json/object.c", "src/json/fields.c",
        "src/out/request.c", "src/out/joinlink.c",
        "src/in/notification.c", "src/in/jwt_verify.c", "src/in/jwk.c", "src/in/jws.c",
        "src/net/http.c", "src/net/server.c", "src/net/server_read.c", "src/net/server_respond.c",
        "src/net/redis.c",
        -- C++ (simdjson), compiled by the same driver as the C files
        -- (gcc picks the language from the extension; Debian's g++)
        "src/json/scan.cpp",
      },
      defines = { "_DEFAULT_SOURCE" },
      incdirs = { "src", "$(CURL_INCDIR)", "$(MICROHTTPD_INCDIR)", "$(CRYPTO_INCDIR)", "$(SIMDJSON_INCDIR)", "$(HIREDIS_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(MICROHTTPD_LIBDIR)", "$(CRYPTO_LIBDIR)", "$(SIMDJSON_LIBDIR)", "$(HIREDIS_LIBDIR)" },
      libraries = { "curl", "microhttpd", "crypto", "simdjson", "hiredis", "stdc++" },
    },
    -- test-only: the JWT signer the emulator and the specs sign with
    ["graphcall.testing"] = {
      sources = {
        "src/testing/jwt_sign.c", "src/in/jws.c", "src/json/cjson.c",
        "src/common/options.c", "src/common/udata.c",
      },
      defines = { "_DEFAULT_SOURCE" },
      incdirs = { "src", "$(CRYPTO_INCDIR)" },
      libdirs = { "$(CRYPTO_LIBDIR)" },
      libraries = { "crypto" },
    },
    -- the Lua modules: every file under lua/ is installed as a module
    -- (graphcall, graphcall.client, ...) by the builtin build's convention
  },
  install = {
    bin = { ["graphcall-emulator"] = "bin/graphcall-emulator" },
  },
}
test_dependencies = { "busted" }
test = { type = "busted" }
