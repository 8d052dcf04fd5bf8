# graphcall — developer Makefile. LuaRocks users build with the rockspec.
#
#   make deps    install the Debian packages graphcall needs (apt-get, as root)
#   make         build build/graphcall/core.so
#   make test    deps + build + luacheck + busted under Lua 5.4
#   make demo    deps + build + the demo bot against the local Graph emulator

LUA      ?= lua5.4
CC       ?= cc
PKGS     := lua5.4 libcurl libmicrohttpd libcrypto
CFLAGS   ?= -O2 -g
WARN     := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-missing-field-initializers
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs libcurl libmicrohttpd libcrypto)
ALL_CFLAGS = $(WARN) $(CFLAGS) -D_DEFAULT_SOURCE -fPIC -fvisibility=hidden $(PKG_CFLAGS)

SRC    := $(wildcard src/*.c)
OBJ    := $(SRC:src/%.c=build/obj/%.o)
MODULE := build/graphcall/core.so

# Debian packages: runtime, then test tools.
DEPS := pkg-config gcc make curl openssl lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev \
        libssl-dev libmicrohttpd-dev lua-busted luarocks lua-check

.PHONY: all deps test lint unit demo clean

all: $(MODULE)

$(MODULE): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(OBJ) $(PKG_LIBS)

build/obj/%.o: src/%.c src/graphcall.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

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

lint:
	luacheck -q lua spec examples bin

# busted's own launcher runs Lua 5.1 on Debian; run its runner under 5.4.
unit: $(MODULE)
	$(LUA) /usr/bin/busted

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory unit

LUA_ENV = LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'

demo: deps
	@$(MAKE) --no-print-directory all
	@bin/graphcall-run $(LUA) examples/demo_bot.lua

clean:
	rm -rf build
