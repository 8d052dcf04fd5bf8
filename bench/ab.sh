#!/bin/bash
# bench/ab.sh REV [REPS]: this checkout against git revision REV, in the same
# run, alternated (A B nginx, A B nginx, ...), so that machine drift cancels:
#   - create-call, sequential, against the nginx stand-in: client CPU
#     µs/request ((N=5000 - N=1000) / 4000, client and nginx on CPU 0) and
#     system calls/request (strace -f -c, (N=1000 - N=200) / 800, as make
#     bench counts them; and counted by perf stat, (N=5000 - N=1000) / 4000,
#     when perf may read the raw_syscalls tracepoint);
#   - the receiver with JWT on: requests/s under wrk (wrk on CPU 0, the
#     receivers and nginx on CPU 1), and the ratio to nginx.
# REV is built in a temporary worktree (make), removed afterwards. It is
# how one checks that a change leaves no figure of bench/RESULTS.md worse
# by more than the noise, when the machine differs from the one that wrote
# the figures. Needs make, nginx, wrk, strace (make dev-deps).
set -eu
rev=${1:?usage: bench/ab.sh REV [REPS]}
reps=${2:-5}
cd "$(dirname "$0")/.."
top=$(pwd)
tmp=$(mktemp -d /tmp/graphcall-ab.XXXXXX)
cleanup() {
	[ -f "$tmp/ngx/nginx.pid" ] && kill "$(cat "$tmp/ngx/nginx.pid")" 2>/dev/null
	pkill -f "gc_receiver.lua on $tmp/" 2>/dev/null || true
	git -C "$top" worktree remove --force "$tmp/b" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
make -s >/dev/null
mkdir -p bench/build
cc -O2 -Wall -Wextra -o bench/build/runstat bench/c/runstat.c
git worktree add -q --detach "$tmp/b" "$rev"
make -s -C "$tmp/b" >/dev/null

# nginx, the stand-in (bench/nginx.conf.in, as bench.lua fills it in)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/ngx"
lua5.4 - "$tmp/ngx" "$port" <<'LUA'
local dir, port = arg[1], arg[2]
local r = io.open("bench/fixtures/call_response.json"):read("a"):gsub("%s+$", "")
r = r:gsub("%$", "${dollar}"):gsub("REQUEST_ID", "$request_id")
local c = io.open("bench/nginx.conf.in"):read("a"):gsub("@DIR@", dir):gsub("@PORT@", port)
  :gsub("@RESPONSE@", function() return r end)
io.open(dir .. "/nginx.conf", "w"):write(c)
LUA
nginx -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" >"$tmp/ngx/stdout.log" 2>&1 &
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
url=http://127.0.0.1:$port
pin_nginx() { for p in $(cat "$tmp/ngx/nginx.pid") $(pgrep -P "$(cat "$tmp/ngx/nginx.pid")"); do taskset -a -p -c "$1" "$p" >/dev/null; done; }

# in tree $1: lua5.4 with the tree's paths
in_tree() { (cd "$1" && shift && LUA_PATH='./bench/lua/?.lua;./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "$@"); }
cpu() { # tree N -> user+sys seconds
	rm -f "$tmp/stat"
	in_tree "$1" taskset -c 0 "$top/bench/build/runstat" "$tmp/stat" lua5.4 bench/lua/gc_create.lua "$url" "$2" seq >/dev/null
	awk '{ print $1 + $2 }' "$tmp/stat"
}
syscalls() { # tree N -> total system calls, under strace -f -c (as make bench counts them)
	in_tree "$1" strace -f -c -o "$tmp/strace" lua5.4 bench/lua/gc_create.lua "$url" "$2" seq >/dev/null
	awk '$NF == "total" { print $4 }' "$tmp/strace"
}
syscalls_perf() { # tree N -> total system calls, counted by perf (no strace slowing the client down)
	in_tree "$1" perf stat -x, -e raw_syscalls:sys_enter -o "$tmp/perf" taskset -c 0 \
		lua5.4 bench/lua/gc_create.lua "$url" "$2" seq >/dev/null
	awk -F, '/raw_syscalls/ { print $1 }' "$tmp/perf"
}
receiver() { # tree dir
	mkdir -p "$2"
	in_tree "$1" taskset -c 1 lua5.4 bench/lua/gc_receiver.lua on "$2" >"$2/out.log" 2>&1 &
	for _ in $(seq 200); do [ -f "$2/port" ] && [ -f "$2/token" ] && return; sleep 0.05; done
	echo "receiver in $1 did not start" >&2; exit 1
}
wrk_rps() { # port token seconds
	BENCH_BODY="$top/bench/fixtures/notification_call.json" BENCH_TOKEN=$(cat "$2") taskset -c 0 \
		wrk -t1 -c16 -d"$3"s -s "$top/bench/wrk_post.lua" "http://127.0.0.1:$1/api/calls" | awk '/Requests\/sec/ { print $2 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "A = this checkout ($(git -C "$top" rev-parse --short HEAD)$(git -C "$top" diff --quiet || echo +changes)), B = $rev ($(git -C "$tmp/b" rev-parse --short HEAD)); $reps runs each, median"
pin_nginx 0
for i in $(seq "$reps"); do
	for t in a b; do
		tree=$top; [ $t = b ] && tree=$tmp/b
		hi=$(cpu "$tree" 5000); lo=$(cpu "$tree" 1000)
		echo "$hi $lo" | awk '{ printf "%.2f\n", ($1 - $2) / 4000 * 1e6 }' >>"$tmp/cpu.$t"
	done
done
for t in a b; do
	tree=$top; [ $t = b ] && tree=$tmp/b
	hi=$(syscalls "$tree" 1000); lo=$(syscalls "$tree" 200)
	echo "$hi $lo" | awk '{ printf "%.2f\n", ($1 - $2) / 800 }' >"$tmp/sys.$t"
	if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
		hi=$(syscalls_perf "$tree" 5000); lo=$(syscalls_perf "$tree" 1000)
		echo "$hi $lo" | awk '{ printf "%.2f\n", ($1 - $2) / 4000 }' >"$tmp/perf.$t"
	else
		echo "-" >"$tmp/perf.$t"
	fi
done
ca=$(median <"$tmp/cpu.a"); cb=$(median <"$tmp/cpu.b")
printf 'create-call sequential, client CPU µs/request: A %s (%s)  B %s (%s)  A/B %.2f\n' \
	"$ca" "$(paste -sd' ' "$tmp/cpu.a")" "$cb" "$(paste -sd' ' "$tmp/cpu.b")" "$(echo "$ca $cb" | awk '{ print $1 / $2 }')"
printf 'create-call sequential, system calls/request: under strace A %s  B %s; counted by perf A %s  B %s\n' \
	"$(cat "$tmp/sys.a")" "$(cat "$tmp/sys.b")" "$(cat "$tmp/perf.a")" "$(cat "$tmp/perf.b")"

pin_nginx 1
receiver "$top" "$tmp/rx-a"; receiver "$tmp/b" "$tmp/rx-b"
pa=$(cat "$tmp/rx-a/port"); pb=$(cat "$tmp/rx-b/port")
wrk_rps "$pa" "$tmp/rx-a/token" 1 >/dev/null; wrk_rps "$pb" "$tmp/rx-b/token" 1 >/dev/null; wrk_rps "$port" "$tmp/rx-a/token" 1 >/dev/null
for i in $(seq "$reps"); do
	wrk_rps "$pa" "$tmp/rx-a/token" 3 >>"$tmp/rx.a"
	wrk_rps "$pb" "$tmp/rx-b/token" 3 >>"$tmp/rx.b"
	wrk_rps "$port" "$tmp/rx-a/token" 3 >>"$tmp/rx.n"
done
ra=$(median <"$tmp/rx.a"); rb=$(median <"$tmp/rx.b"); rn=$(median <"$tmp/rx.n")
printf 'receiver, JWT on, requests/s: A %.0f  B %.0f  nginx %.0f  A/nginx %.2f  B/nginx %.2f  A/B %.2f\n' \
	"$ra" "$rb" "$rn" "$(echo "$ra $rn" | awk '{ print $1 / $2 }')" "$(echo "$rb $rn" | awk '{ print $1 / $2 }')" \
	"$(echo "$ra $rb" | awk '{ print $1 / $2 }')"
