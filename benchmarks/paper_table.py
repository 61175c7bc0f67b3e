"""The seed paper's table on our backbones: shared vs independent autoencoders at every cut and bitwidth.

For each zoo model, on the Fashion-MNIST test set: the backbone's accuracy; per served cut and bitwidth the
accuracy through head -> encode (uint8 codes) -> decode -> tail with the shared and with the independent
autoencoders and the loss in percentage points; the real payload (bytes from `planner.compress.codec`,
header included, lossless stage "auto") and the compression ratio float32 feature bytes / payload bytes;
the parameter counts and their ratio; the input's own bytes (the cloud-only payload) for comparison.

    .venv/bin/python benchmarks/paper_table.py            # full test set, both models
    .venv/bin/python benchmarks/paper_table.py --limit 1000 --models resnet-fmnist   # quick look

Writes benchmarks/results/paper_table.json and benchmarks/results/paper_table.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from planner import zoo
from planner.compress import codec
from planner.compress.autoencoder import load_autoencoder
from planner.compress.train import Backbone, evaluate
from planner.data import load_arrays, load_fashion_mnist

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("vgg-fmnist", "resnet-fmnist")
SUBSET = 2000  # images of the reproducibility check that tests/test_autoencoder.py re-runs


def payload_stats(ae, backbone: Backbone, images: torch.Tensor, cut: str, bits: int) -> dict:
    """Real codec bytes (header included) of one image's codes, over `images`."""
    with torch.inference_mode():
        codes = ae.encode(backbone.features(images)[1][cut], cut, bits).numpy()
    sizes = np.array([len(codec.encode(codes[i: i + 1], cut, bits)) for i in range(len(codes))])
    return {"mean": float(sizes.mean()), "p95": float(np.percentile(sizes, 95)), "max": int(sizes.max()),
            "plain": codec.payload_size((1, *codes.shape[1:]), bits, cut)}


def input_bytes(count: int) -> dict:
    """What cloud-only ships: the uint8 image through the codec (header included), and plain zlib -9."""
    raw, _ = load_arrays("test")
    raw = raw[:count]
    framed = np.array([len(codec.encode(im[None, None], "input")) for im in raw])
    deflated = np.array([len(zlib.compress(im.tobytes(), 9)) for im in raw])
    return {"raw": int(raw[0].size), "codec_mean": float(framed.mean()), "codec_p95": float(np.percentile(framed, 95)),
            "zlib9_mean": float(deflated.mean())}


