#!/usr/bin/env bash
# The main job on the bundled sample: sets up, then compresses the real trained checkpoint
# samples/base9 to an int6 + zstd-22 artifact, verifies it, decodes it back to safetensors and
# measures its val_bpb against the bf16 original on the bundled validation slice.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
mkdir -p out
pgolf=build/cli/pgolf
$pgolf compress samples/base9 -o out/base9-int6.pgz --codec int6 --compressor zstd:22 --force
# sed reads all of it: head would end inspect with SIGPIPE, which pipefail turns into a failure
$pgolf inspect out/base9-int6.pgz | sed -n 1,8p
$pgolf decompress out/base9-int6.pgz -o out/base9-int6.safetensors --force
for model in samples/base9 out/base9-int6.pgz; do
  echo "== val_bpb of $model (first 8 sequences of the bundled val slice)"
  $pgolf eval "$model" --data samples/sp1024 --tokens 8192
done
