#!/usr/bin/env bash
# Not a server: records where shellcheck is so tests require it (FB_REQUIRE_SERVERS=1) or skip.
. "$(dirname "$0")/lib.sh"
bin=$(command -v shellcheck) || { log "shellcheck is not installed (scripts/install-shellcheck.sh)"; exit 1; }
write_env shellcheck "FB_TEST_SHELLCHECK=$bin"