def table_for(name: str, limit: int | None, bytes_images: int) -> dict:
    model, info = zoo.load(name)
    shared, indep = load_autoencoder(name, "shared"), load_autoencoder(name, "independent")
    backbone = Backbone(model, torch.zeros(1, *info.input_shape), shared.cuts)
    x, y = load_fashion_mnist("test").tensors(limit)
    start = time.perf_counter()
    ev_s = evaluate(shared, backbone, x, y)
    ev_i = evaluate(indep, backbone, x, y)
    eval_seconds = time.perf_counter() - start
    base = ev_s["backbone"]
    cuts = {c.id: c for c in backbone.cuts}
    rows = []
    for cut in shared.cuts:
        for bits in shared.bits:
            pay = payload_stats(shared, backbone, x[:bytes_images], cut, bits)
            s, i = ev_s["rows"][(cut, bits)], ev_i["rows"][(cut, bits)]
            rows.append({
                "cut": cut, "shape": list(cuts[cut].shape), "bits": bits, "latent_shape": list(shared.latent_shape(cut)),
                "shared_accuracy": round(s, 2), "independent_accuracy": round(i, 2),
                "shared_loss_pp": round(base - s, 2), "independent_loss_pp": round(base - i, 2),
                "sharing_cost_pp": round(i - s, 2),
                "float32_bytes": cuts[cut].float32_bytes, "payload_bytes_mean": round(pay["mean"], 1),
                "payload_bytes_p95": pay["p95"], "payload_bytes_plain": pay["plain"],
                "analytic_latent_bytes": -(-int(np.prod(shared.latent_shape(cut))) * bits // 8),
                "compression_ratio": round(cuts[cut].float32_bytes / pay["mean"], 1),
            })
    check_cut = shared.cuts[len(shared.cuts) // 2]
    sub = evaluate(shared, backbone, x[:SUBSET], y[:SUBSET], [check_cut], [4])
    ps, pi = shared.param_counts(), indep.param_counts()
    return {
        "model": name, "shared_id": shared.id, "independent_id": indep.id, "test_images": int(len(y)),
        "backbone_accuracy": round(base, 2),
        "shared_params": ps["total"], "independent_params": pi["total"],
        "param_ratio": round(pi["total"] / ps["total"], 2),
        "shared_params_detail": ps, "independent_params_per_cut": pi["per_cut"],
        "shared_bn_running_stats": ps["bn_running_stats"], "independent_bn_running_stats": pi["bn_running_stats"],
        "config": shared.config.to_dict(), "eval_seconds": round(eval_seconds, 1),
        "rows": rows,
        "subset_check": {"cut": check_cut, "bits": 4, "images": SUBSET,
                         "shared_accuracy": round(sub["rows"][(check_cut, 4)], 2)},
        "summary": summarize(shared.cuts, shared.bits, rows),
    }


def summarize(cuts: list[str], bits: tuple[int, ...], rows: list[dict]) -> dict:
    """Headline figures against the issue's targets (middle cuts = all served cuts but the first and last)."""
    by = {(r["cut"], r["bits"]): r for r in rows}
    middle = cuts[1:-1] or cuts
    first = cuts[0]
    return {
        "worst_shared_loss_pp": {b: max(by[(c, b)]["shared_loss_pp"] for c in cuts) for b in bits},
        "worst_independent_loss_pp": {b: max(by[(c, b)]["independent_loss_pp"] for c in cuts) for b in bits},
        "worst_sharing_cost_pp": {b: max(by[(c, b)]["sharing_cost_pp"] for c in cuts) for b in bits},
        "min_compression_ratio_middle_cuts": {b: min(by[(c, b)]["compression_ratio"] for c in middle) for b in bits},
        "earliest_cut": first,
        "earliest_cut_payload_bytes": {b: by[(first, b)]["payload_bytes_mean"] for b in bits},
    }


def markdown(result: dict, command: str) -> str:
    inp = result["input_bytes"]
    lines = ["## Shared vs independent autoencoders (the paper's table)\n",
             f"Command: `{command}` ({result['machine']}, torch {result['torch']}). Accuracy on "
             f"{result['models'][0]['test_images']} Fashion-MNIST test images through head -> encode -> uint8 codes "
             "-> decode -> tail. Payload = real codec bytes per image (header included, lossless auto; mean). "
             "Compression = float32 feature bytes / payload bytes. Input (cloud-only) payload: "
             f"{inp['codec_mean']:.0f} B through the codec, {inp['zlib9_mean']:.0f} B with plain zlib -9 "
             f"({inp['raw']} B raw).\n"]
    for m in result["models"]:
        s = m["summary"]
        lines += [f"\n### {m['model']} (backbone {m['backbone_accuracy']:.2f}%)\n",
                  f"- parameters: shared {m['shared_params']:,} vs independent {m['independent_params']:,} -> "
                  f"**{m['param_ratio']}x** fewer (BN running statistics, not counted: shared "
                  f"{m['shared_bn_running_stats']:,}, independent {m['independent_bn_running_stats']:,})",
                  "- worst loss vs the backbone (pp), shared / independent: " + ", ".join(
                      f"{b} bits {s['worst_shared_loss_pp'][b]:.2f} / {s['worst_independent_loss_pp'][b]:.2f}"
                      for b in s["worst_shared_loss_pp"]),
                  "- worst sharing cost (independent - shared, pp): " + ", ".join(
                      f"{b} bits {v:.2f}" for b, v in s["worst_sharing_cost_pp"].items()),
                  "- smallest compression ratio on the middle cuts: " + ", ".join(
                      f"{b} bits {v:.0f}x" for b, v in s["min_compression_ratio_middle_cuts"].items()),
                  f"- earliest cut `{s['earliest_cut']}` payload: " + ", ".join(
                      f"{b} bits {v:.0f} B" for b, v in s["earliest_cut_payload_bytes"].items())
                  + f" (input: {inp['codec_mean']:.0f} B codec, {inp['zlib9_mean']:.0f} B zlib)\n",
                  "| cut | shape | bits | latent | shared % | indep. % | shared loss pp | indep. loss pp "
                  "| payload B | ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in m["rows"]:
            lines.append(f"| {r['cut']} | {'x'.join(map(str, r['shape']))} | {r['bits']} | "
                         f"{'x'.join(map(str, r['latent_shape']))} | {r['shared_accuracy']:.2f} | "
                         f"{r['independent_accuracy']:.2f} | {r['shared_loss_pp']:.2f} | {r['independent_loss_pp']:.2f} | "
                         f"{r['payload_bytes_mean']:.0f} | {r['compression_ratio']:.0f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--limit", type=int, default=None, help="first N test images (default: all 10,000)")
    p.add_argument("--bytes-images", type=int, default=1000, help="images whose payload bytes are measured")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "paper_table.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/paper_table.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {"command": command.strip(), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "threads": args.threads,
              "input_bytes": input_bytes(args.bytes_images), "models": []}
    for name in args.models.split(","):
        print(f"{name}: evaluating ...", flush=True)
        result["models"].append(table_for(name, args.limit, args.bytes_images))
        m = result["models"][-1]
        print(json.dumps({k: m[k] for k in ("model", "backbone_accuracy", "param_ratio", "summary")}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result, result["command"]))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
