"""Write notebooks/what_if.ipynb (outputs stripped) from the cells below, so the notebook is reviewable as code.

    python notebooks/make_what_if.py            # (re)write the notebook
    python notebooks/make_what_if.py --execute  # also run it (nbclient) and print its text outputs (not saved)

The notebook answers "where does splitting pay?" for the zoo models from the committed profiles in profiles/
(edge measured on one core and under a 1/8-core CPU quota, cloud on two cores), using only the public API
(`planner`, `planner.report`). tests/test_notebook.py executes it and checks that the committed file equals
what this script writes and carries no outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "what_if.ipynb"

CELLS: list[tuple[str, str]] = [
    ("md", """\
# What if? Where splitting a model between edge and cloud pays

Splitting inference (the edge runs the first layers and sends a compressed feature, the cloud runs the rest) only
beats both ends when the feature is smaller than the input the cloud-only plan would send **and** the edge is slow
enough that finishing the model locally costs more than the transfer. On Fashion-MNIST the input is tiny (784 bytes,
less after lossless compression), so on a fast link cloud-only should win and on a fast edge edge-only should win.
This notebook maps where each choice wins rather than picking a setting that flatters splitting.

Everything below is the solver's prediction (`planner.plan`) from two **measured** profiles: an edge profile
(one core, and the same core under a 1/8-core CPU quota to emulate a weak device) and a cloud profile (two
cores). Latency = edge compute + upload + RTT + reply + cloud compute; accuracy loss is in percentage points vs
the backbone, measured on the test set. `planner report --edge ... --cloud ... --out DIR` draws the same figures
as PNG files.

