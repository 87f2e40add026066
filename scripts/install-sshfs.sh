#!/usr/bin/env bash
# sshfs + OpenSSH server (Debian): a FUSE network filesystem for tests/it/slurm_faults.rs
# (campaign directory on a network filesystem, issue 26).
. "$(dirname "$0")/lib.sh"
apt_install sshfs openssh-server
# (not `| head`: under pipefail, sshfs killed by SIGPIPE would fail the install)
v="$(sshfs --version 2>&1 || true)"
echo "${v%%$'\n'*}"
