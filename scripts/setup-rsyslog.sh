#!/usr/bin/env bash
# setup-rsyslog.sh: install what the syslog integration tests need (rsyslogd with its GnuTLS and
# OpenSSL stream drivers). Idempotent: apt-get runs only for packages that are missing. The
# system rsyslog service is never started or enabled; the tests start private rsyslogd processes
# with their own configuration on loopback ports. rsyslog conflicts with other syslog daemons:
# an install that would remove one is refused.
set -euo pipefail
source "$(dirname "$0")/lib/apt-install.sh"
apt_install setup-rsyslog rsyslog rsyslog-gnutls rsyslog-openssl
