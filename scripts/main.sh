#!/usr/bin/env bash
# The README's main job: set up (idempotent), then the built-in story with `planner demo`: an ImageNet-pretrained
# edge model (efficientnet-lite0) on 224x224 crops of real photos, an edge 8x slower than one core, a slow link
# (1 Mbit/s, 40 ms RTT) and a fast one (50 Mbit/s, 10 ms), 100 held-out crops per link over a shaped loopback
# connection, with the committed profiles of this machine (no accuracy re-measurement; the edge client corrects
# them online). Extra arguments go to `planner demo` (e.g. `--model resnet-fmnist` for the Fashion-MNIST story).
# Until efficientnet-lite0, its autoencoder and its committed profiles are all in this checkout, the story runs on
# resnet-fmnist (profiling this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL=efficientnet-lite0
if .venv/bin/python -c "import sys, planner.zoo as z; sys.exit('$MODEL' not in z.names())" 2>/dev/null \
   && [ -f "planner/compress/weights/$MODEL-shared.pt" ] && compgen -G "profiles/${MODEL}_edge_*-1t.json" >/dev/null; then
  exec .venv/bin/planner demo --model "$MODEL" --fast --n 100 "$@"
fi
exec .venv/bin/planner demo "$@"
