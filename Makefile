# graphcall — developer Makefile. LuaRocks users build with the rockspec.
#
#   make deps    install the Debian packages graphcall needs (apt-get, as root)
#   make         build build/graphcall/core.so and build/graphcall/testing.so
#   make test    deps + build + luacheck + busted under Lua 5.4
#   make demo    deps + build + the demo bot against the local Graph emulator
#   make screenshot  build/dashboard.png: the emulator's dashboard during a demo call (headless chromium)
#   make doc     the API reference of the Lua layer (LDoc) in build/doc/; warnings fail it
#   make bench   the benchmark suite against the peers (bench/RESULTS.md)
#   make fuzz    each libFuzzer harness for FUZZ_SECONDS (default 60) with ASan+UBSan
#   make asan    the spec suite with the module built with -fsanitize=address,undefined
#   make valgrind  the spec suite under valgrind --leak-check=full

LUA      ?= lua5.4
CC       ?= cc
CXX      ?= c++
PKGS     := lua5.4 libcurl libmicrohttpd libcrypto simdjson hiredis
CFLAGS   ?= -O2 -g
CXXFLAGS ?= -O2 -g
# -Werror for development; the rockspecs build with WERROR= so that a newer
# compiler's new warning does not fail a user's install.
WERROR   ?= -Werror
WARN     := -std=c11 -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-missing-field-initializers
# The one C++ file (src/json/scan.cpp, simdjson behind a C interface).
CXXWARN  := -std=c++17 -Wall -Wextra $(WERROR) -Wshadow -Wmissing-declarations \
            -Wno-missing-field-initializers
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs libcurl libmicrohttpd libcrypto simdjson hiredis) -lstdc++
ALL_CFLAGS = $(WARN) $(CFLAGS) -D_DEFAULT_SOURCE -fPIC -fvisibility=hidden -Isrc $(PKG_CFLAGS)
ALL_CXXFLAGS = $(CXXWARN) $(CXXFLAGS) -fPIC -fvisibility=hidden -Isrc $(PKG_CFLAGS)

# src/ by layer: common/ (errors, options, UTF-8, UUID), json/ (the JSON
# seam), out/ (requests), in/ (notifications, JWT), net/ (HTTP, server, Redis).
# The rockspecs run this Makefile with their own SRC, CXXSRC, OBJDIR, MODULE,
# CFLAGS and PKG_* (the directories LuaRocks found), so a rock is compiled
# with the same flags, -fvisibility=hidden included. src/testing/ is the
# test-only module graphcall.testing (the JWT signer), which also links the
# few core files it needs (TESTING_SRC).
SRC    := $(filter-out src/testing/%,$(wildcard src/*.c src/*/*.c))
CXXSRC := $(wildcard src/*/*.cpp)
HDR    := $(wildcard src/*.h src/*/*.h)
OBJDIR := build/obj
OBJ    := $(SRC:src/%.c=$(OBJDIR)/%.o) $(CXXSRC:src/%.cpp=$(OBJDIR)/%.o)
MODULE := build/graphcall/core.so
TESTING_SRC := src/testing/jwt_sign.c src/in/jws.c src/json/cjson.c src/common/options.c \
               src/common/udata.c
TESTING_OBJ := $(TESTING_SRC:src/%.c=$(OBJDIR)/%.o)
TESTING := build/graphcall/testing.so
CRYPTO_LIBS = -lcrypto

# Debian packages: runtime, then test tools.
DEPS := pkg-config gcc g++ make curl openssl lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev \
        libssl-dev libmicrohttpd-dev libsimdjson-dev libhiredis-dev lua-busted luarocks lua-check lua-socket gzip \
        redis-server nginx lua-luv lua-cqueues lua-ldoc lua-markdown chromium chromium-driver
# Development tools: sanitizers, fuzzing, leak checks, benchmark peers.
DEV_DEPS := clang libclang-rt-14-dev valgrind nginx wrk strace lua-sec

.PHONY: all deps dev-deps test lint unit demo screenshot doc bench fuzz asan valgrind clean

all: $(MODULE) $(TESTING)

# The version script keeps the C++ library's template instances (simdjson's
# side of the JSON seam) out of the exported symbols: only luaopen_* go out.
EXPORTS := -Wl,--version-script=src/exports.map

$(MODULE): $(OBJ) src/exports.map
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(OBJ) $(PKG_LIBS) $(EXPORTS)

$(TESTING): $(TESTING_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(TESTING_OBJ) $(CRYPTO_LIBS) $(EXPORTS)

$(OBJDIR)/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(OBJDIR)/%.o: src/%.cpp $(HDR)
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) -c -o $@ $<

