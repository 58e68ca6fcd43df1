# apt-install.sh: sourced by the scripts/setup-*.sh that install Debian packages.
#
# apt_install NAME PACKAGE...: installs the PACKAGEs that are missing, as root or through sudo,
# with fresh package lists and without starting any daemon a package ships (a temporary
# policy-rc.d refuses every start). Refuses, naming them, to go on when the install would
# remove other packages (e.g. another syslog daemon). NAME prefixes every message.

apt_package_installed() {
  dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null | grep -qx installed
}

apt_install() {
  local name=$1
  shift
  local missing=() package
  for package in "$@"; do
    apt_package_installed "$package" || missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    echo "$name: $* already installed"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$name: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
    return 1
  fi
  local sudo_cmd=()
  if ((EUID != 0)); then
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' maintainer scripts from starting their system daemons.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod 755 "$policy"
    created_policy=1
  fi
  local status=0
  # Fresh package lists: stale ones can name versions the mirror no longer serves.
  "${sudo_cmd[@]}" apt-get update -qq || status=$?
  if ((status == 0)) && apt-get install -s --no-install-recommends "${missing[@]}" | grep -q '^Remv'; then
    echo "$name: installing ${missing[*]} would remove other packages:" >&2
    apt-get install -s --no-install-recommends "${missing[@]}" | grep '^Remv' >&2
    echo "$name: install ${missing[*]} by hand or in a separate environment" >&2
    status=1
  fi
  if ((status == 0)); then
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}" || status=$?
  fi
  if ((created_policy)); then
    "${sudo_cmd[@]}" rm -f "$policy"
  fi
  if ((status == 0)); then
    echo "$name: installed ${missing[*]}"
  fi
  return "$status"
}
