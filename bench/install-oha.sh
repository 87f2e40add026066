#!/usr/bin/env bash
# oha (a Rust/hyper HTTP load generator) as a second peer of bench/http-vs-wrk.sh, built from the
# crate registry into /opt/factorybench/bench (a benchmark-only prefix, never used by the tests).
# Slow (about 20+ minutes on 2 cores): run it niced in the background, e.g.
#   nohup bench/install-oha.sh > /var/tmp/oha-install.log 2>&1 &
# A no-op when the binary is there. OHA_VERSION pins the version (default: latest).
set -euo pipefail
PREFIX=/opt/factorybench/bench
if [ -x "$PREFIX/bin/oha" ]; then "$PREFIX/bin/oha" --version; exit 0; fi
start=$(date +%s)
mkdir -p "$PREFIX"
CARGO_TARGET_DIR="${OHA_BUILD_DIR:-/var/tmp/oha-build}" nice -n 19 \
  cargo install oha ${OHA_VERSION:+--version "$OHA_VERSION"} --locked -j"${OHA_JOBS:-1}" --root "$PREFIX"
rm -rf "${OHA_BUILD_DIR:-/var/tmp/oha-build}"
"$PREFIX/bin/oha" --version
echo "oha built in $(( $(date +%s) - start ))s"
