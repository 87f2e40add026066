#!/usr/bin/env bash
# Issue #16's invented timeouts: open loop against nginx that closes idle kept-alive connections
# after NGINX_KEEPALIVE_TIMEOUT (default 1s; uvicorn, which serves vLLM, closes them after 5 s).
# Poisson arrivals make the idle pool grow in bursts and then sit idle past the timeout. Before
# the fix, a request that took such a connection got no first byte until its timeout. Prints the
# run's errors by class (expected: none). RATE (default 2000 req/s), CLIENTS (16), DUR (30 s),
# TIMEOUT (default 5 s: a hung request shows up within the run).
source "$(dirname "$0")/lib-runner.sh"
RATE="${RATE:-2000}"; CLIENTS="${CLIENTS:-16}"; DUR="${DUR:-30}"; TIMEOUT="${TIMEOUT:-5}"
NGINX_KEEPALIVE_TIMEOUT="${NGINX_KEEPALIVE_TIMEOUT:-1s}" start_nginx
R="$(recipe ka "  - service_name: ka
    service_type: http
    url: http://127.0.0.1:$PORT/
    arrival: poisson
    client_count: $CLIENTS
    requests_per_second: $(python3 -c "print($RATE / $CLIENTS)")
    duration: $DUR
    timeout: $TIMEOUT
")"
"$FB" run "$R" --json --no-progress > "$WORK/ka.json" 2> "$WORK/ka.err" || true
printf 'open loop (poisson) %s req/s, %s clients, %s s against nginx keepalive_timeout %s\n' \
  "$RATE" "$CLIENTS" "$DUR" "${NGINX_KEEPALIVE_TIMEOUT:-1s}"
printf '  requests %s, errors %s, achieved %.0f req/s\n' \
  "$(sqlite3 "$WORK/ka.db" 'select count(*) from requests')" \
  "$(json "$WORK/ka.json" "j['runs'][0]['errors']")" \
  "$(json "$WORK/ka.json" "j['runs'][0]['achieved_rps']")"
sqlite3 "$WORK/ka.db" "select '  ' || error_class || ': ' || count(*) from requests where ok = 0 group by error_class"
