"""Recipe ablation at equal compute: one cut's autoencoder trained from the feature cache by several recipes,
scored on validation images at the widest width and 8 bits and at the smallest setting.

    python benchmarks/recipe_ablation.py --model resnet-fmnist --cut stem_2 --budget 150 --threads 1

`--budget` B: the old recipe (batch 128, 3 settings per step) gets B steps; a recipe of batch b and s settings
per step gets B * (128 * 3) / (b * s) steps (the same number of sample-settings through decoder and tail).
Prints one JSON line per recipe (loss in pp against the backbone on the same images).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

RECIPES = {  # name: (batch, settings per step, lr)
    "old: b128 x3 settings": (128, 3, 3e-3),
    "b32 x2 (largest + 1)": (32, 2, 3e-3),
    "b32 x3 sandwich": (32, 3, 3e-3),
    "b64 x2 (largest + 1)": (64, 2, 3e-3),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet-fmnist")
    ap.add_argument("--cut", default="stem_2")
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--recipes", default=None, help="comma-separated indices into RECIPES (default all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from planner.compress.aeconfig import AEConfig
    from planner.compress.autoencoder import build_autoencoder
    from planner.compress.backbone import Backbone, calibrate_scales, evaluate, recalibrate_bn
    from planner.compress.featcache import open_or_build
    from planner.compress.train import TrainConfig, train
    from planner.data import load_fashion_mnist
    from planner.modelspec import load_model

    loaded = load_model(args.model)
    backbone = Backbone(loaded.model, loaded.example(), None)
    x, y = load_fashion_mnist("train").tensors()
    vx, vy = load_fashion_mnist("val").tensors(args.val)
    cache = open_or_build(backbone, x)
    cut = next(c for c in backbone.cuts if c.id == args.cut)
    names = list(RECIPES)
    chosen = [names[int(i)] for i in args.recipes.split(",")] if args.recipes else names
    for name in chosen:
        batch, settings, lr = RECIPES[name]
        steps = max(1, round(args.budget * 128 * 3 / (batch * settings)))
        torch.manual_seed(0)
        ae = build_autoencoder(AEConfig.for_cuts([cut]))
        calibrate_scales(ae, backbone, x, cache=cache)
        cfg = TrainConfig(steps=steps, batch_size=batch, bits_per_step=settings, lr=lr, checkpoint_every=10**9)
        t0 = time.perf_counter()
        train(ae, backbone, x, y, cfg, progress=False, cache=cache)
        seconds = time.perf_counter() - t0
        recalibrate_bn(ae, backbone, x, batches=8, batch_size=250, cache=cache)
        widths = ae.widths(args.cut)
        scores = evaluate(ae, backbone, vx, vy, bits=[2, 8], widths=[widths[0], widths[-1]])
        base = scores["backbone"]
        rows = {f"w{w}b{b}": round(base - a, 2) for (c, w, b), a in scores["rows"].items()}
        print(json.dumps({"model": args.model, "cut": args.cut, "recipe": name, "steps": steps,
                          "train_s": round(seconds, 1), "val": len(vy), "loss_pp": rows}), flush=True)


if __name__ == "__main__":
    main()
