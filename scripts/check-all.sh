#!/usr/bin/env bash
# Builds pgolf with AddressSanitizer + UndefinedBehaviorSanitizer and runs the whole CPU test suite
# under it (GPU tests skip themselves without a GPU). Any sanitizer report aborts the test that hit it.
# Usage: scripts/check-all.sh [BUILD_DIR] [JOBS]   (defaults: build-asan, nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build-asan}"
jobs="${2:-$(nproc)}"
start=$(date +%s)
# Packages as in scripts/setup.sh (run it first on a fresh machine).
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGOLF_SANITIZE=address,undefined \
  -DPGOLF_CUDA=OFF -DPGOLF_NATIVE=OFF >/dev/null
cmake --build "$build_dir" -j"$jobs"
built=$(date +%s)
# halt_on_error: the first report fails the test; detect_leaks: leaks count as failures too.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" --timeout 1800
echo "check-all: build $((built - start)) s, tests $(($(date +%s) - built)) s"
