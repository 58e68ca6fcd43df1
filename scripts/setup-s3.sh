#!/usr/bin/env bash
# Creates .venv/s3 with moto (an independent Python implementation of the S3 REST API), boto3,
# python-snappy, lz4, zstandard, pyarrow and duckdb, used by the object storage tests as a real
# S3-compatible server and as an S3 client, decompressors and Parquet/CSV readers that read back
# what the archive sink wrote. Idempotent: does nothing when present.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv/s3"
packages=("moto[server]==5.2.5" "python-snappy==0.7.3" "lz4==4.4.5" "zstandard==0.25.0"
    "pyarrow==26.0.1" "duckdb==2.0.1")
imports="import moto.server, boto3, snappy, lz4.frame, zstandard, pyarrow.parquet, duckdb"
if "$venv/bin/python" -c "$imports" 2>/dev/null; then
    exit 0
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
    echo "setup-s3: $python not found; install Python 3 (e.g. apt-get install -y python3 python3-venv)" >&2
    exit 1
fi
echo "setup-s3: creating $venv with ${packages[*]}" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
"$venv/bin/python" -c "$imports"
