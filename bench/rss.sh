#!/usr/bin/env bash
# Memory: RSS of factorybench during an open-loop run at RATE req/s for DUR seconds
# (defaults 5000 and 600 = 10 minutes), sampled every 10 s. Flat = no per-request growth
# (rows stream to SQLite; histograms are bounded).
source "$(dirname "$0")/lib-runner.sh"
RATE="${RATE:-5000}"; DUR="${DUR:-600}"
start_server
R="$(recipe rss "  - service_name: rss
    service_type: http
    url: http://127.0.0.1:$PORT/
    arrival: poisson
    client_count: 10
    requests_per_second: $((RATE / 10))
    duration: $DUR
")"
"$FB" run "$R" --json --no-progress > "$WORK/rss.json" 2>/dev/null &
P=$!
echo "t_s rss_mib"
t=0
while kill -0 "$P" 2>/dev/null; do
  rss="$(awk '/VmRSS/ {print $2}' "/proc/$P/status" 2>/dev/null || echo 0)"
  [ -n "$rss" ] && python3 -c "print('%d %.1f' % ($t, $rss / 1024))"
  sleep 10; t=$((t + 10))
done
wait "$P" || true
echo "requests recorded: $(sqlite3 "$WORK/rss.db" 'select count(*) from requests')"
