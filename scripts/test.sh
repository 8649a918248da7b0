#!/usr/bin/env bash
# Sets up like scripts/setup.sh, then runs every test (GPU tests skip themselves without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
