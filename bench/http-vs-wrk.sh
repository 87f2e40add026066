#!/usr/bin/env bash
# HTTP: factorybench closed loop (recording every request in SQLite) vs wrk, and vs oha when it
# is installed (bench/install-oha.sh; skipped otherwise), same server, same number of
# connections and threads (wrk -t T, factorybench `client_threads: T`, for each T of THREADS,
# default "1 2"; oha keeps its own runtime), in alternating rounds. Prints req/s and the ratios
# (goal: factorybench/wrk ≥ 1.0), with the medians over rounds per thread count.
# TARGET: nginx (default: Debian nginx-light, one worker, `return 200`) or testserver
# (fb-testserver). CONNS (default 16), DUR seconds (default 10), ROUNDS (default 1; 3 on a quiet
# machine).
source "$(dirname "$0")/lib-runner.sh"
need wrk wrk
CONNS="${CONNS:-16}"; DUR="${DUR:-10}"; ROUNDS="${ROUNDS:-1}"; THREADS="${THREADS:-1 2}"
start_target
URL="http://127.0.0.1:$PORT/"
if [ -z "$OHA" ]; then echo "oha not installed (bench/install-oha.sh): skipped" >&2; fi
# recipe_for T: the closed loop with T client threads (wrk's -t T).
recipe_for() { recipe "http$1" "  - service_name: http
    service_type: http
    url: $URL
    arrival: closed
    client_count: $CONNS
    client_threads: $1
    requests_per_second: 0
    duration: $DUR
"; }
printf 'http closed loop against %s, %s connections, %s s, %s round(s); wrk -t T and factorybench client_threads T for T in %s\n' "${TARGET:-nginx}" "$CONNS" "$DUR" "$ROUNDS" "$THREADS"
SERVER="$(target_pid)"
echo "server µs/req: the target's CPU per request it served during each tool's run (its own figure;"
echo "at ~100 % of a core it is the limit). steal: the share of CPU time the host took (bench/lib-machine.sh)."
printf '%6s %3s %12s %12s %14s %10s %10s %10s   %-24s %s\n' round T wrk oha factorybench fb/wrk fb/oha oha/wrk 'server µs/req (wrk oha fb)' 'steal % (wrk oha fb)'
declare -A FW FO OW
run_peers() {
    local m t; m="$(cpu_mark)"; t="$(cpu_ticks "$SERVER")"
    wrk -t"$1" -c"$CONNS" -d"${DUR}s" "$URL" > "$WORK/wrk.txt"
    WRK_RPS="$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")"
    ST_W="$(steal_since "$m")"
    SU_W="$(server_us_per_req "$t" "$(cpu_ticks "$SERVER")" "$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")")"
    OHA_RPS=""; ST_O="-"; SU_O="-"
    if [ -n "$OHA" ]; then
      m="$(cpu_mark)"; t="$(cpu_ticks "$SERVER")"
      "$OHA" -z "${DUR}s" -c "$CONNS" --no-tui "$URL" > "$WORK/oha.txt"
      OHA_RPS="$(awk '/Requests\/sec:/ {print $2}' "$WORK/oha.txt")"
      ST_O="$(steal_since "$m")"
      SU_O="$(server_us_per_req "$t" "$(cpu_ticks "$SERVER")" "$(sed -n 's/^ *\[200\] \([0-9]*\) responses.*/\1/p' "$WORK/oha.txt")")"
    fi
}
run_fb() {
    R="$(recipe_for "$1")"
    rm -f "$WORK/http$1.db"
    local m t; m="$(cpu_mark)"; t="$(cpu_ticks "$SERVER")"
    "$FB" run "$R" --json --no-progress > "$WORK/fb.json" 2> "$WORK/fb.err" || true
    ST_F="$(steal_since "$m")"
    SU_F="$(server_us_per_req "$t" "$(cpu_ticks "$SERVER")" "$(json "$WORK/fb.json" "j['runs'][0]['requests'] + j['runs'][0]['warmup_requests']")")"
    FB_RPS="$(json "$WORK/fb.json" "j['runs'][0]['achieved_rps']")"
    ERRS="$(json "$WORK/fb.json" "j['runs'][0]['errors']")"
    ROWS="$(sqlite3 "$WORK/http$1.db" 'select count(*) from requests')"
    [ "$ERRS" = 0 ] || echo "  factorybench recorded $ERRS errors in round $round" >&2
    [ "$ROWS" -gt 0 ] || { echo "  factorybench recorded no rows" >&2; cat "$WORK/fb.err" >&2; exit 1; }
}
# Odd rounds run the peers first, even rounds factorybench first: a machine that drifts during
# a series favours neither side.
for round in $(seq "$ROUNDS"); do
  for T in $THREADS; do
    if (( round % 2 )); then run_peers "$T"; run_fb "$T"; else run_fb "$T"; run_peers "$T"; fi
    line="$(python3 -c "
w, o, f = $WRK_RPS, float('${OHA_RPS:-nan}'), $FB_RPS
print('%6d %3d %12.0f %12.0f %14.0f %10.3f %10.3f %10.3f   %-24s %s %s %s' % ($round, $T, w, o, f, f / w, f / o, o / w, '$SU_W $SU_O $SU_F', '$ST_W', '$ST_O', '$ST_F'))")"
    echo "$line"
    FW[$T]="${FW[$T]:-} $(awk '{print $6}' <<<"$line")"; FO[$T]="${FO[$T]:-} $(awk '{print $7}' <<<"$line")"; OW[$T]="${OW[$T]:-} $(awk '{print $8}' <<<"$line")"
  done
done
for T in $THREADS; do
  # shellcheck disable=SC2086
  printf '%6s %3s %12s %12s %14s %10.3f %10.3f %10.3f\n' median "$T" '' '' '' "$(median ${FW[$T]})" "$(median ${FO[$T]})" "$(median ${OW[$T]})"
done
