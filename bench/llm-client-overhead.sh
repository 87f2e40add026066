#!/usr/bin/env bash
# LLM client overhead: CPU per 1000 streams and TTFT timing error, factorybench's OpenAI
# streaming client against the request loop of vLLM's `bench serve` (aiohttp) as the peer,
# both driving the same fast fixture streamer (bench/llm/fast-streamer.mjs, known delays:
# first token after TTFT_MS, then a chunk every ITL_MS). Prints both and the ratio.
# Usage: bench/llm-client-overhead.sh [N=1000] [CONCURRENCY=16] [TOKENS=32] [TTFT_MS=20] [ITL_MS=1]
# Needs node, python3 with aiohttp (pip install aiohttp), sqlite3, and a release build:
#   CARGO_TARGET_DIR=/work/target-release cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}; C=${2:-16}; T=${3:-32}; TTFT=${4:-20}; ITL=${5:-1}
FB=${FB_BIN:-/work/target-release/release/factorybench}
[ -x "$FB" ] || { echo "build first (release)" >&2; exit 1; }
work=$(mktemp -d /tmp/fb-bench-llm-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
node bench/llm/fast-streamer.mjs "$port" "$TTFT" "$ITL" & srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 0.1; done
cat > "$work/r.yml" <<YML
benchmark: {name: llm-client-overhead}
global: {metrics_db: $work/m.db}
services:
  - service_name: fast
    service_type: vllm
    runtime: external
    service_url: http://127.0.0.1:$port
    model: fast
    prompt: {input_tokens: 8}
    output_tokens: $T
    client_count: $C
    arrival: closed
    requests: $N
    duration: 600
YML
"$FB" run "$work/r.yml" --no-progress >/dev/null 2>"$work/run.err" || true
[ -n "${KEEP:-}" ] && cp "$work/run.err" /tmp/llm-bench-run.err
peer=$(python3 bench/llm/peer_client.py "http://127.0.0.1:$port" "$N" "$C" "$T")
python3 - "$work/m.db" "$peer" "$N" "$TTFT" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); p = json.loads(sys.argv[2]); n = int(sys.argv[3]); t = float(sys.argv[4])
run_id, cpu, wall = db.execute("SELECT run_id, cpu_user_s + cpu_system_s, (ended_ns - started_ns) / 1e9 FROM runs").fetchone()
ttfts = sorted(r[0] / 1e6 for r in db.execute("SELECT first_byte_ns - sent_ns FROM requests WHERE run_id = ? AND ok = 1", (run_id,)))
ok = len(ttfts); ttft = ttfts[ok // 2]
fb_k = cpu / ok * 1000; pe_k = p["cpu_s"] / p["ok"] * 1000
print(f"factorybench: {ok}/{n} streams ok, CPU {fb_k:.3f} s per 1k streams, wall {wall:.1f} s, TTFT p50 {ttft:.2f} ms (fixture delay {t:.0f} ms -> error +{ttft - t:.2f} ms)")
print(f"peer (vLLM bench serve request loop, aiohttp): {p['ok']}/{n} ok, CPU {pe_k:.3f} s per 1k streams, wall {p['wall_s']:.1f} s, TTFT p50 {p['ttft_p50_ms']:.2f} ms (error +{p['ttft_p50_ms'] - t:.2f} ms)")
print(f"ratio CPU factorybench/peer = {fb_k / pe_k:.2f}")
PY
