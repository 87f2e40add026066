# Shared helpers of the runner benchmarks (sourced). Release build in $CARGO_TARGET_DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-release}"
(cd "$ROOT" && cargo build --release --bins --examples -q)
FB="$CARGO_TARGET_DIR/release/factorybench"
SRV="$CARGO_TARGET_DIR/release/fb-testserver"
WORK="$(mktemp -d /var/tmp/fb-bench.XXXXXX)"
SRV_PID=""
cleanup() {
  if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# apt install a peer tool if missing (benchmarks only; never in tests).
need() {
  command -v "$1" >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}

# start_server ARGS... : starts fb-testserver on 127.0.0.1, sets PORT and SRV_PID.
start_server() {
  if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  "$SRV" "$@" > "$WORK/srv.out" &
  SRV_PID=$!
  for _ in $(seq 100); do
    if grep -q '^port=' "$WORK/srv.out" 2>/dev/null; then break; fi
    sleep 0.05
  done
  PORT="$(sed -n 's/^port=//p' "$WORK/srv.out")"
}

# json FILE EXPR : evaluate a Python expression over the JSON in FILE (bound to j).
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# recipe NAME BODY : write a one-service recipe to $WORK/NAME.yml.
recipe() {
  printf 'benchmark:\n  name: bench\nglobal:\n  metrics_db: %s/%s.db\nservices:\n%s' "$WORK" "$1" "$2" > "$WORK/$1.yml"
  echo "$WORK/$1.yml"
}
