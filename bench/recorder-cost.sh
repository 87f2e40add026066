#!/usr/bin/env bash
# What recording every request costs, in instructions (valgrind callgrind: counts, not wall time,
# so a shared, noisy machine is fine): one short file-storage run (4 KiB random reads, O_DIRECT,
# 16 clients in flight, closed loop) under callgrind, and its user-space instructions per I/O
# split into the recorder (the SQLite writer thread: `store::writer`), the read-back of the rows
# for the analysis (`store::read::scan_requests`, less the analysis's own per-row work
# `RequestScan::record`), the analysis's per-row work, and the rest (the I/O engine, tokio,
# start-up). Every I/O of the process is counted (warmup included); start-up is in "the rest".
# KIND=http: an HTTP closed loop instead (16 connections against fb-testserver, FB_SRV, default
# the debug build's; the server's instructions are not counted: it is another process).
# ENGINE (default io_uring), DUR seconds (default 4; under valgrind a run does ~50x fewer I/Os),
# DIR (default /var/tmp), FB_BIN (default target/release/factorybench), KEEP=1 keeps the
# callgrind file (its path is printed).
# Measured (2026-12-06, DUR=6, io_uring; release builds): before #27's recorder work (a15a251)
# 27.4k instructions per I/O, of which the recorder 13.8k and the read-back 5.3k; after
# (7a796ad) 16.0k, recorder 5.0k, read-back 3.4k (1.3k of which is the analysis's own per-row
# work, inlined into the scan). HTTP (KIND=http, DUR=4): 28.2k -> 16.4k, recorder 14.8k -> 5.2k.
# "The rest" includes start-up, spread over the run's I/Os (fewer I/Os: a larger share).
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE="${ENGINE:-io_uring}"; DUR="${DUR:-4}"; DIR="${DIR:-/var/tmp}"
FB="${FB_BIN:-$PWD/target/release/factorybench}"
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
W="$(mktemp -d "$DIR/fb-reccost.XXXXXX")"
SRV_PID=""
trap '[ -z "$SRV_PID" ] || kill "$SRV_PID"; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
mkdir -p "$W/data"
if [ "${KIND:-file}" = http ]; then
  "${FB_SRV:-$PWD/target/debug/fb-testserver}" > "$W/srv.out" &
  SRV_PID=$!
  for _ in $(seq 100); do grep -q '^port=' "$W/srv.out" 2>/dev/null && break; sleep 0.05; done
  cat > "$W/f.yml" <<Y
benchmark: {name: recorder cost}
global: {metrics_db: "$W/f.db"}
services:
  - service_name: http
    service_type: http
    url: http://127.0.0.1:$(sed -n 's/^port=//p' "$W/srv.out")/
    arrival: closed
    client_count: 16
    requests_per_second: 0
    duration: $DUR
    warmup: 0
Y
else
cat > "$W/f.yml" <<Y
benchmark: {name: recorder cost}
global: {metrics_db: "$W/f.db"}
services:
  - service_name: files
    service_type: file_storage
    base_path: $W/data
    arrival: closed
    client_count: 16
    requests_per_second: 0
    duration: $DUR
    warmup: 0
    operation_mix: {read: 1.0}
    file_sizes: {"64MB": 1.0}
    working_set_files: 4
    io_size: 4KB
    use_direct_io: true
    io_engine: $ENGINE
Y
fi
valgrind --tool=callgrind --callgrind-out-file="$W/fb.cg" --trace-children=no \
  "$FB" run "$W/f.yml" --json --no-progress >"$W/fb.json" 2>"$W/fb.err" || { cat "$W/fb.err"; exit 1; }
IOS="$(sqlite3 "$W/f.db" 'select count(*) from requests')"
callgrind_annotate --inclusive=yes "$W/fb.cg" 2>/dev/null | python3 -c '
import re, sys
ios = float(sys.argv[1])
total, rows = 0.0, []
for line in sys.stdin:
    m = re.match(r"\s*([0-9,]+)\s+(?:\(\s*[0-9.]+%\)\s+)?(\S.*)", line)
    if not m: continue
    n = float(m.group(1).replace(",", ""))
    if "PROGRAM TOTALS" in m.group(2): total = n
    else: rows.append((n, m.group(2)))
def incl(rx):
    return max([n for n, s in rows if re.search(rx, s)] or [0.0])
rec = incl(r"factorybench::store::writer::writer_loop")
scan = incl(r"factorybench::store::read::scan_requests")
per_row = incl(r"RequestScan::record")
print(f"{ios:.0f} requests recorded; user-space instructions per request (callgrind):")
print(f"  total                                   {total / ios:8.0f}")
print(f"  recorder (writer thread, SQLite insert) {rec / ios:8.0f}")
print(f"  read-back (scan_requests, SQLite)       {(scan - per_row) / ios:8.0f}")
print(f"  analysis per row (RequestScan::record)  {per_row / ios:8.0f}")
print(f"  the rest (engine, tokio, start-up)      {(total - rec - scan) / ios:8.0f}")
' "$IOS"
if [ -n "${KEEP:-}" ]; then echo "callgrind file: $W/fb.cg"; fi
