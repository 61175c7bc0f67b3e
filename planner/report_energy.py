"""Energy in the what-if report and notebooks: edge energy per request vs bandwidth (the best candidate at each
cut, the ends, the energy-optimal plan) and the latency-energy Pareto front at a bandwidth.

Torch-free; figures are `matplotlib.figure.Figure` objects like planner.report's. The energy model is
planner.energy's (docs/energy.md); the edge's power is the edge profile's, else the assumed default (said so).
"""

from __future__ import annotations

import numpy as np

from planner.config import DEFAULT_MAX_LOSS
from planner.energy import EnergyModel
from planner.link import ConstantLink, format_bandwidth
from planner.objectives import Goal
from planner.solve import prepare
from planner.types import CandidateKind

BANDWIDTHS_BPS = np.geomspace(1e5, 1e8, 61)  # 0.1 .. 100 Mbit/s


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def energy_frame(edge, cloud, *, radio: str = "lte", rtt_ms: float = 20.0, bandwidths_bps=BANDWIDTHS_BPS,
                 max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0, assume_loss=None,
                 tail: bool = False):
    """One row per (bandwidth, cut): the least-energy feasible candidate at that cut (cloud-only at 'input',
    edge-only at 'output'), its energy and latency, and whether it is the energy-optimal plan there."""
    import pandas as pd

    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    goal = Goal("energy", energy=EnergyModel(radio, tail=tail))
    rows = []
    for bw in bandwidths_bps:
        plan = cs.solve(ConstantLink(float(bw), rtt_ms), max_loss=max_loss, goal=goal)
        energy, feasible = plan.columns["energy"], plan.columns["feasible"]
        for cut in cs.cuts:
            at = np.flatnonzero(np.array([s.cut == cut for s in cs.specs]) & feasible)
            if at.size == 0:
                continue
            i = int(at[np.argmin(energy[at])])
            c = plan.candidate(i)
            rows.append({"bandwidth_mbps": bw / 1e6, "cut": cut, "label": c.label, "kind": c.kind.value,
                         "energy_mj": c.energy_mj, "latency_ms": c.predicted_ms, "optimal": i == plan.index})
    return pd.DataFrame(rows)


