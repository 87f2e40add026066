#!/usr/bin/env bash
# Cost of live pushes to the Pushgateway: the same closed-loop, unthrottled file-storage run
# (stat + 4 KiB reads on a small working set, 4 clients) with pushes off, every 5 s (the
# default) and every 0.5 s (the minimum), alternated REPEATS times. Prints the achieved request
# rate (measured requests / measured window, from the run file) and the runner's CPU time per
# 1000 requests (runs.cpu_user_s + cpu_system_s), median over repeats, and each ratio to "off".
# The peer here is factorybench itself without pushes: the question is what pushing costs.
# Then the CPU time of one push, from a nearly idle run (10 req/s, IDLE_S seconds) with pushes
# off and every 0.5 s: (CPU with − CPU without) / pushes made.
# Needs the test Pushgateway (scripts/start-prometheus.sh). Usage: bench/monitor-push-cost.sh [REPEATS] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
DURATION=${2:-10}
FB_BIN=${FB_BIN:-$( [ -x /work/target-release/release/factorybench ] && echo /work/target-release/release/factorybench || echo "$PWD/target/release/factorybench")}
[ -x "$FB_BIN" ] || { echo "build first: cargo build --release (or set FB_BIN)" >&2; exit 1; }
PGW=${FB_TEST_PUSHGATEWAY_URL:-http://127.0.0.1:19091}
curl -fsS "$PGW/-/ready" >/dev/null || { echo "no Pushgateway at $PGW (run scripts/start-prometheus.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/fb-bench-push-XXXXXX)
trap 'rm -rf "$work"' EXIT
# An empty monitoring state dir: no endpoint-file discovery in the "off" runs.
export FACTORYBENCH_MONITOR_DIR="$work/monitor"

recipe() { # MODE INTERVAL
  local push=""
  [ "$1" = off ] || push="pushgateway_url: \"$PGW\"
  push_interval: $2"
  cat > "$work/$1.yml" <<YML
benchmark: {name: "push-cost-$1"}
global:
  metrics_db: "$work/$1.db"
  $push
services:
  - service_name: files
    service_type: file_storage
    base_path: "$work/data-$1"
    client_count: 4
    arrival: closed
    requests_per_second: 0
    warmup: 1
    duration: $DURATION
    operation_mix: {stat: 0.5, read: 0.5}
    file_sizes: {"4KB": 1.0}
    working_set_files: 16
YML
}
recipe off 0
recipe push5s 5
recipe push500ms 0.5

measure() { # MODE → "rps cpu_ms_per_1k"
  rm -f "$work/$1.db"*
  "$FB_BIN" run "$work/$1.yml" --no-progress >/dev/null 2>"$work/$1.err" || true
  python3 - "$work/$1.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
run_id, m0, m1, cu, cs = c.execute(
    "SELECT run_id, measure_start_ns, ended_ns, cpu_user_s, cpu_system_s FROM runs").fetchone()
n = c.execute("SELECT count(*) FROM requests WHERE run_id=? AND warmup=0", (run_id,)).fetchone()[0]
total = c.execute("SELECT count(*) FROM requests WHERE run_id=?", (run_id,)).fetchone()[0]
print(f"{n / ((m1 - m0) / 1e9):.0f} {(cu + cs) * 1000 / total * 1000:.1f}")
PY
}

declare -A rps cpu
for i in $(seq "$REPEATS"); do
  for mode in off push5s push500ms; do
    read -r r c < <(measure "$mode")
    rps[$mode]+="$r "; cpu[$mode]+="$c "
    echo "repeat $i $mode: $r req/s, $c ms CPU per 1000 requests" >&2
  done
done
med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off_r=$(echo "${rps[off]}" | med); off_c=$(echo "${cpu[off]}" | med)
printf '%-10s %12s %8s %22s %8s\n' mode "req/s" ratio "CPU ms/1000 req" ratio
for mode in off push5s push500ms; do
  r=$(echo "${rps[$mode]}" | med); c=$(echo "${cpu[$mode]}" | med)
  printf '%-10s %12s %8s %22s %8s\n' "$mode" "$r" "$(awk -v a="$r" -v b="$off_r" 'BEGIN{printf "%.3f", a/b}')" \
    "$c" "$(awk -v a="$c" -v b="$off_c" 'BEGIN{printf "%.3f", a/b}')"
done
echo "(median of $REPEATS runs of ${DURATION}s each; $(nproc) CPUs; factorybench $("$FB_BIN" --version | awk '{print $2}'))"

# --- CPU per push, from nearly idle runs ------------------------------------------------------
IDLE_S=${IDLE_S:-20}
idle_recipe() { # MODE INTERVAL
  local push=""
  [ "$1" = idle-off ] || push="pushgateway_url: \"$PGW\"
  push_interval: $2"
  cat > "$work/$1.yml" <<YML
benchmark: {name: "push-cost-$1"}
global:
  metrics_db: "$work/$1.db"
  $push
services:
  - service_name: files
    service_type: file_storage
    base_path: "$work/data-$1"
    client_count: 1
    requests_per_second: 10
    warmup: 0
    duration: $IDLE_S
    operation_mix: {stat: 1.0}
    file_sizes: {"4KB": 1.0}
    working_set_files: 4
YML
}
idle_recipe idle-off 0
idle_recipe idle-push 0.5
cpu_s() {
  rm -f "$work/$1.db"*
  "$FB_BIN" run "$work/$1.yml" --no-progress >/dev/null 2>"$work/$1.err" || true
  python3 -c "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute('SELECT cpu_user_s+cpu_system_s FROM runs').fetchone(); print(r[0])" "$work/$1.db"
}
offs=""; ons=""
for i in $(seq "$REPEATS"); do offs+="$(cpu_s idle-off) "; ons+="$(cpu_s idle-push) "; done
off_cpu=$(echo "$offs" | med); on_cpu=$(echo "$ons" | med)
pushes=$(awk -v d="$IDLE_S" 'BEGIN{print int(d/0.5)+2}')
awk -v a="$off_cpu" -v b="$on_cpu" -v n="$pushes" -v d="$IDLE_S" 'BEGIN{
  printf "idle run (%ss, 10 req/s): runner CPU %.3f s without pushes, %.3f s with a push every 0.5 s (~%d pushes)\n", d, a, b, n;
  printf "CPU per push: %.2f ms (at the default 5 s interval: %.3f%% of one core)\n", (b-a)*1000/n, (b-a)/n/5*100 }'
