#!/usr/bin/env bash
# Issue 29: does the capacity search blame the right side against nginx? A search with the
# issue's settings (8 clients, open loop, SLO p99 ≤ 5 ms) against Debian nginx-light (one
# worker, `return 200`): every step printed with its verdict. A knee must never sit at a rate
# where the generator or its connections were the limit: such steps read "not judged", the
# connections are raised, and a search the generator limits ends "generator_limited".
# ROUNDS (default 1) searches; MAX_RATE (default 80000) the top of the ramp.
source "$(dirname "$0")/lib-runner.sh"
ROUNDS="${ROUNDS:-1}"; MAX_RATE="${MAX_RATE:-80000}"
start_nginx
R="$(recipe cap "  - service_name: nginx
    service_type: http
    url: http://127.0.0.1:$PORT/
    client_count: 8
    connections_per_client: 4
    requests_per_second: 100
    arrival: constant
    duration: 5
    capacity_search:
      min_rate: 5000
      max_rate: $MAX_RATE
      ramp_factor: 2
      bisect_steps: 3
      repeats: 2
      step_duration: 5
      slo: {latency_p99_ms: 5, max_error_rate: 0.01, min_rate_ratio: 0.95}
")"
for round in $(seq "$ROUNDS"); do
  rm -f "$WORK/cap.db"
  set +e
  "$FB" capacity "$R" > "$WORK/cap.txt" 2> "$WORK/cap.err"
  rc=$?
  set -e
  echo "round $round: exit $rc"
  grep -E '^\[nginx\] step' "$WORK/cap.err" | sed 's/^/  /'
  grep -E '^(sustainable|limited|no sustainable|knee|search took)' "$WORK/cap.txt" | sed 's/^/  /'
done
