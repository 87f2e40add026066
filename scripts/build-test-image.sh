#!/usr/bin/env bash
# Build the local Podman test image localhost/factorybench-postgres:15 (no registry needed):
# a minimal rootfs assembled from this machine's PostgreSQL 15 (Debian package, installed by
# scripts/install-postgres.sh) plus the shared libraries `ldd` names, imported with
# `podman import`. It behaves like the official postgres image for what factorybench renders:
#   entrypoint /usr/local/bin/docker-entrypoint.sh, command `postgres [ARGS...]`,
#   POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / PGDATA initialise an empty data directory
#   on first start (scram-sha-256 over TCP), then postgres runs as uid 999; STOPSIGNAL SIGINT
#   (fast shutdown, as the official image).
# Idempotent: the image carries a label with a hash of this script and the PostgreSQL version;
# a re-run with an image of the same hash does nothing. Needs scripts/install-podman.sh.
# Usage: scripts/build-test-image.sh [IMAGE]   (prints the image name on stdout)
. "$(dirname "$0")/lib.sh"
IMAGE="${1:-localhost/factorybench-postgres:15}"
PGBIN=/usr/lib/postgresql/15/bin
PGLIB=/usr/lib/postgresql/15/lib
PGSHARE=/usr/share/postgresql/15
# Every podman call on this machine kind (no systemd, no CAP_SYS_RESOURCE): see install-podman.sh.
podman_() { podman --runtime runc --cgroup-manager=cgroupfs --events-backend=file "$@"; }

[ -x "$PGBIN/postgres" ] || { log "PostgreSQL 15 is not installed (run scripts/install-postgres.sh)"; exit 1; }
command -v podman >/dev/null || { log "podman is not installed (run scripts/install-podman.sh)"; exit 1; }

build_id=$( { sha256sum "$0" | cut -d' ' -f1; "$PGBIN/postgres" --version; } | sha256sum | cut -c1-16)
if [ "$(podman_ image inspect --format '{{ index .Labels "org.factorybench.build" }}' "$IMAGE" 2>/dev/null)" = "$build_id" ]; then
  log "$IMAGE is up to date (build $build_id)"
  echo "$IMAGE"
  exit 0
fi

old_id=$(podman_ image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
work=$(mktemp -d "${TMPDIR:-/tmp}/fb-image-XXXXXX")
trap 'rm -rf -- "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,run,var/lib/postgresql/data,var/run/postgresql,usr/local/bin}
chmod 1777 "$root/tmp"

# Copy a file with its directory; -L keeps the target of a symlink under the link's name.
put() { mkdir -p "$root$(dirname "$1")"; cp -L "$1" "$root$1"; }
bins=("$PGBIN"/{postgres,initdb,pg_ctl,pg_isready,psql})
tools=(/bin/sh /bin/mkdir /bin/chown /bin/chmod /bin/cat /bin/ls /bin/rm /usr/bin/id /usr/bin/setpriv /usr/bin/env)
for f in "${bins[@]}" "${tools[@]}"; do put "$f"; done
# The dynamic loader and every library the binaries and PostgreSQL's own modules need.
# (Not the LLVM JIT module: libLLVM alone would triple the image; the server runs with jit=off.)
mods=(); for m in "$PGLIB"/*.so; do case "$m" in */llvmjit*) ;; *) mods+=("$m") ;; esac; done
libs=$(for f in "${bins[@]}" "${tools[@]}" "${mods[@]}"; do ldd "$f" 2>/dev/null; done \
  | grep -o '/[^ ]*' | sort -u)
for l in $libs; do put "$l"; done
mkdir -p "$root$PGLIB" "$root$PGSHARE"
cp -a "$PGLIB/." "$root$PGLIB/"
rm -rf "$root$PGLIB"/llvmjit*
cp -a "$PGSHARE/." "$root$PGSHARE/"
rm -rf "$root$PGSHARE/man"
mkdir -p "$root/usr/share/zoneinfo"
cp -a /usr/share/zoneinfo/UTC /usr/share/zoneinfo/Etc "$root/usr/share/zoneinfo/" 2>/dev/null || true
ln -sf "$PGBIN/postgres" "$root/usr/local/bin/postgres"

cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
postgres:x:999:
EOF

cat > "$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# factorybench test image entrypoint (the official postgres image's interface, minimal).
set -eu
PATH=/usr/lib/postgresql/15/bin:/bin:/usr/bin
export PATH
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=999 --regid=999 --clear-groups -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown 999:999 "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "docker-entrypoint.sh: POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  pwfile=/tmp/.pwfile.$$
  (umask 077; printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile")
  if [ "$(id -u)" = 0 ]; then chown 999:999 "$pwfile"; fi
  as_pg initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --no-locale --encoding=UTF8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    printf 'CREATE DATABASE "%s";\n' "$POSTGRES_DB" \
      | as_pg postgres --single -D "$PGDATA" -jE postgres >/dev/null
  fi
  echo "docker-entrypoint.sh: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi
shift
if [ "$(id -u)" = 0 ]; then exec setpriv --reuid=999 --regid=999 --clear-groups -- postgres "$@"; fi
exec postgres "$@"
EOF
chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"

tar -C "$root" --numeric-owner -cf "$work/rootfs.tar" .
size_mb=$(( $(stat -c %s "$work/rootfs.tar") / 1024 / 1024 ))
podman_ import \
  --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
  --change 'CMD ["postgres"]' \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/bin:/usr/bin' \
  --change 'ENV TZ=UTC' \
  --change 'STOPSIGNAL SIGINT' \
  --change 'EXPOSE 5432' \
  --change "LABEL org.factorybench.build=$build_id" \
  --message "factorybench test image: PostgreSQL from the host's Debian package" \
  "$work/rootfs.tar" "$IMAGE" >/dev/null
# The previous build of this name is now untagged: remove it (not other images).
if [ -n "$old_id" ] && [ "$old_id" != "$(podman_ image inspect --format '{{.Id}}' "$IMAGE")" ]; then
  podman_ rmi "$old_id" >/dev/null 2>&1 || true
fi
log "built $IMAGE (${size_mb} MiB rootfs, build $build_id)"
echo "$IMAGE"
