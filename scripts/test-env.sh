#!/usr/bin/env bash
# Install and start every real server the test suite uses (SLURM, Prometheus, PostgreSQL, S3,
# ChromaDB, an LLM, ...) on 127.0.0.1, in the background. Idempotent: safe to run again.
# Each component has scripts/install-<c>.sh and scripts/start-<c>.sh (see scripts/lib.sh); each
# component starts as soon as its own install is done (apt installs serialise on a lock; pip,
# npm and cargo ones run beside them), so a slow install delays only its own server.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. scripts/lib.sh
start=$(date +%s)
component() {
  local c=$1 t0
  t0=$(date +%s)
  bash "scripts/install-$c.sh" > "$FB_TEST_STATE/install-$c.log" 2>&1 || { log "install-$c failed"; return 1; }
  if [ -e "scripts/start-$c.sh" ]; then
    # Servers outlive this checkout (CI may delete it): start them from the state directory.
    (cd "$FB_TEST_STATE" && bash "$root/scripts/start-$c.sh") > "$FB_TEST_STATE/start-$c.log" 2>&1 \
      || { log "start-$c failed"; return 1; }
  fi
  log "$c ready after $(( $(date +%s) - t0 ))s"
}
pids=()
for s in scripts/install-*.sh; do
  [ -e "$s" ] || continue
  c=$(basename "$s" .sh); c=${c#install-}
  component "$c" & pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail -ne 0 ]; then
  tail -n 30 "$FB_TEST_STATE"/install-*.log "$FB_TEST_STATE"/start-*.log 2>/dev/null
  log "a server failed to install or start"; exit 1
fi
envs=$(cd "$FB_TEST_STATE" && printf '%s ' ./*.env)
log "servers up in $(( $(date +%s) - start ))s total: ${envs//.\//}"
