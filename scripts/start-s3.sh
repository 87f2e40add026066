#!/usr/bin/env bash
# moto S3 server on 127.0.0.1:15000 (in-memory). Writes s3.env: FB_TEST_S3_URL, FB_TEST_S3_REGION,
# FB_TEST_S3_ACCESS_KEY, FB_TEST_S3_SECRET_KEY (generated; moto accepts any key pair).
. "$(dirname "$0")/lib.sh"
PORT=${FB_TEST_S3_PORT:-15000}
URL="http://127.0.0.1:$PORT"
up() { curl -fsS -o /dev/null "$URL/moto-api/" || curl -sS -o /dev/null "$URL/"; }
if [ -s "$FB_TEST_STATE/s3.env" ] && up 2>/dev/null; then log "already running on $PORT"; exit 0; fi
mkdir -p "$FB_TEST_STATE/s3"
nohup setsid /opt/factorybench/moto/bin/moto_server -H 127.0.0.1 -p "$PORT" \
  >"$FB_TEST_STATE/s3/server.log" 2>&1 </dev/null &
echo $! > "$FB_TEST_STATE/s3/pid"
wait_for "moto on $PORT" 60 up
AK=$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Z0-9' | head -c 16)
SK=$(head -c 30 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
write_env s3 "FB_TEST_S3_URL=$URL" FB_TEST_S3_REGION=us-east-1 "FB_TEST_S3_ACCESS_KEY=FB$AK" \
  "FB_TEST_S3_SECRET_KEY=$SK" "FB_TEST_S3_PID=$(cat "$FB_TEST_STATE/s3/pid")"
log "moto up on $URL"
