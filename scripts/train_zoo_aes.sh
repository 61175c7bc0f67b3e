#!/usr/bin/env bash
# Train (and replace: --overwrite-shipped) a zoo model's committed autoencoders, the shared one then the independent baseline, on one thread each,
# checkpointed every 250 steps and resumable (rerun after an interruption: --resume picks up the checkpoint).
#   bash scripts/train_zoo_aes.sh resnet-fmnist & bash scripts/train_zoo_aes.sh vgg-fmnist &   # both, 2 cores
set -uo pipefail
cd "$(dirname "$0")/.."
m=${1:?usage: train_zoo_aes.sh MODEL}
mkdir -p runs/ae
for kind in shared independent; do
  flag=""; [ "$kind" = independent ] && flag="--independent"
  .venv/bin/planner train-ae --model "$m" $flag --threads 1 --checkpoint "runs/ae/$m-$kind.ckpt" --resume \
    --out "planner/compress/weights/$m-$kind.pt" --overwrite-shipped --no-progress > "runs/ae/$m-$kind.log" 2>&1
  echo "$m $kind rc=$? $(date)" >> runs/ae/chain.log
done
