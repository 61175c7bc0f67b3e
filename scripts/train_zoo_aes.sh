#!/usr/bin/env bash
# Train (and replace: --overwrite-shipped) a zoo model's committed autoencoders, the shared one then the independent baseline, on one thread each,
# checkpointed every 250 steps and resumable (rerun after an interruption: --resume picks up the checkpoint).
# Writes runs/ae/MODEL-KIND.pt (+ .json card); the shipped weights change only with COPY=1 (deliberately).
#   bash scripts/train_zoo_aes.sh resnet-fmnist & bash scripts/train_zoo_aes.sh vgg-fmnist &   # both, 2 cores
set -uo pipefail
cd "$(dirname "$0")/.."
m=${1:?usage: train_zoo_aes.sh MODEL}
mkdir -p runs/ae
for kind in shared independent; do
  flag=""; [ "$kind" = independent ] && flag="--independent"
  .venv/bin/planner train-ae --model "$m" $flag --threads "${THREADS:-1}" --checkpoint "runs/ae/$m-$kind.ckpt" \
    --resume --out "runs/ae/$m-$kind.pt" --no-progress > "runs/ae/$m-$kind.log" 2>&1
  rc=$?
  echo "$m $kind rc=$rc $(date)" >> runs/ae/chain.log
  if [ "$rc" = 0 ] && [ "${COPY:-0}" = 1 ]; then
    cp "runs/ae/$m-$kind.pt" "runs/ae/$m-$kind.json" planner/compress/weights/
  fi
done
