#!/usr/bin/env bash
# setup-prometheus.sh: install `promtool` (Debian package `prometheus`), with which the tests
# check the alerting rules in deploy/prometheus/. Idempotent: apt-get runs only when promtool
# is missing. The system Prometheus service is never started or enabled.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "setup-prometheus: promtool already installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-prometheus: promtool is missing and apt-get is not available; install Prometheus's promtool by hand" >&2
  exit 1
fi

sudo_cmd=()
if ((EUID != 0)); then
  sudo_cmd=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
# Keep the package's maintainer scripts from starting the system daemon.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod 755 "$policy"
  created_policy=1
fi
cleanup() {
  if ((created_policy)); then
    "${sudo_cmd[@]}" rm -f "$policy"
  fi
}
trap cleanup EXIT

# Fresh package lists: stale ones can name versions the mirror no longer serves.
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends prometheus
echo "setup-prometheus: installed prometheus (promtool)"
