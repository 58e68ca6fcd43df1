#!/usr/bin/env bash
# setup-tmux.sh: install tmux, the real terminal in which the tests drive `siem-forwarder top`
# (send-keys, capture-pane). Idempotent: apt-get runs only when tmux is missing.
set -euo pipefail

if command -v tmux >/dev/null 2>&1; then
  echo "setup-tmux: tmux already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-tmux: tmux is missing and apt-get is not available; install it by hand" >&2
  exit 1
fi
sudo_cmd=()
if ((EUID != 0)); then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends tmux
echo "setup-tmux: installed tmux"
