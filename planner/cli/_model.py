"""Shared CLI arguments for naming a model: a zoo name or `package.module:factory` with optional weights."""

from __future__ import annotations


def add_model_args(p, required: bool = True) -> None:
    p.add_argument("--model", required=required,
                   help="zoo model name (vgg-fmnist, resnet-fmnist) or package.module:factory for your own")
    p.add_argument("--weights", default=None, help="state_dict file for the model (loaded with weights_only=True)")
    p.add_argument("--input-shape", default=None, help="per-sample input shape for your own model, e.g. 3x224x224")


def model_from_args(args, trained: bool = True):
    """(model, ModelInfo, example input with batch 1) from the --model/--weights/--input-shape arguments."""
    import torch

    from planner import zoo

    shape = zoo.parse_shape(args.input_shape) if args.input_shape else None
    model, info = zoo.resolve(args.model, args.weights, shape, trained=trained)
    return model, info, torch.zeros(1, *info.input_shape)
