"""Optimizer updates per hour of `train-ae`'s loop, before/after the feature cache, on the same machine and recipe.

    python benchmarks/train_speed.py --model resnet-fmnist --steps 50 --threads 1 [--cache none|DIR]
        [--batch-size 128] [--bits-per-step 3]

Runs `train()` for --steps steps (one full cycle over the cuts at least) from a fresh shared autoencoder on the
Fashion-MNIST training set and prints one JSON line: steps, seconds, updates per hour, and the cache's open/build
time (not counted in the loop's seconds; reported so it can be amortized). Works on older checkouts without a
feature cache too (PYTHONPATH=/path/to/old/checkout): then --cache is ignored and every step runs the backbone.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet-fmnist")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=None, help="feature cache folder (default: the default root); none: live")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--bits-per-step", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="training images (default all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from planner.compress.aeconfig import AEConfig
    from planner.compress.autoencoder import build_autoencoder
    from planner.compress.backbone import Backbone, calibrate_scales
    from planner.compress.train import TrainConfig, train
    from planner.data import load_fashion_mnist
    from planner.modelspec import load_model

    loaded = load_model(args.model)
    backbone = Backbone(loaded.model, loaded.example(), None)
    x, y = load_fashion_mnist("train").tensors(args.limit)
    torch.manual_seed(0)
    ae = build_autoencoder(AEConfig.for_cuts(backbone.cuts))
    calibrate_scales(ae, backbone, x)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, bits_per_step=args.bits_per_step,
                      checkpoint_every=10**9)
    kw, build = {}, 0.0
    try:
        from planner.compress.featcache import open_or_build
    except ImportError:
        open_or_build = None
    if open_or_build is not None and args.cache != "none":
        t = time.perf_counter()
        kw["cache"] = open_or_build(backbone, x, args.cache)
        build = time.perf_counter() - t
    result = train(ae, backbone, x, y, cfg, progress=False, **kw)
    print(json.dumps({"model": args.model, "steps": args.steps, "batch_size": args.batch_size,
                      "bits_per_step": args.bits_per_step, "threads": args.threads,
                      "cache": "cache" in kw, "cache_open_or_build_s": round(build, 1),
                      "loop_s": round(result.seconds, 1),
                      "updates_per_hour": round(3600 * args.steps / result.seconds)}))


if __name__ == "__main__":
    main()
