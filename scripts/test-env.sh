#!/usr/bin/env bash
# Install and start every real server the test suite uses (SLURM, Prometheus, PostgreSQL, S3,
# ChromaDB, an LLM, ...) on 127.0.0.1, in the background. Idempotent: safe to run again.
# Each component has scripts/install-<c>.sh and scripts/start-<c>.sh (see scripts/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
start=$(date +%s)
# Installs: apt ones serialise on a lock; pip/npm ones run beside them.
pids=()
for s in scripts/install-*.sh; do
  [ -e "$s" ] || continue
  bash "$s" > "$FB_TEST_STATE/$(basename "$s" .sh).log" 2>&1 & pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail -ne 0 ]; then tail -n 30 "$FB_TEST_STATE"/install-*.log; log "an install failed"; exit 1; fi
log "installs done in $(( $(date +%s) - start ))s"
pids=()
for s in scripts/start-*.sh; do
  [ -e "$s" ] || continue
  bash "$s" > "$FB_TEST_STATE/$(basename "$s" .sh).log" 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail -ne 0 ]; then tail -n 30 "$FB_TEST_STATE"/start-*.log; log "a server failed to start"; exit 1; fi
log "servers up in $(( $(date +%s) - start ))s total: $(ls "$FB_TEST_STATE"/*.env 2>/dev/null | xargs -n1 basename 2>/dev/null | tr '\n' ' ')"
