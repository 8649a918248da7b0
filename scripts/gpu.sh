#!/usr/bin/env bash
# The one script for the GPU machine: builds pgolf with CUDA for the H200 (sm_90) into build-gpu,
# runs the GPU tests (printing their numbers) and every other test, then times the GPU eval of
# samples/base9 on the full val split and profiles one batch of it. Logs go to $OUT (else build-gpu/logs).
#   here, once:  scripts/gpu.sh prepare   (devdata: the full val shard, the tokenizer, liblzma-dev)
#   there:       scripts/gpu.sh           (the device tool's run, with carry ["devdata"])
#                scripts/gpu.sh rd        (only val_bpb against bytes: the sweep, sensitivity, --auto)
#                scripts/gpu.sh train     (only the trainer: its GPU tests and throughput runs at the
#                                          reference settings, bf16 and TF32 in turn; TRAIN_STEPS steps,
#                                          default 20)
#                scripts/gpu.sh profile   (the trainer's GPU tests, bf16 throughput, and where it goes:
#                                          ncu's time per kernel, the attention kernels in detail)
#                scripts/gpu.sh gptq      (calibration and GPTQ: their GPU tests, base9 calibrated on 524,288
#                                          train tokens (timed with GPTQ and packing), round to nearest
#                                          against GPTQ, self-generated calibration, each artifact's
#                                          val_bpb on the first 64 sequences and on the full val split)
#                scripts/gpu.sh gptq-solver (the same calibration, then --auto under it, rate-aware and
#                                          sensitivity-weighted, against one shared GPTQ step)
#                scripts/gpu.sh multi     (data parallel on 2 GPUs: the NCCL tests, 1 vs 2 GPUs'
#                                          losses and tokens/s, a rank killed mid-run)
#                scripts/gpu.sh reference (the base9 reference run: 270 s of training, full-val
#                                          val_bpb, int6 + zstd:22; REF_GPUS=N for --gpus N)
#                scripts/gpu.sh fidelity [base9|seed] (the Parameter Golf baseline's train_gpt.py and
#                                          pgolf train side by side, per-step losses; FIDELITY_STEPS;
#                                          FIDELITY_REF=rope-fp32,embed-fp32 undoes the script's bf16
#                                          casts, scripts/reference_variant.py; FIDELITY_FLAGS: pgolf's;
#                                          ';' separates pairs: "none;rope-fp32" with "--rope-table bf16;";
#                                          FIDELITY_INIT=script: pgolf starts from the script's weights)
#                scripts/gpu.sh fidelity-twin [base9|seed] (the script with nothing in bf16 saves its initial
#                                          weights; pgolf train --init starts from them in fp32: per-step
#                                          losses side by side from step 1, TWIN_STEPS (40), TWIN_FLAGS,
#                                          TWIN_REF and TWIN_PRECISION for other numerics from the same start)
#                scripts/gpu.sh seed tests|throughput|pr212|baseline|gaps PRESET (the seed's techniques: their GPU
#                                          tests; the pr212 preset's tokens/s with each technique turned
#                                          off in turn (TRAIN_STEPS); a preset trained 270 s, calibrated,
#                                          packed by --auto under 16,000,000 B with the submission's code,
#                                          and its val_bpb on the full val split at its seq_len)
#                                          (SEED_FLAGS: extra train flags, e.g. "--config
#                                          samples/configs/one-gpu.json" for one card; SEED_TAG=T: name the run
#                                          PRESET-T, e.g. a variant's; SEED_GAPS=1: also the
#                                          unpacked model, int6 + zstd:22, RTN --auto and --auto
#                                          weighted by sensitivity (on train tokens), each gap;
#                                          SEED_TTT=1: the packed artifact with --ttt sgd and lora;
#                                          gaps PRESET: SEED_GAPS's runs alone, a later call on the warm
#                                          machine, so each call stays under the device's 600 s)
#                scripts/gpu.sh eval-speed (base9 full val, plain and stride 64, the one forward in fp32 and
#                                          in bf16; EVAL_TOKENS for the sliding runs)
#                scripts/gpu.sh eval-profile (ncu's time per kernel of base9's bf16 stride-64 eval)
#                scripts/gpu.sh ttt [MODEL] (base9, MODEL (an artifact or checkpoint), or base9-packed
#                                          (base9 packed by --auto under 16,000,000 B), scored with legal
#                                          TTT, sgd and lora, beside plain and sliding, each stage's
#                                          val_bpb and seconds; TTT_TOKENS)
#                scripts/gpu.sh submission (a client nobody here wrote: the Parameter Golf baseline's
#                                          train_gpt.py evaluates base9 through the exported Python
#                                          decoder, against pgolf eval; its saved final_model.pt
#                                          round-trips through pgolf compress --profile python)
# GPU_TARGETS: what to build (default: pgolf alone for the modes that run no test binary, else pgolf
# and the GPU tests).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == prepare ]]; then
  set -e
  mkdir -p devdata/sp1024
  xz -dc ../shared/data/sp1024/corpus_val_000000.bin.xz > devdata/sp1024/corpus_val_000000.bin
  cp samples/sp1024/corpus_1024_bpe.model devdata/sp1024/
  # The Parameter Golf baseline (MIT), the client the submission run holds the Python decoder to.
  rm -rf devdata/pg-baseline && cp -r ../shared/reference/pg-baseline devdata/
  # The train shards travel as one tar.xz (21 MB, under the device's 64 MiB carry with the repo;
  # 107 MB unpacked) and are unpacked there.
  shards=$(mktemp -d)
  for xz in ../shared/data/sp1024/corpus_train_*.bin.xz; do xz -dc "$xz" > "$shards/$(basename "${xz%.xz}")"; done
  rm -f devdata/corpus_train_*.bin.xz
  tar -cf - -C "$shards" . | xz -9e -T2 > devdata/corpus_train.tar.xz
  rm -rf "$shards"
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
# The train shards travel as devdata/corpus_train.tar.xz (scripts/gpu.sh prepare); unpacked once per machine.
unpack_train_shards() {
  ls devdata/sp1024/corpus_train_*.bin > /dev/null 2>&1 || tar -xJf devdata/corpus_train.tar.xz -C devdata/sp1024
}
# gpu_tests [GTEST_FLAGS...]: the GPU tests, ops (test_kernels) then engines (test_gpu), as one run's output.
gpu_tests() {
  build-gpu/tests/test_kernels "$@"
  build-gpu/tests/test_gpu "$@"
}
# Ends the script: the failed steps, or "all passed".
finish() {
  if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}"
    exit 1
  fi
  echo "all passed"
  exit 0
}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit --format=csv | tee "$logs/gpu.txt"

targets="pgolf test_kernels test_gpu"
case "${1:-} ${2:-}" in  # the modes that run no test binary: a cold machine's build is minutes of its time
  "eval-speed "* | "eval-profile "* | "ttt "* | "reference "* | "fidelity "* | "seed throughput" | "seed pr212" | \
    "seed baseline" | "seed records-2026-04" | "seed gaps") targets=pgolf ;;
esac
targets=${GPU_TARGETS:-$targets}
step "build $targets"
if ! { cmake -S . -B build-gpu -DPGOLF_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DPGOLF_BENCH=OFF &&
       cmake --build build-gpu -j16 --target $targets; } > "$logs/build.log" 2>&1; then
  grep -E -A5 "error|Error" "$logs/build.log" | head -80
  exit 1
fi

