#!/usr/bin/env bash
# Chromium is not a server: check that it starts headless and tell the tests where it is
# (tests/report_html.rs renders the HTML report with it).
. "$(dirname "$0")/lib.sh"
bin=$(command -v chromium || command -v chromium-browser || true)
[ -n "$bin" ] || { log "chromium not installed (scripts/install-chromium.sh)"; exit 1; }
profile=$(mktemp -d)
timeout 60 "$bin" --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --dump-dom 'data:text/html,<p>ok</p>' 2>/dev/null | grep -q '<p>ok</p>'
rm -rf "$profile"
write_env chromium "FB_TEST_CHROMIUM=$bin"
log "chromium ready: $bin"
