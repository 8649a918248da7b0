#!/usr/bin/env bash
# The recipe twin on the CPU (issue 35, docs/fidelity.md): the Parameter Golf baseline's own train_gpt.py,
# run by Debian's torch on the CPU with nothing in bf16 (scripts/reference_variant.py cpu,fp32,ns-fp32,
# update-fp32), saves the weights it starts from; pgolf train --init starts from them on the CPU reference
# and reads the same batches of samples/sp1024. Every step's loss side by side (scripts/compare_losses.py):
# the two agree to float rounding unless their recipes differ, from the first step that differs.
#
#   scripts/twin_cpu.sh [base9|seed] [STEPS]
#     base9  4 blocks of dim 64 (4 heads, 2 KV heads, MLP 2x), seq 128, seed 1337
#     seed   11 blocks, MLP 3x, seq 256, Muon momentum 0.99, grad clip 1.0, seed 42 (the seed's recipe)
#   Both: 4,096 tokens a step (8 micro-steps, as the script takes them on one GPU), STEPS (default 40)
#   steps, a third of them warmdown, the momentum warmed up over half of them (the script's 500 steps
#   would never finish). TWIN_REF: other variants of the script (e.g. cpu: its bf16 storage and CPU
#   autocast); TWIN_FLAGS: more pgolf train flags; TWIN_SEED: another seed; TWIN_TAG names the run's
#   folder (build/twin-cpu/SHAPE-TAG). Needs ../shared (or PG_BASELINE=path/to/train_gpt.py) and Debian's
#   python3-torch. About 2 minutes (base9) and 8 (seed) on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-base9} steps=${2:-40}
script=$(realpath -e "${PG_BASELINE:-../shared/reference/pg-baseline/train_gpt.py}" 2>/dev/null) ||
  { echo "twin_cpu: no train_gpt.py at ${PG_BASELINE:-../shared/reference/pg-baseline/train_gpt.py} (set PG_BASELINE)"; exit 1; }
/usr/bin/python3 -c "import torch, numpy, sentencepiece" 2>/dev/null ||
  { echo "twin_cpu: Debian's python3 lacks torch (apt-get install python3-torch python3-sentencepiece)"; exit 1; }
[ -x build/cli/pgolf ] || scripts/setup.sh >/dev/null
warmdown=$((steps / 3)) momentum_warmup=$((steps / 2 > 0 ? steps / 2 : 1))
case "$shape" in
  base9) seq=128 seed=1337 env=(NUM_LAYERS=4) flags=(--layers 4) ;;
  seed) seq=256 seed=42 env=(NUM_LAYERS=11 MLP_MULT=3 MUON_MOMENTUM=0.99 GRAD_CLIP_NORM=1.0)
    flags=(--layers 11 --mlp-mult 3 --muon-momentum 0.99 --grad-clip 1.0) ;;
  *) echo "twin_cpu: SHAPE is base9 or seed"; exit 1 ;;
esac
seed=${TWIN_SEED:-$seed}
dir=build/twin-cpu/$shape-${TWIN_TAG:-twin}
rm -rf "$dir" && mkdir -p "$dir/data"
ln -s "$PWD/samples/sp1024/corpus_train_000000.bin" "$dir/data/fineweb_train_000000.bin"
ln -s "$PWD/samples/sp1024/corpus_val_000000.bin" "$dir/data/fineweb_val_000000.bin"
echo "twin_cpu $shape: the script (${TWIN_REF:-cpu,fp32,ns-fp32,update-fp32}), $steps steps (warmdown $warmdown)"
(cd "$dir" && env DATA_PATH=data TOKENIZER_PATH="$PWD/../../../samples/sp1024/corpus_1024_bpe.model" \
   ITERATIONS="$steps" WARMDOWN_ITERS="$warmdown" MAX_WALLCLOCK_SECONDS=0 TRAIN_BATCH_TOKENS=4096 TRAIN_SEQ_LEN="$seq" \
   TRAIN_LOG_EVERY=1 VAL_LOSS_EVERY=0 SEED="$seed" MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 \
   MUON_MOMENTUM_WARMUP_STEPS="$momentum_warmup" "${env[@]}" \
   /usr/bin/python3 ../../../scripts/reference_variant.py "$script" "${TWIN_REF:-cpu,fp32,ns-fp32,update-fp32},save-init") \
  > "$dir/reference.txt" 2>&1 || { tail -20 "$dir/reference.txt"; exit 1; }
echo "twin_cpu $shape: pgolf train --init the script's weights (the CPU reference)"
# shellcheck disable=SC2086
build/cli/pgolf train --data samples/sp1024 --out "$dir/pgolf" --overwrite --device cpu --init "$dir/init.pt" \
  --tokens-per-step 4096 --micro-batch $((512 / seq)) --seq-len "$seq" --steps "$steps" --warmdown "$warmdown" \
  --seed "$seed" --dim 64 --heads 4 --kv-heads 2 --momentum-warmup-steps "$momentum_warmup" --log-every 1 \
  --val-every 0 --val-tokens 0 "${flags[@]}" ${TWIN_FLAGS:-} > "$dir/pgolf.txt" 2>&1 || { tail -20 "$dir/pgolf.txt"; exit 1; }
/usr/bin/python3 scripts/compare_losses.py "$dir/reference.txt" "$dir/pgolf.txt"
