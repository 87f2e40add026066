#!/usr/bin/env bash
# s3s-fs on 127.0.0.1:15010 with a generated key pair and signature checking on, data under
# $FB_TEST_STATE/s3s/data; virtual-hosted-style requests for BUCKET.localhost:PORT (s3s matches
# the Host header, port included, against --domain). Writes s3s.env: FB_TEST_S3S_URL,
# FB_TEST_S3S_ACCESS_KEY, FB_TEST_S3S_SECRET_KEY, FB_TEST_S3S_PID.
. "$(dirname "$0")/lib.sh"
PORT=${FB_TEST_S3S_PORT:-15010}
URL="http://127.0.0.1:$PORT"
# Unsigned requests are refused with 403: any HTTP answer means it is up.
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/")" != 000 ]; }
if [ -s "$FB_TEST_STATE/s3s.env" ] && up 2>/dev/null; then log "already running on $PORT"; exit 0; fi
mkdir -p "$FB_TEST_STATE/s3s/data"
AK=FB$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Z0-9' | head -c 16)
SK=$(head -c 30 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
# The keys go on the command line (s3s-fs has no other way): a throwaway pair on loopback.
# Its working directory must outlive it (it resolves paths against the current directory), so
# not the checkout, which CI may delete while the server keeps running.
cd "$FB_TEST_STATE/s3s" || exit 1
nohup setsid /opt/factorybench/s3s/bin/s3s-fs --host 127.0.0.1 --port "$PORT" \
  --access-key "$AK" --secret-key "$SK" --domain "localhost:$PORT" "$FB_TEST_STATE/s3s/data" \
  >"$FB_TEST_STATE/s3s/server.log" 2>&1 </dev/null &
echo $! > "$FB_TEST_STATE/s3s/pid"
wait_for "s3s-fs on $PORT" 60 up
write_env s3s "FB_TEST_S3S_URL=$URL" "FB_TEST_S3S_ACCESS_KEY=$AK" "FB_TEST_S3S_SECRET_KEY=$SK" \
  "FB_TEST_S3S_PID=$(cat "$FB_TEST_STATE/s3s/pid")"
log "s3s-fs up on $URL"
