#!/usr/bin/env bash
# All runner benchmarks, shortest settings first. RSS_DUR shortens the memory run.
set -euo pipefail
B="$(dirname "$0")"
bash "$B/writer-rows.sh"
bash "$B/http-vs-wrk.sh"
bash "$B/file-vs-fio.sh"
bash "$B/open-loop-accuracy.sh"
bash "$B/coordinated-omission.sh"
DUR="${RSS_DUR:-600}" bash "$B/rss.sh"