The first cell picks the profiles (`planner.find_profiles`, naming rule
`MODEL_ROLE_CPU-Nt[-qQUOTA][_independent].json`) from the search path: `./profiles`, the folders in
`$PLANNER_PROFILES`, the user's cache folder, then the example profiles shipped with the package (measured on
the project's CI machine); it fails if none is found."""),
    ("code", """\
%matplotlib inline
import os

import pandas as pd

import planner
from planner import report

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 20)
pd.set_option("display.float_format", "{:.4g}".format)

MODEL = "vgg-fmnist"          # the chain backbone; the DAG one (resnet-fmnist) gets its own map at the end
OTHER_MODEL = "resnet-fmnist"
QUOTA = 0.125                 # the weak edge: one core under a 1/8-core CPU quota
RTT = "20ms"
MAX_LOSS = 1.0                # accuracy budget, percentage points
BANDWIDTHS = ["0.1mbit", "1mbit", "100mbit"]
TRACE = "hsdpa_norway_bus_1"  # 3G/HSDPA, bus commute (Riiser et al., MMSys 2013), shipped in planner/traces/

print("profiles from:", ", ".join(sorted({str(p.parent) for p in planner.find_profiles(MODEL, quota=QUOTA)})))

edge_1core, cloud = report.load_pair(MODEL)                       # edge on one unrestricted core
edge, _ = report.load_pair(MODEL, quota=QUOTA)                    # the weak edge, measured under the quota
try:  # the independent-autoencoder baseline, compared on the same edge as the shared one
    independent, pareto_edge = report.load_pair(MODEL, quota=QUOTA, autoencoder="independent"), edge
except planner.ProfileError:
    try:
        independent, pareto_edge = report.load_pair(MODEL, autoencoder="independent"), edge_1core
        print("independent-AE profiles exist only without the CPU quota: the Pareto plot uses the 1-core edge")
    except planner.ProfileError:  # the rate table (benchmarks/rate_table.py) compares the two autoencoders
        independent, pareto_edge = None, edge
        print("no independent-AE profiles: the Pareto plot shows the shared autoencoder's families only")
measured_slowdown = edge.whole_model_ms.median / edge_1core.whole_model_ms.median

pd.DataFrame([{"profile": os.path.basename(p.name), "role": p.role, "cpu": p.device["cpu"],
               "threads": p.device["threads"], "cpu quota": p.device["cpu_quota"], "autoencoder": p.autoencoder,
               "whole model ms": p.whole_model_ms.median, "backbone acc %": p.backbone_accuracy}
              for p in (edge_1core, edge, cloud, *(independent or ()))])"""),
    ("md", """\
## 1. Latency breakdown per cut

For each cut, the fastest way to send its feature within the accuracy budget (the autoencoder's width and bits,
the raw quantizer's bits, or a raw format, under the bar), split into edge compute, RTT, transfer and cloud
compute, on the weak edge. The star marks the solver's
optimum; the black dash is the raw float32 feature at that cut (Neurosurgeon-style splitting, no autoencoder)."""),
    ("code", """\
report.breakdown_figure(edge, cloud, BANDWIDTHS, rtt=RTT, max_loss=MAX_LOSS)"""),
    ("code", """\
report.best_per_cut(edge, cloud, BANDWIDTHS[0], rtt=RTT, max_loss=MAX_LOSS)"""),
    ("md", """\
## 2. Where each choice wins: bandwidth x edge slowdown

The optimal choice for every bandwidth from 0.01 to 1000 Mbit/s and every edge 1-64x slower than the measured
single core, coloured by cut (light grey: cloud-only, dark grey: edge-only) and labelled with the bits sent. The
dashed line is the slowdown actually measured under the CPU quota."""),
    ("code", """\
cmap = report.choice_map(edge_1core, cloud, rtt=RTT, max_loss=MAX_LOSS)
report.choice_map_figure(cmap, marks={f"1/{1 / QUOTA:g}-core quota, measured": measured_slowdown})"""),
    ("code", """\
shares = cmap.kind_shares()
print("share of the map won by: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
print(f"measured slowdown under the quota: {measured_slowdown:.2f}x")
cmap.shares()"""),
    ("md", """\
## 3. Latency vs accuracy loss: shared autoencoder, independent autoencoders, raw quantizer, raw features

Every candidate on the weak edge (the 1-core edge if the baseline was only measured there) at two bandwidths,
with the Pareto front of each family (the shared autoencoder
serving every cut at every latent width and bitwidth with one set of weights, one independent autoencoder per
cut, the training-free per-channel quantizer of the raw feature, and the raw float32/float16 feature). Cloud-only and edge-only are lossless; the shaded area is what they beat on both latency and loss."""),
    ("code", """\
report.pareto_figure((pareto_edge, cloud), BANDWIDTHS[:2], rtt=RTT, independent=independent)"""),
    ("code", """\
front = report.pareto_frame((pareto_edge, cloud), planner.ConstantLink(BANDWIDTHS[0], RTT), independent=independent)
front[front["on_front"]].sort_values(["family", "predicted_ms"])"""),
    ("md", """\
## 4. Replay of a real 3G trace

One request every 500 ms over the whole trace, each timed exactly on the trace (uplink after the edge part, RTT,
reply after the cloud part). Policies: the per-request optimum knowing the trace (a lower bound), re-planning on
a live EWMA estimate of past transfers, and fixed plans (the trace-robust plan of `planner.solve_trace`, the plan
for the trace's mean bandwidth, cloud-only, edge-only)."""),
    ("code", """\
replay = report.replay_trace(edge, cloud, TRACE, rtt=RTT, max_loss=MAX_LOSS)
report.trace_figure(replay)"""),
    ("code", """\
replay.summary()"""),
    ("md", """\
The same policies on the other shipped real traces (3G/HSDPA and Puffer), weak edge:"""),
    ("code", """\
from planner.link import available_traces

real = [t for t in available_traces() if t.startswith(("hsdpa", "puffer"))]
pd.concat([report.replay_trace(edge, cloud, t, rtt=RTT, max_loss=MAX_LOSS).summary().assign(trace=t)
           for t in real]).pivot(index="trace", columns="policy", values="mean_ms")"""),
    ("md", """\
## 5. Breakpoints: the bandwidths where the best choice changes

Exact (the latency of every candidate is affine in 1 / bandwidth on a constant link): in each interval
[from, to) Mbit/s the solver picks `choice`. On the weak edge, then on the unrestricted core."""),
    ("code", """\
report.breakpoints_frame(edge, cloud, rtt=RTT, max_loss=MAX_LOSS)"""),
    ("code", """\
report.breakpoints_frame(edge_1core, cloud, rtt=RTT, max_loss=MAX_LOSS)"""),
    ("md", """\
## 6. The DAG backbone (resnet-fmnist)

The same map for the ResNet-style model, whose cuts lie between residual blocks."""),
    ("code", """\
other_edge, other_cloud = report.load_pair(OTHER_MODEL)
other_weak, _ = report.load_pair(OTHER_MODEL, quota=QUOTA)
other_map = report.choice_map(other_edge, other_cloud, rtt=RTT, max_loss=MAX_LOSS)
print("share of the map won by: " + ", ".join(f"{k} {v:.0%}" for k, v in other_map.kind_shares().items()))
report.choice_map_figure(other_map, marks={
    f"1/{1 / QUOTA:g}-core quota, measured": other_weak.whole_model_ms.median / other_edge.whole_model_ms.median})"""),
    ("code", """\
report.breakpoints_frame(other_weak, other_cloud, rtt=RTT, max_loss=MAX_LOSS)"""),
    ("md", """\
## 7. Edge energy per request: energy vs bandwidth, and the latency-energy Pareto front

The edge's energy per request (docs/energy.md): compute at the edge's active power, the radio while bytes move
(the power models of Huang et al., MobiSys 2012: LTE here, `radio="wifi"` or `"3g"` for the others) and idle
power while the edge waits for the cloud. The committed profiles record no edge power, so these use the ASSUMED
default (2 W active, 0.3 W idle): declare the real figures with `planner profile --edge-power-w ACTIVE[,IDLE]`.
Weak edge; each line is the least-energy candidate at one cut, the red band the energy-optimal plan."""),
    ("code", """\
from planner import report_energy

energy = report_energy.energy_frame(edge, cloud, radio="lte", rtt_ms=planner.parse_duration(RTT), max_loss=MAX_LOSS)
report_energy.energy_figure(energy, f"{MODEL}, weak edge, LTE")"""),
    ("code", """\
pf = report_energy.pareto_energy(edge, cloud, planner.ConstantLink(BANDWIDTHS[0], RTT), radio="lte", max_loss=MAX_LOSS)
print(pf[pf["latency_optimal"] | pf["energy_optimal"]][["label", "latency_ms", "energy_mj", "latency_optimal",
                                                       "energy_optimal"]].to_string(index=False))
report_energy.pareto_energy_figure(pf, f"{MODEL}, weak edge, {BANDWIDTHS[0]}, LTE")"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    nb = new_notebook(cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS])
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: regenerating gives the same file
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, path: Path = HERE, timeout: int = 300) -> nbformat.NotebookNode:
    """Run the notebook in a fresh kernel with `path` as working folder; returns it with outputs."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path)}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--execute", action="store_true", help="also run it and print the text outputs (not saved)")
    p.add_argument("--save-executed", metavar="PATH", help="with --execute: write the executed notebook there")
    args = p.parse_args(argv)
    nb = build()
    nbformat.validate(nb)
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
    if args.execute:
        start = time.perf_counter()
        done = execute(nb)
        for cell in done.cells:
            for out in cell.get("outputs", []):
                text = out.get("text") or out.get("data", {}).get("text/plain")
                if text and "<Figure" not in text:
                    print(text if text.endswith("\n") else text + "\n", end="")
        print(f"executed in {time.perf_counter() - start:.1f} s")
        if args.save_executed:
            nbformat.write(done, args.save_executed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
