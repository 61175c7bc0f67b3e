"""Entropy-coded payloads vs the codec's zlib/zstd stage, per (cut, width, bits), for a zoo model's committed
shared autoencoder and raw quantizer (entropy models fitted here on training images when the files have none).

    python benchmarks/entropy_bench.py --model resnet-fmnist --fit 2000 --test 500 [--out FILE.json]

Lossless coding leaves accuracy unchanged, so "at equal accuracy" is every row. Per row: mean bytes per image
(batch 1, header included) of lossless "auto" without a model (zlib/zstd/none, the previous payloads) and with
the model (ANS when smaller), and their ratio. Timing: encode + decode of one image's codes (codec only, the
median of 200 runs) at the median served cut, widest width, 4 bits. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def _bytes(codes: np.ndarray, cut: str, bits: int, model, flag: int) -> tuple[float, float]:
    from planner.compress import codec

    plain = [len(codec.encode(codes[i:i + 1], cut, bits, coder_flag=flag)) for i in range(len(codes))]
    coded = [len(codec.encode(codes[i:i + 1], cut, bits, coder_flag=flag, entropy=model)) for i in range(len(codes))]
    return float(np.mean(plain)), float(np.mean(coded))


def _timing(codes: np.ndarray, cut: str, bits: int, model, repeats: int = 200) -> dict:
    from planner.compress import codec

    one = codes[:1]
    out = {}
    for name, kw in (("zlib_auto", {}), ("ans", {"lossless": "ans", "entropy": model})):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            codec.decode(codec.encode(one, cut, bits, **kw), entropy=model)
            times.append(time.perf_counter() - t)
        out[name + "_ms"] = round(1000 * statistics.median(times), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet-fmnist")
    ap.add_argument("--fit", type=int, default=2000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from planner.compress import codec
    from planner.compress.backbone import Backbone, entropy_features
    from planner.compress.clipquant import load_quantizer
    from planner.compress.zoo import load_autoencoder
    from planner.data import load_fashion_mnist
    from planner.modelspec import load_model

    loaded = load_model(args.model)
    ae, quant = load_autoencoder(args.model), load_quantizer(args.model)
    backbone = Backbone(loaded.model, loaded.example(), ae.cuts)
    x, _ = load_fashion_mnist("train").tensors()
    fit = entropy_features(backbone, x, count=args.fit)
    if not len(ae.entropy):
        ae.fit_entropy(fit)
    if quant is not None and not len(quant.entropy):
        quant.fit_entropy(fit)
    tx, _ = load_fashion_mnist("test").tensors(args.test)
    with torch.inference_mode():
        feats = backbone.features(tx)[1]
    rows = []
    with torch.inference_mode():
        for cut in ae.cuts:
            for w in ae.widths(cut):
                for b in ae.bits:
                    codes = ae.encode(feats[cut], cut, b, w).numpy()
                    plain, coded = _bytes(codes, cut, b, ae.entropy_model(cut, codes, b), 0)
                    rows.append({"coder": "shared", "cut": cut, "width": w, "bits": b, "zlib_auto": round(plain, 1),
                                 "ans_auto": round(coded, 1), "ratio": round(coded / plain, 3)})
            if quant is not None and cut in quant.cuts:
                for b in quant.bits:
                    codes = quant.encode(feats[cut], cut, b).numpy()
                    plain, coded = _bytes(codes, cut, b, quant.entropy_model(cut, codes, b), codec.FLAG_RAWQUANT)
                    rows.append({"coder": "rawquant", "cut": cut, "width": None, "bits": b,
                                 "zlib_auto": round(plain, 1), "ans_auto": round(coded, 1),
                                 "ratio": round(coded / plain, 3)})
        mid = ae.cuts[len(ae.cuts) // 2]
        codes = ae.encode(feats[mid], mid, 4).numpy()
        timing = {"cut": mid, "width": ae.widths(mid)[-1], "bits": 4,
                  **_timing(codes, mid, 4, ae.entropy_model(mid, codes, 4))}
    summary = {"model": args.model, "fit_images": args.fit, "test_images": len(tx), "timing_median_cut": timing}
    for coder in ("shared", "rawquant"):
        rs = [r["ratio"] for r in rows if r["coder"] == coder]
        mid_rs = [r["ratio"] for r in rows if r["coder"] == coder and r["cut"] == mid]
        if rs:
            summary[coder] = {"median_ratio": round(statistics.median(rs), 3), "min": min(rs), "max": max(rs),
                              "median_cut": mid, "median_cut_median_ratio": round(statistics.median(mid_rs), 3)}
    print(json.dumps(summary))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
