"""`planner evaluate --model NAME`: test accuracy of a backbone on Fashion-MNIST."""

from __future__ import annotations

from planner.cli._model import add_model_args, model_from_args


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model's accuracy on the Fashion-MNIST test set")
    add_model_args(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--data-root", default=None, help="folder with the IDX files (default: the Debian package's)")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from planner.data import loader
    from planner.evaluate import accuracy

    model, info, _ = model_from_args(args)
    data = loader(args.split, limit=args.limit, root=args.data_root)
    start = time.perf_counter()
    acc = accuracy(model, data, progress=True)
    n = len(data.dataset)
    print(f"{info.name}: {args.split} accuracy {acc:.2f}% on {n} images ({time.perf_counter() - start:.1f} s)"
          + (f"; card says {info.test_accuracy:.2f}% on the full test set" if info.test_accuracy else ""))
    return 0
