#!/usr/bin/env bash
# Re-measure the committed profiles of this machine (run on a quiet machine, as root for the CPU quota):
# per zoo model an edge profile on one core, one under a 1/8-core quota (an emulated weak edge) and a cloud
# profile on all cores, for the shared autoencoder; plus the independent-autoencoder pair (1-core edge, cloud).
set -euo pipefail
cd "$(dirname "$0")/.."
P=".venv/bin/planner"
for m in ${MODELS:-resnet-fmnist vgg-fmnist}; do
  $P profile --model "$m" --role edge --threads 1
  $P profile --model "$m" --role edge --threads 1 --cpu-quota 0.125
  $P profile --model "$m" --role cloud
  $P profile --model "$m" --role edge --threads 1 --autoencoder independent
  $P profile --model "$m" --role cloud --autoencoder independent
done
# the ImageNet story (issue 26): its edge on one core (weaker edges are emulated by --edge-slowdown at plan and
# run time), its cloud on two threads; the lossy input formats (JPEG/WebP) are profiled by default
for m in ${IMAGENET_MODELS-efficientnet-lite0}; do
  $P profile --model "$m" --role edge --threads 1
  $P profile --model "$m" --role cloud --threads 2
done
