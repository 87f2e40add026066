#!/usr/bin/env bash
# The test command (README): start the real servers, lint, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-env.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets -- --test-threads=2
