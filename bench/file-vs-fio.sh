#!/usr/bin/env bash
# File storage: 4 KiB random reads, O_DIRECT, 16 in flight, factorybench vs fio on the same
# directory, in alternating rounds (odd rounds: fio libaio, fio io_uring, then factorybench;
# even rounds: factorybench, then fio io_uring, fio libaio).
# Prints IOPS per run, and every ratio with fio's own IOPS beside it (which side was the
# bottleneck), then the median ratios (goals: ≥ 1.0 against libaio, ≥ 0.9 against io_uring).
# DIR (default /var/tmp), DUR seconds per run (default 10), ROUNDS (default 1; 5 on a quiet
# machine — a virtual disk's IOPS can vary 2× between consecutive runs, so the per-round ratio is
# the figure, not the IOPS), ENGINES (default "io_uring threads"), PERF=1: every run under
# `perf stat -e instructions:u,instructions:k,raw_syscalls:sys_enter,task-clock`, and a line of
# instructions (user, kernel), syscalls and CPU time per I/O per tool (whole process: setup and
# the recording of every request included for factorybench).
# fio: one job, iodepth 16, libaio; and io_uring with --fixedbufs --registerfiles
# --sqthread_poll (without --sqthread_poll where the kernel refuses it unprivileged; SQPOLL's
# kernel thread may fall outside what perf counts). factorybench: closed loop, 16 clients
# (16 reads in flight), io_size 4KB over a 256 MiB working set (4 × 64 MiB files).
# DB_DIR (default /dev/shm where it exists): where factorybench's campaign file goes. fio
# writes nothing during its run; factorybench records every I/O, and a campaign file on the
# device under test would queue its writes and checkpoints behind the reads being measured
# (about 4 % of the IOPS here). On a cluster, put the campaign file on another filesystem than
# the one benchmarked, as this does.
source "$(dirname "$0")/lib-runner.sh"
need fio fio
if [ "${PERF:-0}" = 1 ]; then need perf linux-perf; fi
DIR="${DIR:-/var/tmp}"; DUR="${DUR:-10}"; DB_DIR="${DB_DIR:-$([ -d /dev/shm ] && echo /dev/shm || echo "$WORK")}"; ROUNDS="${ROUNDS:-1}"; ENGINES="${ENGINES:-io_uring threads}"
D="$(mktemp -d "$DIR/fb-fio.XXXXXX")"
trap 'rm -rf "$D"; cleanup' EXIT
printf '4 KiB random read, O_DIRECT, QD16, %s s per run on %s (factorybench campaign file in %s), %s round(s)\n' "$DUR" "$DIR" "$DB_DIR" "$ROUNDS"

# perf_run OUT CMD... : CMD, under perf stat into OUT when PERF=1.
perf_run() {
  local out="$1"; shift
  if [ "${PERF:-0}" = 1 ]; then
    perf stat -x, -e instructions:u,instructions:k,raw_syscalls:sys_enter,task-clock -o "$out" -- "$@"
  else
    "$@"
  fi
}
# per_io OUT IOS : user + kernel instructions, syscalls and CPU time per I/O from perf's CSV in OUT.
per_io() {
  python3 - "$1" "$2" <<'EOF_PY'
import sys
c = {}
for line in open(sys.argv[1]):
    f = line.strip().split(',')
    if len(f) > 2 and f[0].replace('.', '').isdigit():
        c[f[2].split(':')[-1]] = float(f[0])
ios = float(sys.argv[2])
if 'u' in c and 'k' in c:
    u, k = c['u'] / ios, c['k'] / ios
    line = '%.0f instructions per I/O (user %.0f, kernel %.0f)' % (u + k, u, k)
else:
    line = 'instructions not counted here (no hardware counters)'
if 'sys_enter' in c:
    line += ', %.2f syscalls per I/O' % (c['sys_enter'] / ios)
if 'task-clock' in c:
    line += ', CPU %.1f us per I/O' % (c['task-clock'] * 1000 / ios)
print(line + ' over %d I/Os' % ios)
EOF_PY
}

FIO_COMMON=(--name=rr --directory="$D" --rw=randread --bs=4k --direct=1 --iodepth=16 --numjobs=1
  --size=256M --group_reporting --output-format=json)
# io_uring as fio runs it best: registered buffers and files, and SQPOLL where allowed.
URING_OPTS=(--ioengine=io_uring --fixedbufs --registerfiles --sqthread_poll=1)
if ! fio "${FIO_COMMON[@]}" "${URING_OPTS[@]}" --runtime=1 --time_based > "$WORK/probe.json" 2>&1; then
  URING_OPTS=(--ioengine=io_uring --fixedbufs --registerfiles)
  echo "fio io_uring: SQPOLL refused here, without --sqthread_poll"
fi
rm -f "$D"/rr*
declare -A FIO_NAME=([libaio]="fio (libaio)" [io_uring]="fio (io_uring)")
declare -A RATIOS IPIO

