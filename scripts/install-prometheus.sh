#!/usr/bin/env bash
# Install Prometheus and the Pushgateway (Debian packages: Prometheus 2.42, Pushgateway 1.5.1).
# The packages' init scripts are not used (no systemd here): scripts/start-prometheus.sh runs both
# as plain background processes on 127.0.0.1.
. "$(dirname "$0")/lib.sh"
apt_install prometheus prometheus-pushgateway curl
command -v prometheus >/dev/null
command -v prometheus-pushgateway >/dev/null
