"""What cloud-only costs as a real client sends it: a zoo model's input as JPEG/WebP at several qualities.

Per format: the mean payload per input (the planner's input coder: the image file plus the codec's frame), and
the model's accuracy on what the cloud decodes (top-1 agreement with the unsplit model for unlabelled data such
as the photos' crops), beside the lossless references (zlib -9 of the pixels, the codec's lossless cloud-only
payload, an optimized PNG). The same rows as `benchmarks/rate_table.py`'s input line, for one model, quickly.

    .venv/bin/python benchmarks/input_formats.py --model resnet-fmnist            # all 10,000 test images
    .venv/bin/python benchmarks/input_formats.py --model efficientnet-lite0       # the 300 test crops

Writes benchmarks/results/input_formats_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rate_table import RESULTS, input_rows  # noqa: E402

from planner.datasets import load_data  # noqa: E402
from planner.evaluate import score  # noqa: E402
from planner.execution.pipeline import SplitPipeline  # noqa: E402
from planner.modelspec import load_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet-fmnist")
    p.add_argument("--limit", type=int, default=None, help="first N test inputs for accuracy (default: all)")
    p.add_argument("--bytes-images", type=int, default=1000, help="test inputs whose payload bytes are measured")
    p.add_argument("--out", default=None, help="default benchmarks/results/input_formats_<model>.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    loaded = load_model(args.model)
    pipe = SplitPipeline.from_model(loaded, None, None)
    data = load_data(None, loaded, "test")
    sizes, accuracy = input_rows(pipe, data, args.limit, args.bytes_images)
    metric = data.metric
    backbone = score(loaded.model, loaded.model, data.take(args.limit), pipe.input_tensor, 50)[metric]
    result = {"command": "python benchmarks/input_formats.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "data": data.fingerprint, "metric": metric,
              "n": min(len(data), args.limit or len(data)), "backbone": round(backbone, 3), "bytes": sizes,
              metric: accuracy}
    out = Path(args.out or RESULTS / f"input_formats_{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| format | bytes per input | {metric} % |\n|---|---|---|")
    for k, v in sizes.items():
        print(f"| {k} | {v:.0f} | {f'{backbone:.2f} (lossless)' if accuracy.get(k) is None else accuracy[k]} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
