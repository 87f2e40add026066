#!/usr/bin/env bash
# Issue 18's check of a capacity search "by hand": run `factorybench capacity` against a real
# server, then two ordinary `factorybench run`s — one at the knee it found (must hold the SLOs)
# and one at the first failing rate (must not) — and judge both from `report --format json`
# with the same SLOs. Prints each search's knee, first failing rate, steps and wall time, then
# the two checks. Needs the servers of scripts/test-env.sh.
#   bench/capacity-check.sh [pg|llm|both]   (default both)
# The LLM search takes several minutes (the real CPU LLM serves one request at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH="${1:-both}"
STATE="${FB_TEST_STATE:-/tmp/factorybench-test}"
FB="${FB_BIN:-${FB_BENCH_BIN_DIR:+$FB_BENCH_BIN_DIR/factorybench}}"
if [ -z "$FB" ]; then cargo build --release -q --bin factorybench; FB="$PWD/target/release/factorybench"; fi
WORK="$(mktemp -d /var/tmp/fb-capacity.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# service_yaml NAME RATE_PER_CLIENT EXTRA_LOAD : the service block (without capacity_search).
pg_service() {
  # shellcheck disable=SC1091
  . "$STATE/postgres.env"
  printf '%s\n' "$FB_TEST_PG_PASSWORD" > "$WORK/pgpw"; chmod 600 "$WORK/pgpw"
  cat <<Y
  - service_name: pg
    service_type: database
    runtime: external
    host: "$FB_TEST_PG_HOST"
    port: $FB_TEST_PG_PORT
    database: "$FB_TEST_PG_DB"
    user: "$FB_TEST_PG_USER"
    password_file: "$WORK/pgpw"
    table_name: fb_capacity
    seed_rows: 10000
    operation_mix: {select: 0.7, insert: 0.1, update: 0.15, delete: 0.05}
    client_count: 1
    connections_per_client: 16
    arrival: poisson
    requests_per_second: $1
    warmup: 2
    duration: 8
    timeout: 10
Y
}
PG_SLO="{latency_p99_ms: 20, max_error_rate: 0.01, min_rate_ratio: 0.95}"
PG_SEARCH="{min_rate: 200, max_rate: 20000, ramp_factor: 2, bisect_steps: 3, repeats: 2, step_duration: 8, slo: $PG_SLO}"

llm_service() {
  # shellcheck disable=SC1091
  . "$STATE/llm.env"
  cat <<Y
  - service_name: llm
    service_type: vllm
    runtime: external
    service_url: $FB_TEST_LLM_OPENAI_URL
    model: $FB_TEST_LLM_OPENAI_MODEL
    api: completions
    prompt: {input_tokens: 32}
    output_tokens: 16
    ignore_eos: true
    temperature: 0
    client_count: 1
    connections_per_client: 64
    arrival: poisson
    requests_per_second: $1
    warmup: 0
    duration: 60
    timeout: 120
Y
}
LLM_SLO="{ttft_p99_ms: 3000, max_error_rate: 0.01, min_rate_ratio: 0.8}"
LLM_SEARCH="{min_rate: 0.05, max_rate: 5, ramp_factor: 2, bisect_steps: 2, repeats: 1, step_duration: 60, slo: $LLM_SLO}"

# check NAME RATE SLO_JSON : one ordinary run at RATE, judged with the SLOs.
check() {
  local name=$1 rate=$2 slo=$3 svc
  svc="$("${name}_service" "$rate")"
  printf 'benchmark: {name: check-%s}\nservices:\n%s\n' "$name" "$svc" > "$WORK/check-$name.yml"
  rm -f "$WORK/check-$name-$rate.db"
  "$FB" run "$WORK/check-$name.yml" --db "$WORK/check-$name-$rate.db" --no-progress > /dev/null 2>&1 || true
  "$FB" report "$WORK/check-$name-$rate.db" --format json > "$WORK/check.json" || true
  python3 - "$WORK/check.json" "$rate" "$slo" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))["analysis"]["runs"][0]
