#!/usr/bin/env bash
# setup-prometheus.sh: install `promtool` (Debian package `prometheus`), with which the tests
# check the alerting rules in deploy/prometheus/. Idempotent: apt-get runs only when promtool
# is missing. The system Prometheus service is never started or enabled.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  echo "setup-prometheus: promtool already installed"
  exit 0
fi
source "$(dirname "$0")/lib/apt-install.sh"
apt_install setup-prometheus prometheus
