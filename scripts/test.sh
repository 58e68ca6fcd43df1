#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the real peers the tests talk to when
# they are missing (each scripts/setup-*.sh is idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
for setup in scripts/setup-*.sh; do
    "$setup"
done
cargo test --locked "$@"
