#!/usr/bin/env bash
# Run the PostgreSQL test image (scripts/build-test-image.sh) through a container lifecycle as
# factorybench's `runtime: podman` job scripts do, and check it: start (host network, binds,
# environment, secret from the environment), readiness (pg_isready, then a password login),
# stop — on a normal end, on SIGTERM to the job, and when readiness fails — with no container
# left behind. Exit 0 when every check passes. Needs scripts/install-podman.sh,
# scripts/install-postgres.sh (client tools) and the image.
# Usage: scripts/podman-smoke.sh [IMAGE]
. "$(dirname "$0")/lib.sh"
IMAGE="${1:-localhost/factorybench-postgres:15}"
PGBIN=/usr/lib/postgresql/15/bin
# What this machine kind needs on every call (root without CAP_SYS_RESOURCE, no systemd):
podman_() { podman --runtime runc --cgroup-manager=cgroupfs --events-backend=file "$@"; }
n=$(ulimit -Hn); [ "$n" = unlimited ] && n=1048576
LIMITS=(--ulimit "nofile=$n:$n" --ulimit nproc=32768:32768)

podman_ image exists "$IMAGE" || { log "$IMAGE is missing (run scripts/build-test-image.sh)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/fb-podman-smoke-XXXXXX")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
left() { podman_ ps -a --filter "name=^fb-smoke-" --format '{{.Names}}'; }
fail() { log "FAIL: $*"; left >&2; exit 1; }
trap 'podman_ rm -f -t 0 $(left) >/dev/null 2>&1 || true; rm -rf -- "$work"' EXIT

export IMAGE PGBIN
t0=$(date +%s)
# run_case NAME RUN_PHASE PASSWORD: start one job in the background; sets $pid and $p.
run_case() {
  local c=$1 body=$2 pw=$3
  mkdir -p "$work/$c/pgdata" "$work/$c/pgrun"; printf 'bench-marker\n' > "$work/$c/marker"
  p=$(port)
  NAME="fb-smoke-$c" SCRATCH="$work/$c" PORT="$p" POSTGRES_PASSWORD="$pw" LIMITS="$limits" \
    bash "$work/job.sh" "$body" &
  pid=$!
}

cat > "$work/job.sh" <<'EOF'
set -euo pipefail
podman_() { podman --runtime runc --cgroup-manager=cgroupfs --events-backend=file "$@"; }
started=0
stop() { if [ $started -eq 1 ]; then podman_ stop --ignore --time 10 "$NAME" >/dev/null 2>&1 || true; fi; }
trap stop EXIT
trap 'exit 143' TERM
started=1
# shellcheck disable=SC2086  # LIMITS holds separate words
podman_ run --detach --rm --pull never --name "$NAME" --network host $LIMITS \
  --volume "$SCRATCH/pgdata:/var/lib/postgresql/data" --volume "$SCRATCH/pgrun:/var/run/postgresql" \
  --volume "$SCRATCH/marker:/etc/fb-marker:ro" \
  --env POSTGRES_USER=bench --env POSTGRES_DB=bench_db --env PGDATA=/var/lib/postgresql/data/pgdata \
  --env POSTGRES_PASSWORD "$IMAGE" postgres -c listen_addresses=127.0.0.1 -p "$PORT" >/dev/null
ready=0
for _ in $(seq 1 60); do
  if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then ready=1; break; fi
  sleep 0.25 & wait $!
done
[ $ready -eq 1 ] || { echo "never ready" >&2; exit 1; }
echo ready > "$SCRATCH/state"
case "$1" in
  query)
    PGPASSWORD="$POSTGRES_PASSWORD" "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U bench bench_db -Atc \
      "select current_user || ' ' || current_database() || ' ' || pg_read_file('/etc/fb-marker')" \
      > "$SCRATCH/query.out"
    ;;
  sleep) sleep 600 & wait $! ;;
esac
EOF
limits="${LIMITS[*]}"

# 1. Normal end.
run_case normal query 's3cret pw'
wait "$pid" || fail "normal: the job failed"
grep -qx 'bench bench_db bench-marker' "$work/normal/query.out" || fail "normal: $(cat "$work/normal/query.out")"
[ -s "$work/normal/pgdata/pgdata/PG_VERSION" ] || fail "normal: nothing written to the pgdata bind"
[ -z "$(left)" ] || fail "normal: a container is left"
"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$p" && fail "normal: postgres still answers"
log "normal end: login as bench/bench_db with the secret, binds ok, container gone"

# 2. SIGTERM to the job while its run phase waits (scancel, SLURM time limit).
run_case term sleep 's3cret pw'
for _ in $(seq 1 120); do [ -e "$work/term/state" ] && break; sleep 0.25; done
[ -e "$work/term/state" ] || fail "term: never ready"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ $rc -eq 143 ] || fail "term: job exit $rc"
[ -z "$(left)" ] || fail "term: a container is left"
log "SIGTERM: job exit 143, container stopped and removed"

# 3. Failed readiness: no password, the entrypoint refuses to initialise; the job gives up.
run_case fail none ''
rc=0; wait "$pid" || rc=$?
[ $rc -eq 1 ] || fail "fail: job exit $rc"
[ -z "$(left)" ] || fail "fail: a container is left"
log "failed readiness: job exit 1, no container left"
log "all podman lifecycle checks passed in $(( $(date +%s) - t0 ))s"
