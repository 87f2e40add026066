#!/usr/bin/env bash
# Start a throwaway Prometheus (127.0.0.1:19090) scraping a Pushgateway (127.0.0.1:19091) every
# second and sending its alerts to an Alertmanager (127.0.0.1:19093), each with its own storage
# under $FB_TEST_STATE/prometheus, then write prometheus.env.
# Uses the project's own monitoring/prometheus.yml with the Pushgateway target substituted.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
PROM_PORT="${FB_PROM_PORT:-19090}"
PGW_PORT="${FB_PGW_PORT:-19091}"
AM_PORT="${FB_AM_PORT:-19093}"
dir="$FB_TEST_STATE/prometheus"
mkdir -p "$dir/data"
# The servers' working directory must outlive them (not the checkout, which CI may delete).
cd "$dir" || exit 1

up() { curl -fsS "http://127.0.0.1:$1$2" >/dev/null 2>&1; }

if ! up "$PGW_PORT" /-/ready; then
  log "starting Pushgateway on 127.0.0.1:$PGW_PORT"
  nohup prometheus-pushgateway --web.listen-address="127.0.0.1:$PGW_PORT" >"$dir/pushgateway.log" 2>&1 &
  echo $! >"$dir/pushgateway.pid"
fi
if ! up "$AM_PORT" /-/ready; then
  # No receivers: tests that need one start a stack of their own (tests/it/monitor_alerts.rs).
  mkdir -p "$dir/alertmanager-data"
  printf 'route:\n  receiver: none\nreceivers:\n  - name: none\n' >"$dir/alertmanager.yml"
  log "starting Alertmanager on 127.0.0.1:$AM_PORT"
  nohup prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path="$dir/alertmanager-data" \
    --cluster.listen-address= --web.listen-address="127.0.0.1:$AM_PORT" >"$dir/alertmanager.log" 2>&1 &
  echo $! >"$dir/alertmanager.pid"
fi
if ! up "$PROM_PORT" /-/ready; then
  # The same file the monitoring job uses, with a 1 s scrape interval for tests.
  # This shared test Pushgateway runs without auth (tests/monitor_stack.rs and monitor_slurm.rs
  # start authenticated stacks of their own); the scrape's credentials are simply not checked.
  [ -s "$dir/pushgateway-password" ] || (umask 077; echo unused >"$dir/pushgateway-password")
  sed -e "s/__PUSHGATEWAY__/127.0.0.1:$PGW_PORT/" -e "s/__SCRAPE_INTERVAL__/1s/" \
    -e "s|__PUSHGATEWAY_PASSWORD_FILE__|$dir/pushgateway-password|" \
    -e "s/__ALERTMANAGER__/127.0.0.1:$AM_PORT/" -e "s|__ALERTMANAGER_PASSWORD_FILE__|$dir/pushgateway-password|" \
    "$root/monitoring/prometheus.yml" >"$dir/prometheus.yml"
  cp "$root/monitoring/alerts.yml" "$dir/alerts.yml"
  log "starting Prometheus on 127.0.0.1:$PROM_PORT"
  nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-lifecycle >"$dir/prometheus.log" 2>&1 &
  echo $! >"$dir/prometheus.pid"
fi
wait_for "Pushgateway" 30 up "$PGW_PORT" /-/ready
wait_for "Alertmanager" 30 up "$AM_PORT" /-/ready
wait_for "Prometheus" 60 up "$PROM_PORT" /-/ready
write_env prometheus \
  "FB_TEST_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT" \
  "FB_TEST_PUSHGATEWAY_URL=http://127.0.0.1:$PGW_PORT" \
  "FB_TEST_ALERTMANAGER_URL=http://127.0.0.1:$AM_PORT"
log "Prometheus http://127.0.0.1:$PROM_PORT, Pushgateway http://127.0.0.1:$PGW_PORT"
