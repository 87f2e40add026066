#!/usr/bin/env bash
# factorybench's PostgreSQL client vs pgbench on the same server, same schema, same table size and
# a comparable transaction mix (closed loop, C clients, prepared statements, one statement per
# transaction): select 70 %, insert 10 %, update 15 %, delete 5 % by primary key.
#   pgbench: custom scripts weighted with @70/@10/@15/@5, -M prepared, ids random(1, ROWS)
#   factorybench: service_type database with the same operation_mix (plain insert, batch 1)
# Each round runs pgbench with every thread count of THREADS (-j J) and factorybench with as many
# client threads (client_threads: J), alternating. Prints both TPS and the ratio, then per-kind throughput of the S3 (moto, and
# the strict SeaweedFS server when running) and ChromaDB clients (no peer tool: figures only, with recall@k for ChromaDB).
# Needs the servers of scripts/test-env.sh (postgres, s3, chroma) and a release build:
#   CARGO_TARGET_DIR=/work/target-release cargo build --release
# Usage: [THREADS="1 2"] [KINDS=0] bench/pgbench.sh [CLIENTS=8] [SECONDS=20] [ROWS=100000] [REPEAT=3]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib-machine.sh
source bench/lib-machine.sh
C=${1:-8}; T=${2:-20}; ROWS=${3:-100000}; REPEAT=${4:-3}
THREADS=${THREADS:-1 2}
STATE=${FB_TEST_STATE:-/tmp/factorybench-test}
FB_BIN=${FB_BIN:-/work/target-release/release/factorybench}
[ -x "$FB_BIN" ] || FB_BIN="$PWD/target/release/factorybench"
[ -x "$FB_BIN" ] || { echo "build factorybench --release first" >&2; exit 1; }
set -a; . "$STATE/postgres.env"; . "$STATE/s3.env"; . "$STATE/chroma.env"; set +a
export PGPASSWORD=$FB_TEST_PG_PASSWORD PGHOST=$FB_TEST_PG_HOST PGPORT=$FB_TEST_PG_PORT \
  PGUSER=$FB_TEST_PG_USER PGDATABASE=$FB_TEST_PG_DB
work=$(mktemp -d /tmp/fb-bench-pg-XXXXXX)
trap 'rm -rf "$work"; psql -qAt -c "DROP TABLE IF EXISTS fb_pgbench" >/dev/null 2>&1 || true' EXIT
py() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][0]; print($1)" "$2"; }

