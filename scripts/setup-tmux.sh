#!/usr/bin/env bash
# setup-tmux.sh: install tmux, the real terminal in which the tests drive `siem-forwarder top`
# (send-keys, capture-pane). Idempotent: apt-get runs only when tmux is missing.
set -euo pipefail
if command -v tmux >/dev/null 2>&1; then
  echo "setup-tmux: tmux already installed"
  exit 0
fi
source "$(dirname "$0")/lib/apt-install.sh"
apt_install setup-tmux tmux
