#!/usr/bin/env bash
# The one script for the GPU machine: builds pgolf with CUDA for the H200 (sm_90) into build-gpu,
# runs the GPU tests (printing their numbers) and every other test, then times the GPU eval of
# samples/base9 on the full val split and profiles one batch of it. Logs go to $OUT (else build-gpu/logs).
#   here, once:  scripts/gpu.sh prepare   (devdata: the full val shard, the tokenizer, liblzma-dev)
#   there:       scripts/gpu.sh           (the device tool's run, with carry ["devdata"])
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == prepare ]]; then
  set -e
  mkdir -p devdata/sp1024
  xz -dc ../shared/data/sp1024/corpus_val_000000.bin.xz > devdata/sp1024/corpus_val_000000.bin
  cp samples/sp1024/corpus_1024_bpe.model devdata/sp1024/
  # The GPU machine has no liblzma headers and nothing can be installed there: carry Debian's
  # liblzma-dev headers and static library, found through a pkg-config file of its own.
  deb=$(mktemp -d)
  (cd "$deb" && apt-get download -q liblzma-dev && dpkg -x liblzma-dev_*.deb .)
  rm -rf devdata/liblzma && mkdir -p devdata/liblzma/lib/pkgconfig
  cp -r "$deb/usr/include" devdata/liblzma/
  cp "$deb/usr/lib/x86_64-linux-gnu/liblzma.a" devdata/liblzma/lib/
  version=$(sed -n 's/^Version: //p' "$deb/usr/lib/x86_64-linux-gnu/pkgconfig/liblzma.pc")
  printf '%s\n' 'prefix=${pcfiledir}/../..' 'Name: liblzma' 'Description: carried liblzma-dev (static)' \
    "Version: $version" 'Cflags: -I${prefix}/include' 'Libs: -L${prefix}/lib -llzma' > devdata/liblzma/lib/pkgconfig/liblzma.pc
  rm -rf "$deb"
  exit 0
fi

if ! command -v nvcc > /dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
pkg-config --exists liblzma || export PKG_CONFIG_PATH="$PWD/devdata/liblzma/lib/pkgconfig:${PKG_CONFIG_PATH:-}"
logs=${OUT:-build-gpu/logs}
mkdir -p "$logs"
failed=()
step() { echo "== $1 ($(date +%T))"; }

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit --format=csv | tee "$logs/gpu.txt"

step "build pgolf and the GPU tests"
if ! { cmake -S . -B build-gpu -DPGOLF_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DPGOLF_BENCH=OFF &&
       cmake --build build-gpu -j16 --target pgolf test_kernels; } > "$logs/build.log" 2>&1; then
  grep -E -A5 "error|Error" "$logs/build.log" | head -80
  exit 1
fi

step "GPU tests: kernels and whole forward against the CPU reference"
build-gpu/tests/test_kernels 2>&1 | tee "$logs/test_kernels.log" || failed+=(test_kernels)

step "eval: base9 on the full val split, on the GPU"
start=$(date +%s.%N)
build-gpu/cli/pgolf eval samples/base9 --data devdata/sp1024 --device cuda 2>&1 | tee "$logs/eval.txt" ||
  failed+=(eval)
awk -v start="$start" -v end="$(date +%s.%N)" 'BEGIN { printf "wall seconds, loading and GPU set-up included: %.2f\n", end - start }'

if command -v ncu > /dev/null; then
  step "kernel times of one batch of 64 x 1024 tokens (ncu)"
  timeout 180 ncu --clock-control none --metrics gpu__time_duration.sum --print-kernel-base function --csv --log-file "$logs/ncu.csv" \
    build-gpu/cli/pgolf eval samples/base9 --data devdata/sp1024 --device cuda --tokens 65536 > /dev/null 2>&1 &&
    python3 - "$logs/ncu.csv" <<'EOF' || echo "ncu profile failed"
import csv, sys, collections
seconds = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0}
total, count = collections.Counter(), collections.Counter()
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 14]
header = rows[0]
name, unit, value = header.index("Kernel Name"), header.index("Metric Unit"), header.index("Metric Value")
for r in rows[1:]:
    kernel = r[name].split("(")[0].split("<")[0][:60]
    total[kernel] += float(r[value].replace(",", "")) * seconds[r[unit]]
    count[kernel] += 1
all_ms = 1e3 * sum(total.values())
print(f"{'kernel':60} {'launches':>8} {'ms':>9} {'share':>6}")
for kernel, t in total.most_common():
    print(f"{kernel:60} {count[kernel]:8d} {1e3 * t:9.3f} {100 * t * 1e3 / all_ms:5.1f}%")
print(f"{'all kernels of one batch':60} {sum(count.values()):8d} {all_ms:9.3f}")
EOF
fi

step "build the rest, then every test (ctest)"
if cmake --build build-gpu -j16 >> "$logs/build.log" 2>&1; then
  ctest --test-dir build-gpu --output-on-failure -j16 --timeout 300 > "$logs/ctest.log" 2>&1 || failed+=(ctest)
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\(Skipped\)|\*\*\*" "$logs/ctest.log" | tail -40
else
  grep -E -A5 "error" "$logs/build.log" | head -40
  failed+=(build-of-other-tests)
fi

step summary
grep -E "^\s+(device|[a-z_]+.*relative error|tiny|stride|base9)" "$logs/test_kernels.log"
grep -E "^\[  (PASSED|FAILED|SKIPPED)" "$logs/test_kernels.log"
grep -E "^(device|val_loss|val_bpb|tokens|bytes|seconds)" "$logs/eval.txt"
awk '/^val_bpb/ { d = $2 - 1.04512; printf "val_bpb - 1.04512 = %+.6f (%s)\n", d, (d < 0.001 && d > -0.001) ? "within 0.001" : "OFF" }' \
  "$logs/eval.txt"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all passed"
