#!/usr/bin/env bash
# setup-rsyslog.sh: install what the syslog integration tests need (rsyslogd with its GnuTLS and
# OpenSSL stream drivers). Idempotent: apt-get runs only for packages that are missing. The
# system rsyslog service is never started or enabled; the tests start private rsyslogd processes
# with their own configuration on loopback ports.
set -euo pipefail

packages=(rsyslog rsyslog-gnutls rsyslog-openssl)

is_installed() {
  dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null | grep -qx installed
}

missing=()
for package in "${packages[@]}"; do
  is_installed "$package" || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  echo "setup-rsyslog: ${packages[*]} already installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-rsyslog: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
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
# rsyslog conflicts with other syslog daemons; never remove one behind the user's back.
if apt-get install -s --no-install-recommends "${missing[@]}" | grep -q '^Remv'; then
  echo "setup-rsyslog: installing ${missing[*]} would remove other packages (another syslog daemon?):" >&2
  apt-get install -s --no-install-recommends "${missing[@]}" | grep '^Remv' >&2
  echo "setup-rsyslog: install rsyslog by hand or in a separate environment" >&2
  exit 1
fi
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
echo "setup-rsyslog: installed ${missing[*]}"
