#!/usr/bin/env bash
# Install Podman (Debian 4.3.1) with the runc runtime, for running containers as root on a
# machine without systemd. No configuration file is changed: every podman call passes
#   --runtime runc --cgroup-manager=cgroupfs --events-backend=file
# (scripts/build-test-image.sh and the rendered `runtime: podman` job scripts do).
# Images come only from `podman import` of a local rootfs tarball (no registry is reachable).
. "$(dirname "$0")/lib.sh"
apt_install podman runc
command -v podman >/dev/null
command -v runc >/dev/null
log "$(podman --version), $(runc --version | head -n1)"
