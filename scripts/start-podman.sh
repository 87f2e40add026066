#!/usr/bin/env bash
# Build the local Podman test image (scripts/build-test-image.sh, about 10 s; 0.1 s when up to
# date) once PostgreSQL 15 is installed (scripts/install-postgres.sh runs in parallel in
# scripts/test-env.sh), and name it in podman.env for tests/podman_lifecycle.rs.
. "$(dirname "$0")/lib.sh"
wait_for "PostgreSQL 15 (install-postgres.sh)" 600 test -x /usr/lib/postgresql/15/bin/postgres
# apt may still be unpacking the rest of the package: wait for its last file too.
wait_for "PostgreSQL 15 share files" 120 test -e /usr/share/postgresql/15/postgresql.conf.sample
image=$(bash "$(dirname "$0")/build-test-image.sh")
write_env podman "FB_TEST_PODMAN_IMAGE=$image"
