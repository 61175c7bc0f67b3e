"""PyTorch eager vs ONNX Runtime for both halves of the split, measured side by side in one run.

Per model (exported with `planner export --cuts all`, every bitwidth):
1. stages: per served cut at --bits, the edge half (`edge_encode`: head + encoder + quantizer + codec) and the
   cloud half (`cloud_decode`: codec + decoder + tail) at batch 1 on one thread, eager vs ORT in alternating
   blocks of 25 calls, medians and ratios; the whole model too. Target: edge ORT <= 0.35x eager on the median
   served cut.
2. serving: 16 concurrent EdgeClients (ORT edges, so that only the server differs) against a `planner serve`
   subprocess run by PyTorch and then by ONNX Runtime, cloud-only and the median cut at --bits; throughput,
   p50/p99, lost. Target: ORT >= 2x the throughput, 0 lost, p99 no worse.
3. plans: edge (1 thread) and cloud profiles measured with PyTorch, then re-timed with ORT (same payloads and
   accuracies), and the plan each pair picks across bandwidths (RTT 20 ms; edge as measured, 10x, 100x slower).
4. agreement: predictions of every exported candidate (each served cut x bits, each raw cut, whole model) by
   ORT vs PyTorch on the test set (default all 10,000). Target: identical on >= 99.5 % of images each.

    nice -n 19 .venv/bin/python benchmarks/runtimes.py --quick   # fewer repeats and requests
    .venv/bin/python benchmarks/runtimes.py --json benchmarks/results/runtimes.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BANDWIDTHS = ("0.05mbit", "0.2mbit", "1mbit", "5mbit", "50mbit")
SLOWDOWNS = (1.0, 10.0, 100.0)  # edge devices as measured, and 10x / 100x slower (DESIGN: weak edges)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="vgg-fmnist,resnet-fmnist")
    p.add_argument("--bits", type=int, default=4, help="bitwidth of the per-cut timings and the served split (4)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=100, help="requests per client and candidate (default 100)")
    p.add_argument("--rounds", type=int, default=1000, help="alternating timed calls per stage and runtime (1000)")
    p.add_argument("--max-seconds", type=float, default=0.25, help="time cap per stage of the profiles (0.25 s)")
    p.add_argument("--agree-images", type=int, default=10000, help="test images for the agreement (all 10,000)")
    p.add_argument("--accuracy-images", type=int, default=None,
                   help="test images for the profiles' accuracy (default all; the same for both runtimes)")
    p.add_argument("--quick", action="store_true",
                   help="25 requests per client, 300 rounds per stage, 0.1 s per profile stage, profiles' "
                        "accuracy on 1000 images")
    p.add_argument("--parts", default="stages,serving,plans,agreement", help="which parts to run (default all)")
    p.add_argument("--onnx-dir", default=None, help="reuse/keep exports here (default: a temporary folder)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write all figures as JSON to FILE")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.rounds, args.max_seconds = 25, 300, 0.1
        args.accuracy_images = args.accuracy_images or 1000
    args.models, args.parts = args.models.split(","), set(args.parts.split(","))
    return args


def export(model: str, folder: Path):
    """(torch pipeline, ORT pipeline on one thread) over a full export in `folder` (made unless present)."""
    from planner.execution.onnx_export import export_pipeline
    from planner.execution.onnx_runtime import OnnxPipeline
    from planner.execution.pipeline import SplitPipeline

    pipe = SplitPipeline.from_zoo(model)
    if not (folder / "manifest.json").exists():
        t0 = time.perf_counter()
        m = export_pipeline(pipe, folder)
        print(f"{model}: exported {len(m['files'])} graphs in {time.perf_counter() - t0:.0f} s", flush=True)
    onnx = OnnxPipeline(pipe, folder, threads=1)
    pipe.warm()
    return pipe, onnx


def side_by_side(fns, rounds: int, block: int = 25, warmup: int = 10) -> list[float]:
    """Median ms per call of each callable, timed in alternating blocks of `block` calls (so load hits all
    alike, while each block runs with its own weights in cache, as a device running one runtime does)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples = [[] for _ in fns]
    for _ in range(max(1, rounds // block)):
        for fn, out in zip(fns, samples, strict=True):
            fn()  # back in cache after the other runtime's block
            for _ in range(block):
                t0 = time.perf_counter_ns()
                fn()
                out.append((time.perf_counter_ns() - t0) / 1e6)
    return [statistics.median(s) for s in samples]


def stage_times(pipe, onnx, bits: int, rounds: int) -> dict:
    """Per served cut: edge and cloud halves, eager vs ORT, batch 1, one thread (alternating, medians)."""
    from planner.data import load_arrays
    from planner.types import CandidateSpec

    raw = load_arrays("test")[0][:1]
    ratio = lambda e, o: {"eager_ms": round(e, 4), "ort_ms": round(o, 4), "ratio": round(o / e, 3)}  # noqa: E731
    rows = {}
    for cut in pipe.ae.cuts:
        spec = CandidateSpec.split(cut, bits)
        payload, _ = pipe.edge_encode(raw, spec)
        rows[cut] = {"edge": ratio(*side_by_side([lambda p=p, s=spec: p.edge_encode(raw, s)
                                                   for p in (pipe, onnx)], rounds)),
                     "cloud": ratio(*side_by_side([lambda p=p, q=payload: p.cloud_decode(q) for p in (pipe, onnx)],
                                                  rounds))}
    median_cut = pipe.ae.cuts[(len(pipe.ae.cuts) - 1) // 2]
    return {"bits": bits, "rounds": rounds, "cuts": rows, "median_cut": median_cut,
            "whole_model": ratio(*side_by_side([lambda p=p: p.edge_local(raw) for p in (pipe, onnx)], rounds))}


def serving(args, model: str, onnx, folder: Path, median_cut: str) -> dict:
    """16 clients against a PyTorch and an ONNX Runtime `planner serve`, cloud-only and the median split."""
    from scale import Server, run_clients

    from planner.data import load_arrays
    from planner.profile.store import find_profiles

    images, labels = load_arrays("test")
    profiles = find_profiles(model)
    opts = argparse.Namespace(model=model, autoencoder="shared", clients=args.clients, requests=args.requests,
                              link="100mbit", rtt="1ms", timeout=30.0)
    out = {}
    for runtime in ("torch", "onnxruntime"):
        extra = ["--runtime", runtime] + (["--onnx", str(folder)] if runtime == "onnxruntime" else [])
        server = Server(opts, "asyncio", os.cpu_count() or 1, extra=extra)
        try:
            for choice in ("cloud-only", (median_cut, args.bits)):
                name = choice if isinstance(choice, str) else f"{choice[0]} @ {choice[1]} bits"
                s = run_clients(opts, onnx, profiles, server.address, images, labels, choice=choice)
                out.setdefault(name, {})[runtime] = s
                print(f"  serve {runtime:11s} {name:22s} {s['throughput_rps']:7.1f} req/s  p50 {s['p50_ms']:6.1f} ms"
                      f"  p99 {s['p99_ms']:6.1f} ms  lost {s['lost']}  fallbacks {s['fallbacks']}", flush=True)
        finally:
            server.stop()
    for r in out.values():
        r["throughput_ratio"] = round(r["onnxruntime"]["throughput_rps"] / r["torch"]["throughput_rps"], 2)
        r["p99_ratio"] = round(r["onnxruntime"]["p99_ms"] / r["torch"]["p99_ms"], 2)
    return out


def plans(args, pipe, folder: Path) -> dict:
    """Plans from PyTorch-measured profiles vs the same profiles re-timed in ONNX Runtime."""
    import copy

    import torch

    from planner.execution.onnx_runtime import OnnxPipeline
    from planner.link import ConstantLink
    from planner.profile.measure import ProfileSettings, profile_pipeline
    from planner.profile.onnx import retime_profile
    from planner.profile.schema import Profile
    from planner.solve import solve

    pair = {"torch": [], "onnxruntime": []}
    for role, threads in (("edge", 1), ("cloud", os.cpu_count() or 1)):
        s = ProfileSettings(role=role, threads=threads, max_seconds=args.max_seconds, payload_samples=100,
                            accuracy_limit=args.accuracy_images)
        d = profile_pipeline(pipe, s, progress=False)
        ort = retime_profile(copy.deepcopy(d), OnnxPipeline(pipe, folder, threads=threads), s,
                             edge=role == "edge", cloud=role == "cloud")
        pair["torch"].append(Profile.from_dict(d))
        pair["onnxruntime"].append(Profile.from_dict(ort))
    torch.set_num_threads(1)
    out = {}
    for slowdown in SLOWDOWNS:
        for bw in BANDWIDTHS:
            row = {}
            for runtime, (edge, cloud) in pair.items():
                p = solve(edge, cloud, ConstantLink(bw, "20ms"), max_loss=1.0, edge_slowdown=slowdown)
                row[runtime] = {"plan": p.chosen.label, "predicted_ms": round(p.chosen.predicted_ms, 3)}
            out[f"edge x{slowdown:g}, {bw}"] = row
    return out


def agreement(pipe, onnx, n: int, batch: int = 250) -> dict:
    """Share of test images whose prediction ORT and PyTorch agree on, per exported candidate (worst first)."""
    import torch

    from planner.data import load_arrays

    images = load_arrays("test")[0][:n]
    same: dict[str, int] = {}
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            raw = images[i:i + batch]
            x_t, x = pipe.input_tensor(raw), onnx.input_array(raw)
            add = lambda k, a, b: same.__setitem__(k, same.get(k, 0) + int((a.argmax(1) == b.argmax(1)).sum()))  # noqa: E731
            add("whole model", pipe.model(x_t).numpy(), onnx.model_scores(x))
            for cut, entry in onnx.manifest["cuts"].items():
                head, tail = pipe.split(cut)
                feature = head(x_t)
                add(f"{cut} raw", tail(feature).numpy(), onnx.tail_scores(onnx.head_feature(x, cut), cut))
                for b in map(int, entry.get("cloud", {})):
                    ref = tail(pipe.ae.decode(pipe.ae.encode(feature, cut, b), cut, b)).numpy()
                    add(f"{cut} @ {b} bits", ref, onnx.cloud_scores(onnx.edge_codes(x, cut, b), cut, b))
    pct = {k: round(100.0 * v / len(images), 3) for k, v in same.items()}
    worst = min(pct, key=pct.get)
    return {"images": len(images), "candidates": len(pct), "min_pct": pct[worst], "worst": worst,
            "below_99.5": sorted(k for k, v in pct.items() if v < 99.5), "per_candidate": pct}


def print_stages(model: str, st: dict) -> None:
    print(f"{model}: per served cut at {st['bits']} bits, batch 1, 1 thread (eager ms -> ORT ms, ratio)")
    for cut, row in st["cuts"].items():
        e, c = row["edge"], row["cloud"]
        print(f"  {cut:10s} edge {e['eager_ms']:7.3f} -> {e['ort_ms']:7.3f} ({e['ratio']:.2f}x)   "
              f"cloud {c['eager_ms']:7.3f} -> {c['ort_ms']:7.3f} ({c['ratio']:.2f}x)"
              + ("   <- median cut" if cut == st["median_cut"] else ""))
    w = st["whole_model"]
    print(f"  whole model {w['eager_ms']:.3f} -> {w['ort_ms']:.3f} ms ({w['ratio']:.2f}x)", flush=True)


def print_plans(plan_rows: dict) -> None:
    changed = [k for k, v in plan_rows.items() if v["torch"]["plan"] != v["onnxruntime"]["plan"]]
    print(f"  plans: {len(changed)} of {len(plan_rows)} (edge speed, bandwidth) settings change")
    for k, v in plan_rows.items():
        print(f"    {k:24s} torch {v['torch']['plan']:22s} {v['torch']['predicted_ms']:9.3f} ms   ORT "
              f"{v['onnxruntime']['plan']:22s} {v['onnxruntime']['predicted_ms']:9.3f} ms")


def run_model(args, model: str, root: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    folder = root / model
    pipe, onnx = export(model, folder)
    res = {}
    median_cut = pipe.ae.cuts[(len(pipe.ae.cuts) - 1) // 2]
    if "stages" in args.parts:
        res["stages"] = stage_times(pipe, onnx, args.bits, args.rounds)
        print_stages(model, res["stages"])
    if "serving" in args.parts:
        res["serving"] = serving(args, model, onnx, folder, median_cut)
    if "plans" in args.parts:
        res["plans"] = plans(args, pipe, folder)
        print_plans(res["plans"])
    if "agreement" in args.parts:
        torch.set_num_threads(os.cpu_count() or 1)
        res["agreement"] = a = agreement(pipe, onnx, args.agree_images)
        print(f"  agreement over {a['images']} images, {a['candidates']} candidates: min {a['min_pct']} % "
              f"({a['worst']}); below 99.5 %: {a['below_99.5'] or 'none'}", flush=True)
    return res


def print_targets(models: dict) -> None:
    print("targets:")
    for model, r in models.items():
        if "stages" in r:
            e = r["stages"]["cuts"][r["stages"]["median_cut"]]["edge"]["ratio"]
            print(f"  {model}: edge ORT/eager at the median cut {e:.2f}x (target <= 0.35): "
                  f"{'met' if e <= 0.35 else 'MISSED'}")
        for name, v in r.get("serving", {}).items():
            ok = v["throughput_ratio"] >= 2 and v["onnxruntime"]["lost"] == 0 and v["p99_ratio"] <= 1
            print(f"  {model}: serving {name}: throughput {v['throughput_ratio']:.2f}x, p99 {v['p99_ratio']:.2f}x, "
                  f"lost {v['onnxruntime']['lost']} (target >= 2x, 0, <= 1x): {'met' if ok else 'MISSED'}")
        if "agreement" in r:
            a = r["agreement"]["min_pct"]
            print(f"  {model}: agreement min {a} % (target >= 99.5): {'met' if a >= 99.5 else 'MISSED'}")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = {"machine": {"cpus": os.cpu_count()}, "quick": args.quick, "clients": args.clients,
           "requests": args.requests, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.onnx_dir or tmp)
        for model in args.models:
            out["models"][model] = run_model(args, model, root)
    print_targets(out["models"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
