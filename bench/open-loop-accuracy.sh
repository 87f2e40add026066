#!/usr/bin/env bash
# Open-loop accuracy: constant arrival at 5k, 10k, 20k req/s; achieved rate vs target, schedule
# lag p99, generator lag p99, errors, and whether the run ended at its duration.
# TARGET: nginx (default: Debian nginx-light, one worker, `return 200`) or testserver.
# RATES (default "5000 10000 20000"), CLIENTS (default 16), DUR seconds (default 10), CONNS
# (connections per client, default: the recipe default, 4).
source "$(dirname "$0")/lib-runner.sh"
RATES="${RATES:-5000 10000 20000}"; DUR="${DUR:-10}"; CLIENTS="${CLIENTS:-16}"
start_target
printf 'open loop against %s, %s clients, %s connections each, %s s each\n' "${TARGET:-nginx}" "$CLIENTS" "${CONNS:-4}" "$DUR"
printf '%8s %12s %8s %16s %20s %8s %10s %10s\n' target achieved ratio "sched lag p99 ms" "generator lag p99 ms" errors "wall s" saturated
for rate in $RATES; do
  R="$(recipe ol$rate "  - service_name: ol
    service_type: http
    url: http://127.0.0.1:$PORT/
    arrival: constant
    client_count: $CLIENTS
    requests_per_second: $(python3 -c "print($rate / $CLIENTS)")
    duration: $DUR
    warmup: 1
${CONNS:+    connections_per_client: $CONNS
}")"
  t0=$(date +%s.%N); m="$(cpu_mark)"
  "$FB" run "$R" --json --no-progress > "$WORK/ol$rate.json" 2> "$WORK/ol$rate.err" || true
  WALL="$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")"; ST="$(steal_since "$m")"
  A="$(json "$WORK/ol$rate.json" "j['runs'][0]['achieved_rps']")"
  L="$(json "$WORK/ol$rate.json" "j['runs'][0]['schedule_lag_p99_ms']")"
  E="$(json "$WORK/ol$rate.json" "j['runs'][0]['errors']")"
  G="$(sqlite3 "$WORK/ol$rate.db" "select value from run_metrics where name='generator_lag_p99_ms'")"
  # The runner's own stalls (its 1 ms hiccup probe): longest overrun, and how many over 5 ms.
  HMAX="$(sqlite3 "$WORK/ol$rate.db" "select printf('%.1f', value) from run_metrics where name='runner_hiccup_max_ms'")"
  HN="$(sqlite3 "$WORK/ol$rate.db" "select cast(value as int) from run_metrics where name='runner_stalls'")"
  S="$(json "$WORK/ol$rate.json" "j['runs'][0]['generator_saturated']")"
  P99="$(json "$WORK/ol$rate.json" "(j['runs'][0].get('latency_corrected_ms') or {}).get('p99')")"
  V="$(json "$WORK/ol$rate.json" "'valid' if j['runs'][0]['valid'] else 'INVALID: ' + '; '.join(j['runs'][0]['invalid_reasons'])")"
  python3 -c "print('%8d %12.1f %8.3f %16.3f %20.3f %8d %10s %10s   corrected p99 %s ms, runner stalls >5 ms: %s (longest %s ms), steal %s %%, %s' % ($rate, $A, $A / $rate, $L, ${G:-float('nan')}, $E, '$WALL', '$S', '$P99', '${HN:-?}', '${HMAX:-?}', '$ST', '$V'))"
  grep -i "connection-limited\|fell behind\|saturated" "$WORK/ol$rate.err" | head -3 || true
  # The peer: oha at the same rate and connection count, latency corrected for coordinated
  # omission (its open-loop mode); it reports no schedule lag, so its corrected p99 is the
  # figure to compare.
  if [ -n "$OHA" ]; then
    m="$(cpu_mark)"
    "$OHA" -q "$rate" --latency-correction -c "$((CLIENTS * ${CONNS:-4}))" -z "${DUR}s" --no-tui \
      --output-format json "http://127.0.0.1:$PORT/" > "$WORK/oha$rate.json" 2>/dev/null || true
    python3 - "$WORK/oha$rate.json" "$rate" "$(steal_since "$m")" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    rps = j["summary"]["requestsPerSec"]; p99 = j["latencyPercentiles"]["p99"] * 1000
    ok = j["summary"]["successRate"]
    print("%8s %12.1f %8.3f   oha (same rate and connections): corrected p99 %.3f ms, success %.4f, steal %s %%" % ("", rps, rps / float(sys.argv[2]), p99, ok, sys.argv[3]))
except Exception as e:
    print("   oha: no result (%s)" % e)
PY
  fi
done