deps:
	@missing=$$(for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

dev-deps:
	@$(MAKE) --no-print-directory deps DEPS="$(DEV_DEPS)"

lint:
	luacheck -q lua spec examples bin types bench

# busted's own launcher runs Lua 5.1 on Debian; .busted names lua5.4, so a
# plain `busted` re-runs itself under it. Here the runner starts under
# $(LUA) directly (--ignore-lua: no second process, which valgrind and the
# ASan preload below need to see).
BUSTED = $(LUA) /usr/bin/busted --ignore-lua
unit: $(MODULE) $(TESTING)
	$(BUSTED)

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory unit

LUA_ENV = LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'

demo: deps
	@$(MAKE) --no-print-directory all
	@bin/graphcall-run $(LUA) examples/demo_bot.lua

# The dashboard (/_emulator/) during a demo call, as headless chromium
# renders it (spec/support/screenshot.lua: emulator, bot and browser).
screenshot: deps
	@$(MAKE) --no-print-directory all
	@LUA_PATH='./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;' LUA_CPATH='./build/?.so;;' \
	  $(LUA) spec/support/screenshot.lua build/dashboard.png

# The API reference: LDoc (config.ld) reads the LuaLS annotations of
# lua/graphcall/*.lua. LDoc runs under Lua 5.1 on Debian (lua-markdown, its
# Markdown formatter, is packaged for 5.1 only). Its only expected output is
# the two lines below; anything else (a warning, an undocumented argument, a
# missing formatter) fails the target.
LDOC ?= lua5.1 /usr/bin/ldoc
doc: deps
	@rm -rf build/doc && mkdir -p build
	@$(LDOC) . >build/ldoc.log 2>&1; rc=$$?; cat build/ldoc.log; \
	if [ $$rc != 0 ] || grep -qv -e '^reading configuration from config.ld$$' -e '^output written to ' build/ldoc.log; \
	then echo "make doc: LDoc reported problems (warnings are fatal)" >&2; exit 1; fi

# Sanitizers: the module built by clang with ASan and UBSan, run by the stock
# lua5.4 with the ASan runtime preloaded. Leaks are valgrind's job (below):
# the uninstrumented interpreter and its children would drown LSan in noise.
ASAN_RT    = $(shell clang -print-file-name=libclang_rt.asan-x86_64.so)
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_MOD   = build/asan/graphcall/core.so
ASAN_TESTING = build/asan/graphcall/testing.so

$(ASAN_TESTING): $(TESTING_SRC) $(HDR)
	@mkdir -p $(dir $@)
	clang $(WARN) -O1 -g $(ASAN_FLAGS) -D_DEFAULT_SOURCE -fPIC -fvisibility=hidden -Isrc $(PKG_CFLAGS) \
	  -shared -shared-libasan -o $@ $(TESTING_SRC) -lcrypto

$(ASAN_MOD): $(SRC) $(CXXSRC) $(HDR)
	@mkdir -p $(dir $@) build/asan/obj
	for f in $(CXXSRC); do \
	  o=build/asan/obj/$${f#src/}; mkdir -p $$(dirname $$o); \
	  clang++ $(CXXWARN) -O1 -g $(ASAN_FLAGS) -fPIC -fvisibility=hidden -Isrc $(PKG_CFLAGS) \
	    -c -o $${o%.cpp}.o $$f || exit 1; \
	done
	clang $(WARN) -O1 -g $(ASAN_FLAGS) -D_DEFAULT_SOURCE -fPIC -fvisibility=hidden -Isrc $(PKG_CFLAGS) \
	  -shared -shared-libasan -o $@ $(SRC) $(CXXSRC:src/%.cpp=build/asan/obj/%.o) $(PKG_LIBS)

# curl, which the specs run as a client, hangs with the ASan runtime
# preloaded: it runs from a wrapper that drops the preload.
build/asan/bin/curl:
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec env -u LD_PRELOAD /usr/bin/curl "$$@"\n' > $@
	chmod +x $@

asan:
	@$(MAKE) --no-print-directory dev-deps all $(ASAN_MOD) $(ASAN_TESTING) build/asan/bin/curl
	PATH=$(CURDIR)/build/asan/bin:$$PATH GRAPHCALL_MEMCHECK=1 \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  LD_PRELOAD=$(ASAN_RT) $(BUSTED) --cpath='./build/asan/?.so'

# valgrind: the spec suite, failing on any error or definitely lost block.
valgrind:
	@$(MAKE) --no-print-directory dev-deps all
	GRAPHCALL_MEMCHECK=1 valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 \
	  --trace-children=no -q $(BUSTED)

# libFuzzer harnesses (spec/fuzz/) with ASan+UBSan, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: ; @$(MAKE) --no-print-directory dev-deps && FUZZ_SECONDS=$(FUZZ_SECONDS) spec/fuzz/run

# The benchmark suite against its peers (bench/run, bench/RESULTS.md).
bench: all
	@$(MAKE) --no-print-directory dev-deps
	@bench/run

clean:
	rm -rf build
