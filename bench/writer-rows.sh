#!/usr/bin/env bash
# Recording: request rows per second the single SQLite writer sustains (WAL, batched
# transactions), measured by the store_writer example. ROWS (default 2000000).
source "$(dirname "$0")/lib-runner.sh"
"$CARGO_TARGET_DIR/release/examples/store_writer" "$WORK/writer.db" "${ROWS:-2000000}"