# --- pgbench: the same schema and seed as the factorybench client (src/runner/clients/postgres.rs)
# fresh_table: pgbench's table as factorybench's setup leaves its own before every run (the
# mix deletes 5 % of its transactions' rows and inserts others: a table reused across rounds
# would give pgbench more and more selects, updates and deletes of missing rows, which cost
# the server less than factorybench's on its freshly seeded table).
fresh_table() {
psql -qAt -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS fb_pgbench;
CREATE TABLE fb_pgbench (id bigserial PRIMARY KEY, k integer NOT NULL, payload text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO fb_pgbench (k, payload) SELECT (g * 7919) % 1000000,
  rpad(md5(g::text), 100, md5((g + 1)::text)) FROM generate_series(1::bigint, $ROWS::bigint) g;
ANALYZE fb_pgbench;
SQL
}
P=$(printf 'p%.0s' $(seq 100))
cat > "$work/select.sql" <<S
\set id random(1, $ROWS)
SELECT id, k, payload, updated_at FROM fb_pgbench WHERE id = :id;
S
cat > "$work/insert.sql" <<S
\set k random(0, 999999)
INSERT INTO fb_pgbench (k, payload) VALUES (:k, '$P');
S
cat > "$work/update.sql" <<S
\set id random(1, $ROWS)
\set k random(0, 999999)
UPDATE fb_pgbench SET k = :k, payload = '$P', updated_at = now() WHERE id = :id;
S
cat > "$work/delete.sql" <<S
\set id random(1, $ROWS)
DELETE FROM fb_pgbench WHERE id = :id;
S
# --- factorybench: the same mix, clients and duration
cat > "$work/pg.yml" <<Y
benchmark: {name: pgbench comparison}
global: {metrics_db: "$work/pg.db"}
services:
  - service_name: pg
    service_type: database
    runtime: external
    host: "$FB_TEST_PG_HOST"
    port: $FB_TEST_PG_PORT
    database: "$FB_TEST_PG_DB"
    user: "$FB_TEST_PG_USER"
    password_env: FB_TEST_PG_PASSWORD
    table_name: fb_bench_pg
    seed_rows: $ROWS
    batch_size: 1
    operation_mix: {select: 0.7, insert: 0.1, update: 0.15, delete: 0.05}
    client_count: $C
    requests_per_second: 0
    arrival: closed
    warmup: 2
    duration: $T
    timeout: 10
Y
echo "PostgreSQL 15, $C clients, ${T}s, $ROWS rows, mix select 70 / insert 10 / update 15 / delete 5,"
echo "$REPEAT alternating rounds (run-to-run noise on a shared 2-core machine is about ±10 %)."
echo "CPU per transaction: each tool's whole process (user + system), from its rusage; steal: the"
echo "share of the VM's CPU time the host took during that tool's run (bench/lib-machine.sh)."
# cpu_us_per_tx TIMEFILE TX: user+system µs per transaction from /usr/bin/time's "%U %S".
cpu_us_per_tx() { python3 -c "import sys; u,s=map(float,open(sys.argv[1]).read().split()[-2:]); print(f'{(u+s)*1e6/float(sys.argv[2]):.1f}')" "$1" "$2"; }
declare -A ratios
# run_pgbench J / run_fb J: one timed run of each tool (pgbench on a fresh table; factorybench
# seeds its own). A CHECKPOINT before each (when the user may) keeps one tool's table load from
# being written out during the other's run.
checkpoint() { psql -qAt -c CHECKPOINT >/dev/null 2>&1 || true; }
run_pgbench() {
    fresh_table; checkpoint
    local m; m="$(cpu_mark)"
    /usr/bin/time -f "%U %S" -o "$work/pgbench.time" pgbench -n -M prepared -c "$C" -j "$1" -T "$T" \
      -f "$work/select.sql@70" -f "$work/insert.sql@10" -f "$work/update.sql@15" -f "$work/delete.sql@5" \
      > "$work/pgbench.out" 2>&1
    PG_STEAL=$(steal_since "$m")
    PG_TPS=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench.out")
    PG_LAT=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$work/pgbench.out")
    PG_TX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.out")
    PG_CPU=$(cpu_us_per_tx "$work/pgbench.time" "$PG_TX")
}
run_fb() {
    # A fresh campaign file each run: a file that keeps every round's runs rebuilds its request
    # index over all of them at the end, which the CPU per transaction would count.
    rm -f "$work"/pg.db*
    checkpoint
    local m; m="$(cpu_mark)"
    sed "s/^    timeout: 10$/    timeout: 10\n    client_threads: $1/" "$work/pg.yml" > "$work/pg-j.yml"
    /usr/bin/time -f "%U %S" -o "$work/fb.time" "$FB_BIN" run "$work/pg-j.yml" --json --no-progress > "$work/pg.json" 2> "$work/pg.err" || { cat "$work/pg.err" >&2; exit 1; }
    FB_STEAL=$(steal_since "$m")
    FB_TPS=$(py 'round(r["ops_per_s"], 1)' "$work/pg.json")
    FB_P50=$(py 'r["latency_uncorrected_ms"]["p50"]' "$work/pg.json")
    FB_ERR=$(py 'r["errors"]' "$work/pg.json")
    FB_TX=$(py 'r["requests"] + r["warmup_requests"]' "$work/pg.json")
    FB_CPU=$(cpu_us_per_tx "$work/fb.time" "$FB_TX")
}
# Odd rounds run pgbench first, even rounds factorybench first: a machine that drifts during
# a series favours neither side.
for round in $(seq "$REPEAT"); do
  for J in $THREADS; do
    if (( round % 2 )); then run_pgbench "$J"; run_fb "$J"; else run_fb "$J"; run_pgbench "$J"; fi
    R=$(python3 -c "print(f'{$FB_TPS/$PG_TPS:.3f}')")
    ratios[$J]="${ratios[$J]:-} $R"
    echo "  round $round, $J thread(s): pgbench -j $J ${PG_TPS%.*} tps (latency avg ${PG_LAT} ms, ${PG_CPU} µs CPU/tx, steal ${PG_STEAL} %), factorybench ${FB_TPS%.*} tps (p50 ${FB_P50} ms, errors ${FB_ERR}, ${FB_CPU} µs CPU/tx, steal ${FB_STEAL} %), ratio $R"
  done
done
for J in $THREADS; do
  # shellcheck disable=SC2086  # the ratios are words
  python3 -c "import statistics,sys; r=[float(x) for x in sys.argv[2:]]; print(f'  {sys.argv[1]} thread(s): ratio factorybench/pgbench median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}; goal >= 1.0)')" "$J" ${ratios[$J]}
done

# KINDS=0: the PostgreSQL comparison only.
[ "${KINDS:-1}" = 1 ] || exit 0
# --- S3 (moto) and ChromaDB: per-kind throughput of the same binary
# s3_service NAME ENV_PREFIX MIX SIZES: a closed-loop S3 service on the server of ENV_PREFIX.
s3_service() {
  local url_var="${2}_URL"
  cat <<Y
  - service_name: $1
    service_type: s3
    runtime: external
    endpoint_url: "${!url_var}"
    access_key_env: ${2}_ACCESS_KEY
    secret_key_env: ${2}_SECRET_KEY
    bucket_name: fb-bench
    operation_mix: $3
    object_sizes: $4
    client_count: 4
    requests_per_second: 0
    arrival: closed
    warmup: 2
    duration: $T
Y
}
{
  printf 'benchmark: {name: data kinds throughput}\nglobal: {metrics_db: "%s"}\nservices:\n' "$work/kinds.db"
  s3_service s3-small FB_TEST_S3 '{put: 0.3, get: 0.6, list: 0.05, delete: 0.05}' '{"4KB": 1}'
  s3_service s3-1mb FB_TEST_S3 '{put: 0.5, get: 0.5}' '{"1MB": 1}'
  cat <<Y
  - service_name: chroma-384
    service_type: vectordb
    backend: chromadb
    runtime: external
    service_url: "$FB_TEST_CHROMA_URL"
    collection_name: fb_bench
    dimension: 384
    dataset_size: 10000
    recall_queries: 100
    search_k: 10
    batch_size: 10
    operation_mix: {insert: 0.1, search: 0.9}
    client_count: 4
    requests_per_second: 0
    arrival: closed
    warmup: 2
    duration: $T
Y
  # SeaweedFS (scripts/start-s3s.sh) checks every signature: the same 4 KiB mix against it.
  if [ -s "$STATE/s3s.env" ]; then
    set -a; . "$STATE/s3s.env"; set +a
    s3_service s3s-small FB_TEST_S3S '{put: 0.3, get: 0.6, list: 0.05, delete: 0.05}' '{"4KB": 1}'
  fi
} > "$work/kinds.yml"
"$FB_BIN" run "$work/kinds.yml" --sequential --json --no-progress > "$work/kinds.json" 2> "$work/kinds.err" || { cat "$work/kinds.err" >&2; exit 1; }
python3 - "$work/kinds.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["runs"]:
    lat = r.get("latency_uncorrected_ms") or {}
    extra = f", recall@{r.get('recall_k') or 0:.0f} {r['recall_at_k']:.3f}" if r.get("recall_at_k") is not None else ""
    print(f"  {r['service']:<11} {r['ops_per_s']:8.1f} ops/s {r['mb_per_s']:8.2f} MB/s  p50 {lat.get('p50', 0):.2f} ms p99 {lat.get('p99', 0):.2f} ms  errors {r['errors']}{extra}")
PY
