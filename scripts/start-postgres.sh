#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1:15432 (socket dir inside the cluster dir), with a
# role + database `factorybench` whose password is generated here. Writes postgres.env:
#   FB_TEST_PG_HOST FB_TEST_PG_PORT FB_TEST_PG_USER FB_TEST_PG_PASSWORD FB_TEST_PG_DB
#   FB_TEST_PG_DIR (data + socket dir) FB_TEST_PG_BIN (server binaries)
#   FB_TEST_PG_COUNTED_DB: a second database of the same role that only the commit-counting test
#   uses (pg_stat_database counts per database; other tests' logins would land in its window)
. "$(dirname "$0")/lib.sh"
PORT=${FB_TEST_PG_PORT:-15432}
DIR="$FB_TEST_STATE/postgres"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
as_pg() { runuser -u postgres -- "$@"; }
psql_su() { as_pg psql -h "$DIR" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
counted_db() {
  if [ "$(psql_su -c "select 1 from pg_database where datname='factorybench_counted'")" != 1 ]; then
    psql_su -c "create database factorybench_counted owner factorybench"
  fi
}
if [ -s "$FB_TEST_STATE/postgres.env" ] && "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q; then
  if ! grep -q FB_TEST_PG_COUNTED_DB "$FB_TEST_STATE/postgres.env"; then
    counted_db
    echo "FB_TEST_PG_COUNTED_DB=factorybench_counted" >> "$FB_TEST_STATE/postgres.env"
  fi
  log "already running on $PORT"; exit 0
fi
if [ ! -s "$DIR/data/PG_VERSION" ]; then
  rm -rf "$DIR"; mkdir -p "$DIR"; chown postgres:postgres "$DIR"; chmod 0700 "$DIR"
  # Local socket/peer auth for the postgres superuser; passwords (scram) over TCP.
  as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
fi
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" start
wait_for "postgres on $PORT" 60 "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT"
PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 24)
if [ "$(psql_su -c "select 1 from pg_roles where rolname='factorybench'")" != 1 ]; then
  psql_su -c "create role factorybench login password '$PASS'"
else
  psql_su -c "alter role factorybench password '$PASS'"
fi
if [ "$(psql_su -c "select 1 from pg_database where datname='factorybench'")" != 1 ]; then
  psql_su -c "create database factorybench owner factorybench"
fi
counted_db
write_env postgres FB_TEST_PG_HOST=127.0.0.1 "FB_TEST_PG_PORT=$PORT" FB_TEST_PG_USER=factorybench \
  "FB_TEST_PG_PASSWORD=$PASS" FB_TEST_PG_DB=factorybench "FB_TEST_PG_DIR=$DIR" "FB_TEST_PG_BIN=$BIN" \
  FB_TEST_PG_COUNTED_DB=factorybench_counted
log "postgres up on 127.0.0.1:$PORT"
