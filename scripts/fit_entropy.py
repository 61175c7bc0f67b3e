"""Add static entropy models to an autoencoder file (or a raw-quantizer calibration) that has none, without
retraining: fitted on the codes of N training images. Writes a NEW file (the shipped ones change only when you
copy it over them deliberately; the autoencoder's id, a digest of the file, changes with it, so profiles made
with the old file must be re-measured: scripts/make_profiles.sh).

    nice -n 10 .venv/bin/python scripts/fit_entropy.py --model resnet-fmnist --kind shared --out runs/ae/resnet-fmnist-shared.pt
    nice -n 10 .venv/bin/python scripts/fit_entropy.py --model resnet-fmnist --kind quant --out runs/ae/resnet-fmnist-quant.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a zoo model")
    ap.add_argument("--kind", default="shared", choices=["shared", "independent", "quant"])
    ap.add_argument("--images", type=int, default=2000, help="training images the models are fitted on")
    ap.add_argument("--out", required=True, help="the new file (never the shipped one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from planner.compress.aefile import save_autoencoder
    from planner.compress.backbone import Backbone, entropy_features
    from planner.compress.clipquant import load_quantizer, quant_path
    from planner.compress.zoo import load_autoencoder, weights_path
    from planner.data import load_fashion_mnist
    from planner.errors import CompressError
    from planner.modelspec import load_model

    shipped = quant_path(args.model) if args.kind == "quant" else weights_path(args.model, args.kind)
    if shipped.resolve() == Path(args.out).resolve():
        raise CompressError(f"--out {args.out} is the shipped file: write a new one and copy it deliberately")
    loaded = load_model(args.model)
    coder = load_quantizer(args.model) if args.kind == "quant" else load_autoencoder(args.model, args.kind)
    if coder is None:
        raise CompressError(f"{args.model} has no committed {args.kind} coder")
    x, _ = load_fashion_mnist("train").tensors()
    backbone = Backbone(loaded.model, loaded.example(), coder.cuts, kinds=("map", "tokens", "vector"))
    coder.fit_entropy(entropy_features(backbone, x, count=args.images))
    if args.kind == "quant":
        coder.save(args.out)
    else:
        save_autoencoder(coder, args.out)
    print(f"{args.out}: {len(coder.entropy)} entropy models fitted on {args.images} training images")


if __name__ == "__main__":
    main()
