#!/usr/bin/env bash
# Open-loop accuracy: constant arrival at 1k, 10k, 20k req/s against the loopback server;
# achieved rate vs target and schedule lag p99. RATES (default "1000 10000 20000"), DUR (10).
source "$(dirname "$0")/lib-runner.sh"
RATES="${RATES:-1000 10000 20000}"; DUR="${DUR:-10}"
start_server
printf '%8s %12s %8s %16s %20s %10s\n' target achieved ratio "sched lag p99 ms" "generator lag p99 ms" saturated
for rate in $RATES; do
  R="$(recipe ol$rate "  - service_name: ol
    service_type: http
    url: http://127.0.0.1:$PORT/
    arrival: constant
    client_count: 20
    requests_per_second: $((rate / 20))
    duration: $DUR
    warmup: 1
")"
  "$FB" run "$R" --json --no-progress > "$WORK/ol$rate.json" || true
  A="$(json "$WORK/ol$rate.json" "j['runs'][0]['achieved_rps']")"
  L="$(json "$WORK/ol$rate.json" "j['runs'][0]['schedule_lag_p99_ms']")"
  G="$(sqlite3 "$WORK/ol$rate.db" "select value from run_metrics where name='generator_lag_p99_ms'")"
  S="$(json "$WORK/ol$rate.json" "j['runs'][0]['generator_saturated']")"
  python3 -c "print('%8d %12.1f %8.3f %16.3f %20.3f %10s' % ($rate, $A, $A / $rate, $L, $G, '$S'))"
done
