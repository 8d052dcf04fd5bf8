#!/bin/sh
# 10,000 live calls in one process (issue 16): graphcall creates N calls
# against the nginx stand-in (bench/nginx.conf.in, plain HTTP/1.1
# keep-alive), marks them established, and keeps each alive every INTERVAL
# seconds; bench/lua/gc_live.lua prints RSS and Lua heap per call, loop
# wake-ups per second while idle, and the CPU of one keepAlive round.
# Then the same idle window under strace -c counts epoll_wait calls.
# Run from the repository root after make: sh bench/live.sh [N [INTERVAL]]
set -eu
D=$(mktemp -d /tmp/gc-live.XXXXXX)
N=${1:-10000}; I=${2:-30}
RESP=$(lua5.4 -e 'local r=io.read("a"):gsub("%s+$",""):gsub("%$","${dollar}"):gsub("REQUEST_ID","$request_id"); io.write(r)' < bench/fixtures/call_response.json)
P=18445
sed -e "s|@DIR@|$D|g" -e "s|@PORT@|$P|" -e "s|@RESPONSE@|$(printf '%s' "$RESP" | sed 's/[&|]/\\&/g')|" bench/nginx.conf.in > $D/nginx.conf
mkdir -p $D/client_body
taskset -c 1 nginx -p $D -c $D/nginx.conf -e $D/error.log & NG=$!
sleep 0.5
trap 'kill $NG 2>/dev/null; rm -rf $D' EXIT
export LUA_PATH='./bench/lua/?.lua;./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'
taskset -c 0 lua5.4 bench/lua/gc_live.lua http://127.0.0.1:$P $N $I
