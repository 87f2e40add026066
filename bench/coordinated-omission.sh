#!/usr/bin/env bash
# Coordinated omission: the loopback server stalls 3 s once (after 1000 requests). An open
# loop at 200 req/s with at most 2 requests in flight: the requests due during the stall wait
# in the generator. Latency from the scheduled start (corrected) must show the stall;
# latency from the send (uncorrected) hides it, as a closed-loop tool (wrk) does.
source "$(dirname "$0")/lib-runner.sh"
need wrk wrk
start_server --stall-after 1000 --stall-ms 3000
R="$(recipe co "  - service_name: co
    service_type: http
    url: http://127.0.0.1:$PORT/
    arrival: constant
    client_count: 2
    requests_per_second: 100
    max_in_flight: 2
    duration: 20
")"
"$FB" run "$R" --json --no-progress > "$WORK/co.json" || true
C="$(json "$WORK/co.json" "j['runs'][0]['latency_corrected_ms']['p99']")"
U="$(json "$WORK/co.json" "j['runs'][0]['latency_uncorrected_ms']['p99']")"
start_server --stall-after 1000 --stall-ms 3000
wrk -t1 -c2 -d20s --latency "http://127.0.0.1:$PORT/" > "$WORK/wrk.txt"
W="$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")"
echo "server stalls 3 s once; 200 req/s open loop, 2 in flight, 20 s"
printf '  factorybench p99 corrected (from schedule): %10.1f ms\n' "$C"
printf '  factorybench p99 uncorrected (from send):   %10.1f ms\n' "$U"
printf '  wrk p99 (closed loop, 2 connections):       %10s\n' "$W"
