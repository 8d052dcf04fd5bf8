#!/bin/sh
# The receiver over TLS (issue 16): wrk POSTs the call notification over
# HTTPS (keep-alive, 16 connections) to
#   graphcall   the graphcall receiver serving TLS itself (tls_cert), JWT on
#   nginx+gc    nginx terminating TLS, proxy_pass to a plain graphcall
#               receiver (JWT on), both pinned to the same CPU
#   nginx       nginx answering 202 itself over TLS (for reference)
# Requests/s as wrk reports them, 3 runs each. A self-signed cert is made
# here (as in bench/tls.sh). Run from the repository root after make.
set -eu
D=$(mktemp -d /tmp/gc-rxtls.XXXXXX)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout $D/key.pem -out $D/cert.pem 2>/dev/null
export LUA_PATH='./bench/lua/?.lua;./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'
PIDS=""
trap 'kill $PIDS 2>/dev/null; rm -rf $D' EXIT
waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
# graphcall with TLS
mkdir -p $D/tls $D/plain
BENCH_TLS_DIR=$D taskset -c 1 lua5.4 bench/lua/gc_receiver.lua on $D/tls & PIDS="$PIDS $!"
# graphcall plain, behind nginx
taskset -c 1 lua5.4 bench/lua/gc_receiver.lua on $D/plain & PIDS="$PIDS $!"
waitfile $D/tls/port; waitfile $D/plain/port; waitfile $D/tls/token
P1=18449; P2=18450
mkdir -p $D/ng/client_body
cat > $D/ng/nginx.conf <<CONF
daemon off;
worker_processes 1;
error_log $D/ng/error.log warn;
pid $D/ng/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $D/ng/client_body;
  proxy_temp_path $D/ng/proxy;
  fastcgi_temp_path $D/ng/fastcgi;
  uwsgi_temp_path $D/ng/uwsgi;
  scgi_temp_path $D/ng/scgi;
  ssl_certificate $D/cert.pem;
  ssl_certificate_key $D/key.pem;
  upstream gc { server 127.0.0.1:$(cat $D/plain/port); keepalive 32; }
  server {
    listen 127.0.0.1:$P1 ssl;
    location = /api/calls { proxy_pass http://gc; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$P2 ssl;
    location = /api/calls { return 202 ''; }
  }
}
CONF
taskset -c 1 nginx -p $D/ng -c $D/ng/nginx.conf -e $D/ng/error.log & PIDS="$PIDS $!"
sleep 0.5
export BENCH_BODY=bench/fixtures/notification_call.json
# requests/s, or "failed" when any answer was not 2xx (wrk counts those apart)
rps() { BENCH_TOKEN=$(cat $2) taskset -c 0 wrk -t1 -c16 -d${SECS:-3}s -s bench/wrk_post.lua "$1/api/calls" |
  awk '/Non-2xx/{bad=1} /Requests\/sec/{r=$2} END{print bad ? "failed" : r}'; }
for r in 1 2 3; do
  echo "run $r graphcall_tls $(rps https://127.0.0.1:$(cat $D/tls/port) $D/tls/token)" \
    "nginx_tls+graphcall $(rps https://127.0.0.1:$P1 $D/plain/token) nginx_tls_202 $(rps https://127.0.0.1:$P2 $D/tls/token)"
done
