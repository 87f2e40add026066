#!/usr/bin/env bash
# Where factorybench's CPU goes: `perf record` of one run against nginx, then the top symbols
# (self time) and the share of the main parts: the HTTP client, tokio, the kernel (syscalls,
# TCP), the recorder (SQLite writer), allocation. MODE: closed (default: 16 connections, as
# http-vs-wrk.sh) or open (RATE req/s, CLIENTS x CONNS, as open-loop-accuracy.sh). DUR (10).
source "$(dirname "$0")/lib-runner.sh"
need perf linux-perf
MODE="${MODE:-closed}"; DUR="${DUR:-10}"; RATE="${RATE:-20000}"; CLIENTS="${CLIENTS:-4}"; CONNS="${CONNS:-16}"
start_target
if [ "$MODE" = closed ]; then
  LOAD="    arrival: closed
    client_count: 16
    requests_per_second: 0"
else
  LOAD="    arrival: constant
    client_count: $CLIENTS
    connections_per_client: $CONNS
    requests_per_second: $(python3 -c "print($RATE / $CLIENTS)")"
fi
R="$(recipe prof "  - service_name: prof
    service_type: http
    url: http://127.0.0.1:$PORT/
$LOAD
    duration: $DUR
")"
perf record -q -F 1999 -g -o "$WORK/perf.data" -- "$FB" run "$R" --json --no-progress > "$WORK/fb.json" 2>/dev/null || true
printf 'profile of factorybench, %s loop against %s, %s s: %s req/s achieved\n' "$MODE" "${TARGET:-nginx}" "$DUR" \
  "$(json "$WORK/fb.json" "round(j['runs'][0]['achieved_rps'])")"
perf report -i "$WORK/perf.data" --no-children --sort sym --stdio -q 2>/dev/null \
  | grep -E '^ +[0-9.]+%' | head -n 30 || true
echo "--- by part (self time) ---"
perf report -i "$WORK/perf.data" --no-children --sort sym --stdio -q -g none 2>/dev/null \
  | python3 -c '
import re, sys
parts = {"kernel (syscalls, TCP, scheduler)": r"\[k\]", "SQLite (recorder)": r"sqlite3|btree|pager|Vdbe|vdbe",
         "tokio runtime": r"tokio::", "HTTP client (lean http/1.1, httparse)": r"http_lean|httparse",
         "allocation": r"malloc|free|realloc|alloc::", "hdrhistogram": r"hdrhistogram", "engine/recorder (factorybench)": r"factorybench::"}
tot = {k: 0.0 for k in parts}; other = 0.0
for line in sys.stdin:
    m = re.match(r"\s+([0-9.]+)%\s+(.*)", line)
    if not m: continue
    pct, sym = float(m.group(1)), m.group(2)
    for k, rx in parts.items():
        if re.search(rx, sym): tot[k] += pct; break
    else: other += pct
for k, v in sorted(tot.items(), key=lambda x: -x[1]): print(f"  {v:5.1f} %  {k}")
print(f"  {other:5.1f} %  other")'