# fio_run ENGINE : one fio run; sets FIO_IOPS[ENGINE].
declare -A FIO_IOPS
fio_run() {
  local opts
  if [ "$1" = libaio ]; then opts=(--ioengine=libaio); else opts=("${URING_OPTS[@]}"); fi
  local m; m="$(cpu_mark)"
  perf_run "$WORK/perf-fio-$1.txt" fio "${FIO_COMMON[@]}" "${opts[@]}" --runtime="$DUR" --time_based \
    > "$WORK/fio-$1.json"
  FIO_IOPS[$1]="$(json "$WORK/fio-$1.json" "j['jobs'][0]['read']['iops']")"
  local cpu ios steal
  steal="$(steal_since "$m")"
  cpu="$(json "$WORK/fio-$1.json" "round(j['jobs'][0]['usr_cpu'] + j['jobs'][0]['sys_cpu'])")"
  rm -f "$D"/rr*
  printf '  round %s %-32s %10.0f IOPS, CPU %s %% of a core, steal %s %%\n' "$round" "${FIO_NAME[$1]}:" "${FIO_IOPS[$1]}" "$cpu" "$steal"
  if [ "${PERF:-0}" = 1 ]; then
    ios="$(json "$WORK/fio-$1.json" "j['jobs'][0]['read']['total_ios']")"
    IPIO["fio-$1"]="$(per_io "$WORK/perf-fio-$1.txt" "$ios")"
    printf '           %s\n' "${IPIO["fio-$1"]}"
  fi
}

# fb_run ENGINE : one factorybench run; sets FB_IOPS[ENGINE].
declare -A FB_IOPS
fb_run() {
    local ENGINE="$1" R DB CPU m STEAL
    R="$(recipe "file-$ENGINE" "  - service_name: files
    service_type: file_storage
    base_path: $D
    arrival: closed
    client_count: 16
    requests_per_second: 0
    duration: $DUR
    operation_mix: {read: 1.0}
    file_sizes: {\"64MB\": 1.0}
    working_set_files: 4
    io_size: 4KB
    use_direct_io: true
    io_engine: $ENGINE
")"
    DB="$DB_DIR/fb-file-$ENGINE-$$.db"
    sed -i "s|metrics_db: .*|metrics_db: $DB|" "$R"
    rm -f "$DB"
    m="$(cpu_mark)"
    perf_run "$WORK/perf-fb-$ENGINE.txt" "$FB" run "$R" --json --no-progress > "$WORK/fb-$ENGINE.json" 2> "$WORK/fb.err" || true
    STEAL="$(steal_since "$m")"
    FB_IOPS[$ENGINE]="$(json "$WORK/fb-$ENGINE.json" "j['runs'][0]['ops_per_s']")"
    # CPU of the whole process (runner, recorder, setup) over the measured duration.
    CPU="$(sqlite3 "$DB" "select cast(round(100.0 * (cpu_user_s + cpu_system_s) / duration_s) as int) from runs")"
    rm -f "$DB" "$DB-wal" "$DB-shm"
    printf '  round %s %-32s %10.0f IOPS, CPU %s %% of a core, steal %s %%\n' "$round" "factorybench (io_engine $ENGINE):" "${FB_IOPS[$ENGINE]}" "$CPU" "$STEAL"
    if [ "${PERF:-0}" = 1 ]; then
      # Every I/O the process made, warmup included (setup's own work is in the count too).
      local IOS
      IOS="$(json "$WORK/fb-$ENGINE.json" "j['runs'][0]['requests'] + j['runs'][0]['warmup_requests']")"
      IPIO["fb-$ENGINE"]="$(per_io "$WORK/perf-fb-$ENGINE.txt" "$IOS")"
      printf '           %s\n' "${IPIO["fb-$ENGINE"]}"
    fi
}

# Odd rounds run fio first, even rounds factorybench first: a disk that drifts during a series
# favours neither side.
for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then
    fio_run libaio; fio_run io_uring
    for ENGINE in $ENGINES; do fb_run "$ENGINE"; done
  else
    for ENGINE in $ENGINES; do fb_run "$ENGINE"; done
    fio_run io_uring; fio_run libaio
  fi
  for ENGINE in $ENGINES; do
    for FIO in libaio io_uring; do
      RATIO="$(python3 -c "print('%.3f' % (${FB_IOPS[$ENGINE]} / ${FIO_IOPS[$FIO]}))")"
      RATIOS[$ENGINE-$FIO]="${RATIOS[$ENGINE-$FIO]:-} $RATIO"
      printf '           round %s ratio factorybench (%s)/%s: %s (fio %.0f IOPS)\n' "$round" "$ENGINE" "${FIO_NAME[$FIO]}" "$RATIO" "${FIO_IOPS[$FIO]}"
    done
  done
done
for ENGINE in $ENGINES; do
  for FIO in libaio io_uring; do
    # shellcheck disable=SC2086  # a list of ratios
    printf 'median ratio factorybench (%s)/%s over %s round(s): %.3f\n' "$ENGINE" "${FIO_NAME[$FIO]}" "$ROUNDS" "$(median ${RATIOS[$ENGINE-$FIO]})"
  done
done
if [ "${PERF:-0}" = 1 ]; then
  echo "instructions per I/O (last round):"
  for k in fio-libaio fio-io_uring $(for e in $ENGINES; do echo "fb-$e"; done); do
    printf '  %-16s %s\n' "$k" "${IPIO[$k]}"
  done
fi
