"""`planner evaluate --model M [--data D] [--json]`: a model's top-1 accuracy (agreement without labels)."""

from __future__ import annotations

from planner.cli import checks as check
from planner.cli._model import add_data_args, add_model_args, data_from_args, model_from_args
from planner.devices import DEVICE_HELP


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model's accuracy on your data (default: Fashion-MNIST test)")
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="Fashion-MNIST split")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument("--data-root", default=None, help="folder with the IDX files (default: the Debian package's)")
    p.add_argument("--device", type=check.device, default="auto", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", help='print {"accuracy": percent, "n": N} (or "agreement")')
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import time

    from planner.devices import resolve_device
    from planner.evaluate import score

    device = resolve_device(args.device)  # before the model loads: a missing GPU is one line
    loaded = model_from_args(args)
    loaded.model.to(device)
    data = data_from_args(args, loaded, split=args.split).take(args.limit)
    start = time.perf_counter()
    result = score(loaded.model, loaded.model, data, loaded.preprocess, device=device)
    if args.json:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
        return 0
    card = loaded.info.test_accuracy if loaded.zoo and loaded.info and not args.data else None
    where = f"{args.split} " if not args.data else ""
    print(f"{loaded.name}: {where}{data.metric} {result[data.metric]:.2f}% on {result['n']} samples of {data.source} "
          f"({time.perf_counter() - start:.1f} s on {device})" + (f"; card says {card:.2f}% on the full test set" if card else ""))
    return 0
