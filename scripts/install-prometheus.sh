#!/usr/bin/env bash
# Install Prometheus, the Pushgateway and Alertmanager (Debian packages: Prometheus 2.42,
# Pushgateway 1.5.1, Alertmanager 0.25).
# The packages' init scripts are not used (no systemd here): scripts/start-prometheus.sh runs both
# as plain background processes on 127.0.0.1; the monitoring job's host runtime runs the same binaries.
. "$(dirname "$0")/lib.sh"
apt_install prometheus prometheus-pushgateway prometheus-alertmanager curl
command -v prometheus >/dev/null
command -v prometheus-pushgateway >/dev/null
command -v prometheus-alertmanager >/dev/null
