#!/usr/bin/env bash
# Creates .venv/sls-sdk with the official Alibaba Cloud Log Service Python SDK, used by the
# tests as an independent client of the local server. Idempotent: does nothing when present.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv/sls-sdk"
version="0.9.52"
if "$venv/bin/python" -c "import aliyun.log, sys; sys.exit(0)" 2>/dev/null; then
    exit 0
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
    echo "setup-python-sdk: $python not found; install Python 3 (e.g. apt-get install -y python3 python3-venv)" >&2
    exit 1
fi
echo "setup-python-sdk: creating $venv with aliyun-log-python-sdk==$version" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "aliyun-log-python-sdk==$version"
"$venv/bin/python" -c "import aliyun.log" 
