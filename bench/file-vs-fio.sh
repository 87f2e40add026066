#!/usr/bin/env bash
# File storage: 4 KiB random reads, O_DIRECT, 16 in flight, factorybench vs fio on the same
# directory, in alternating rounds (fio, then factorybench, per round). Prints IOPS and the ratio
# per round and the median ratio (goal ≥ 0.9). DIR (default /var/tmp), DUR seconds per run
# (default 10), ROUNDS (default 1; 3 or more on a quiet machine — a virtual disk's IOPS can vary
# 2× between consecutive runs, so the per-round ratio is the figure, not the IOPS), ENGINES
# (default "io_uring threads").
# fio: one job, libaio, iodepth 16; factorybench: closed loop, 16 clients (16 reads in flight),
# io_size 4KB over a 256 MiB working set (4 × 64 MiB files).
source "$(dirname "$0")/lib-runner.sh"
need fio fio
DIR="${DIR:-/var/tmp}"; DUR="${DUR:-10}"; ROUNDS="${ROUNDS:-1}"; ENGINES="${ENGINES:-io_uring threads}"
D="$(mktemp -d "$DIR/fb-fio.XXXXXX")"
trap 'rm -rf "$D"; cleanup' EXIT
printf '4 KiB random read, O_DIRECT, QD16, %s s per run on %s, %s round(s)\n' "$DUR" "$DIR" "$ROUNDS"
declare -A RATIOS
for round in $(seq "$ROUNDS"); do
  fio --name=rr --directory="$D" --rw=randread --bs=4k --direct=1 --ioengine=libaio \
      --iodepth=16 --numjobs=1 --size=256M --runtime="$DUR" --time_based --group_reporting \
      --output-format=json > "$WORK/fio.json"
  FIO_IOPS="$(json "$WORK/fio.json" "j['jobs'][0]['read']['iops']")"
  FIO_CPU="$(json "$WORK/fio.json" "round(j['jobs'][0]['usr_cpu'] + j['jobs'][0]['sys_cpu'])")"
  rm -f "$D"/rr*
  printf '  round %s fio (libaio):                  %10.0f IOPS, CPU %s %% of a core\n' "$round" "$FIO_IOPS" "$FIO_CPU"
  for ENGINE in $ENGINES; do
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
    rm -f "$WORK/file-$ENGINE.db"
    "$FB" run "$R" --json --no-progress > "$WORK/fb.json" 2> "$WORK/fb.err" || true
    FB_IOPS="$(json "$WORK/fb.json" "j['runs'][0]['ops_per_s']")"
    RATIO="$(python3 -c "print('%.3f' % ($FB_IOPS / $FIO_IOPS))")"
    RATIOS[$ENGINE]="${RATIOS[$ENGINE]:-} $RATIO"
    # CPU of the whole process (runner, recorder, setup) over the measured duration.
    FB_CPU="$(sqlite3 "$WORK/file-$ENGINE.db" "select cast(round(100.0 * (cpu_user_s + cpu_system_s) / duration_s) as int) from runs")"
    printf '  round %s factorybench (io_engine %-8s) %10.0f IOPS, CPU %s %% of a core, ratio factorybench/fio: %s\n' \
      "$round" "$ENGINE" "$FB_IOPS" "$FB_CPU" "$RATIO"
  done
done
for ENGINE in $ENGINES; do
  # shellcheck disable=SC2086  # a list of ratios
  printf 'median ratio factorybench (%s)/fio over %s round(s): %.3f\n' "$ENGINE" "$ROUNDS" "$(median ${RATIOS[$ENGINE]})"
done
