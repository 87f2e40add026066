#!/usr/bin/env bash
# Where the client's CPU goes, factorybench's PostgreSQL client vs pgbench (libpq): valgrind
# (callgrind) instruction counts per transaction of each client process for the same work —
# primary-key SELECTs with prepared statements, 4 clients, N transactions (default 4000) — and
# factorybench's cost split by part (tokio-postgres, the recorder/SQLite, tokio, allocation,
# the rest). Instruction counts, not wall time: stable on a shared machine. The server's work
# is not counted (it runs in its own processes). Measured (2026-11-28, N=10000): factorybench
# 77k instructions per transaction, pgbench 43k; 49 % of factorybench's are the SCRAM-SHA-256
# login of its connections (PBKDF2 in the sha2 crate's software path: valgrind hides SHA-NI, so
# natively this share is far smaller), the recorder (SQLite rows) about 19 %.
# Needs the PostgreSQL of scripts/test-env.sh, valgrind, and a release build (FB_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-4000}"; ROWS=10000
STATE="${FB_TEST_STATE:-/tmp/factorybench-test}"
FB="${FB_BIN:-$PWD/target/release/factorybench}"
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
# shellcheck disable=SC1091
set -a; . "$STATE/postgres.env"; set +a
export PGPASSWORD=$FB_TEST_PG_PASSWORD PGHOST=$FB_TEST_PG_HOST PGPORT=$FB_TEST_PG_PORT \
  PGUSER=$FB_TEST_PG_USER PGDATABASE=$FB_TEST_PG_DB
W="$(mktemp -d /var/tmp/fb-pgcost.XXXXXX)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"; psql -qAt -c "DROP TABLE IF EXISTS fb_pgcost" >/dev/null 2>&1 || true' EXIT
cat > "$W/pg.yml" <<Y
benchmark: {name: pg client cost}
global: {metrics_db: "$W/pg.db"}
services:
  - service_name: pg
    service_type: database
    runtime: external
    host: "$FB_TEST_PG_HOST"
    port: $FB_TEST_PG_PORT
    database: "$FB_TEST_PG_DB"
    user: "$FB_TEST_PG_USER"
    password_env: FB_TEST_PG_PASSWORD
    table_name: fb_pgcost
    seed_rows: $ROWS
    operation_mix: {select: 1.0}
    client_count: 4
    requests_per_second: 0
    arrival: closed
    warmup: 0
    requests: $N
    duration: 600
    timeout: 30
Y
# Seed once without valgrind (the seeding is not the client's per-transaction cost).
"$FB" run "$W/pg.yml" --db "$W/seed.db" --no-progress >/dev/null 2>&1 || true
valgrind --tool=callgrind --callgrind-out-file="$W/fb.cg" --trace-children=no \
  "$FB" run "$W/pg.yml" --no-progress >/dev/null 2>"$W/fb.err" || true
FB_TX="$(sqlite3 "$W/pg.db" 'select count(*) from requests where ok = 1')"
# pgbench's table: the schema factorybench creates (factorybench drops its own at the end).
psql -qAt -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS fb_pgcost;
CREATE TABLE fb_pgcost (id bigserial PRIMARY KEY, k integer NOT NULL, payload text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO fb_pgcost (k, payload) SELECT (g * 7919) % 1000000,
  rpad(md5(g::text), 100, md5((g + 1)::text)) FROM generate_series(1::bigint, $ROWS::bigint) g;
ANALYZE fb_pgcost;
SQL
cat > "$W/select.sql" <<S
\\set id random(1, $ROWS)
SELECT id, k, payload, updated_at FROM fb_pgcost WHERE id = :id;
S
valgrind --tool=callgrind --callgrind-out-file="$W/pgbench.cg" \
  "${FB_TEST_PG_BIN:+$FB_TEST_PG_BIN/}pgbench" -n -M prepared -c 4 -j 1 -t "$((N / 4))" -f "$W/select.sql" >"$W/pgbench.out" 2>&1 || true
PG_TX="$(awk '/number of transactions actually processed/ {split($6, a, "/"); print a[1]}' "$W/pgbench.out")"
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
FB_IR="$(total "$W/fb.cg")"; PG_IR="$(total "$W/pgbench.cg")"
python3 - "$FB_IR" "$FB_TX" "$PG_IR" "$PG_TX" <<'PY'
import sys
fi, ft, pi, pt = (float(x) for x in sys.argv[1:])
print(f"instructions per transaction (client process, whole run incl. start-up):")
print(f"  factorybench {fi / ft:10.0f}  ({ft:.0f} transactions)")
print(f"  pgbench      {pi / pt:10.0f}  ({pt:.0f} transactions)")
print(f"  ratio factorybench/pgbench: {fi / ft / (pi / pt):.2f}")
PY
echo "factorybench by part (inclusive instructions of the top-level parts, % of the total):"
callgrind_annotate --inclusive=yes "$W/fb.cg" 2>/dev/null | python3 -c '
import re, sys
rows = []
for line in sys.stdin:
    m = re.match(r"\s*([0-9,]+)\s+\(\s*([0-9.]+)%\)\s+(.*)", line)
    if m: rows.append((float(m.group(2)), m.group(3)))
def share(rx):
    return max([p for p, s in rows if re.search(rx, s)] or [0.0])
parts = [("tokio-postgres (protocol, encode/decode)", r"tokio_postgres::client::Client::query|tokio_postgres::connection::Connection.*poll"),
         ("recorder (RequestSink, SQLite writer thread)", r"store::writer"),
         ("SQLite", r"sqlite3VdbeExec|sqlite3_step"),
         ("SCRAM-SHA-256 login (sha2; software under valgrind, which hides SHA-NI)", r"sha2::sha256::compress256|sha2::sha256::soft::compress|postgres_protocol::authentication::sasl"),
         ("allocation", r"^\S*malloc|_int_malloc"),
         ("hdrhistogram", r"hdrhistogram::Histogram.*record")]
for name, rx in parts:
    print(f"  {share(rx):5.1f} %  {name}")'
echo "top functions by self cost:"
callgrind_annotate "$W/fb.cg" 2>/dev/null | grep -E '^ *[0-9,]+ +\(' | head -n 15
