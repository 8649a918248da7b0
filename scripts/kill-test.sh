#!/usr/bin/env bash
# The full kill test: 200 SIGKILLs at random times of `pgolf compress` and of checkpoint saving
# (`pgolf decompress`), and as many SIGINTs (compress) and SIGTERMs (decompress), each followed by a
# check that the output is the old file or the complete new one, and after SIGINT or SIGTERM that no
# temporary is left (tests/cli/kill_test.cpp; the test suite runs 5 of each); and pgolf train
# interrupted by SIGINT and SIGTERM, whose saved state resumes to a straight run's losses. Usage: scripts/kill-test.sh [KILLS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${2:-build}"
cmake --build "$build_dir" -j"$(nproc)" --target test_cli pgolf
PGOLF_KILLS="${1:-200}" "$build_dir/tests/test_cli" --gtest_filter='KillTest.*:CliTrain.AnInterruptedRun*'
