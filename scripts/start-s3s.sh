#!/usr/bin/env bash
# The strict-SigV4 S3 server (SeaweedFS `weed mini`, scripts/install-s3s.sh) on 127.0.0.1:15010
# with one generated key pair and signature checking on; data under $FB_TEST_STATE/s3s/weed.
# Virtual-hosted-style requests for BUCKET.localhost:PORT work (-s3.domainName=localhost). Its
# other parts listen on 127.0.0.1 too: master 15011, volume 15012, filer 15013 (HTTP API that
# lists what is stored, bypassing S3), admin 15015, and gRPC on each port + 10000.
# Writes s3s.env: FB_TEST_S3S_URL, FB_TEST_S3S_ACCESS_KEY, FB_TEST_S3S_SECRET_KEY,
# FB_TEST_S3S_FILER_URL, FB_TEST_S3S_PID.
. "$(dirname "$0")/lib.sh"
PORT=${FB_TEST_S3S_PORT:-15010}
URL="http://127.0.0.1:$PORT"
FILER_PORT=$((PORT + 3))
DIR="$FB_TEST_STATE/s3s"
# Unsigned requests are refused with 403: any HTTP answer means the gateway is up.
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/")" != 000 ]; }
if [ -s "$FB_TEST_STATE/s3s.env" ]; then
  if grep -q '^FB_TEST_S3S_FILER_URL=' "$FB_TEST_STATE/s3s.env"; then
    if up 2>/dev/null; then log "already running on $PORT"; exit 0; fi
  else
    # The s3s-fs server an earlier version of this script started: replace it.
    old=$(sed -n 's/^FB_TEST_S3S_PID=//p' "$FB_TEST_STATE/s3s.env")
    if [ -n "$old" ] && kill "$old" 2>/dev/null; then
      log "stopped the s3s-fs of an earlier start-s3s.sh (pid $old)"
      for _ in $(seq 50); do up 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$FB_TEST_STATE/s3s.env"
  fi
fi
mkdir -p "$DIR/weed"
AK=FB$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Z0-9' | head -c 16)
SK=$(head -c 30 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
(umask 077; printf '{"identities":[{"name":"factorybench","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
  "$AK" "$SK" > "$DIR/s3.json")
# Its working directory must outlive it, so not the checkout, which CI may delete while the
# server keeps running.
cd "$DIR" || exit 1
nohup setsid /opt/factorybench/seaweedfs/bin/weed mini -dir="$DIR/weed" -ip=127.0.0.1 \
  -ip.bind=127.0.0.1 -s3.port="$PORT" -master.port=$((PORT + 1)) -volume.port=$((PORT + 2)) \
  -filer.port="$FILER_PORT" -admin.port=$((PORT + 5)) -admin.ui=false -webdav=false \
  -s3.port.iceberg=0 -s3.port.lance=0 -s3.domainName=localhost -s3.config="$DIR/s3.json" \
  >"$DIR/server.log" 2>&1 </dev/null &
echo $! > "$DIR/pid"
wait_for "seaweedfs S3 on $PORT" 60 up
# Ready when a signed ListBuckets succeeds (the filer and volume server are up behind it).
signed_list() { curl -fsS -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" "$URL/"; }
wait_for "a signed request to seaweedfs" 60 signed_list
write_env s3s "FB_TEST_S3S_URL=$URL" "FB_TEST_S3S_ACCESS_KEY=$AK" "FB_TEST_S3S_SECRET_KEY=$SK" \
  "FB_TEST_S3S_FILER_URL=http://127.0.0.1:$FILER_PORT" "FB_TEST_S3S_PID=$(cat "$DIR/pid")"
log "seaweedfs S3 up on $URL"
