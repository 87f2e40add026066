#!/usr/bin/env bash
# File storage: 4 KiB random reads, O_DIRECT, 16 in flight, factorybench vs fio on the same
# directory. Prints the ratio of IOPS (goal ≥ 0.9). DIR (default /var/tmp), DUR (default 10).
# fio: one job, libaio, iodepth 16; factorybench: closed loop, 16 clients (16 reads in flight),
# io_size 4KB over a 256 MiB working set (4 × 64 MiB files), once with `io_engine: io_uring`
# (the default where allowed) and once with `io_engine: threads` (blocking pool).
source "$(dirname "$0")/lib-runner.sh"
need fio fio
DIR="${DIR:-/var/tmp}"; DUR="${DUR:-10}"
D="$(mktemp -d "$DIR/fb-fio.XXXXXX")"
trap 'rm -rf "$D"; cleanup' EXIT
fio --name=rr --directory="$D" --rw=randread --bs=4k --direct=1 --ioengine=libaio \
    --iodepth=16 --numjobs=1 --size=256M --runtime="$DUR" --time_based --group_reporting \
    --output-format=json > "$WORK/fio.json"
FIO_IOPS="$(json "$WORK/fio.json" "j['jobs'][0]['read']['iops']")"
rm -f "$D"/rr*
printf '4 KiB random read, O_DIRECT, QD16, %s s on %s\n' "$DUR" "$DIR"
printf '  fio (libaio):                  %10.0f IOPS\n' "$FIO_IOPS"
for ENGINE in io_uring threads; do
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
  "$FB" run "$R" --json --no-progress > "$WORK/fb.json" || true
  FB_IOPS="$(json "$WORK/fb.json" "j['runs'][0]['ops_per_s']")"
  printf '  factorybench (io_engine %-8s) %10.0f IOPS, ratio factorybench/fio: %s\n' "$ENGINE" "$FB_IOPS" \
    "$(python3 -c "print('%.3f' % ($FB_IOPS / $FIO_IOPS))")"
done
