#!/usr/bin/env bash
# shellcheck (Debian 0.9): lints every rendered batch script in tests/render_scripts.rs.
. "$(dirname "$0")/lib.sh"
apt_install shellcheck
shellcheck --version | sed -n 2p
