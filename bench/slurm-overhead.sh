#!/usr/bin/env bash
# SLURM overhead of factorybench on the local test cluster (scripts/start-slurm.sh):
#   1. submit → first recorded request: `factorybench submit` of a one-service file-storage
#      campaign until the sent_ns of the first row in its run file; the peer figure is a bare
#      `sbatch --wrap` whose job writes its start time (SLURM's own dispatch latency).
#   2. wrapper overhead: the batch job's wall time (RUNNING → gone, polled every 50 ms) minus
#      the runner's own time (runs.ended_ns − runs.started_ns): compile-free setup, readiness
#      probe, endpoint file, run-file open/commit, service stop.
# Usage: bench/slurm-overhead.sh [REPEATS] (default 3). Needs a built factorybench (FB_BIN or
# target/release, else target/debug) and sqlite3 via python3.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
FB_BIN=${FB_BIN:-$( [ -x /work/target-release/release/factorybench ] && echo /work/target-release/release/factorybench || echo "$PWD/target/release/factorybench")}
[ -x "$FB_BIN" ] || FB_BIN="$PWD/target/debug/factorybench"
export FB_BIN
work=$(mktemp -d /tmp/fb-bench-slurm-XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/recipe.yml" <<YML
benchmark: {name: slurm overhead}
global: {metrics_db: "$work/local.db"}
services:
  - service_name: files
    service_type: file_storage
    runtime: external
    base_path: "$work/data"
    client_count: 1
    requests_per_second: 100
    arrival: constant
    warmup: 0
    duration: 5
    operation_mix: {write: 0.5, read: 0.5}
    file_sizes: {"4KB": 1.0}
    working_set_files: 4
    slurm: {time: "00:05:00"}
YML
now_ns() { date +%s%N; }
job_state() { squeue -h -j "$1" -o %T 2>/dev/null | head -n1; }
py_q() { python3 - "$@" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
r = c.execute("select started_ns, ended_ns, (select min(sent_ns) from requests) from runs").fetchone()
print(*r)
PY
}
fb_first=(); fb_over=(); peer=()
for i in $(seq 1 "$REPEATS"); do
  cd "$work"
  sleep 2  # start each measurement from an idle node
  t0=$(now_ns)
  out=$("$FB_BIN" submit recipe.yml --no-report)
  t_sub=$(now_ns)
  camp=$(sed -n 's/^campaign: //p' <<<"$out")
  job=$(awk '$1 == "files" {print $2}' <<<"$out")
  run_start=""; gone=""
  while :; do
    s=$(job_state "$job")
    t=$(now_ns)
    if [ "$s" = RUNNING ] && [ -z "$run_start" ]; then run_start=$t; fi
    case "$s" in PENDING|RUNNING|CONFIGURING|COMPLETING) ;; *) gone=$t; break ;; esac
    sleep 0.05
  done
  read -r started ended first < <(py_q "$camp"/runs/files-*.db)
  first_ms=$(( (first - t0) / 1000000 ))
  wall_ms=$(( (gone - run_start) / 1000000 ))
  runner_ms=$(( (ended - started) / 1000000 ))
  fb_first+=("$first_ms"); fb_over+=("$(( wall_ms - runner_ms ))")
  echo "factorybench run $i: submit→first request ${first_ms} ms (submit command $(( (t_sub - t0) / 1000000 )) ms, queue until RUNNING seen $(( (run_start - t_sub) / 1000000 )) ms, script setup until runner start $(( (started - run_start) / 1000000 )) ms, runner start→first request $(( (first - started) / 1000000 )) ms); job wall ${wall_ms} ms, runner ${runner_ms} ms, wrapper overhead $(( wall_ms - runner_ms )) ms"
  # Peer: bare sbatch, the job records when it started.
  sleep 2
  t0=$(now_ns)
  pj=$(sbatch --parsable --output=/dev/null --wrap "date +%s%N > $work/peer-$i")
  until [ -s "$work/peer-$i" ]; do sleep 0.02; done
  p_ms=$(( ($(cat "$work/peer-$i") - t0) / 1000000 ))
  peer+=("$p_ms")
  echo "peer (sbatch --wrap) run $i: submit→job start ${p_ms} ms (job $pj)"
  cd - >/dev/null
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_fb=$(median "${fb_first[@]}"); m_peer=$(median "${peer[@]}"); m_over=$(median "${fb_over[@]}")
echo "median submit→first request: factorybench ${m_fb} ms, bare sbatch submit→start ${m_peer} ms, ratio $(python3 -c "print(f'{$m_fb/max($m_peer,1):.2f}')")"
echo "median wrapper overhead (job wall − runner time): ${m_over} ms"
