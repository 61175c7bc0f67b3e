#!/usr/bin/env bash
# Train (and, with COPY=1, replace) a Fashion-MNIST zoo model's committed autoencoders: the shared one and the
# independent baseline, side by side on one thread each (2 cores), with issue 24's recipe: the residual variant
# (warm-started as the per-channel raw quantizer), every channel kept (the bits are the knob), 1-8 bits, many
# small steps from the feature cache. Checkpointed every 250 steps; rerun after an interruption (--resume).
# Writes runs/ae/MODEL-KIND.pt (+ .json card); the shipped weights change only with COPY=1 (deliberately).
#   STEPS=5000 bash scripts/train_zoo_aes.sh resnet-fmnist      # ~1,000 steps per served cut
#   STEPS=7200 bash scripts/train_zoo_aes.sh vgg-fmnist
set -uo pipefail
cd "$(dirname "$0")/.."
m=${1:?usage: train_zoo_aes.sh MODEL}
steps=${STEPS:-5000}
mkdir -p runs/ae
recipe=(--variant residual --max-reduction 1 --latent 4096 --widths 4096 --bits 1,2,3,4,6,8 --decoder-width 64
        --batch-size 32 --bits-per-step 2 --lr 5e-4 --steps "$steps" --cache-gb 2 --val-limit 2000 --no-progress)

train() {  # KIND [extra flags...]
  local kind=$1; shift
  local flag=""; [ "$kind" = independent ] && flag="--independent"
  .venv/bin/planner train-ae --model "$m" $flag "${recipe[@]}" --threads "${THREADS:-1}" \
    --checkpoint "runs/ae/$m-$kind.ckpt" --resume --out "runs/ae/$m-$kind.pt" "$@" >> "runs/ae/$m-$kind.log" 2>&1
  local rc=$?
  echo "$m $kind rc=$rc $(date)" >> runs/ae/chain.log
  return $rc
}

# one step first: builds the feature cache once (both runs then share it) and a checkpoint to resume from
train shared --stop-after 1 || exit 1
train shared & s=$!
train independent & i=$!
wait $s; rs=$?
wait $i; ri=$?
if [ "${COPY:-0}" = 1 ]; then  # only what this run trained (never a stale file of a failed run)
  [ "$rs" = 0 ] && cp "runs/ae/$m-shared.pt" "runs/ae/$m-shared.json" planner/compress/weights/
  [ "$ri" = 0 ] && cp "runs/ae/$m-independent.pt" "runs/ae/$m-independent.json" planner/compress/weights/
fi
exit $(( rs || ri ))
