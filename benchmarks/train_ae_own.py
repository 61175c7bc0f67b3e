"""`planner train-ae` for a model that is not in the zoo: wall time of N steps (target: < 3 min for 600 steps of
a < 1 M-parameter model on 2 cores) and the card's accuracy per (cut, 8 bits) next to the backbone's.

The model is `SmallCNN` below (the README's "Your own model"), trained here for a few hundred steps on
Fashion-MNIST; the data is a Fashion-MNIST .npz this script writes. Run from the repository root:

    python benchmarks/train_ae_own.py [--steps 600] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * 7 * 7, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def build():
    return SmallCNN()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=10000, help="training images in the .npz")
    ap.add_argument("--quick", action="store_true", help="60 steps, 2,000 images (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.images = 60, 2000
    from planner.data import load_arrays

    torch.set_num_threads(args.threads)
    x, y = load_arrays("train")
    x, y = x[: args.images], y[: args.images]
    torch.manual_seed(0)
    model = build()
    batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.from_numpy(x).float().div(255)[:, None], torch.from_numpy(y)), batch_size=128, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for xb, yb in batches:  # one epoch: enough for a backbone to distil from
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        torch.save(model.state_dict(), d / "w.pt")
        np.savez(d / "data.npz", x=x, y=y)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get(
            "PYTHONPATH", "")]), "OMP_NUM_THREADS": str(args.threads)}
        cmd = [sys.executable, "-m", "planner", "train-ae", "--model", "train_ae_own:build", "--weights",
               str(d / "w.pt"), "--input-shape", "1x28x28", "--data", str(d / "data.npz"), "--steps",
               str(args.steps), "--threads", str(args.threads), "--out", str(d / "ae.pt"), "--no-progress",
               "--checkpoint", str(d / "ae.ckpt")]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        wall = time.perf_counter() - t0
        card = json.loads((d / "ae.json").read_text())
    at8 = {k: v for k, v in card["val_accuracy"].items() if k.endswith("@8")}
    print(json.dumps({"model_params": params, "steps": args.steps, "threads": args.threads,
                      "train_images": card["train"]["train_images"], "wall_s": round(wall, 1),
                      "train_s": card["train"]["train_seconds"], "target_s": 180,
                      "within_target": wall < 180, "load_average": os.getloadavg()[0],
                      "val_backbone_accuracy": card["val_backbone_accuracy"], "val_accuracy_8bit": at8,
                      "served_cuts": card["served_cuts"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
