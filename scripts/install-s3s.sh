#!/usr/bin/env bash
# s3s-fs 0.14.1 from crates.io: a real S3 server that verifies SigV4 signatures strictly (moto,
# scripts/install-s3.sh, does not). Built once, as a debug build (the tests need correctness, not
# its speed), into /opt/factorybench/s3s; a no-op when the binary is there.
. "$(dirname "$0")/lib.sh"
ROOT=/opt/factorybench/s3s
BIN=$ROOT/bin/s3s-fs
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q '0\.14\.1'; then
  log "s3s-fs present"; exit 0
fi
start=$(date +%s)
# Its own target directory, lower priority than the project's build that runs beside it.
CARGO_TARGET_DIR="$FB_TEST_STATE/s3s-build" nice -n 10 \
  cargo install s3s-fs --version 0.14.1 --features binary --locked --debug --root "$ROOT" --quiet
rm -rf "$FB_TEST_STATE/s3s-build"
"$BIN" --version
log "s3s-fs built in $(( $(date +%s) - start ))s"
