"""Does the profile predict what runs? Profile head+tail per cut vs a fresh measured run of head->tail.

Also shows why the profiler times whole heads: the sum of per-layer times (each layer timed alone) is
compared with the time of the whole head, cut by cut.

    python benchmarks/profile_accuracy.py --model resnet-fmnist --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import fx

from planner.execution.pipeline import SplitPipeline
from planner.profile.measure import ProfileSettings, profile_pipeline
from planner.profile.schema import Profile
from planner.profile.timing import measure


def per_layer_sum_ms(head: fx.GraphModule, x: torch.Tensor, max_seconds: float) -> float:
    """Time every node of the head on its recorded input, alone, and add the medians."""
    values: dict = {}

    class Rec(fx.Interpreter):
        def run_node(self, n):
            values[n] = out = super().run_node(n)
            return out

    Rec(head).run(x)
    total = 0.0
    for n in head.graph.nodes:
        if n.op not in ("call_module", "call_function", "call_method"):
            continue
        interp = fx.Interpreter(head)
        args = fx.node.map_arg(n.args, lambda a: values[a])
        kwargs = fx.node.map_arg(n.kwargs, lambda a: values[a])
        fn = getattr(interp, n.op)
        total += measure(lambda fn=fn, n=n, a=args, k=kwargs: fn(n.target, a, k), max_seconds=max_seconds).median
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet-fmnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=0.25)
    ap.add_argument("--out", default="benchmarks/results/profile_accuracy.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = SplitPipeline.from_zoo(args.model, "shared")
    start = time.perf_counter()
    doc = profile_pipeline(pipe, ProfileSettings(role="both", threads=args.threads, max_seconds=args.max_seconds),
                           progress=False)
    profile_s = time.perf_counter() - start
    profile = Profile.from_dict(doc)
    x = pipe.input_tensor(np.zeros((1, 28, 28), np.uint8))
    rows = []
    with torch.inference_mode():
        for c in profile.cuts:
            head, tail = pipe.split(c.id)
            fresh = measure(lambda h=head, t=tail: t(h(pipe.input_tensor(np.zeros((1, 28, 28), np.uint8)))),
                            max_seconds=args.max_seconds).median
            predicted = c.head_ms.median + c.tail_ms.median
            whole_head = measure(lambda h=head: h(x), max_seconds=args.max_seconds).median
            layers = per_layer_sum_ms(head, x, args.max_seconds / 4)
            rows.append({"cut": c.id, "predicted_ms": predicted, "measured_ms": fresh,
                         "error": (predicted - fresh) / fresh, "head_ms": whole_head, "per_layer_sum_ms": layers,
                         "sum_over_whole": layers / whole_head})
    errs = np.abs([r["error"] for r in rows])
    ratio = np.array([r["sum_over_whole"] for r in rows])
    print(f"{'cut':22s} {'pred ms':>8s} {'meas ms':>8s} {'err':>7s} {'head ms':>8s} {'layer sum':>9s} {'sum/head':>8s}")
    for r in rows:
        print(f"{r['cut']:22s} {r['predicted_ms']:8.3f} {r['measured_ms']:8.3f} {100 * r['error']:6.1f}% "
              f"{r['head_ms']:8.3f} {r['per_layer_sum_ms']:9.3f} {r['sum_over_whole']:8.2f}")
    summary = {"model": args.model, "threads": args.threads, "profile_seconds": round(profile_s, 1),
               "median_abs_error": float(np.median(errs)), "max_abs_error": float(errs.max()),
               "per_layer_sum_over_whole_median": float(np.median(ratio)), "rows": rows}
    print(f"\nmedian |predicted - measured| / measured = {100 * summary['median_abs_error']:.1f}% "
          f"(target <= 10%), max {100 * summary['max_abs_error']:.1f}%")
    print(f"per-layer sum / whole head: median {summary['per_layer_sum_over_whole_median']:.2f}x")
    print(f"profiling ({args.model}, both roles, cached accuracy) took {profile_s:.0f} s (target <= 180 s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
