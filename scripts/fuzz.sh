#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*.cpp) with clang under ASan + UBSan and runs each for SECONDS
# (or until RUNS executions, whichever comes first), one after the other, starting from the seed corpus in fuzz/corpus/<target>/ (what a run finds is
# kept in BUILD_DIR/corpus/, not in the repo). Prints executions per target; stops at the first crash,
# whose reproducer libFuzzer writes into BUILD_DIR/crashes/.
# Usage: scripts/fuzz.sh SECONDS [TARGET...]   (env: BUILD_DIR=build-fuzz, JOBS=nproc, RUNS=unlimited)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
build_dir="${BUILD_DIR:-build-fuzz}"

# clang and libFuzzer's runtime are Debian packages; the normal build does not need them.
missing=()
for p in clang libclang-rt-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B "$build_dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPGOLF_FUZZ=ON -DPGOLF_SANITIZE=address,undefined -DPGOLF_CUDA=OFF -DPGOLF_TESTS=OFF -DPGOLF_BENCH=OFF >/dev/null
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in fuzz/*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
cmake --build "$build_dir" -j"${JOBS:-$(nproc)}" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The targets hand their input to the readers as a file; keep it in memory where there is a tmpfs.
[ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
mkdir -p "$build_dir/crashes"
for t in "${targets[@]}"; do
  corpus="$build_dir/corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  # rss/malloc limits: a few KB of input must never need more than 1 GiB.
  "$build_dir/fuzz/fuzz_$t" "$corpus" "${seeds[@]}" -max_total_time="$seconds" -runs="${RUNS:--1}" -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -max_len=65536 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$build_dir/crashes/$t-" >"$build_dir/fuzz-$t.log" 2>&1 ||
    { tail -40 "$build_dir/fuzz-$t.log"; echo "fuzz: $t FAILED (log: $build_dir/fuzz-$t.log)"; exit 1; }
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build_dir/fuzz-$t.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$build_dir/fuzz-$t.log")
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$build_dir/fuzz-$t.log")
  echo "fuzz: $t: $runs executions in ${took:-$seconds} s ($rate/s), no crash"
done
