#!/usr/bin/env bash
# The test command (README): start the real servers (in the background, while Rust builds),
# lint, then run every test. Prints cargo test's summary lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export FB_TEST_STATE="${FB_TEST_STATE:-/tmp/factorybench-test}"
mkdir -p "$FB_TEST_STATE"
start=$(date +%s)
bash scripts/test-env.sh > "$FB_TEST_STATE/test-env.log" 2>&1 &
env_pid=$!
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets --no-run
echo "[test.sh] build and lint done after $(( $(date +%s) - start ))s; waiting for servers" >&2
if ! wait "$env_pid"; then
  cat "$FB_TEST_STATE/test-env.log" >&2
  echo "[test.sh] starting the test servers failed" >&2
  exit 1
fi
tail -n 3 "$FB_TEST_STATE/test-env.log" >&2
cargo test --locked --all-targets -- --test-threads=2
echo "[test.sh] total $(( $(date +%s) - start ))s" >&2
