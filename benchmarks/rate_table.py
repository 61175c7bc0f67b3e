"""Rate vs accuracy of every way to send a cut: the shared autoencoder, the independent ones, the training-free
raw quantizer, and the input itself (zlib, PNG, and JPEG/WebP at several qualities), on the full Fashion-MNIST
test set.

Per zoo model and served cut: for the shared and the independent autoencoders every (width, bits), for the raw
quantizer every bits, the accuracy through the deployment path (integer codes; `planner.profile.accuracy`, so
the numbers are the ones the profiles hold, and cached), the mean real payload per image (codec bytes, header
included, lossless stage "auto"), the same payload with a static per-channel entropy model and ANS coding
(the codec's ANS stage with the coder's shipped entropy model, or one fitted on training images' codes), the encoder's time and the head's time
(batch 1, one thread, medians). The input: plain zlib -9, the codec's cloud-only payload, PNG, and the lossy
cloud-only candidates (JPEG 50/75/90/95, WebP 50/75/90 through the planner's input coder), each with its accuracy. Then the issue-15 targets, met or missed, with the figures.

    .venv/bin/python benchmarks/rate_table.py                      # both models, 10,000 test images
    .venv/bin/python benchmarks/rate_table.py --limit 1000 --models resnet-fmnist   # a quick look

Writes benchmarks/results/rate_table.json, rate_table.md and docs/figures/rate_<model>.png.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import shlex
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402

from planner.compress import codec  # noqa: E402
from planner.config import DEFAULT_INPUT_FORMATS  # noqa: E402
from planner.execution.coders import coder_for  # noqa: E402
from planner.execution.pipeline import SplitPipeline  # noqa: E402
from planner.profile.accuracy import accuracy_table, input_accuracy  # noqa: E402
from planner.types import CandidateSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ROOT / "docs" / "figures"
MODELS = ("resnet-fmnist", "vgg-fmnist")
FIT_IMAGES = 2000  # training images the entropy models are fitted on


# -- the input (cloud-only) ----------------------------------------------------------------------------------
def _png(im: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(im if im.ndim == 2 or im.shape[0] not in (1, 3) else
                    (im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0))).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def input_rows(pipe: SplitPipeline, data, limit: int | None, bytes_images: int) -> tuple[dict, dict]:
    """Mean bytes per image of the input in each format, and the model's accuracy (agreement without labels) on
    each lossy one: the cloud-only candidates the profiler measures (`planner.config.DEFAULT_INPUT_FORMATS`:
    JPEG and WebP at several qualities, through the planner's own input coder, codec frame included), and as
    references zlib -9 of the pixels, the codec's lossless cloud-only payload and an optimized PNG."""
    sample = data.raw[:bytes_images]
    formats = coder_for(CandidateSpec.cloud_only()).formats(pipe, DEFAULT_INPUT_FORMATS)
    sizes = {"zlib": [len(zlib.compress(np.asarray(im).tobytes(), 9)) for im in sample],
             "codec": [len(pipe.input_payload(sample[i:i + 1])) for i in range(len(sample))],
             "png": [len(_png(np.asarray(im))) for im in sample]}
    sizes.update({f: [len(pipe.input_payload(sample[i:i + 1], f)) for i in range(len(sample))] for f in formats})
    accuracy = {"zlib": None, "codec": None, "png": None}  # lossless: the backbone's
    accuracy.update(input_accuracy(pipe, formats, limit=limit, data=data)["formats"])
    return {k: round(float(np.mean(v)), 1) for k, v in sizes.items()}, accuracy


# -- entropy coding of the codes -----------------------------------------------------------------------------
def _model(coder, codes: np.ndarray, fit_codes: np.ndarray, cut: str, bits: int):
    """The coder's shipped entropy model of these codes, else one fitted here on training images' codes."""
    from planner.compress.entropy import EntropyModel, model_for

    return model_for(coder, cut, codes, bits) or EntropyModel.fit(fit_codes, cut, bits)


def _payloads(coder, feats: torch.Tensor, fit: torch.Tensor, cut: str, bits: int, width, flag: int) -> dict:
    """Mean codec bytes per image without an entropy model (zlib/zstd, the previous payloads) and with one (the
    codec's ANS stage when smaller: what the planner sends)."""
    with torch.inference_mode():
        codes = coder.encode(feats, cut, bits, width).numpy()
        fit_codes = coder.encode(fit, cut, bits, width).numpy()
    model = _model(coder, codes, fit_codes, cut, bits)
    sizes = [len(codec.encode(codes[i:i + 1], cut, bits, coder_flag=flag)) for i in range(len(codes))]
    entropy = [len(codec.encode(codes[i:i + 1], cut, bits, coder_flag=flag, entropy=model))
               for i in range(len(codes))]
    return {"bytes": round(float(np.mean(sizes)), 1), "bytes_entropy": round(float(np.mean(entropy)), 1)}


def _ms(fn) -> float:
    return round(1000.0 * median_seconds(fn, repeats=9), 4)


# -- one model ----------------------------------------------------------------------------------------------
def rows_for(pipe: SplitPipeline, method: str, acc: dict, feats: dict, fit: dict, one: dict) -> list[dict]:
    """Every (cut, width, bits) row of one coder ("shared", "independent" or "quant")."""
    coder = pipe.quantizer if method == "quant" else pipe.ae
    out = []
    for cut in coder.cuts:
        entry = acc["cuts"][cut]
        widths = [None] if method == "quant" else list(pipe.ae.widths(cut))
        for w in widths:
            enc_width = None if method == "quant" or w == widths[-1] else w
            for b in coder.bits:
                a = (entry["quant"] if method == "quant" else entry["bits"] if enc_width is None
                     else entry["widths"][str(w)])[str(b)]
                row = {"cut": cut, "method": method, "width": w, "bits": b,
                       **_payloads(coder, feats[cut], fit[cut], cut, b, enc_width,
                                 codec.FLAG_RAWQUANT if method == "quant" else 0),
                       "accuracy": a,
                       "encode_ms": _ms(lambda c=cut, b=b, w=enc_width: coder.encode(one[c], c, b, w))}
                out.append(row)
    return out


def _heads(pipe: SplitPipeline, cut: str, raw, chunk: int = 50) -> torch.Tensor:
    """The head's feature at `cut` for raw samples, in chunks (224 x 224 inputs: a batch of thousands is GBs)."""
    head, _ = pipe.split(cut)
    return torch.cat([head(pipe.input_tensor(raw[i:i + chunk])) for i in range(0, len(raw), chunk)])


def table_for(name: str, limit: int | None, bytes_images: int, fit_images: int = FIT_IMAGES) -> dict:
    from planner.datasets import load_data
    from planner.errors import CompressError
    from planner.modelspec import load_model

    shared = SplitPipeline.from_zoo(name, "shared")
    try:
        indep = SplitPipeline.from_zoo(name, "independent")
    except CompressError as exc:  # not trained (yet): the table says so and its targets are "not measured"
        print(f"{name}: no independent autoencoder ({exc}); its rows are left out", flush=True)
        indep = None
    loaded = load_model(name)
    full = load_data(None, loaded, "test")  # Fashion-MNIST for its models, the photos' test crops for efficientnet
    data = full.take(limit)
    acc_s = accuracy_table(shared, list(shared.ae.bits), limit, progress=True, data=full)
    acc_i = accuracy_table(indep, list(indep.ae.bits), limit, progress=True, data=full) if indep else None
    train = load_data(None, loaded, "train").take(fit_images)
    head_ms, feats, fit, one = {}, {}, {}, {}
    with torch.inference_mode():
        for cut in shared.ae.cuts:
            head, _ = shared.split(cut)
            feats[cut], fit[cut] = _heads(shared, cut, data.raw[:bytes_images]), _heads(shared, cut, train.raw)
            one[cut] = feats[cut][:1]
            head_ms[cut] = _ms(lambda h=head: h(shared.input_tensor(data.raw[:1])))
    rows = []
    coders = ((shared, "shared", acc_s), (indep, "independent", acc_i),
              (shared if shared.quantizer is not None else None, "quant", acc_s))
    for pipe, method, acc in (c for c in coders if c[0] is not None):
        print(f"{name}: {method} rows ...", flush=True)
        rows += [{**r, "head_ms": head_ms[r["cut"]]} for r in rows_for(pipe, method, acc, feats, fit, one)]
    sizes, input_acc = input_rows(shared, full, limit, bytes_images)
    cards = {k: json.loads((ROOT / "planner/compress/weights" / f"{name}-{k}.json").read_text())
             for k in ("shared", "independent") if k == "shared" or indep is not None}
    return {"model": name, "backbone_accuracy": acc_s["backbone"], "test_images": acc_s["n"],
            "metric": acc_s.get("metric", "accuracy"), "data": acc_s.get("data"),
            "shared_id": shared.ae_id, "independent_id": indep.ae_id if indep else None,
            "quantizer_id": shared.quant_id, "shared_params": shared.ae.param_counts()["total"],
            "independent_params": independent_params(name, shared) if indep is None
            else indep.ae.param_counts()["total"], "independent_trained": indep is not None,
            "train_minutes": {k: round(c["train"]["train_seconds"] / 60, 1) for k, c in cards.items()},
            "train_threads": {k: c["train"]["threads"] for k, c in cards.items()},
            "input_bytes": sizes, "input_accuracy": input_acc, "rows": rows,
            "entropy_speed": entropy_speed(shared, one)}


def independent_params(name: str, shared: SplitPipeline) -> int:
    """The independent baseline's parameter count from its config alone (no weights needed to count)."""
    from planner.compress.autoencoder import build_autoencoder

    return build_autoencoder(shared.ae.config, "independent").param_counts()["total"]


def entropy_speed(pipe: SplitPipeline, one: dict) -> dict:
    """ms per image to code the widest 4-bit codes of the middle cut: the codec's lossless stage vs ANS."""
    cut = pipe.ae.cuts[len(pipe.ae.cuts) // 2]
    codes = pipe.ae.encode(one[cut], cut, 4).numpy()
    model = _model(pipe.ae, codes, np.concatenate([codes] * 4), cut, 4)
    return {"cut": cut, "bits": 4, "codec_ms": _ms(lambda: codec.decode(codec.encode(codes, cut, 4))),
            "ans_ms": _ms(lambda: codec.decode(codec.encode(codes, cut, 4, lossless="ans", entropy=model),
                                               entropy=model))}


# -- targets ------------------------------------------------------------------------------------------------
def sent(row: dict) -> float:
    """The bytes the planner sends for a row: the entropy-coded payload where the row has one (the codec keeps
    ANS only when smaller), else the lossless stage's."""
    return row.get("bytes_entropy", row["bytes"])


def top_row(rows: list[dict], cut: str) -> dict:
    """The shared autoencoder's row at `cut`, its widest width and its most bits (8 unless it serves fewer)."""
    shared = [r for r in rows if r["method"] == "shared" and r["cut"] == cut]
    return max(shared, key=lambda r: (r["width"], r["bits"]))


def targets(m: dict) -> dict:
    """The issue's targets on one model: each with its figure and met / missed."""
    base, rows = m["backbone_accuracy"], m["rows"]
    by = {(r["method"], r["cut"], r["width"], r["bits"]): r for r in rows}
    cuts = list(dict.fromkeys(r["cut"] for r in rows if r["method"] == "shared"))
    top = {c: top_row(rows, c) for c in cuts}
    loss8 = {c: round(base - top[c]["accuracy"], 3) for c in cuts}
    gaps = [by[("independent", c, w, b)]["accuracy"] - r["accuracy"] for (meth, c, w, b), r in by.items()
            if meth == "shared" and ("independent", c, w, b) in by] or [math.nan]

    def cheapest(method: str, cut: str) -> float | None:
        ok = [sent(r) for r in rows if r["method"] == method and r["cut"] == cut and base - r["accuracy"] <= 1.0]
        return min(ok) if ok else None

    vs_quant = {c: {"shared": cheapest("shared", c), "quant": cheapest("quant", c)} for c in cuts}
    best = min((v["shared"], c) for c, v in vs_quant.items() if v["shared"] is not None) if any(
        v["shared"] for v in vs_quant.values()) else (None, None)
    enc = {c: {"encode_ms": top[c]["encode_ms"], "head_ms": top[c]["head_ms"]} for c in cuts}
    zl = m["input_bytes"]["zlib"]
    ratio = m["independent_params"] / m["shared_params"]
    return {
        "widest_8bit_loss_pp": {"per_cut": loss8, "max": max(loss8.values()),
                                "bits": max(r["bits"] for r in top.values()),
                                "met": max(loss8.values()) <= 0.5},
        "param_ratio": {"independent_over_shared": round(ratio, 2), "met": ratio >= 4},
        "sharing_gap_pp": {"max": round(max(gaps), 3), "median": round(float(np.median(gaps)), 3),
                           "within_0.3": f"{sum(g <= 0.3 for g in gaps)}/{len(gaps)}", "met": max(gaps) <= 0.3}
        if m["independent_trained"] else {"met": None, "why": "the independent autoencoders were not trained"},
        "bytes_at_1pp_vs_quant": {"per_cut": vs_quant, "met": all(
            v["shared"] is not None and (v["quant"] is None or v["shared"] <= v["quant"]) for v in vs_quant.values())},
        "half_zlib_input": {"cut": best[1], "bytes": best[0], "zlib_input": zl,
                            "met": best[0] is not None and best[0] < zl / 2},
        "quarter_jpeg90": quarter_jpeg90(m, vs_quant),
        "encoder_vs_head": {"per_cut": enc, "met": all(v["encode_ms"] <= v["head_ms"] for v in enc.values())},
        "train_minutes": {**m["train_minutes"], "threads": m["train_threads"],
                          "met": max(m["train_minutes"].values()) <= 60 and m["independent_trained"]},
        "entropy_saving": entropy_saving(rows, base),
    }


def entropy_saving(rows: list[dict], base: float) -> dict:
    """Bytes saved by the entropy model over the codec's stage, median over the settings within 1 pp loss."""
    out = {}
    for method in ("shared", "quant"):
        s = [1 - r["bytes_entropy"] / r["bytes"] for r in rows if r["method"] == method and base - r["accuracy"] <= 1]
        out[method] = {"median": round(float(np.median(s)), 3) if s else None, "settings": len(s)}
    return out


def quarter_jpeg90(m: dict, vs_quant: dict) -> dict:
    """Issue 26: some cut within 1 pp at <= 1/4 of the bytes of a JPEG q90 of the input, and there the shared
    autoencoder needs fewer bytes than the raw quantizer within 1 pp."""
    jpeg = m["input_bytes"].get("jpeg90")
    if jpeg is None:
        return {"met": None, "why": "the input is not an image Pillow can send as JPEG here"}
    ok = {c: v for c, v in vs_quant.items() if v["shared"] is not None and v["shared"] <= jpeg / 4}
    beats = {c: v for c, v in ok.items() if v["quant"] is None or v["shared"] < v["quant"]}
    return {"jpeg90": jpeg, "within_quarter": ok, "shared_beats_quant": sorted(beats), "met": bool(beats)}


# -- outputs ------------------------------------------------------------------------------------------------
def plot(m: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, base = m["rows"], m["backbone_accuracy"]
    cuts = list(dict.fromkeys(r["cut"] for r in rows if r["method"] == "shared"))
    cols = min(3, len(cuts))
    fig, axes = plt.subplots(-(-len(cuts) // cols), cols, figsize=(5 * cols, 3.6 * -(-len(cuts) // cols)),
                             squeeze=False)
    for ax, cut in zip(axes.flat, cuts, strict=False):
        for method, style in (("shared", "-o"), ("independent", ":x")):
            for w in sorted({r["width"] for r in rows if r["method"] == method and r["cut"] == cut}):
                pts = sorted((sent(r), r["accuracy"]) for r in rows
                             if r["method"] == method and r["cut"] == cut and r["width"] == w)
                ax.plot(*zip(*pts, strict=True), style, ms=3, lw=1, label=f"{method} w{w}",
                        alpha=1.0 if method == "shared" else 0.6)
        pts = sorted((sent(r), r["accuracy"]) for r in rows if r["method"] == "quant" and r["cut"] == cut)
        if pts:
            ax.plot(*zip(*pts, strict=True), "-s", color="black", ms=3, lw=1.2, label="raw quant")
        for key, color in (("zlib", "tab:gray"), ("png", "tab:brown"), ("jpeg90", "tab:pink"), ("webp75", "tab:olive")):
            if key in m["input_bytes"]:
                ax.axvline(m["input_bytes"][key], color=color, ls="--", lw=0.8, label=f"input {key}")
        ax.axhline(base, color="gray", lw=0.6)
        ax.axhline(base - 1, color="gray", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_ylim(max(50, base - 15), base + 1)
        ax.set_title(cut)
        ax.set_xlabel("bytes per image (as sent: entropy-coded where smaller)")
        ax.set_ylabel("accuracy %")
    for ax in list(axes.flat)[len(cuts):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{m['model']}: rate vs accuracy per cut (backbone {base:.2f} %, dotted: -1 pp)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    lines = [f"Command: `{result['command']}` ({result['machine']}, torch {result['torch']}, "
             f"{result['threads']} thread(s) for timings).\n"]
    for m in result["models"]:
        t = m["targets"]
        lines += [f"### {m['model']} (backbone {m['backbone_accuracy']:.2f} %, {m['test_images']} test images)\n",
                  f"![rate vs accuracy](../../docs/figures/rate_{m['model']}.png)\n",
                  "| target | figure | met |", "|---|---|---|",
                  f"| widest width, {t['widest_8bit_loss_pp'].get('bits', 8)} bits: loss <= 0.5 pp at every cut | "
                  f"max {t['widest_8bit_loss_pp']['max']} pp "
                  f"({', '.join(f'{c} {v}' for c, v in t['widest_8bit_loss_pp']['per_cut'].items())}) | "
                  f"{_yes(t['widest_8bit_loss_pp'])} |",
                  f"| shared params <= 1/4 of independent | {m['shared_params']:,} vs {m['independent_params']:,} "
                  f"({t['param_ratio']['independent_over_shared']}x) | {_yes(t['param_ratio'])} |",
                  (f"| shared within 0.3 pp of independent | max gap {t['sharing_gap_pp']['max']} pp, median "
                   f"{t['sharing_gap_pp']['median']}, {t['sharing_gap_pp']['within_0.3']} settings within | "
                   f"{_yes(t['sharing_gap_pp'])} |" if t["sharing_gap_pp"]["met"] is not None else
                   "| shared within 0.3 pp of independent | not measured: the independent autoencoders of this "
                   "model were not trained | **missed** |"),
                  "| <= 1 pp: shared bytes <= raw-quant bytes at every cut | " + ", ".join(
                      f"{c} {v['shared']} vs {v['quant']}" for c, v in t["bytes_at_1pp_vs_quant"]["per_cut"].items())
                  + f" | {_yes(t['bytes_at_1pp_vs_quant'])} |",
                  f"| some cut <= 1 pp in < 1/2 the zlib input | {t['half_zlib_input']['cut']} "
                  f"{t['half_zlib_input']['bytes']} B vs zlib {t['half_zlib_input']['zlib_input']} B | "
                  f"{_yes(t['half_zlib_input'])} |",
                  "| issue 26: some cut <= 1 pp at <= 1/4 of a JPEG q90 of the input, shared < raw quant there | "
                  + _quarter(t.get("quarter_jpeg90")),
                  "| encoder <= head (1 thread) | " + ", ".join(
                      f"{c} {v['encode_ms']}/{v['head_ms']} ms" for c, v in t["encoder_vs_head"]["per_cut"].items())
                  + f" | {_yes(t['encoder_vs_head'])} |",
                  f"| training <= 60 min per AE | shared {t['train_minutes']['shared']} min, independent "
                  f"{t['train_minutes'].get('independent', 'not trained')} min "
                  f"({t['train_minutes']['threads']['shared']} thread) | "
                  f"{_yes(t['train_minutes'])} |",
                  f"\nEntropy model (static per channel, ANS) vs the codec's lossless stage, median bytes saved "
                  f"within 1 pp: shared {t['entropy_saving']['shared']['median']}, raw quant "
                  f"{t['entropy_saving']['quant']['median']}; speed at {m['entropy_speed']['cut']} 4 bits: codec "
                  f"{m['entropy_speed']['codec_ms']} ms, ANS {m['entropy_speed']['ans_ms']} ms per image.\n",
                  "Input per image: " + ", ".join(f"{k} {v:.0f} B" for k, v in m["input_bytes"].items())
                  + "; accuracy of the lossy input: " + ", ".join(f"{k} {v} %" for k, v in m["input_accuracy"].items()
                                                       if v is not None) + "\n",
                  "Per cut: loss at the widest width and the most bits served (8 unless fewer), and the fewest bytes "
                  "within 1 pp of the backbone for "
                  "each coder (setting in brackets: width/bits; every row is in rate_table.json):\n",
                  "| cut | head ms | encode ms | shared widest, most bits: loss pp | shared <= 1 pp | independent <= 1 pp "
                  "| raw quant <= 1 pp |", "|---|---|---|---|---|---|---|"]
        lines += [_cut_line(m, cut) for cut in dict.fromkeys(r["cut"] for r in m["rows"] if r["method"] == "shared")]
        lines.append("")
    return "\n".join(lines) + "\n"


def _cut_line(m: dict, cut: str) -> str:
    base = m["backbone_accuracy"]
    rows = [r for r in m["rows"] if r["cut"] == cut]
    top = top_row(rows, cut)

    def best(method: str) -> str:
        ok = [r for r in rows if r["method"] == method and base - r["accuracy"] <= 1.0]
        if not ok:
            return "none"
        r = min(ok, key=sent)
        return f"{sent(r):.0f} B ({r['width'] or '-'}/{r['bits']}, {base - r['accuracy']:.2f} pp)"

    return (f"| {cut} | {top['head_ms']} | {top['encode_ms']} | {base - top['accuracy']:.2f} | {best('shared')} | "
            f"{best('independent')} | {best('quant')} |")


def _quarter(t: dict | None) -> str:
    if not t or t.get("met") is None:
        return f"not measured ({(t or {}).get('why', 'older table')}) | - |"
    cuts = ", ".join(f"{c} {v['shared']} B (quant {v['quant']})" for c, v in t["within_quarter"].items()) or "none"
    return f"JPEG q90 {t['jpeg90']:.0f} B; within 1/4: {cuts} | {_yes(t)} |"


def _yes(t: dict) -> str:
    return "met" if t["met"] else "**missed**"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--limit", type=int, default=None, help="first N test images for accuracy (default: all)")
    p.add_argument("--bytes-images", type=int, default=500, help="test images whose payload bytes are measured")
    p.add_argument("--fit-images", type=int, default=FIT_IMAGES,
                   help=f"training images the entropy models are fitted on (default {FIT_IMAGES})")
    p.add_argument("--threads", type=int, default=1, help="torch threads (timings are on one thread)")
    p.add_argument("--out", default=str(RESULTS / "rate_table.json"))
    p.add_argument("--merge", action="store_true", help="replace only these models' entries in an existing --out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/rate_table.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {"command": command.strip(), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "threads": args.threads, "models": []}
    for name in args.models.split(","):
        m = table_for(name, args.limit, args.bytes_images, args.fit_images)
        m["targets"] = targets(m)
        plot(m, FIGURES / f"rate_{name}.png")
        result["models"].append(m)
        print(json.dumps({"model": name, "targets": m["targets"]}, indent=1), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.exists():  # keep the other models' entries from an earlier run, in MODELS order
        done = {m["model"]: m for m in json.loads(out.read_text())["models"]}
        done.update({m["model"]: m for m in result["models"]})
        result["models"] = [done[n] for n in sorted(done, key=lambda n: MODELS.index(n) if n in MODELS else 99)]
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out}, {out.with_suffix('.md')} and docs/figures/rate_*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
