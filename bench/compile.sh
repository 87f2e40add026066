#!/usr/bin/env bash
# Compile time of the comprehensive recipe (7 services, every kind): `factorybench compile`
# (parse + validate + render 7 scripts + generate secrets + write the campaign atomically)
# against `factorybench validate` of the same recipe (parse + validate only, same process
# start-up) as the peer, printing the ratio. Goal: compile well under 50 ms.
# Usage: bench/compile.sh [RECIPE]. Needs hyperfine (apt) and a release build:
#   CARGO_TARGET_DIR=/work/target-release cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${1:-recipes/comprehensive.yml}
FB=${FB_BIN:-/work/target-release/release/factorybench}
[ -x "$FB" ] || FB=target/release/factorybench
[ -x "$FB" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
work=$(mktemp -d /tmp/fb-bench-compile-XXXXXX)
trap 'rm -rf "$work"' EXIT
hyperfine --warmup 5 --runs 100 -N --export-json "$work/h.json" \
  --prepare "rm -rf $work/camp" \
  -n compile "$FB -q compile $RECIPE --out $work/camp" \
  -n validate "$FB -q validate $RECIPE" >&2
python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
c, v = r["compile"], r["validate"]
print(f"compile  mean {c['mean']*1e3:.2f} ms ± {c['stddev']*1e3:.2f} (min {c['min']*1e3:.2f}, max {c['max']*1e3:.2f})")
print(f"validate mean {v['mean']*1e3:.2f} ms ± {v['stddev']*1e3:.2f} (peer: parse + validate only)")
print(f"ratio compile/validate = {c['mean']/v['mean']:.2f}; render+write = {(c['mean']-v['mean'])*1e3:.2f} ms")
PY
