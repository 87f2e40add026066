#!/usr/bin/env bash
# kserve ModelServer on 127.0.0.1:18600 serving `resnet50`: a small ONNX conv net with ResNet's
# input (FP32 [-1,3,224,224]) that scripts/kserve/server.py builds with `onnx` and runs with
# onnxruntime, and `resnet50_u8` (UINT8 [-1,224,224,3]). Waits until a real inference answers, then writes kserve.env: FB_TEST_KSERVE_URL,
# FB_TEST_KSERVE_MODEL.
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
PORT=${FB_TEST_KSERVE_PORT:-18600}
GRPC_PORT=${FB_TEST_KSERVE_GRPC_PORT:-18601}
URL="http://127.0.0.1:$PORT"
up() { curl -fsS -o /dev/null "$URL/v2/models/resnet50/ready" && curl -fsS -o /dev/null "$URL/v2/models/resnet50_u8/ready"; }
if [ -s "$FB_TEST_STATE/kserve.env" ] && up 2>/dev/null; then log "already running on $PORT"; exit 0; fi
dir="$FB_TEST_STATE/kserve"
mkdir -p "$dir"
# The server outlives this checkout: run a copy of the script from the state directory.
cp "$here/kserve/server.py" "$dir/server.py"
nohup setsid /opt/factorybench/kserve/bin/python "$dir/server.py" --model_dir "$dir/model" \
  --http_port "$PORT" --grpc_port "$GRPC_PORT" --workers 1 >"$dir/server.log" 2>&1 </dev/null &
echo $! > "$dir/pid"
wait_for "kserve on $PORT" 120 up
# One real inference (JSON, batch of 1) before the tests run.
python3 - "$URL" <<'PY'
import json, sys, urllib.request
body = json.dumps({"id": "warmup", "inputs": [{"name": "input", "shape": [1, 3, 224, 224],
                   "datatype": "FP32", "data": [0.5] * (3 * 224 * 224)}]}).encode()
req = urllib.request.Request(sys.argv[1] + "/v2/models/resnet50/infer", data=body,
                             headers={"Content-Type": "application/json"})
out = json.load(urllib.request.urlopen(req, timeout=60))["outputs"][0]
assert out["shape"] == [1, 1000], out
PY
write_env kserve "FB_TEST_KSERVE_URL=$URL" "FB_TEST_KSERVE_MODEL=resnet50" \
  "FB_TEST_KSERVE_PID=$(cat "$dir/pid")"
log "kserve up on $URL"