# kernel_times CSV LABEL COMMAND...: runs COMMAND under ncu and prints the GPU time per kernel.
kernel_times() {
  local csv=$1 label=$2
  shift 2
  timeout 180 ncu --clock-control none --metrics gpu__time_duration.sum --print-kernel-base function --csv \
    --log-file "$csv" "$@" > /dev/null 2>&1 && python3 - "$csv" "$label" <<'EOF' || echo "ncu profile failed"
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
print(f"{sys.argv[2]:60} {sum(count.values()):8d} {all_ms:9.3f}")
EOF
}

# The trainer's GPU tests: every training kernel, the attention kernels and the whole trainer
# against their CPU twins and the CPU reference model (with the forward kernels too: the trainer
# runs them).
train_tests() {
  step "GPU tests: the CUDA trainer, its kernels and attention against the CPU reference"
  gpu_tests --gtest_filter='CudaTrain*:CudaAttention*:CudaKernels*' 2>&1 |
    tee "$logs/test_train.log" || failed+=(test_train)
}
# The trainer at the base9 reference run's settings (262,144 tokens per step as 4 micro-batches
# of 64 x 1024, warmdown 400, seed 1337) for TRAIN_STEPS steps (default 20) at each precision
# given: tokens/s per step, and the median of steps 4 on.
train_speed() {
  unpack_train_shards
  local precision files=()
  for precision in "$@"; do
    step "train: reference settings, ${TRAIN_STEPS:-20} steps, --precision $precision"
    build-gpu/cli/pgolf train --data devdata/sp1024 --out build-gpu/train-bench --overwrite --device cuda \
      --precision "$precision" --tokens-per-step 262144 --micro-batch 64 --seq-len 1024 --warmdown 400 --seed 1337 \
      --steps "${TRAIN_STEPS:-20}" --val-tokens 65536 2>&1 | tee "$logs/train_$precision.txt" || failed+=(train)
    files+=("$logs/train_$precision.txt")
  done
  python3 - "${files[@]}" <<'EOF2' | tee "$logs/train_speed.txt"
import re, statistics, sys
rates = {f.rsplit("_", 1)[1][:-4]: statistics.median([float(t) for t in re.findall(r"tok/s (\S+)", open(f).read())[3:]] or [0])
         for f in sys.argv[1:]}
print("median tokens/s over steps 4+: " + ", ".join(f"{p} {r:,.0f}" for p, r in rates.items()) +
      (f": bf16/tf32 {rates['bf16'] / max(rates['tf32'], 1):.3f}x" if {"bf16", "tf32"} <= rates.keys() else "") +
      f"; against the reference's 1,215,000: {rates.get('bf16', 0) / 1.215e6:.3f}x")
EOF2
}
# 100 steps, save, resume for 100 more: the same printed losses as 200 straight (small model, bf16).
resume_check() {
  # (Their logs stay in build-gpu: at most 8 files come back from the device.)
  step "train: 100 steps, save, resume 100 = 200 straight (small model, bf16)"
  local small=(--data devdata/sp1024 --device cuda --layers 4 --dim 128 --heads 4 --kv-heads 2 --seq-len 256
               --micro-batch 8 --tokens-per-step 4096 --warmdown 50 --steps 200 --val-tokens 4096 --overwrite)
  build-gpu/cli/pgolf train "${small[@]}" --out build-gpu/straight > "build-gpu/resume_straight.txt" 2>&1 &&
    build-gpu/cli/pgolf train "${small[@]}" --stop-at 100 --out build-gpu/first > "build-gpu/resume_first.txt" 2>&1 &&
    build-gpu/cli/pgolf train "${small[@]}" --resume build-gpu/first.state --out build-gpu/rest \
      > "build-gpu/resume_rest.txt" 2>&1 || failed+=(resume)
  if cmp <(grep -o 'step [0-9]*/200 loss [^ ]*' "build-gpu/resume_straight.txt") \
         <(cat "build-gpu/resume_first.txt" "build-gpu/resume_rest.txt" | grep -o 'step [0-9]*/200 loss [^ ]*'); then
    echo "resume: the 200 printed losses equal the straight run's ($(grep -c '/200 loss' "build-gpu/resume_straight.txt") lines)"
  else
    echo "resume: a run failed or the losses differ:"
    tail -n 3 build-gpu/resume_*.txt
    failed+=(resume)
  fi
}
# ncu: the GPU time per kernel of one bf16 training step of 64 x 1024 tokens (+ one val window);
# with `detail`, also the speed-of-light, occupancy and warp-stall sections of one launch of each
# attention kernel.
train_profile() {
  command -v ncu > /dev/null || return 0
  local step_args=(train --data devdata/sp1024 --out build-gpu/profile --overwrite --device cuda --precision bf16
                   --tokens-per-step 65536 --micro-batch 64 --steps 1 --val-tokens 1024)
  step "kernel times of one training step of 64 x 1024 tokens (ncu)"
  kernel_times "build-gpu/ncu_train.csv" "all kernels of one step (+ 1 val window)" build-gpu/cli/pgolf "${step_args[@]}"
  if [[ "${1:-}" == detail ]]; then
    step "attention kernels in detail (ncu, one launch each)"
    local kernel
    for kernel in forward_kernel dq_kernel dkv_kernel; do
      timeout 120 ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats \
        --section LaunchStats -k "regex:$kernel" -c 1 build-gpu/cli/pgolf "${step_args[@]}" \
        >> "$logs/ncu_attention.txt" 2>&1 || echo "ncu detail of $kernel failed"
    done
    grep -E "_kernel<|Duration|Compute .SM. Throughput|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Shared Memory Configuration" \
      "$logs/ncu_attention.txt" | sed -E 's/\(const .*//' | head -40
  fi
}
train_benchmark() {
  train_tests
  train_speed bf16 tf32
  resume_check
  train_profile
}
# Rate-distortion against val_bpb on the first 64 val sequences (samples/sp1024 holds them): every
# default sweep point; the per-tensor sensitivity; --auto at 8, 10 and 12 MB, plain and weighted by
# the sensitivity, each evaluated. Everything is packed into $OUT/rd.tar.gz (the device returns few files).
rd_benchmark() {
  local rd=build-gpu/rd data=(--data samples/sp1024 --tokens 65536 --device cuda)
  rm -rf "$rd" && mkdir -p "$rd"
  auto() {  # auto NAME BUDGET [FLAGS...]: compress --auto, then eval the artifact
    local name=$1 budget=$2
    shift 2
    build-gpu/cli/pgolf compress samples/base9 -o "$rd/$name.pgz" --auto --budget "$budget" --threads 5 "$@" \
      > "$rd/$name.txt" 2>&1 && build-gpu/cli/pgolf eval "$rd/$name.pgz" "${data[@]}" --json > "$rd/eval_$name.json" 2>&1
  }
  step "rd: --auto at 8, 10, 12 MB (squared error), with the sensitivity in the meantime"
  for b in 8000000 10000000 12000000; do auto "auto_$b" $b & done
  build-gpu/cli/pgolf sensitivity samples/base9 "${data[@]}" -o "$rd/sensitivity.json" > "$rd/sensitivity.txt" 2>&1 ||
    failed+=(sensitivity)
  wait
  step "rd: --auto weighted by the sensitivity"
  for b in 8000000 10000000 12000000; do auto "auto_weighted_$b" $b --sensitivity "$rd/sensitivity.json" & done
  wait
  step "rd: int6 against the settings that beat it at fewer bytes"
  build-gpu/cli/pgolf compress samples/base9 -o "$rd/int6.pgz" --codec int6 > "$rd/int6.txt" 2>&1 &&
    build-gpu/cli/pgolf eval "$rd/int6.pgz" "${data[@]}" --json > "$rd/eval_int6.json" 2>&1 || failed+=(int6)
  build-gpu/cli/pgolf compress samples/base9 -o "$rd/ecsq.pgz" --codec ecsq:totalrelmse=9.5e-4 --compressor auto \
    > "$rd/ecsq.txt" 2>&1 && build-gpu/cli/pgolf eval "$rd/ecsq.pgz" "${data[@]}" --json > "$rd/eval_ecsq.json" 2>&1 ||
    failed+=(ecsq)
  build-gpu/cli/pgolf compress samples/base9 -o "$rd/kmeans_ecsq.pgz" \
    --codec kmeans:k=256,init=kmeanspp,method=ecsq,lambda=0.000175 > "$rd/kmeans_ecsq.txt" 2>&1 &&
    build-gpu/cli/pgolf eval "$rd/kmeans_ecsq.pgz" "${data[@]}" --json > "$rd/eval_kmeans_ecsq.json" 2>&1 ||
    failed+=(kmeans_ecsq)
  grep -h -E "^artifact|^quantized" "$rd"/int6.txt "$rd"/ecsq.txt "$rd"/kmeans_ecsq.txt
  step "rd: val_bpb of every default sweep point (zstd:3: the bytes under zstd:22 come from the CPU run)"
  build-gpu/cli/pgolf bench samples/base9 --compressors zstd:3 "${data[@]}" --out "$rd/bench" \
    > "$rd/bench.txt" 2>&1 || failed+=(bench)
  rm -f "$rd"/*.pgz
  tar czf "${OUT:-build-gpu}/rd.tar.gz" -C "$rd" .
  grep -h -E "^artifact|^quantized" "$rd"/auto_*.txt
  grep -E '"val_bpb"' "$rd"/eval_*.json
}
# Calibration and GPTQ on base9. Every artifact is whole (--compressor auto) and evaluated on the
# first 64 val sequences (fp32, samples/sp1024) and on the full val split (fp32, devdata).
gptq_dir=build-gpu/gptq
evaluate_gptq() {  # evaluate_gptq NAME: both val_bpb of $gptq_dir/NAME.pgz, one line
  local pgolf=build-gpu/cli/pgolf first full
  first=$($pgolf eval "$gptq_dir/$1.pgz" --data samples/sp1024 --tokens 65536 --device cuda --json | sed -n 's/.*"val_bpb": \([0-9.]*\).*/\1/p')
  full=$($pgolf eval "$gptq_dir/$1.pgz" --data devdata/sp1024 --device cuda --json | sed -n 's/.*"val_bpb": \([0-9.]*\).*/\1/p')
  printf '%-34s %11s B  first 64: %s  full val: %s\n' "$1" "$(stat -c %s "$gptq_dir/$1.pgz")" "$first" "$full" | tee -a "$logs/gptq.txt"
}
pack_gptq() {  # pack_gptq NAME FLAGS...: compress base9 (whole artifact, auto byte codec), then evaluate
  local name=$1
  shift
  build-gpu/cli/pgolf compress samples/base9 -o "$gptq_dir/$name.pgz" --compressor auto "$@" > "$gptq_dir/$name.txt" 2>&1 ||
    { failed+=("$name"); return; }
  grep -E "^output|^time" "$gptq_dir/$name.txt" | sed "s/^/$name: /"
  evaluate_gptq "$name"
}
# Base9's Hessians on 524,288 train tokens into $gptq_dir/h.safetensors, timed with one GPTQ pack.
calibrate_base9() {
  local pgolf=build-gpu/cli/pgolf t0 t1 t2
  rm -rf "$gptq_dir" && mkdir -p "$gptq_dir"
  unpack_train_shards
  step "calibrate base9 on 524,288 train tokens, then GPTQ and packing, timed"
  t0=$(date +%s.%N)
  $pgolf calibrate samples/base9 --data devdata/sp1024 -o "$gptq_dir/h.safetensors" > "$gptq_dir/calibrate.txt" 2>&1 ||
    failed+=(calibrate)
  t1=$(date +%s.%N)
  $pgolf compress samples/base9 -o "$gptq_dir/gptq_step0299.pgz" --compressor auto --calibration "$gptq_dir/h.safetensors" \
    --codec gptq+ecsq:step=0.0299 > "$gptq_dir/gptq_step0299.txt" 2>&1 || failed+=(gptq)
  t2=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "calibration %.2f s + GPTQ and packing %.2f s = %.2f s (wall, process start included)\n", b - a, c - b, c - a }' |
    tee -a "$logs/gptq.txt"
  tail -n 3 "$gptq_dir/calibrate.txt"
  evaluate_gptq gptq_step0299
  step "GPTQ on the CPU (the oracle) against the GPU engine above: the same calibration and codec"
  $pgolf compress samples/base9 -o "$gptq_dir/gptq_step0299_cpu.pgz" --compressor auto --calibration "$gptq_dir/h.safetensors" \
    --codec gptq+ecsq:step=0.0299 --device cpu > "$gptq_dir/gptq_step0299_cpu.txt" 2>&1 || failed+=(gptq-cpu)
  grep -h -E "^output|^time|^artifact" "$gptq_dir/gptq_step0299.txt" "$gptq_dir/gptq_step0299_cpu.txt" | tee -a "$logs/gptq.txt"
  cmp -s "$gptq_dir/gptq_step0299.pgz" "$gptq_dir/gptq_step0299_cpu.pgz" && echo "GPU and CPU GPTQ: the same bytes" |
    tee -a "$logs/gptq.txt" || echo "GPU and CPU GPTQ: the artifacts differ (the flips CudaGptq bounds)" | tee -a "$logs/gptq.txt"
}
# The GPU tests, then round to nearest against GPTQ at the issue's two steps, int6 + zstd:22, and
# self-generated calibration.
gptq_benchmark() {
  step "GPU tests: calibration against the CPU reference"
  gpu_tests --gtest_filter='*Calibrat*:*Gptq*' 2>&1 | tee "$logs/test_gptq.log" | grep -E "^\[  |bound|max " ||
    true
  grep -q "^\[  FAILED" "$logs/test_gptq.log" && failed+=(test_gptq)
  calibrate_base9
  local h=(--calibration "$gptq_dir/h.safetensors")
  step "round to nearest against GPTQ at the issue's two steps; int6 + zstd:22"
  pack_gptq rtn_step0299 --codec ecsq:step=0.0299 "${h[@]}"
  pack_gptq rtn_step023548 --codec ecsq:step=0.023548 "${h[@]}"
  pack_gptq gptq_step023548 --codec gptq+ecsq:step=0.023548 "${h[@]}"
  pack_gptq gptq_natural_step0299 --codec gptq:order=natural+ecsq:step=0.0299 "${h[@]}"
  pack_gptq gptq_int6_std --codec gptq+int6:clip=std:12.85 "${h[@]}"
  build-gpu/cli/pgolf compress samples/base9 -o "$gptq_dir/int6_zstd22.pgz" --codec int6 --compressor zstd:22 > "$gptq_dir/int6_zstd22.txt" 2>&1
  evaluate_gptq int6_zstd22
  step "self-generated calibration (256 sequences of 1,024 sampled at temperature 1) against train text"
  build-gpu/cli/pgolf calibrate samples/base9 --self-generated 256 -o "$gptq_dir/h_self.safetensors" > "$gptq_dir/calibrate_self.txt" 2>&1 ||
    failed+=(calibrate_self)
  tail -n 2 "$gptq_dir/calibrate_self.txt"
  pack_gptq gptq_self_step0299 --codec gptq+ecsq:step=0.0299 --calibration "$gptq_dir/h_self.safetensors"
  rm -f "$gptq_dir"/*.pgz "$gptq_dir"/*.safetensors
  tar czf "${OUT:-build-gpu}/gptq.tar.gz" -C "$gptq_dir" .
}
# The budget solver under calibration: --auto over a ladder of rate-aware GPTQ steps, weighted by
# base9's output-space sensitivity (docs/base9-output-sensitivity.json, measured on train tokens),
# against one shared GPTQ step (plain, then rate-aware) at the same bytes, at 10.6 and 11.34 MB.
gptq_solver_benchmark() {
  calibrate_base9
  local h=(--calibration "$gptq_dir/h.safetensors") ladder="" s
  for s in $(python3 -c "print(*['%.4g' % (0.012 * 1.12 ** n) for n in range(17)])"); do ladder+="gptq+ecsq:step=$s,rdo=1;"; done
  step "one shared GPTQ step at about 10.6 and 11.34 MB, plain and rate-aware"
  pack_gptq shared_step0289 --codec gptq+ecsq:step=0.0289 "${h[@]}"
  pack_gptq shared_step0284_rdo1 --codec gptq+ecsq:step=0.0284,rdo=1 "${h[@]}"
  pack_gptq shared_step02275 --codec gptq+ecsq:step=0.02275 "${h[@]}"
  pack_gptq shared_step0223_rdo1 --codec gptq+ecsq:step=0.0223,rdo=1 "${h[@]}"
  step "--auto under calibration and output-space sensitivity at 10,600,000 and 11,340,000 B"
  pack_gptq auto_10600000 --auto --budget 10600000 --candidates "$ladder" --sensitivity docs/base9-output-sensitivity.json "${h[@]}"
  pack_gptq auto_11340000 --auto --budget 11340000 --candidates "$ladder" --sensitivity docs/base9-output-sensitivity.json "${h[@]}"
  rm -f "$gptq_dir"/*.pgz "$gptq_dir"/*.safetensors
  tar czf "${OUT:-build-gpu}/gptq_solver.tar.gz" -C "$gptq_dir" .
}

# The Parameter Golf baseline's train_gpt.py and pgolf train on the same settings, side by side
# (issue 35): the same batches in the same order (8 micro-steps of 32,768 tokens each, as the
# reference takes them on one GPU), per-step train losses, their mean difference over ranges of
# steps, and both final full-val val_bpb. SHAPE base9 (600 steps, warmdown 400, seed 1337) or
# seed (11 layers, MLP 3x, seq 2048, Muon momentum 0.99, grad clip 1.0, seed 42; 300 steps,
# warmdown 100); FIDELITY_STEPS overrides the step count (the warmdown keeps its share).
# FIDELITY_INIT=script starts pgolf from the weights the script starts from (its save-init), so the
# two differ in numerics alone, not in the draw of their initial weights (which alone moves the mean
# over steps 100 on by 0.01 to 0.027 in the CPU twins at three seeds, docs/fidelity.md).
fidelity_run() {
  local shape=$1 dir=build-gpu/fidelity/$1 steps warmdown seed seq env=() flags=() extra=()
  fidelity_shape "$shape" "${FIDELITY_STEPS:-}" || return
  # The reference's logs stay (per variant and step count): a later call on the warm machine reuses a finished one,
  # so one pair's two runs may take two calls (each under the device's 600 s).
  fidelity_data "$dir"
  # (The script's rms_norm on bf16 takes float32's epsilon, eager and compiled: measured 2026-12-07, docs/fidelity.md.)
  step "fidelity $shape: the script's RoPE table as torch.compile builds it (bf16 inv_freq), against three roundings"
  python3 - <<'EOF6' 2>&1 | tee -a "$logs/fidelity_$shape.txt"
import torch
seq, dim = 2048, 64
inv_freq = (1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))).cuda().bfloat16()
def table(inv):  # Rotary.forward's table after model.bfloat16()
    t = torch.arange(seq, device=inv.device, dtype=inv.dtype)
    freqs = torch.outer(t, inv)
    return freqs.cos(), freqs.sin()
compiled = torch.compile(table, fullgraph=True, dynamic=False)(inv_freq)
def stored_only(positions):  # angle in float32 from these positions, cos/sin rounded where stored
    f = torch.outer(positions, inv_freq.float())
    return f.cos().bfloat16(), f.sin().bfloat16()
exact = torch.arange(seq, device='cuda', dtype=torch.float32)
for name, other in (("eager (--rope-table bf16)", table(inv_freq)),
                    ("positions and angles exact (--rope-table bf16-compiled)", stored_only(exact)),
                    ("positions rounded, angles exact", stored_only(exact.bfloat16().float()))):
    d = max((c.float() - o.float()).abs().max().item() for c, o in zip(compiled, other))
    print(f"RoPE table, compiled against {name}: max |difference| {d:.3g}")
EOF6
  # Pairs of runs: reference variant i (FIDELITY_REF, ';'-separated) and pgolf with flag set i
  # (FIDELITY_FLAGS, ';'-separated, the last one repeated); each pgolf run against every reference so far.
  local refs=() pg_flags=() i
  IFS=';' read -ra refs <<< "${FIDELITY_REF:-none}"
  IFS=';' read -ra pg_flags <<< "${FIDELITY_FLAGS:-}"
  ((${#pg_flags[@]} > 0)) || pg_flags=("")
  local reference_logs=() reference_pid
  for i in "${!refs[@]}"; do
    local reference="$dir/reference_${steps}_${refs[$i]//[^a-z0-9-]/_}.txt" variants=${refs[$i]} init=()
    reference_logs+=("$reference")
    reference_pid=""
    if [ "${FIDELITY_INIT:-}" = script ]; then  # every variant starts from the same bf16-rounded weights
      variants+=,save-init init=(--init "$dir/init.pt")
      [ -f "$dir/init.pt" ] || rm -f "$reference"
    fi
    if grep -q "val_bpb:" "$reference" 2> /dev/null; then
      step "fidelity $shape: the reference (${refs[$i]}), $steps steps: the earlier call's run"
    else  # beside pgolf's run on the same GPU (no timing is compared; its compile alone is a minute of CPU)
      step "fidelity $shape: the reference (${refs[$i]}), $steps steps (warmdown $warmdown, seed $seed, seq $seq), in the background"
      ((${#init[@]})) && rm -f "$dir/init.pt"
      fidelity_reference "$dir" "$variants" 500 > "$reference" 2>&1 &
      reference_pid=$!
      # pgolf waits for the script's initial weights: its line after saving them (or its end)
      while ((${#init[@]})) && ! grep -q "^reference_variant: .*inv_freq" "$reference" && kill -0 "$reference_pid" 2> /dev/null; do
        sleep 2
      done
    fi
    read -ra extra <<< "${pg_flags[$((i < ${#pg_flags[@]} ? i : ${#pg_flags[@]} - 1))]}"
    step "fidelity $shape: pgolf train, the same settings (bf16) ${extra[*]}"
    build-gpu/cli/pgolf train --data devdata/sp1024 --out "$dir/pgolf" --overwrite --device cuda --precision bf16 \
      --tokens-per-step 262144 --micro-batch $((32768 / seq)) --seq-len "$seq" --steps "$steps" --warmdown "$warmdown" \
      --seed "$seed" --log-every 1 --val-every 0 --val-tokens 0 "${init[@]}" "${flags[@]}" "${extra[@]}" > "$dir/pgolf_$i.txt" 2>&1 ||
      { tail -20 "$dir/pgolf_$i.txt"; [ -n "$reference_pid" ] && kill "$reference_pid"; failed+=(fidelity-pgolf); return; }
    if [ -n "$reference_pid" ] && ! wait "$reference_pid"; then
      tail -20 "$reference"; rm -f "$reference"; failed+=(fidelity-reference); return
    fi
    cp "$reference" "$logs/"  # its losses come back even if the call runs out of time later
    local r
    for r in $(seq 0 "$i"); do
      echo "-- pgolf ${extra[*]:-(defaults)} against the reference (${refs[$r]})" | tee -a "$logs/fidelity_$shape.txt"
      # mean losses per range of steps, the mean difference over steps 100 on, both final val_bpb
      python3 scripts/compare_losses.py "${reference_logs[$r]}" "$dir/pgolf_$i.txt" "$steps" | tee -a "$logs/fidelity_$shape.txt"
    done
  done
}

# fidelity_shape SHAPE [STEPS]: sets the caller's steps, warmdown, seed, seq, env (the script's) and
# flags (pgolf's) for SHAPE base9 or seed (STEPS overrides the step count; the warmdown keeps its share).
fidelity_shape() {
  case "$1" in
    base9) steps=${2:-600}; warmdown=$((steps * 2 / 3)); seed=1337; seq=1024 ;;
    seed) steps=${2:-300}; warmdown=$((steps / 3)); seed=42; seq=2048
      env=(NUM_LAYERS=11 MLP_MULT=3 MUON_MOMENTUM=0.99 GRAD_CLIP_NORM=1.0)
      flags=(--layers 11 --mlp-mult 3 --muon-momentum 0.99 --grad-clip 1.0) ;;
    *) echo "fidelity: SHAPE is base9 or seed"; failed+=(fidelity-shape); return 1 ;;
  esac
}

# fidelity_data DIR: DIR/data holds the train and val shards under the names the script globs.
fidelity_data() {
  rm -rf "$1/data" && mkdir -p "$1/data"
  unpack_train_shards
  local shard
  for shard in devdata/sp1024/corpus_train_*.bin; do
    ln -sf "$PWD/$shard" "$1/data/fineweb_train_${shard##*_}"
  done
  ln -sf "$PWD/devdata/sp1024/corpus_val_000000.bin" "$1/data/fineweb_val_000000.bin"
}

# fidelity_reference DIR VARIANTS SECONDS: the script (scripts/reference_variant.py VARIANTS) trained in
# DIR on DIR/data at the caller's steps, warmdown, seed, seq and env, 262,144 tokens a step, a log line
# every step, no wallclock cap; stopped after SECONDS.
fidelity_reference() {
  (cd "$1" && env DATA_PATH=data TOKENIZER_PATH="$PWD/../../../devdata/sp1024/corpus_1024_bpe.model" ITERATIONS="$steps" \
     WARMDOWN_ITERS="$warmdown" MAX_WALLCLOCK_SECONDS=0 TRAIN_BATCH_TOKENS=262144 TRAIN_SEQ_LEN="$seq" TRAIN_LOG_EVERY=1 \
     VAL_LOSS_EVERY=0 SEED="$seed" "${env[@]}" timeout "$3" python3 ../../../scripts/reference_variant.py \
     ../../../devdata/pg-baseline/train_gpt.py "$2")
}

# The recipe twin (issue 35): the script with nothing in bf16 (fp32, ns-fp32, update-fp32, no-tf32)
# saves the weights it starts from (save-init), and pgolf train --init starts from
# them in fp32 on the same batches; TWIN_STEPS steps (default 40; warmdown a third, so the schedule runs
# too). Step 1's loss is the loss of the same weights on the same batch: equal to float rounding; every
# later step differs only by rounding, and from the first step an optimizer or model difference moves
# the losses apart (the first step whose difference passes 1e-3 is printed). TWIN_REF and TWIN_PRECISION
# pair other numerics from the same start (TWIN_REF=none TWIN_PRECISION=bf16: the script as it is against
# pgolf's bf16, how far bf16 alone moves the two apart).
fidelity_twin() {
  local shape=$1 dir=build-gpu/fidelity/twin-$1 steps warmdown seed seq env=() flags=()
  local variants=${TWIN_REF:-fp32,ns-fp32,update-fp32,no-tf32},save-init precision=${TWIN_PRECISION:-fp32}
  fidelity_shape "$shape" "${TWIN_STEPS:-40}" || return
  fidelity_data "$dir"
  rm -f "$dir/init.pt"
  step "fidelity twin $shape: the script ($variants), $steps steps (warmdown $warmdown)"
  fidelity_reference "$dir" "$variants" 400 > "$dir/reference.txt" 2>&1 ||
    { tail -20 "$dir/reference.txt"; failed+=(twin-reference); return; }
  cp "$dir/reference.txt" "$logs/twin_reference_$shape.txt"
  step "fidelity twin $shape: pgolf train --init the script's weights, $precision"
  build-gpu/cli/pgolf train --data devdata/sp1024 --out "$dir/pgolf" --overwrite --device cuda --precision "$precision" \
    --init "$dir/init.pt" --tokens-per-step 262144 --micro-batch $((32768 / seq)) --seq-len "$seq" --steps "$steps" \
    --warmdown "$warmdown" --seed "$seed" --log-every 1 --val-every 0 --val-tokens 0 "${flags[@]}" ${TWIN_FLAGS:-} \
    > "$dir/pgolf.txt" 2>&1 || { tail -20 "$dir/pgolf.txt"; failed+=(twin-pgolf); return; }
  cp "$dir/pgolf.txt" "$logs/twin_pgolf_$shape.txt"
  python3 scripts/compare_losses.py "$dir/reference.txt" "$dir/pgolf.txt" | tee -a "$logs/twin_$shape.txt"
}

# Data parallel (needs 2 GPUs): the NCCL tests; MULTI_STEPS steps (default 50) at the reference
# settings on 1 GPU and on 2 at the same global batch (losses, tokens/s), and on 2 at twice the
# batch (the same micro-batches per GPU as the 1-GPU run); then rank 1 killed with SIGKILL mid-run.
multi_gpu_benchmark() {
  local steps=${MULTI_STEPS:-50} dp=build-gpu/dp
  mkdir -p "$dp"
  step "GPU tests: data parallel over NCCL"
  cmake --build build-gpu -j"$(nproc)" --target test_cli >> "$logs/build.log" 2>&1 || failed+=(build-test-cli)
  gpu_tests --gtest_filter='CudaTrainRanks*' 2>&1 | tee "$logs/test_ranks.log" || failed+=(test_ranks)
  build-gpu/tests/test_cli --gtest_filter='CliTrain.DataParallel*' 2>&1 | tail -4 | tee -a "$logs/test_ranks.log" ||
    failed+=(test_cli_ranks)
  unpack_train_shards
  local common=(--data devdata/sp1024 --device cuda --precision tf32 --micro-batch 64 --seq-len 1024 --warmdown 400 --seed 1337
                --val-tokens 65536 --overwrite)
  step "train: $steps steps of 262,144 tokens on 1 GPU"
  build-gpu/cli/pgolf train "${common[@]}" --steps "$steps" --tokens-per-step 262144 --out "$dp/one" \
    > "$dp/one.txt" 2>&1 || failed+=(train-1gpu)
  step "train: the same on 2 GPUs (2 micro-batches each)"
  build-gpu/cli/pgolf train "${common[@]}" --steps "$steps" --tokens-per-step 262144 --gpus 2 --out "$dp/two" \
    > "$dp/two.txt" 2>&1 || failed+=(train-2gpu)
  step "train: 20 steps of 524,288 tokens on 2 GPUs (4 micro-batches each, as the 1-GPU run)"
  build-gpu/cli/pgolf train "${common[@]}" --steps 20 --tokens-per-step 524288 --gpus 2 --out "$dp/two_wide" \
    > "$dp/two_wide.txt" 2>&1 || failed+=(train-2gpu-wide)
  python3 - "$dp" <<'EOF' | tee "$logs/multi.txt"
import re, statistics, sys
def run(name):
    text = open(f"{sys.argv[1]}/{name}.txt").read()
    steps = re.findall(r"step (\d+)/\d+ loss (\S+) lr \S+ tok/s (\S+)", text)
    return [float(l) for _, l, _ in steps], [float(t) for _, _, t in steps[3:]], re.findall(r"val_bpb (\S+) \(final", text)
one, two, wide = run("one"), run("two"), run("two_wide")
diff = [abs(a - b) for a, b in zip(one[0], two[0])]
print(f"losses over {len(diff)} steps, 2 GPUs vs 1 at 262,144 tokens/step: max |diff| {max(diff):.3g}, "
      f"mean {statistics.mean(diff):.3g}; last {one[0][-1]:.6f} vs {two[0][-1]:.6f}; final val_bpb {one[2]} vs {two[2]}")
for label, r in (("1 GPU, 262,144 tokens/step", one), ("2 GPUs, 262,144 tokens/step", two), ("2 GPUs, 524,288 tokens/step", wide)):
    print(f"{label}: median {statistics.median(r[1]):,.0f} tokens/s over steps 4+")
print(f"speed-up at the same micro-batches per GPU: {statistics.median(wide[1]) / statistics.median(one[1]):.3f}x "
      f"(at the same global batch: {statistics.median(two[1]) / statistics.median(one[1]):.3f}x)")
EOF
  step "kill: rank 1 of a 2-GPU run gets SIGKILL after step 3"
  build-gpu/cli/pgolf train "${common[@]}" --steps 1000 --tokens-per-step 262144 --gpus 2 --out "$dp/killed" \
    > "$dp/killed.txt" 2>&1 &
  local launcher=$! waited=0
  until grep -q "step 3/" "$dp/killed.txt" || ((waited > 240)); do sleep 0.5; waited=$((waited + 1)); done
  local rank1 killed_at code
  rank1=$(pgrep -P "$launcher" | sort -n | sed -n 2p)
  killed_at=$(date +%s.%N)
  [ -n "$rank1" ] && kill -9 "$rank1"
  wait "$launcher"
  code=$?
  awk -v a="$killed_at" -v b="$(date +%s.%N)" -v c="$code" 'BEGIN { printf "launcher exited %d, %.2f s after the kill\n", c, b - a }' |
    tee -a "$logs/multi.txt"
  grep -E "rank|error" "$dp/killed.txt" | tail -4 | tee -a "$logs/multi.txt"
  if ((code == 0)) || ls "$dp"/killed.safetensors "$dp"/killed.state > /dev/null 2>&1; then failed+=(kill); fi
  tar czf "$logs/multi_logs.tar.gz" -C "$dp" one.txt two.txt two_wide.txt killed.txt
}
# The base9 reference run (its README: 262,144 tokens per step as 4 micro-batches of 64 x 1024, 270 s
# of training wallclock, warmdown 400, seed 1337), on REF_GPUS GPUs (default: one, no NCCL): the
# final full-val val_bpb, then int6 + zstd:22 and that artifact's full-val val_bpb. Needs every train
# shard in devdata (scripts/gpu.sh prepare copies them all).
reference_run() {
  local ref=build-gpu/ref gpus=()
  mkdir -p "$ref"
  [ -n "${REF_GPUS:-}" ] && gpus=(--gpus "$REF_GPUS")
  unpack_train_shards
  step "reference run: 270 s of training ${REF_GPUS:+on $REF_GPUS GPUs}"
  build-gpu/cli/pgolf train --data devdata/sp1024 --out "$ref/base" --overwrite --device cuda --precision bf16 "${gpus[@]}" \
    --tokens-per-step 262144 --micro-batch 64 --seq-len 1024 --max-seconds 270 --warmdown 400 --seed 1337 \
    --steps 20000 --log-every 25 2>&1 | tee "$logs/reference.txt" || failed+=(reference)
  step "reference run: int6 + zstd:22, then the artifact on the full val split"
  build-gpu/cli/pgolf compress "$ref/base.safetensors" -o "$ref/base.pgz" --codec int6 --compressor zstd:22 \
    --force 2>&1 | grep -E "^artifact|^quantized" | tee -a "$logs/reference.txt" || failed+=(reference-compress)
  build-gpu/cli/pgolf eval "$ref/base.pgz" --data devdata/sp1024 --device cuda 2>&1 | grep -E "^val" |
    tee -a "$logs/reference.txt" || failed+=(reference-eval)
}

# The GPU eval of samples/base9 on the full val split (its README: 1.04512 in bf16).
eval_base9() {
  step "eval: base9 on the full val split, on the GPU"
  local start
  start=$(date +%s.%N)
  build-gpu/cli/pgolf eval samples/base9 --data devdata/sp1024 --device cuda 2>&1 | tee "$logs/eval.txt" ||
    failed+=(eval)
  awk -v start="$start" -v end="$(date +%s.%N)" 'BEGIN { printf "wall seconds, loading and GPU set-up included: %.2f\n", end - start }'
  awk '/^val_bpb/ { d = $2 - 1.04512; printf "val_bpb - 1.04512 = %+.6f (%s)\n", d, (d < 0.001 && d > -0.001) ? "within 0.001" : "OFF" }' \
    "$logs/eval.txt" | tee "$logs/eval_check.txt"
}

# Issue 37's figures: base9 on the full val split, plain and stride-64 sliding, by the evaluator's
# fp32 kernels and by the trainer's forward in bf16 (EVAL_TOKENS limits the sliding runs' tokens).
eval_speed() {
  local p stride tokens=()
  [ -n "${EVAL_TOKENS:-}" ] && tokens=(--tokens "$EVAL_TOKENS")
  for stride in 0 64; do
    for p in fp32 bf16; do
      step "eval speed: base9, stride $stride, $p"
      build-gpu/cli/pgolf eval samples/base9 --data devdata/sp1024 --device cuda --precision "$p" --stride "$stride" \
        $( ((stride > 0)) && echo "${tokens[@]}") 2>&1 | grep -E "^(eval|val_bpb|seconds|tokens/s)|error" | tee -a "$logs/eval_speed.txt" ||
        failed+=(eval-speed)
    done
  done
}

# Legal TTT (issue 39) on MODEL (default base9): plain, stride-64 sliding, then each TTT variant on the
# trainer's bf16 forward, val_bpb and seconds of every stage (TTT_TOKENS: the first N val tokens).
ttt_eval() {
  local model=${1:-samples/base9} mode tokens=()
  [ -n "${TTT_TOKENS:-}" ] && tokens=(--tokens "$TTT_TOKENS")
  if [[ "$model" == base9-packed ]]; then  # base9 as a submission carries it: packed under 16,000,000 B
    model=build-gpu/base9-packed.pgz
    step "ttt: base9 packed by --auto under 16,000,000 B (zstd:22, the baseline script counted)"
    build-gpu/cli/pgolf compress samples/base9 -o "$model" --force --auto --budget 16000000 --compressor zstd:22 \
      --code devdata/pg-baseline/train_gpt.py 2>&1 | grep -E "^(artifact|total)" | tee -a "$logs/ttt.txt" ||
      { failed+=(ttt-pack); return; }
  fi
  for mode in sgd lora; do
    step "ttt: $model, stride 64, --ttt $mode (bf16)"
    build-gpu/cli/pgolf eval "$model" --data devdata/sp1024 --device cuda --precision bf16 --stride 64 \
      --ttt "$mode" "${tokens[@]}" 2>&1 | grep -E "^(eval|ttt|plain|sliding|documents|val_bpb|seconds|error)" |
      tee -a "$logs/ttt.txt" || failed+=(ttt-$mode)
  done
}

# The exported decoder in a real client: the baseline's own GPT and eval_val on base9 decoded by
# pgolf_decode.py, fp32 (as pgolf eval) within 1e-4 of pgolf eval, and in bf16 autocast as the
# baseline runs; then the baseline trains a few steps, saves final_model.pt, and that file
# round-trips bit for bit through compress --profile python (lossless) and the decoder.
# seed_run tests|throughput|PRESET: issue 36's GPU figures (the presets are samples/configs/PRESET.json).
seed_run() {
  local what=$1 dir=build-gpu/seed
  mkdir -p "$dir"
  case "$what" in
    tests)
      step "GPU tests: the seed's and the records' kernels, trainer and evaluator against their CPU twins"
      build-gpu/tests/test_kernels \
        --gtest_filter='*Smear*:*GatherRows*:*EmbeddingRmsNorm*:*QkNormRope*:*AddSum*:*ScaledSum*:*Lanes*:*RmsNormRows*:*Adam*' 2>&1 |
        tee "$logs/seed_tests.txt" || failed+=(seed-kernels)
      build-gpu/tests/test_gpu --gtest_filter='CudaTrain.*:CudaEval.Tiny*:CudaCalibration.Tiny*' 2>&1 | tee -a "$logs/seed_tests.txt" ||
        failed+=(seed-gpu)
      ;;
    throughput)
      unpack_train_shards
      local steps=${TRAIN_STEPS:-20} variant flags preset
      for variant in all no-smear no-bigram whole-rope baseline-mlp looped mtp lanes records; do
        preset=pr212
        case "$variant" in
          all) flags=() ;;
          no-smear) flags=(--smear-gate none) ;;
          no-bigram) flags=(--bigram-buckets 0) ;;
          whole-rope) flags=(--rope-dims 0) ;;
          baseline-mlp) flags=(--smear-gate none --bigram-buckets 0 --mlp-mult 2 --layers 9) ;;
          looped) flags=(--loop-layers 4..5 --loops 2) ;;
          mtp) flags=(--mtp 2) ;;
          lanes) flags=(--parallel-from 8) ;;
          records) preset=records-2026-04 flags=() ;;
        esac
        step "seed throughput: $preset preset, $variant, $steps steps (bf16)"
        build-gpu/cli/pgolf train --config "samples/configs/$preset.json" --data devdata/sp1024 --out "$dir/tp" --overwrite \
          --device cuda --precision bf16 --steps "$steps" --warmdown 0 --val-tokens 65536 --log-every 5 "${flags[@]}" 2>&1 |
          grep -E "^(model|done|error)|error:" | tee -a "$logs/seed_throughput.txt" || failed+=(seed-throughput-$variant)
      done
      ;;
    *)
      [ -f "samples/configs/$what.json" ] || { echo "no preset samples/configs/$what.json"; failed+=(seed-$what); return; }
      unpack_train_shards
      local extra=() preset=$what
      what=$what${SEED_TAG:+-$SEED_TAG}  # the run's name: its files, logs and `seed gaps NAME`
      read -ra extra <<< "${SEED_FLAGS:-}"
      step "seed: the $preset preset ${extra[*]}, 270 s of training, then the Hessians of 524,288 train tokens"
      build-gpu/cli/pgolf train --config "samples/configs/$preset.json" --data devdata/sp1024 --out "$dir/$what" --overwrite \
        --device cuda --precision bf16 --max-seconds 270 --log-every 50 --calibrate 524288 "${extra[@]}" 2>&1 |
        tee "$logs/seed_$what.txt" || { failed+=(seed-$what); return; }
      build-gpu/cli/pgolf export-decoder -o "$dir/pgolf_decode.packed.py" --packed --force > /dev/null
      step "seed: $what packed by --auto under 16,000,000 B, the submission's code counted"
      build-gpu/cli/pgolf compress "$dir/$what.safetensors" -o "$dir/$what.pgz" --force --auto --budget 16000000 \
        --calibration "$dir/$what.h.safetensors" --compressor zstd:22 --code devdata/pg-baseline/train_gpt.py \
        --code "$dir/pgolf_decode.packed.py" 2>&1 | grep -E "^(artifact|quantized|all tensors|total|budget)" |
        tee -a "$logs/seed_$what.txt" || failed+=(seed-$what-compress)
      step "seed: $what, the artifact on the full val split at its seq_len"
      build-gpu/cli/pgolf eval "$dir/$what.pgz" --data devdata/sp1024 --device cuda 2>&1 | grep -E "^val|seq" |
        tee -a "$logs/seed_$what.txt" || failed+=(seed-$what-eval)
      [ -n "${SEED_GAPS:-}" ] && seed_gaps "$dir" "$what"
      [ -n "${SEED_TTT:-}" ] && ttt_eval "$dir/$what.pgz"  # issue 39: the packed artifact with each legal TTT
      ;;
  esac
}

# seed_gaps DIR PRESET (issue 34): the quantization gap (packed minus unpacked full-val val_bpb at the
# model's seq_len) of --auto under calibration (packed above), beside int6 + zstd:22, RTN --auto, and --auto
# under calibration weighted by each tensor's sensitivity (issue 33), measured on 16,384 tokens of the last train
# shard standing in for a val split (nothing is tuned on val).
seed_gaps() {
  local dir=$1 what=$2 name train_as_val=$1/train-as-val
  step "seed gaps: $what unpacked, int6 + zstd:22, and --auto without calibration (round to nearest)"
  build-gpu/cli/pgolf compress "$dir/$what.safetensors" -o "$dir/${what}_int6.pgz" --force --codec int6 --compressor zstd:22 \
    2>&1 | grep -E "^artifact" | tee -a "$logs/seed_$what.txt" || failed+=(seed-gap-int6)
  build-gpu/cli/pgolf compress "$dir/$what.safetensors" -o "$dir/${what}_rtn.pgz" --force --auto --budget 16000000 \
    --compressor zstd:22 --code devdata/pg-baseline/train_gpt.py --code "$dir/pgolf_decode.packed.py" 2>&1 |
    grep -E "^(artifact|total)" | tee -a "$logs/seed_$what.txt" || failed+=(seed-gap-rtn)
  step "seed gaps: $what's sensitivity on 16,384 train tokens, then --auto under calibration weighted by it"
  unpack_train_shards
  mkdir -p "$train_as_val"
  ln -sf "$PWD/$(ls devdata/sp1024/corpus_train_*.bin | tail -1)" "$train_as_val/corpus_val_000000.bin"
  ln -sf "$PWD/devdata/sp1024/corpus_1024_bpe.model" "$train_as_val/"
  build-gpu/cli/pgolf sensitivity "$dir/$what.safetensors" --data "$train_as_val" --tokens 16384 \
    --calibration "$dir/$what.h.safetensors" --device cuda -o "$dir/$what.sensitivity.json" --force -q 2>&1 | tail -2 |
    tee -a "$logs/seed_$what.txt" || failed+=(seed-gap-sensitivity)
  build-gpu/cli/pgolf compress "$dir/$what.safetensors" -o "$dir/${what}_sens.pgz" --force --auto --budget 16000000 \
    --calibration "$dir/$what.h.safetensors" --sensitivity "$dir/$what.sensitivity.json" --compressor zstd:22 \
    --code devdata/pg-baseline/train_gpt.py --code "$dir/pgolf_decode.packed.py" 2>&1 | grep -E "^(artifact|total)" |
    tee -a "$logs/seed_$what.txt" || failed+=(seed-gap-sensitivity-pack)
  for name in "$what.safetensors" "$what.pgz" "${what}_int6.pgz" "${what}_rtn.pgz" "${what}_sens.pgz"; do
    build-gpu/cli/pgolf eval "$dir/$name" --data devdata/sp1024 --device cuda 2>&1 | grep -E "^val_bpb" |
      sed "s|^|$name |" | tee -a "$logs/seed_gaps.txt"
  done
  awk 'NR == 1 { base = $3 } { printf "%-28s val_bpb %s gap %+.6f\n", $1, $3, $3 - base }' "$logs/seed_gaps.txt" |
    tee -a "$logs/seed_$what.txt"
}

submission_run() {
  local dir=build-gpu/submission
  rm -rf "$dir" && mkdir -p "$dir/data"
  python3 -c "import torch, numpy, sentencepiece; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__)" |
    tee "$logs/submission.txt" || { failed+=(submission-python); return; }
  build-gpu/cli/pgolf export-decoder -o "$dir/pgolf_decode.py" | tee -a "$logs/submission.txt"
  build-gpu/cli/pgolf export-decoder -o "$dir/pgolf_decode.packed.py" --packed > /dev/null
  step "submission: base9 --profile python, counted with the baseline script and the packed decoder"
  build-gpu/cli/pgolf compress samples/base9 --profile python -o "$dir/base9.pgz" --budget 16000000 \
    --code devdata/pg-baseline/train_gpt.py --code "$dir/pgolf_decode.packed.py" | tail -3 | tee -a "$logs/submission.txt"
  step "submission: the baseline's eval_val (fp32, then bf16 autocast) against pgolf eval, full val split"
  (cd "$dir" && python3 ../../samples/submission/eval_artifact.py base9.pgz --train-gpt ../../devdata/pg-baseline/train_gpt.py \
     --data ../../devdata/sp1024 --fp32) 2>&1 | tee "$logs/submission_fp32.txt" || failed+=(submission-eval)
  (cd "$dir" && python3 ../../samples/submission/eval_artifact.py base9.pgz --train-gpt ../../devdata/pg-baseline/train_gpt.py \
     --data ../../devdata/sp1024) 2>&1 | tee "$logs/submission_bf16.txt" || failed+=(submission-eval)
  build-gpu/cli/pgolf eval "$dir/base9.pgz" --data devdata/sp1024 --device cuda 2>&1 | tee "$logs/submission_pgolf.txt"
  python3 - "$logs" <<'EOF3' | tee -a "$logs/submission.txt" || failed+=(submission-match)
import re, sys
def bpb(f): return float(re.search(r"val_bpb\s+(\S+)", open(f"{sys.argv[1]}/{f}").read()).group(1))
a, b, c = bpb("submission_fp32.txt"), bpb("submission_pgolf.txt"), bpb("submission_bf16.txt")
print(f"val_bpb: baseline eval_val fp32 {a:.6f}, pgolf eval {b:.6f}: difference {a - b:+.2e} "
      f"({'within 1e-4' if abs(a - b) <= 1e-4 else 'OFF'}); baseline bf16 autocast {c:.6f}")
sys.exit(abs(a - b) > 1e-4)
EOF3
  step "submission: the baseline trains 10 steps and saves final_model.pt; it round-trips"
  unpack_train_shards
  ln -sf "$PWD/devdata/sp1024/corpus_train_000000.bin" "$dir/data/fineweb_train_000000.bin"
  ln -sf "$PWD/devdata/sp1024/corpus_val_000000.bin" "$dir/data/fineweb_val_000000.bin"
  (cd "$dir" && DATA_PATH=data TOKENIZER_PATH=../../devdata/sp1024/corpus_1024_bpe.model ITERATIONS=10 WARMUP_STEPS=2 \
     VAL_LOSS_EVERY=0 TRAIN_BATCH_TOKENS=131072 timeout 400 python3 ../../devdata/pg-baseline/train_gpt.py) \
    > "$logs/submission_train.txt" 2>&1 || { tail -20 "$logs/submission_train.txt"; failed+=(submission-train); return; }
  grep -E "val_bpb|final" "$logs/submission_train.txt" | tail -4
  build-gpu/cli/pgolf compress "$dir/final_model.pt" --codec lossless --profile python -o "$dir/final.pgz" | tail -2
  (cd "$dir" && python3 - <<'EOF4') 2>&1 | tee -a "$logs/submission.txt" || failed+=(submission-roundtrip)
import sys, torch
from pgolf_decode import decode
saved, decoded = torch.load("final_model.pt", map_location="cpu"), decode("final.pgz")
bad = [k for k, t in saved.items() if not torch.equal(t.float(), torch.from_numpy(decoded[k]).float())]
print(f"final_model.pt: {len(saved)} tensors, {len(bad)} differ after compress --codec lossless --profile python and the decoder")
sys.exit(bool(bad) or set(saved) != set(decoded))
EOF4
}

case "${1:-}" in
  submission) submission_run; finish ;;
  seed)
    if [[ "${2:-}" == gaps ]]; then  # a later call on the warm machine, after `seed PRESET` trained and packed it
      [ -f "build-gpu/seed/${3:-}.safetensors" ] || { echo "seed gaps: no build-gpu/seed/${3:-}.safetensors (run seed ${3:-PRESET} first)"; exit 1; }
      seed_gaps build-gpu/seed "$3"
    else
      seed_run "${2:-tests}"
    fi
    finish ;;
  eval-speed) eval_speed; finish ;;
  eval-profile)
    step "kernel times of base9's bf16 stride-64 eval, 64 windows a pass (ncu)"
    kernel_times "$logs/ncu_eval.csv" "all kernels of 512 windows" build-gpu/cli/pgolf eval samples/base9 \
      --data devdata/sp1024 --device cuda --precision bf16 --stride 64 --tokens 32768
    finish ;;
  ttt) ttt_eval "${2:-}"; finish ;;
  profile) train_tests; train_speed bf16; train_profile detail; finish ;;
  check)
    step "GPU tests: every kernel, the evaluator and the trainer against their CPU twins and the CPU reference"
    gpu_tests 2>&1 | tee "$logs/test_kernels.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED)|^\[==" ||
      failed+=(test_kernels)
    grep -q "^\[  FAILED" "$logs/test_kernels.log" && failed+=(test_kernels)
    eval_base9
    train_speed bf16 tf32
    resume_check
    finish ;;
  reference) reference_run; finish ;;
  multi) multi_gpu_benchmark; finish ;;
  fidelity) fidelity_run "${2:-base9}"; finish ;;
  fidelity-twin) fidelity_twin "${2:-base9}"; finish ;;
  rd) rd_benchmark; finish ;;
  gptq) gptq_benchmark; finish ;;
  gptq-solver) gptq_solver_benchmark; finish ;;
  train) train_benchmark; finish ;;
esac

step "GPU tests: kernels and whole forward against the CPU reference"
gpu_tests --gtest_filter='-CudaTrain*' 2>&1 | tee "$logs/test_kernels.log" || failed+=(test_kernels)

eval_base9

if command -v ncu > /dev/null; then
  step "kernel times of one batch of 64 x 1024 tokens (ncu)"
  kernel_times "$logs/ncu.csv" "all kernels of one batch" \
    build-gpu/cli/pgolf eval samples/base9 --data devdata/sp1024 --device cuda --tokens 65536
fi

train_benchmark

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
cat "$logs/eval_check.txt"
finish
