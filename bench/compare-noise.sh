#!/usr/bin/env bash
# How often does `compare` cry wolf, and does it still catch a real slowdown? (issue 29)
#
# 1. False alarms: run the README's quickstart (recipes/quickstart.yml) PAIRS+1 times, each into
#    its own campaign file, and compare every consecutive pair with the default settings. Every
#    pair is the same recipe on the same machine: any exit 4 is a false regression.
# 2. Detection: TRIES times, one run against fb-testserver --delay-ms 10 and one against
#    --delay-ms 13 (a 30 % slower server), compared: every try must exit 4.
# Both at the recipe's run length and at half of it. Every comparison's verdict line is printed.
#
# Usage: bench/compare-noise.sh [PAIRS] [TRIES]      (defaults 50 and 10)
# FB_BENCH_BIN_DIR: where factorybench and fb-testserver are (default: target/release, built).
# FB_BENCH_KEEP: a folder to keep every campaign file in (to judge them again later); default none.
# FB_BENCH_DURATIONS: the run lengths to try, seconds (default "10 5").
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-50}
TRIES=${2:-10}
bin=${FB_BENCH_BIN_DIR:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --bins >&2
  bin=target/release
fi
FB=$bin/factorybench
work=$(mktemp -d)
cleanup() {
  set +e
  kill $(cat "$work"/srv-*.pid 2>/dev/null) 2>/dev/null
  if [ -n "${FB_BENCH_KEEP:-}" ]; then
    mkdir -p "$FB_BENCH_KEEP" && cp "$work"/*.db "$FB_BENCH_KEEP"/
  fi
  rm -rf "$work"
}
trap cleanup EXIT

quickstart() { # DURATION OUT.db
  sed -e "s#metrics_db: quickstart.db#metrics_db: $2#" -e "s#duration: 10#duration: $1#" \
    -e "s#reports_dir: reports#reports_dir: $work/reports#" -e "s#logs_dir: logs#logs_dir: $work/logs#" \
    recipes/quickstart.yml > "$work/q.yml"
  "$FB" run "$work/q.yml" --quiet > /dev/null 2>&1 || true
}

false_alarms() { # DURATION
  local d=$1 alarms=0 inconclusive=0 invalid=0 i
  quickstart "$d" "$work/q-$d-0.db"
  for i in $(seq 1 "$PAIRS"); do
    quickstart "$d" "$work/q-$d-$i.db"
    set +e
    out=$("$FB" compare "$work/q-$d-$((i - 1)).db" "$work/q-$d-$i.db" 2>&1)
    rc=$?
    set -e
    verdict=$(printf '%s\n' "$out" | grep -E '^(OK|REGRESSION|INCONCLUSIVE|INVALID)' | head -n1 || true)
    [ "$rc" = 4 ] && alarms=$((alarms + 1))
    [ "$rc" = 5 ] && invalid=$((invalid + 1))
    case "$verdict" in INCONCLUSIVE*) inconclusive=$((inconclusive + 1)) ;; esac
    echo "quickstart ${d}s pair $i: exit $rc: $verdict"
    if [ "$rc" = 4 ]; then printf '%s\n' "$out" | grep -E 'REGRESSION|NO ' | sed 's/^/    /' || true; fi
  done
  echo "SUMMARY quickstart duration ${d}s: false regressions $alarms of $PAIRS pairs, inconclusive $inconclusive, candidate invalid (exit 5) $invalid"
}

http_run() { # PORT DURATION OUT.db
  cat > "$work/h.yml" <<EOF
benchmark: {name: slowdown}
global: {metrics_db: $3, reports_dir: $work/reports, logs_dir: $work/logs}
services:
  - service_name: web
    service_type: http
    url: http://127.0.0.1:$1/
    client_count: 2
    requests_per_second: 50
    arrival: poisson
    warmup: 1
    duration: $2
EOF
  "$FB" run "$work/h.yml" --quiet > /dev/null 2>&1 || true
}

server() { # DELAY_MS → port on stdout
  "$bin/fb-testserver" --delay-ms "$1" > "$work/srv-$1.out" &
  echo $! > "$work/srv-$1.pid"
  for _ in $(seq 1 50); do
    grep -q port= "$work/srv-$1.out" 2>/dev/null && break
    sleep 0.1
  done
  sed -n 's/^port=//p' "$work/srv-$1.out"
}

detection() { # DURATION
  local d=$1 caught=0 i
  for i in $(seq 1 "$TRIES"); do
    http_run "$fast" "$d" "$work/h-$d-$i-base.db"
    http_run "$slow" "$d" "$work/h-$d-$i-slow.db"
    set +e
    out=$("$FB" compare "$work/h-$d-$i-base.db" "$work/h-$d-$i-slow.db" 2>&1)
    rc=$?
    set -e
    [ "$rc" = 4 ] && caught=$((caught + 1))
    p50=$(printf '%s\n' "$out" | grep -E '^web +latency_p50_ms' | tr -s ' ' || true)
    echo "30% slower ${d}s try $i: exit $rc: $p50"
  done
  echo "SUMMARY 30% slowdown duration ${d}s: caught $caught of $TRIES"
}

fast=$(server 10)
slow=$(server 13)
for d in ${FB_BENCH_DURATIONS:-10 5}; do
  false_alarms "$d"
  detection "$d"
done
