#!/usr/bin/env bash
# Install headless Chromium (Debian package) for the HTML report rendering test.
. "$(dirname "$0")/lib.sh"
apt_install chromium
log "$(chromium --version 2>/dev/null || echo 'chromium ?') installed"
