"""`planner calibrate-quant --model M [--data D]`: the training-free raw quantizer's clip ranges (seconds, no
training): per-channel uniform quantization of the raw feature, the baseline the autoencoder must beat."""

from __future__ import annotations

from planner.cli import checks as check
from planner.cli._model import add_data_args, add_model_args, data_from_args, model_from_args
from planner.config import DEFAULT_BITS
from planner.devices import DEVICE_HELP


def register(sub) -> None:
    p = sub.add_parser("calibrate-quant", help="calibrate the training-free raw quantizer (a baseline candidate)")
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--cuts", default=None, help="comma-separated cut ids (default: the cuts `train-ae` serves)")
    p.add_argument("--bits", default=",".join(map(str, DEFAULT_BITS)), help="bitwidths (1..8)")
    p.add_argument("--samples", type=int, default=512, help="training samples the clip ranges are measured on")
    p.add_argument("--device", type=check.device, default="auto", help=DEVICE_HELP)
    p.add_argument("--out", default=None, help="calibration file (zoo models default to compress/weights/)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from planner.compress.clipquant import calibrate_model, quant_path
    from planner.compress.quantize import parse_bits
    from planner.devices import resolve_device
    from planner.errors import CompressError

    device = resolve_device(args.device)  # before the model loads: a missing GPU is one line
    loaded = model_from_args(args)
    if args.samples < 1:
        raise CompressError(f"--samples must be >= 1, got {args.samples}")
    if args.out is None and not loaded.zoo:
        raise CompressError("give --out FILE for the calibration of your own model")
    data = data_from_args(args, loaded, split="train").take(args.samples)
    x = torch.cat(list(data.inputs(loaded.preprocess)))
    cut_ids = [c for c in args.cuts.split(",") if c] if args.cuts else None
    q = calibrate_model(loaded, x, cut_ids, parse_bits(args.bits), device=device)
    out = args.out or quant_path(loaded.name)
    q.save(out)
    print(f"{q.id}: clip ranges for {len(q.cuts)} cuts x {len(q.bits)} bitwidths from {len(x)} samples -> {out}")
    return 0
