#!/usr/bin/env bash
# Report time for a campaign of N request rows (default 10 million), factorybench vs the sqlite3
# CLI computing only count + p50/p99/max of corrected latency per run with SQL window functions
# (the SQL a user would otherwise write). Prints both times and the ratio.
#   CARGO_TARGET_DIR=/work/target-release cargo build --release
#   bench/report_10m.sh [ROWS] [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
dir=${2:-/tmp/fb-report-$rows}
bin=${FB_BIN:-${CARGO_TARGET_DIR:-/work/target-release}/release/factorybench}
[ -x "$bin" ] || { echo "build first: CARGO_TARGET_DIR=/work/target-release cargo build --release" >&2; exit 1; }
if [ ! -d "$dir/runs" ]; then
  echo "generating $rows rows into $dir ..." >&2
  python3 bench/gen_campaign.py "$dir" "$rows" --llm-share 0.05 >&2
fi
n=0; for f in "$dir"/runs/*.db; do n=$((n + $(sqlite3 "$f" 'SELECT count(*) FROM requests'))); done
echo "campaign: $dir, $n request rows in $(ls "$dir"/runs/*.db | wc -l) files, $(du -sh "$dir/runs" | cut -f1)"
# Warm the page cache for both tools alike.
cat "$dir"/runs/*.db > /dev/null
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1 || true; e=$(date +%s.%N); echo "$e - $s" | bc; }
for fmt in json html csv prom; do
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%e %M' -o /tmp/fb-bench-time "$bin" report "$dir" --format "$fmt" --out "/tmp/fb-bench-report.$fmt" 2>/dev/null || true
    read -r sec kb < /tmp/fb-bench-time
    printf 'factorybench report --format %-4s %6.2f s  max RSS %d MB\n' "$fmt" "$sec" "$((kb / 1024))"
  else
    printf 'factorybench report --format %-4s %6.2f s\n' "$fmt" "$(t "$bin" report "$dir" --format "$fmt" --out "/tmp/fb-bench-report.$fmt")"
  fi
done
fb=$(t "$bin" report "$dir" --format json --out /tmp/fb-bench-report.json)
sql='WITH m AS (SELECT run_id, done_ns - scheduled_ns AS lat FROM requests WHERE warmup = 0 AND ok = 1),
r AS (SELECT run_id, lat, ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY lat) AS rn,
      COUNT(*) OVER (PARTITION BY run_id) AS n FROM m)
SELECT run_id, n, MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN lat END),
       MAX(CASE WHEN rn = (n * 99 + 99) / 100 THEN lat END), MAX(lat) FROM r GROUP BY run_id;'
s=$(date +%s.%N)
for f in "$dir"/runs/*.db; do sqlite3 "$f" "$sql" > /dev/null; done
e=$(date +%s.%N)
peer=$(echo "$e - $s" | bc)
printf 'factorybench report (json, every figure):       %6.2f s\n' "$fb"
printf 'sqlite3 CLI (count, p50, p99, max per run only): %6.2f s\n' "$peer"
printf 'ratio factorybench / sqlite3: %.2f\n' "$(echo "$fb / $peer" | bc -l)"
