#!/usr/bin/env bash
# HTTP: factorybench closed loop (recording every request in SQLite) vs wrk, same loopback
# server (fb-testserver), same number of connections. Prints the ratio of req/s (goal ≥ 0.9).
# CONNS (default 16), DUR seconds (default 10).
source "$(dirname "$0")/lib-runner.sh"
need wrk wrk
CONNS="${CONNS:-16}"; DUR="${DUR:-10}"
start_server
wrk -t2 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$PORT/" > "$WORK/wrk.txt"
WRK_RPS="$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")"
R="$(recipe http "  - service_name: http
    service_type: http
    url: http://127.0.0.1:$PORT/
    arrival: closed
    client_count: $CONNS
    requests_per_second: 0
    duration: $DUR
")"
"$FB" run "$R" --json --no-progress > "$WORK/fb.json" || true
FB_RPS="$(json "$WORK/fb.json" "j['runs'][0]['achieved_rps']")"
ROWS="$(sqlite3 "$WORK/http.db" 'select count(*) from requests')"
printf 'http closed loop, %s connections, %s s\n' "$CONNS" "$DUR"
printf '  wrk:          %10.0f req/s\n' "$WRK_RPS"
printf '  factorybench: %10.0f req/s (%s rows recorded)\n' "$FB_RPS" "$ROWS"
python3 -c "print('  ratio factorybench/wrk: %.3f' % ($FB_RPS / $WRK_RPS))"
