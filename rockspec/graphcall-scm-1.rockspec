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
}
build = {
  type = "builtin",
  modules = {
    ["graphcall.core"] = {
      sources = {
        "src/core.c", "src/http.c", "src/joinlink.c", "src/json.c", "src/jwt.c", "src/notification.c", "src/request.c",
        "src/server.c", "src/util.c",
        -- C++ (simdjson), compiled by the same driver as the C files
        -- (gcc picks the language from the extension; Debian's g++)
        "src/json_scan.cpp",
      },
      defines = { "_DEFAULT_SOURCE" },
      incdirs = { "$(CURL_INCDIR)", "$(MICROHTTPD_INCDIR)", "$(CRYPTO_INCDIR)", "$(SIMDJSON_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(MICROHTTPD_LIBDIR)", "$(CRYPTO_LIBDIR)", "$(SIMDJSON_LIBDIR)" },
      libraries = { "curl", "microhttpd", "crypto", "simdjson", "stdc++" },
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
