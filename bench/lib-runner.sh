# shellcheck shell=bash
# Shared helpers of the runner benchmarks (sourced). Release build in $CARGO_TARGET_DIR.
# FB_BENCH_PROFILE=debug uses a debug build instead (a smoke run of the scripts: its figures
# mean nothing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib-machine.sh
source "$ROOT/bench/lib-machine.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-release}"
FB_BENCH_PROFILE="${FB_BENCH_PROFILE:-release}"
# FB_BENCH_BIN_DIR: binaries built before (factorybench, fb-testserver): no build here, so a
# benchmark of one commit can run while the tree changes.
if [ -n "${FB_BENCH_BIN_DIR:-}" ]; then
  :
elif [ "$FB_BENCH_PROFILE" = release ]; then
  (cd "$ROOT" && cargo build --release --bins --examples -q)
else
  (cd "$ROOT" && cargo build --bins --examples -q)
fi
BIN_DIR="${FB_BENCH_BIN_DIR:-$CARGO_TARGET_DIR/$FB_BENCH_PROFILE}"
FB="$BIN_DIR/factorybench"
SRV="$BIN_DIR/fb-testserver"
WORK="$(mktemp -d /var/tmp/fb-bench.XXXXXX)"
SRV_PID=""
NGINX_PID=""
cleanup() {
  if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; fi
  if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# apt install a peer tool if missing (benchmarks only; never in tests).
need() {
  command -v "$1" >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}

# start_server ARGS... : starts fb-testserver on 127.0.0.1, sets PORT and SRV_PID.
start_server() {
  if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  "$SRV" "$@" > "$WORK/srv.out" &
  SRV_PID=$!
  for _ in $(seq 100); do
    if grep -q '^port=' "$WORK/srv.out" 2>/dev/null; then break; fi
    sleep 0.05
  done
  PORT="$(sed -n 's/^port=//p' "$WORK/srv.out")"
}

# free_port : a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx : Debian nginx-light as a held-out HTTP target on 127.0.0.1 (one worker,
# access_log off, keep-alive for as many requests as a run sends, `return 200 "ok\n"`); sets
# PORT and NGINX_PID. NGINX_KEEPALIVE_TIMEOUT (default 75s, nginx's own) sets how long an idle
# kept-alive connection stays open.
start_nginx() {
  need nginx nginx-light
  PORT="$(free_port)"
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx/nginx.conf" <<EOF_NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout ${NGINX_KEEPALIVE_TIMEOUT:-75s};
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$PORT;
    location / { return 200 "ok\n"; }
  }
}
EOF_NGINX
  nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
  NGINX_PID=$!
  for _ in $(seq 100); do
    if curl -fs -o /dev/null "http://127.0.0.1:$PORT/"; then return 0; fi
    sleep 0.05
  done
  echo "nginx did not start: $(cat "$WORK/nginx/error.log")" >&2
  return 1
}

# start_target : the HTTP target named by TARGET: nginx (default) or testserver (fb-testserver).
start_target() {
  case "${TARGET:-nginx}" in
    nginx) start_nginx ;;
    testserver) start_server ;;
    *) echo "TARGET must be nginx or testserver" >&2; exit 2 ;;
  esac
}

# target_pid : the process that serves the HTTP target (nginx's one worker, or fb-testserver).
target_pid() {
  if [ -n "$NGINX_PID" ]; then pgrep -P "$NGINX_PID" | head -n 1; else echo "$SRV_PID"; fi
}

# cpu_ticks PID : the user + system clock ticks PID (all its threads) has used so far (fields
# 14 and 15 of /proc/PID/stat, counted after the command name, which may hold spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# server_us_per_req TICKS0 TICKS1 REQUESTS : the target's CPU per request it served, in µs (the
# server's own figure: at the same work per request, a higher one means a slower machine);
# "nan" when the tool's request count could not be read.
server_us_per_req() {
  python3 -c "import os,sys; t0,t1,n=map(float,sys.argv[1:]); print('%.2f' % ((t1-t0)/os.sysconf('SC_CLK_TCK')*1e6/n) if n else 'nan')" "$1" "$2" "${3:-0}"
}

# OHA: the oha binary (bench/install-oha.sh), empty when it is not installed.
OHA="${OHA:-$(command -v oha || true)}"
if [ -z "$OHA" ] && [ -x /opt/factorybench/bench/bin/oha ]; then OHA=/opt/factorybench/bench/bin/oha; fi

# median X... : the median of numbers.
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# json FILE EXPR : evaluate a Python expression over the JSON in FILE (bound to j).
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# recipe NAME BODY : write a one-service recipe to $WORK/NAME.yml.
recipe() {
  printf 'benchmark:\n  name: bench\nglobal:\n  metrics_db: %s/%s.db\nservices:\n%s' "$WORK" "$1" "$2" > "$WORK/$1.yml"
  echo "$WORK/$1.yml"
}