def energy_figure(frame, title: str = ""):
    """Edge energy per request vs bandwidth: one line per cut (its best candidate), the optimum in bold."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(8.0, 4.6)
    ax = fig.add_subplot()
    for cut, rows in frame.groupby("cut", sort=False):
        kind = rows["kind"].iloc[0]
        style = {"cloud-only": dict(color="#888888", lw=2, ls="--"), "edge-only": dict(color="#222222", lw=2, ls=":")}
        ax.plot(rows["bandwidth_mbps"], rows["energy_mj"], label=kind if kind in style else cut,
                **style.get(kind, dict(lw=1, alpha=0.7)))
    best = frame[frame["optimal"]]
    ax.plot(best["bandwidth_mbps"], best["energy_mj"], color="#d62728", lw=3, alpha=0.5, label="energy-optimal plan")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.set_xlabel("bandwidth, Mbit/s")
    ax.set_ylabel("edge energy per request, mJ")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return fig


def pareto_energy(edge, cloud, link: ConstantLink, *, radio: str = "lte", max_loss: float | None = DEFAULT_MAX_LOSS,
                  edge_slowdown: float = 1.0, assume_loss=None):
    """Every feasible candidate's (latency, energy) at `link`, the latency-energy Pareto front marked, and which
    is the latency-optimal and which the energy-optimal plan."""
    import pandas as pd

    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    energy = Goal("energy", energy=EnergyModel(radio))
    plan = cs.solve(link, max_loss=max_loss, goal=energy)
    fastest = cs.solve(link, max_loss=max_loss, goal=Goal("mean", energy=EnergyModel(radio))).index
    df = pd.DataFrame([{"label": c.label, "kind": c.kind.value, "latency_ms": c.predicted_ms,
                        "energy_mj": c.energy_mj, "index": i} for i, c in enumerate(plan.candidates) if c.feasible])
    df = df.sort_values(["latency_ms", "energy_mj"]).reset_index(drop=True)
    df["on_front"] = df["energy_mj"] < df["energy_mj"].cummin().shift(fill_value=np.inf)
    df["latency_optimal"], df["energy_optimal"] = df["index"] == fastest, df["index"] == plan.index
    return df.drop(columns="index")


def pareto_energy_figure(frame, title: str = ""):
    """Latency vs edge energy of every feasible candidate, the Pareto front, the two optima annotated."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    split = frame[~frame["kind"].isin([CandidateKind.CLOUD_ONLY.value, CandidateKind.EDGE_ONLY.value])]
    ax.scatter(split["latency_ms"], split["energy_mj"], s=12, color="#1f77b4", alpha=0.5, label="splits")
    front = frame[frame["on_front"]]
    ax.plot(front["latency_ms"], front["energy_mj"], "-o", color="#d62728", ms=4, label="Pareto front")
    for kind, marker in (("cloud-only", "s"), ("edge-only", "D")):
        end = frame[frame["kind"] == kind]
        ax.scatter(end["latency_ms"], end["energy_mj"], marker=marker, s=60, color="#444444", label=kind, zorder=3)
    fast, frugal = frame[frame["latency_optimal"]].iloc[0], frame[frame["energy_optimal"]].iloc[0]
    marks = ([(fast, "latency- and energy-optimal")] if fast["label"] == frugal["label"]
             else [(fast, "latency-optimal"), (frugal, "energy-optimal")])
    for r, text in marks:
        ax.annotate(f"{text}:\n{r['label']}", (r["latency_ms"], r["energy_mj"]), fontsize=7,
                    xytext=(8, 8), textcoords="offset points", arrowprops=dict(arrowstyle="-", lw=0.5))
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _p: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel("predicted latency, ms")
    ax.set_ylabel("edge energy per request, mJ")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def report_parts(report) -> tuple[dict, list[str]]:
    """planner.report's hook: ({name: figure}, Markdown lines) for the report's first bandwidth and its radio."""
    o = report.o
    if o.radio is None:
        return {}, []
    kw = {"max_loss": o.max_loss, "edge_slowdown": o.edge_slowdown, "assume_loss": o.assume_loss}
    power = EnergyModel(o.radio).power_of(report.edge)
    what = f"{o.radio} radio (Huang et al. 2012), edge {power}"
    frame = energy_frame(report.edge, report.cloud, radio=o.radio, rtt_ms=report.rtt_ms, **kw)
    link = report.links[0]
    pareto = pareto_energy(report.edge, report.cloud, link, radio=o.radio, **kw)
    figures = {"energy": energy_figure(frame, f"{report.edge.model}, {what}"),
               "pareto_energy": pareto_energy_figure(pareto, f"{format_bandwidth(link.bandwidth_bps)}, {what}")}
    fast, frugal = pareto[pareto["latency_optimal"]].iloc[0], pareto[pareto["energy_optimal"]].iloc[0]
    changes = frame[frame["optimal"]].drop_duplicates("label")
    lines = ["## 6. Edge energy per request", "",
             f"Model: docs/energy.md; {what}. At {format_bandwidth(link.bandwidth_bps)} the latency-optimal plan is "
             f"{fast['label']} ({fast['latency_ms']:.3g} ms, {fast['energy_mj']:.3g} mJ) and the energy-optimal one "
             f"{frugal['label']} ({frugal['latency_ms']:.3g} ms, {frugal['energy_mj']:.3g} mJ).", "",
             "Energy-optimal plan from 0.1 to 100 Mbit/s (first bandwidth where it is chosen): "
             + ", ".join(f"{r.label} from {r.bandwidth_mbps:.3g} Mbit/s" for r in changes.itertuples()) + ".", "",
             "![energy vs bandwidth](energy.png)", "", "![latency-energy Pareto front](pareto_energy.png)", ""]
    if power.source == "assumed":
        lines.insert(4, "**The edge's power is ASSUMED** (the profile records none): declare it with "
                        "`planner profile --edge-power-w ACTIVE[,IDLE]` or measure it (RAPL).")
        lines.insert(5, "")
    return figures, lines
