#!/usr/bin/env bash
# The long open-loop run of issue 16: constant arrivals at RATE req/s (default 10000) for DUR
# seconds (default 3600) against nginx (Debian nginx-light, one worker, `return 200`; TARGET=
# testserver for fb-testserver), CLIENTS clients (default 4) × CONNS connections (default 4).
# Samples factorybench's RSS and CPU every SAMPLE seconds (default 60) from /proc, then prints
# requests, errors, not-sent, achieved rate, lags, the verdict and the RSS/CPU series summary.
# The campaign file (36 M rows for an hour at 10k req/s, about 2 GB) is deleted at the end
# unless KEEP=1.
source "$(dirname "$0")/lib-runner.sh"
RATE="${RATE:-10000}"; DUR="${DUR:-3600}"; CLIENTS="${CLIENTS:-4}"; CONNS="${CONNS:-4}"
SAMPLE="${SAMPLE:-60}"
start_target
R="$(recipe long "  - service_name: long
    service_type: http
    url: http://127.0.0.1:$PORT/
    arrival: constant
    client_count: $CLIENTS
    connections_per_client: $CONNS
    requests_per_second: $(python3 -c "print($RATE / $CLIENTS)")
    duration: $DUR
    warmup: 5
")"
printf 'long open-loop run: %s req/s for %s s against %s, %s clients x %s connections\n' \
  "$RATE" "$DUR" "${TARGET:-nginx}" "$CLIENTS" "$CONNS"
"$FB" run "$R" --json --no-progress > "$WORK/long.json" 2> "$WORK/long.err" &
P=$!
TCK="$(getconf CLK_TCK)"
echo "t_s rss_mib cpu_pct_since_last"
t=0; last_ticks=0
while kill -0 "$P" 2>/dev/null; do
  if [ -r "/proc/$P/stat" ]; then
    rss="$(awk '/VmRSS/ {print $2}' "/proc/$P/status" 2>/dev/null || echo 0)"
    ticks="$(awk '{print $14 + $15}' "/proc/$P/stat" 2>/dev/null || echo 0)"
    if [ -n "$rss" ] && [ -n "$ticks" ]; then
      python3 -c "print('%d %.1f %.1f' % ($t, $rss / 1024, 100.0 * ($ticks - $last_ticks) / $TCK / max($SAMPLE, 1)))"
      last_ticks="$ticks"
    fi
  fi
  sleep "$SAMPLE"; t=$((t + SAMPLE))
done
rc=0; wait "$P" || rc=$?
echo "factorybench exit code: $rc"
python3 - "$WORK/long.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
for k in ("requests", "errors", "not_sent", "achieved_rps", "schedule_lag_p99_ms",
          "generator_lag_p99_ms", "latency_p99_ms", "valid", "verdict", "invalid_reasons"):
    if k in r:
        print(f"{k}: {r[k]}")
PY
tail -n 5 "$WORK/long.err"
if [ "${KEEP:-0}" = 1 ]; then cp "$WORK/long.db" /var/tmp/fb-long-run.db && echo "kept /var/tmp/fb-long-run.db"; fi
