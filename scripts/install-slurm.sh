#!/usr/bin/env bash
# Install a single-node SLURM (22.05 from Debian) and munge. Idempotent; about 10 s on a fresh
# machine. Configuration and daemons are handled by scripts/start-slurm.sh.
. "$(dirname "$0")/lib.sh"
apt_install slurmctld slurmd slurm-client munge
log "slurm $(sbatch --version 2>/dev/null || echo '?') installed"
