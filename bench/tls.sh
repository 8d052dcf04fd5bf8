#!/bin/sh
# TLS stand-in (partial, issue 16): self-signed cert made here, nginx on
# 127.0.0.1 with HTTP/1.1 keep-alive (port P1) and HTTP/2 (port P2), the same
# 201 as bench/nginx.conf.in; graphcall (gc_create.lua) and the C libcurl loop
# over TLS: CPU µs/request = (cpu(N2) - cpu(N1)) / (N2 - N1), syscalls/request
# from strace -f -c the same way. Run from the repository root after make.
set -eu
D=$(mktemp -d /tmp/gc-tls.XXXXXX)
B=bench/build
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout $D/key.pem -out $D/cert.pem 2>/dev/null
RESP=$(lua5.4 -e 'local r=io.read("a"):gsub("%s+$",""):gsub("%$","${dollar}"):gsub("REQUEST_ID","$request_id"); io.write(r)' < bench/fixtures/call_response.json)
P1=18443; P2=18444
sed -e "s|@DIR@|$D|g" -e "s|@PORT@|$P1 ssl|" -e "s|@RESPONSE@|$(printf '%s' "$RESP" | sed 's/[&|]/\\&/g')|" bench/nginx.conf.in > $D/nginx.conf
# the same server again for HTTP/2 on P2, TLS on both
sed -i -e "s|^  server {|  ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem; http2_max_concurrent_streams ${H2_STREAMS:-128};\n  server {|" $D/nginx.conf
awk -v p2=$P2 '/^  server \{/{f=1} f{buf=buf $0 "\n"} {print} /^  \}$/ && f{f=0; gsub(/listen 127.0.0.1:[0-9]+ ssl/, "listen 127.0.0.1:" p2 " ssl http2", buf); printf "%s", buf}' $D/nginx.conf > $D/n2.conf
mkdir -p $D/client_body
# NGINX_CPU=c pins nginx (default: unpinned). The client's CPU per request
# depends on it: with nginx on the other CPU every peer pays cross-CPU wake-ups.
${NGINX_CPU:+taskset -c $NGINX_CPU} nginx -p $D -c $D/n2.conf -e $D/error.log & NG=$!
sleep 0.5
trap 'kill $NG 2>/dev/null; rm -rf $D' EXIT
export LUA_PATH='./bench/lua/?.lua;./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'
export BENCH_CA=$D/cert.pem
N1=${N1:-1000}; N2=${N2:-5000}; S1=200; S2=1000
cpu() { # cmd... -> user+sys seconds
  rm -f $D/st; $B/runstat $D/st "$@" >/dev/null; awk '{print $1+$2}' $D/st; }
sys() { strace -f -c -o $D/sc "$@" >/dev/null 2>&1; awk '/ total$/{print $4}' $D/sc; }
per() { awk -v a=$1 -v b=$2 -v n=$3 'BEGIN{printf "%.2f", (b-a)/n}'; }
for v in ${PROTOS:-h1 h2}; do
  P=$P1; [ $v = h2 ] && P=$P2
  URL=https://127.0.0.1:$P
  for peer in ${PEERS:-graphcall curl graphcall256}; do
    case $v-$peer in h2-sdk|h2-fetch|h2-luasec) continue;; esac
    if [ $peer = graphcall ]; then run() { echo "lua5.4 bench/lua/gc_create.lua $URL $1 seq"; }
    elif [ $peer = graphcall256 ]; then run() { echo "env BENCH_IN_FLIGHT=${IN_FLIGHT:-256} lua5.4 bench/lua/gc_create.lua $URL $1 many"; }
    elif [ $peer = sdk ] || [ $peer = fetch ]; then
      run() { echo "env NODE_EXTRA_CA_CERTS=$BENCH_CA node bench/node/create_$peer.js $URL $1"; }
    elif [ $peer = luasec ]; then run() { echo "lua5.4 bench/lua/ls_tls.lua $URL $1"; }
    else run() { echo "$B/curl_loop $URL/v1.0/communications/calls bench/fixtures/create_body.json $1 $BENCH_CA $v"; }; fi
    best=""
    for r in 1 2 3; do
      a=$(cpu taskset -c 0 $(run $N1)); b=$(cpu taskset -c 0 $(run $N2))
      best="$best $(awk -v a=$a -v b=$b -v n=$((N2-N1)) 'BEGIN{printf "%.1f", (b-a)/n*1e6}')"
    done
    s1=$(sys $(run $S1)); s2=$(sys $(run $S2))
    echo "$v $peer cpu_us_per_req(3 runs):$best syscalls_per_req: $(per $s1 $s2 $((S2-S1)))"
  done
done
