#!/bin/sh
# Instructions per create request under callgrind (issue 16): graphcall
# (gc_create.lua seq) and the C libcurl loop (curl_loop) against the nginx
# stand-in (bench/nginx.conf.in), plain HTTP/1.1 keep-alive, and over TLS
# (HTTP/1.1 and HTTP/2, a self-signed cert made here as in bench/tls.sh).
# Instructions/request = (Ir at N2 - Ir at N1) / (N2 - N1): start-up cancels.
# Run from the repository root after make and bench/run's C builds.
set -eu
D=$(mktemp -d /tmp/gc-cg.XXXXXX)
B=bench/build
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout $D/key.pem -out $D/cert.pem 2>/dev/null
RESP=$(lua5.4 -e 'local r=io.read("a"):gsub("%s+$",""):gsub("%$","${dollar}"):gsub("REQUEST_ID","$request_id"); io.write(r)' < bench/fixtures/call_response.json)
P0=18446; P1=18447; P2=18448
sed -e "s|@DIR@|$D|g" -e "s|@PORT@|$P0|" -e "s|@RESPONSE@|$(printf '%s' "$RESP" | sed 's/[&|]/\\&/g')|" bench/nginx.conf.in > $D/nginx.conf
sed -i -e "s|^  server {|  ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem;\n  server {|" $D/nginx.conf
# the same server again with TLS (P1) and TLS + HTTP/2 (P2)
awk -v p1=$P1 -v p2=$P2 '/^  server \{/{f=1} f{buf=buf $0 "\n"} {print} /^  \}$/ && f{f=0; b1=buf; b2=buf;
  gsub(/listen 127.0.0.1:[0-9]+/, "listen 127.0.0.1:" p1 " ssl", b1); gsub(/listen 127.0.0.1:[0-9]+/, "listen 127.0.0.1:" p2 " ssl http2", b2);
  printf "%s%s", b1, b2}' $D/nginx.conf > $D/n3.conf
mkdir -p $D/client_body
taskset -c 1 nginx -p $D -c $D/n3.conf -e $D/error.log & NG=$!
sleep 0.5
trap 'kill $NG 2>/dev/null; rm -rf $D' EXIT
export LUA_PATH='./bench/lua/?.lua;./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'
N1=${N1:-200}; N2=${N2:-1000}
ir() { # cmd... -> instructions callgrind collected
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/Collected :/{print $4}'; }
for v in plain h1 h2; do
  case $v in plain) URL=http://127.0.0.1:$P0; CA=""; export BENCH_CA=;;
             h1) URL=https://127.0.0.1:$P1; CA="$D/cert.pem h1"; export BENCH_CA=$D/cert.pem;;
             h2) URL=https://127.0.0.1:$P2; CA="$D/cert.pem h2"; export BENCH_CA=$D/cert.pem;; esac
  [ -n "$BENCH_CA" ] || unset BENCH_CA
  for peer in graphcall curl; do
    if [ $peer = graphcall ]; then run() { echo "lua5.4 bench/lua/gc_create.lua $URL $1 seq"; }
    else run() { echo "$B/curl_loop $URL/v1.0/communications/calls bench/fixtures/create_body.json $1 $CA"; }; fi
    a=$(ir $(run $N1)); b=$(ir $(run $N2))
    echo "$v $peer instructions_per_req: $(awk -v a=$a -v b=$b -v n=$((N2-N1)) 'BEGIN{printf "%.0f", (b-a)/n}') (Ir $a at $N1, $b at $N2)"
  done
done
