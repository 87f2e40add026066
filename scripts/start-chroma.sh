#!/usr/bin/env bash
# ChromaDB on 127.0.0.1:18000, data under $FB_TEST_STATE/chroma. Writes chroma.env: FB_TEST_CHROMA_URL.
. "$(dirname "$0")/lib.sh"
PORT=${FB_TEST_CHROMA_PORT:-18000}
URL="http://127.0.0.1:$PORT"
up() { curl -fsS -o /dev/null "$URL/api/v2/heartbeat"; }
if [ -s "$FB_TEST_STATE/chroma.env" ] && up 2>/dev/null; then log "already running on $PORT"; exit 0; fi
mkdir -p "$FB_TEST_STATE/chroma"
export ANONYMIZED_TELEMETRY=False
nohup setsid /opt/factorybench/chroma/bin/chroma run --host 127.0.0.1 --port "$PORT" \
  --path "$FB_TEST_STATE/chroma/data" >"$FB_TEST_STATE/chroma/server.log" 2>&1 </dev/null &
echo $! > "$FB_TEST_STATE/chroma/pid"
wait_for "chroma on $PORT" 120 up
write_env chroma "FB_TEST_CHROMA_URL=$URL" "FB_TEST_CHROMA_PID=$(cat "$FB_TEST_STATE/chroma/pid")"
log "chroma up on $URL"
