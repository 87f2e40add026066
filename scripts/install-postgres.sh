#!/usr/bin/env bash
# PostgreSQL 15 (Debian) for the database client tests and bench/pgbench.sh. Idempotent.
. "$(dirname "$0")/lib.sh"
apt_install postgresql postgresql-contrib
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null
log "postgresql ready: $(ls -d /usr/lib/postgresql/*/bin | tail -n1)"