rate = float(sys.argv[2])
slo = dict((k, float(v)) for k, v in re.findall(r"(\w+):\s*([0-9.]+)", sys.argv[3]))
t = r["total"]
p99 = (t.get("latency_corrected_ms") or {}).get("p99")
llm = r.get("llm") or {}
ttft = ((llm.get("ttft_from_scheduled_ms") or llm.get("ttft_ms")) or {}).get("p99")
ach = r["rate"]["achieved_rate_rps"]
err = t["error_rate"] or 0.0
fails = []
if "latency_p99_ms" in slo and (p99 is None or p99 > slo["latency_p99_ms"]):
    fails.append(f"p99 {p99} ms > {slo['latency_p99_ms']}")
if "ttft_p99_ms" in slo and (ttft is None or ttft > slo["ttft_p99_ms"]):
    fails.append(f"TTFT p99 {ttft} ms > {slo['ttft_p99_ms']}")
if err > slo.get("max_error_rate", 1):
    fails.append(f"error rate {err:.3f}")
if ach < slo.get("min_rate_ratio", 0) * rate:
    fails.append(f"achieved {ach:.3f}/s < {slo.get('min_rate_ratio')} x {rate}")
fmt = lambda v: "-" if v is None else f"{v:.1f}"
print(f"    run at {rate:g}/s: achieved {ach:.3f}/s, p99 {fmt(p99)} ms, TTFT p99 {fmt(ttft)} ms, "
      f"errors {t['errors']}/{t['requests']} -> {'HOLDS the SLOs' if not fails else 'FAILS: ' + '; '.join(fails)}")
PY
}

search() {
  local name=$1 rate0=$2 search=$3 slo=$4 svc t0
  svc="$("${name}_service" "$rate0")"
  printf 'benchmark: {name: capacity-%s}\nservices:\n%s\n    capacity_search: %s\n' "$name" "$svc" "$search" > "$WORK/$name.yml"
  t0=$(date +%s)
  "$FB" capacity "$WORK/$name.yml" --db "$WORK/$name.db" --json > "$WORK/$name.json" 2> "$WORK/$name.err" || true
  echo "== $name: capacity search ($(( $(date +%s) - t0 )) s wall), SLOs $slo"
  python3 - "$WORK/$name.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for x in s["steps"]:
    f = lambda v: "-" if v is None else f"{v:.1f}"
    print(f"  step {x['step']:2} {x['phase']:8} target {x['target_rate_per_s']:9.3f}/s achieved {f(x['achieved_rate_per_s'])}/s "
          f"p99 {f(x['latency_p99_ms'])} ms TTFT p99 {f(x['ttft_p99_ms'])} ms -> {'holds' if x['passed'] else 'fails: ' + (x['reason'] or '')}")
print(f"  outcome {s['outcome']}: knee {s['sustainable_rate_per_s']}/s, first failing {s['first_failing_rate_per_s']}/s, search {s['elapsed_s']:.0f} s")
open(sys.argv[1] + ".knee", "w").write(f"{s['sustainable_rate_per_s']} {s['first_failing_rate_per_s']}\n")
PY
  read -r KNEE FAIL < "$WORK/$name.json.knee" || true
  echo "  checked by hand (independent runs, same SLOs):"
  if [ "$KNEE" != None ]; then check "$name" "$KNEE" "$slo"; fi
  if [ "$FAIL" != None ]; then check "$name" "$FAIL" "$slo"; fi
}

case "$WHICH" in
  pg) search pg 200 "$PG_SEARCH" "$PG_SLO" ;;
  llm) search llm 0.05 "$LLM_SEARCH" "$LLM_SLO" ;;
  both) search pg 200 "$PG_SEARCH" "$PG_SLO"; search llm 0.05 "$LLM_SEARCH" "$LLM_SLO" ;;
esac
