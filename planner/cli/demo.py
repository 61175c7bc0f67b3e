"""`planner demo`: the main job on the built-in models, with embedded defaults."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole story on the built-in models (the README's main job)")
    p.add_argument("--model", action="append", default=None,
                   help="zoo model(s) to show (default: vgg-fmnist and resnet-fmnist)")
    p.add_argument("--limit", type=int, default=None, help="evaluate on the first N test images only")
    p.set_defaults(func=run)


def run(args) -> int:
    from planner.cli import cuts as cuts_cmd
    from planner.cli import evaluate as evaluate_cmd

    for name in args.model or ["vgg-fmnist", "resnet-fmnist"]:
        print(f"\n=== {name}: cuts ===")
        cuts_cmd.run(argparse.Namespace(model=name, weights=None, input_shape=None, json=False))
        print(f"\n=== {name}: Fashion-MNIST test accuracy ===")
        evaluate_cmd.run(argparse.Namespace(model=name, weights=None, input_shape=None, split="test",
                                            limit=args.limit, data_root=None))
    return 0
