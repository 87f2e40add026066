#!/usr/bin/env bash
# Install SLURM 22.05 (Debian: controller, compute daemon, clients, slurmdbd), munge, and
# MariaDB 10.11 for the accounting database. Idempotent; about 35 s on a fresh machine.
# Configuration, network namespaces and daemons are handled by scripts/start-slurm.sh.
. "$(dirname "$0")/lib.sh"
apt_install slurmctld slurmd slurm-client slurmdbd munge mariadb-server iproute2 procps
log "slurm $(sbatch --version 2>/dev/null || echo '?') installed"
