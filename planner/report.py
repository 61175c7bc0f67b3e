"""What-if analysis of a profile pair: where each plan wins, as tables and matplotlib figures.

One data function and one figure per question of the what-if notebook (notebooks/what_if.ipynb) and of
`planner report`: the latency breakdown per cut at a bandwidth (`best_per_cut`, `breakdown_figure`), the optimal
choice over bandwidth x edge slowdown (`choice_map`, `choice_map_figure`), latency vs accuracy loss for the
shared autoencoder, the independent ones and raw features (`pareto_frame`, `pareto_figure`), the replay of a
bandwidth trace (`replay_trace`, `trace_figure`) and the bandwidth breakpoints (`breakpoints_frame`).
Every answer is the solver's (`planner.solve`); this module only asks it many times and draws.
Planning code: no torch; matplotlib is imported when a figure is drawn, and figures are plain
`matplotlib.figure.Figure` objects (no pyplot state), shown by Jupyter and saved with `fig.savefig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from planner.errors import PlannerError
from planner.link import (
    ConstantLink,
    LiveEstimate,
    TraceLink,
    format_bandwidth,
    parse_bandwidth,
    parse_duration,
)
from planner.profile.schema import Profile
from planner.profile.store import PROFILES_ENV, find_profiles, load_pair  # noqa: F401 - the notebooks' names
from planner.report_energy import report_parts
from planner.solve import DEFAULT_MAX_LOSS, CandidateSet, prepare
from planner.types import INPUT_CUT, OUTPUT_CUT, CandidateKind, CandidateSpec

END_SPECS = (CandidateSpec.cloud_only(), CandidateSpec.edge_only())
END_KINDS = tuple(s.kind for s in END_SPECS)

PARTS = (("edge_ms", "edge", "#4c72b0"), ("rtt_ms", "RTT", "#f2c48d"), ("wire_ms", "transfer", "#dd8452"),
         ("cloud_ms", "cloud", "#55a868"))
CLOUD_ONLY_COLOR, EDGE_ONLY_COLOR = "#c8c8c8", "#3a3a3a"
FAMILIES = ("shared AE", "independent AEs", "raw quant", "raw features")
FAMILY_STYLE = {"shared AE": ("#1f77b4", "o"), "independent AEs": ("#d62728", "s"), "raw quant": ("#2ca02c", "D"),
                "raw features": ("#7f7f7f", "^")}


# ---------------------------------------------------------------------------------------------- profiles

# ---------------------------------------------------------------------------------------------- helpers

def cut_order(cs: CandidateSet) -> list[str]:
    """Cut ids in execution order, 'input' (cloud-only) first and 'output' (edge-only) last."""
    return [INPUT_CUT, *(c.id for c in cs.edge.cuts), OUTPUT_CUT]


def cut_colors(cuts: list[str]) -> dict[str, tuple]:
    """One colour per cut id: light grey for cloud-only ('input'), dark grey for edge-only ('output')."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgba

    inner = [c for c in cuts if c not in (INPUT_CUT, OUTPUT_CUT)]
    if len(inner) <= 9:  # tab10 without its grey (grey means cloud-only / edge-only)
        palette = [colormaps["tab10"](i) for i in range(10) if i != 7]
    else:  # the 9 strong hues first, then their light variants: neighbouring cuts never share a hue
        palette = [colormaps["tab20"](i) for i in (*range(0, 20, 2), *range(1, 20, 2)) if i not in (14, 15)]
    colors = {c: palette[i % len(palette)] for i, c in enumerate(inner)}
    return {INPUT_CUT: to_rgba(CLOUD_ONLY_COLOR), **colors, OUTPUT_CUT: to_rgba(EDGE_ONLY_COLOR)}


def _link(link: ConstantLink | str | float, rtt: str | float) -> ConstantLink:
    return link if isinstance(link, ConstantLink) else ConstantLink(link, rtt)


def _tick(cut: str, what: str) -> str:
    """An x tick of the breakdown: the cut and what is sent there."""
    return what if cut in (INPUT_CUT, OUTPUT_CUT) else f"{cut}\n{what}"


def _mbit(v: float, _pos=None) -> str:
    return f"{v:g}"


def _figure(w: float, h: float, **kwargs):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained", **kwargs)


def _log_axis(axis) -> None:
    """Plain numbers on a log axis (1, 2, 5, 10 ... rather than 10^0), minor ticks labelled 2 and 5."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(_mbit))
    axis.set_minor_formatter(FuncFormatter(lambda v, _p: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))


def _text_color(rgba) -> str:
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _loss_axis(ax) -> None:
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("accuracy loss, pp (linear to 1, log above)")


def _subtitle(cs: CandidateSet, rtt_ms: float | None = None, max_loss: float | None = None) -> str:
    parts = [f"{cs.edge.model}", f"edge {_device(cs.edge)}", f"cloud {_device(cs.cloud)}"]
    if cs.edge_slowdown != 1:
        parts.append(f"edge x{cs.edge_slowdown:g}")
    if rtt_ms is not None:
        parts.append(f"RTT {rtt_ms:g} ms")
    if max_loss is not None:
        parts.append(f"budget {max_loss:g} pp")
    if cs.assumed_loss:
        parts.append("accuracy loss ASSUMED")
    return ", ".join(parts)


def _device(p: Profile) -> str:
    d = p.device
    what = f"{d.get('threads') or '?'}t"
    if d.get("cpu_quota"):
        what += f" q{d['cpu_quota']:g}"
    scaled = (p.scaled_by or {}).get("compute")
    return what + (f" x{scaled:g}" if scaled and scaled != 1 else "")


# ---------------------------------------------------------------------------------------------- 1. breakdown

def best_per_cut(edge: Profile, cloud: Profile, link: ConstantLink | str, *, rtt: str | float = "20ms",
                 max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0,
                 assume_loss: dict[int, float] | None = None):
    """Per cut (cloud-only first, edge-only last): the fastest feasible way to send its feature, its latency
    parts (edge, RTT, wire = transfer without RTT, cloud), and the raw float32 latency there; `optimal` marks the
    solver's choice. A pandas DataFrame."""
    import pandas as pd

    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    link = _link(link, rtt)
    plan = cs.solve(link, max_loss=max_loss)
    best: dict[str, int] = {}
    raw32: dict[str, float] = {}
    for i, c in enumerate(plan.candidates):
        if c.dtype == "float32":
            raw32[c.cut] = c.predicted_ms
        if c.feasible and (c.cut not in best or c.predicted_ms < plan.candidates[best[c.cut]].predicted_ms):
            best[c.cut] = i
    rows = []
    for cut in cut_order(cs):
        c = plan.candidates[best[cut]]
        rows.append({"cut": cut, "label": c.label, "tag": c.spec.tag, "kind": c.kind.value,
                     "bits": c.bits, "bytes": c.nbytes, "edge_ms": c.edge_ms, "rtt_ms": c.rtt_ms,
                     "wire_ms": c.transfer_ms - c.rtt_ms, "cloud_ms": c.cloud_ms, "predicted_ms": c.predicted_ms,
                     "accuracy_loss": c.accuracy_loss, "raw_float32_ms": raw32.get(cut, math.nan),
                     "optimal": best[cut] == plan.index})
    df = pd.DataFrame(rows)
    df["bits"] = df["bits"].astype("Int64")
    return df


def breakdown_figure(edge: Profile, cloud: Profile, links, *, rtt: str | float = "20ms",
                     max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0,
                     assume_loss: dict[int, float] | None = None):
    """Stacked edge / RTT / transfer / cloud latency of the best candidate at each cut, one panel per link
    (a ConstantLink or a bandwidth such as '1mbit'); the optimal (cut, bits) starred, raw float32 marked x."""
    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    links = [_link(x, rtt) for x in (links if isinstance(links, list | tuple) else [links])]
    many = len(cs.edge.cuts) > 14
    fig = _figure(min(16.0, max(7.0, 0.5 * len(cs.edge.cuts) + 3)), 3.6 * len(links))
    axes = fig.subplots(len(links), 1, squeeze=False)[:, 0]
    for ax, link in zip(axes, links, strict=True):
        df = best_per_cut(edge, cloud, link, max_loss=max_loss, edge_slowdown=edge_slowdown,
                          assume_loss=assume_loss)
        x = np.arange(len(df))
        bottom = np.zeros(len(df))
        for col, name, color in PARTS:
            ax.bar(x, df[col], bottom=bottom, color=color, label=name, width=0.7)
            bottom += df[col].to_numpy()
        best = int(np.flatnonzero(df["optimal"])[0])
        ends = df["predicted_ms"].iloc[[0, -1, best]]
        top = 1.3 * float(ends.max())  # the scale of both ends: a far slower cut is clipped and its time written
        ax.set_ylim(0, top)
        ax.bar(x[best], df["predicted_ms"][best], width=0.7, fill=False, edgecolor="black", linewidth=2)
        for i, r in df.iterrows():
            raw = r["raw_float32_ms"] if r["tag"] != "f32" else math.nan
            clipped = [f"{r['predicted_ms']:,.0f} ms"] if r["predicted_ms"] > top else []
            if np.isfinite(raw) and raw > top:
                clipped.append(f"f32 {raw:,.0f}")
            elif np.isfinite(raw):
                ax.plot(x[i], raw, marker="_", color="black", markersize=16 - 6 * many, markeredgewidth=2)
            if clipped:
                ax.annotate("\u2191 " + ", ".join(clipped), (x[i], top), xytext=(0, -4), textcoords="offset points",
                            ha="center", va="top", fontsize=7, rotation=90, color="#333333",
                            bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5})
        ax.plot(x[best], df["predicted_ms"][best] + 0.07 * top, marker="*", color="black", markersize=13)
        ticks = [_tick(r["cut"], r["tag"]) for _, r in df.iterrows()]
        if many:
            ax.set_xticks(x, [t.replace("\n", " ") for t in ticks], fontsize=7, rotation=90)
        else:
            ax.set_xticks(x, ticks, fontsize=8)
        ax.set_xlim(-0.6, len(df) - 0.4)
        ax.set_ylabel("latency, ms")
        o = df.iloc[best]
        ax.set_title(f"{format_bandwidth(link.bandwidth_bps)}, RTT {link.rtt_ms:g} ms: optimal {o['label']} "
                     f"= {o['predicted_ms']:.1f} ms (loss {o['accuracy_loss']:.2f} pp)", fontsize=10)
    axes[0].plot([], [], marker="_", color="black", markersize=16, markeredgewidth=2, linestyle="none",
                 label="raw float32 at that cut")
    axes[0].plot([], [], "k*", markersize=10, linestyle="none", label="optimal")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=6, fontsize=8)
    fig.suptitle(f"Latency breakdown of the best candidate per cut ({_subtitle(cs, None, max_loss)})", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------- 2. choice map

@dataclass
class ChoiceMap:
    """The solver's choice on a grid of constant-link bandwidths x edge slowdowns (`index[slowdown, bandwidth]`
    is a candidate index, the same for every slowdown: candidates are listed in one order)."""

    bandwidths_bps: np.ndarray
    slowdowns: np.ndarray
    index: np.ndarray
    predicted_ms: np.ndarray
    candidates: CandidateSet  # the slowdown-1 set: names, cuts, kinds, bits
    rtt_ms: float
    max_loss: float | None

    def label(self, i: int) -> str:
        return self.candidates.specs[i].short_label

    def shares(self):
        """Share of the (log-spaced) map each choice wins, with its bandwidth and slowdown ranges (DataFrame)."""
        import pandas as pd

        cs, rows = self.candidates, []
        for i in np.unique(self.index):
            s, b = np.nonzero(self.index == i)
            spec = cs.specs[i]
            rows.append({"choice": self.label(int(i)), "kind": spec.kind.value, "cut": spec.cut, "bits": spec.bits,
                         "share": s.size / self.index.size,
                         "bandwidth_mbps": f"{self.bandwidths_bps[b.min()] / 1e6:.3g}-"
                                           f"{self.bandwidths_bps[b.max()] / 1e6:.3g}",
                         "slowdown": f"{self.slowdowns[s.min()]:.3g}-{self.slowdowns[s.max()]:.3g}"})
        df = pd.DataFrame(rows).sort_values("share", ascending=False, ignore_index=True)
        df["bits"] = df["bits"].astype("Int64")
        return df

    def kind_shares(self) -> dict[str, float]:
        """Share of the map won by each kind (cloud-only, raw, split, edge-only)."""
        kinds = np.asarray([s.kind.value for s in self.candidates.specs])[self.index]
        return {k.value: float(np.mean(kinds == k.value)) for k in CandidateKind}


def choice_map(edge: Profile, cloud: Profile, *, rtt: str | float = "20ms",
               max_loss: float | None = DEFAULT_MAX_LOSS, bandwidth: tuple = ("10kbit", "1gbit"),
               slowdown: tuple[float, float] = (1.0, 64.0), points_per_decade: int = 24,
               points_per_octave: int = 6, assume_loss: dict[int, float] | None = None) -> ChoiceMap:
    """Solve on every point of a log grid of bandwidths (bit/s or '10kbit'..) x edge slowdowns."""
    rtt_ms = parse_duration(rtt, allow_zero=True)
    lo, hi = (parse_bandwidth(b) for b in bandwidth)
    if not (lo < hi and 0 < slowdown[0] <= slowdown[1]):
        raise PlannerError(f"choice map needs low < high bandwidth and 0 < slowdown range, got {bandwidth}, "
                           f"{slowdown}")
    n_bw = max(2, round(math.log10(hi / lo) * points_per_decade) + 1)
    n_sl = max(1, round(math.log2(slowdown[1] / slowdown[0]) * points_per_octave) + 1)
    bws = np.geomspace(lo, hi, n_bw)
    sls = np.geomspace(slowdown[0], slowdown[1], n_sl)
    links = [ConstantLink(b, rtt_ms) for b in bws]
    index = np.empty((n_sl, n_bw), dtype=int)
    latency = np.empty((n_sl, n_bw))
    for i, k in enumerate(sls):
        cs = CandidateSet(edge, cloud, edge_slowdown=float(k), assume_loss=assume_loss)
        for j, link in enumerate(links):
            plan = cs.solve(link, max_loss=max_loss)
            index[i, j], latency[i, j] = plan.index, plan.predicted_ms
    return ChoiceMap(bws, sls, index, latency, CandidateSet(edge, cloud, assume_loss=assume_loss), rtt_ms,
                     max_loss)


def choice_map_figure(cmap: ChoiceMap, *, marks: dict[str, float] | None = None, min_cells: int = 6):
    """The map coloured by cut (cloud-only light grey, edge-only dark grey), each region annotated with what it
    sends (bits, f32/f16), white lines where the choice changes; `marks` draws measured slowdowns as lines."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    cs = cmap.candidates
    order = cut_order(cs)
    colors = cut_colors(order)
    pos = {c: k for k, c in enumerate(order)}
    cut_grid = np.vectorize(lambda i: pos[cs.specs[i].cut])(cmap.index)
    fig = _figure(9.5, 5.6)
    ax = fig.add_subplot()
    x = _edges(cmap.bandwidths_bps / 1e6)
    y = _edges(cmap.slowdowns)
    ax.pcolormesh(x, y, cut_grid, cmap=ListedColormap([colors[c] for c in order]),
                  norm=BoundaryNorm(np.arange(len(order) + 1) - 0.5, len(order)))
    segments = []
    for s, b in zip(*np.nonzero(cmap.index[:, 1:] != cmap.index[:, :-1]), strict=True):
        segments.append([(x[b + 1], y[s]), (x[b + 1], y[s + 1])])
    for s, b in zip(*np.nonzero(cmap.index[1:, :] != cmap.index[:-1, :]), strict=True):
        segments.append([(x[b], y[s + 1]), (x[b + 1], y[s + 1])])
    ax.add_collection(LineCollection(segments, colors="white", linewidths=0.8))
    lx, ly = np.log(cmap.bandwidths_bps), np.log(cmap.slowdowns)
    for i in np.unique(cmap.index):
        s, b = np.nonzero(cmap.index == i)
        if s.size < min_cells:
            continue
        cx, cy = lx[b].mean(), ly[s].mean()
        span_x, span_y = max(np.ptp(lx), 1e-9), max(np.ptp(ly), 1e-9)
        k = int(np.argmin(((lx[b] - cx) / span_x) ** 2 + ((ly[s] - cy) / span_y) ** 2))
        ax.text(cmap.bandwidths_bps[b[k]] / 1e6, cmap.slowdowns[s[k]], cs.specs[i].tag,
                ha="center", va="center", fontsize=8, color=_text_color(colors[cs.specs[i].cut]))
    for name, value in (marks or {}).items():
        ax.axhline(value, color="black", linestyle="--", linewidth=1)
        ax.text(x[0] * 1.15, value * 1.03, f"{name} ({value:.3g}x)", fontsize=8, va="bottom",
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(_mbit))
    ax.yaxis.set_major_formatter(FuncFormatter(_mbit))
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_xlabel("uplink bandwidth, Mbit/s")
    ax.set_ylabel("edge slowdown (x the edge profile's compute times)")
    present = [c for c in order if c in set(cs.specs[i].cut for i in np.unique(cmap.index))]
    ends = {INPUT_CUT: CandidateKind.CLOUD_ONLY.value, OUTPUT_CUT: CandidateKind.EDGE_ONLY.value}
    handles = [Patch(color=colors[c], label=ends.get(c, f"split at {c}")) for c in present]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="choice (colour)",
              title_fontsize=8)
    shares = cmap.kind_shares()
    ax.set_title(f"Optimal choice ({_subtitle(cs, cmap.rtt_ms, cmap.max_loss)})\nshare of the map: "
                 + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()) + "; labels: bits sent (f32/f16: raw "
                 "feature)", fontsize=9)
    return fig


def _edges(centers: np.ndarray) -> np.ndarray:
    """Cell edges of a log-spaced grid (geometric midpoints)."""
    c = np.asarray(centers, dtype=float)
    if c.size == 1:
        return np.array([c[0] / 1.05, c[0] * 1.05])
    mid = np.sqrt(c[1:] * c[:-1])
    return np.concatenate([[c[0] ** 2 / mid[0]], mid, [c[-1] ** 2 / mid[-1]]])


# ---------------------------------------------------------------------------------------------- 3. Pareto

def _front(latency: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both latency and loss (ties: the first kept)."""
    order = np.lexsort((loss, latency))
    mask = np.zeros(latency.size, dtype=bool)
    best = math.inf
    for i in order:
        if loss[i] < best - 1e-12:
            mask[i], best = True, loss[i]
    return mask


def pareto_frame(shared: tuple[Profile, Profile], link: ConstantLink, *,
                 independent: tuple[Profile, Profile] | None = None, edge_slowdown: float = 1.0,
                 assume_loss: dict[int, float] | None = None):
    """Every candidate of the families 'shared AE' (split candidates of the shared pair), 'independent AEs'
    (those of the independent pair), 'raw quant' (the training-free raw quantizer's) and 'raw features' (raw
    candidates), plus cloud-only and edge-only (family
    'trivial'); `on_front` marks each family's own latency/loss Pareto front, `beaten_by_trivial` the candidates
    that cloud-only or edge-only beat on both latency and loss (DataFrame)."""
    import pandas as pd

    pairs = {"shared AE": (shared, CandidateKind.SPLIT), "raw features": (shared, CandidateKind.RAW),
             "raw quant": (shared, CandidateKind.QUANT)}
    if independent is not None:
        pairs["independent AEs"] = (independent, CandidateKind.SPLIT)
    frames = []
    for family in (*FAMILIES, "trivial"):
        if family == "trivial":
            (e, c), kinds = shared, [CandidateKind.CLOUD_ONLY, CandidateKind.EDGE_ONLY]
        elif family in pairs:
            (e, c), kind = pairs[family]
            kinds = [kind]
        else:
            continue
        t = prepare(e, c, edge_slowdown=edge_slowdown, assume_loss=assume_loss).solve(link, max_loss=None).table
        t = t[t["kind"].isin(kinds)].copy()
        if t.empty:
            continue
        t["family"] = family
        t["on_front"] = _front(t["predicted_ms"].to_numpy(), t["accuracy_loss"].to_numpy())
        frames.append(t)
    df = pd.concat(frames, ignore_index=True)
    trivial = df[df["family"] == "trivial"]
    lat, loss = df["predicted_ms"].to_numpy()[:, None], df["accuracy_loss"].to_numpy()[:, None]
    beaten = ((trivial["predicted_ms"].to_numpy()[None, :] <= lat) & (trivial["accuracy_loss"].to_numpy()[None, :]
                                                                       <= loss)).any(axis=1)
    df["beaten_by_trivial"] = beaten & (df["family"] != "trivial").to_numpy()
    cols = ["family", "label", "kind", "cut", "bits", "width", "dtype", "bytes", "predicted_ms", "accuracy_loss",
            "on_front", "beaten_by_trivial"]
    return df[cols]


def pareto_figure(shared: tuple[Profile, Profile], links, *, rtt: str | float = "20ms",
                  independent: tuple[Profile, Profile] | None = None, edge_slowdown: float = 1.0,
                  assume_loss: dict[int, float] | None = None):
    """Latency vs accuracy loss of every candidate, one panel per link: each family's Pareto front as a step
    line (front points labelled), cloud-only and edge-only as diamonds, the area they beat shaded."""
    from matplotlib.ticker import FuncFormatter

    links = [_link(x, rtt) for x in (links if isinstance(links, list | tuple) else [links])]
    fig = _figure(7.0 * len(links), 5.6)
    axes = fig.subplots(1, len(links), squeeze=False)[0]
    for ax, link in zip(axes, links, strict=True):
        df = pareto_frame(shared, link, independent=independent, edge_slowdown=edge_slowdown,
                          assume_loss=assume_loss)
        for family, g in df[df["family"] != "trivial"].groupby("family", sort=False):
            color, marker = FAMILY_STYLE[family]
            ax.scatter(g["predicted_ms"], g["accuracy_loss"], s=14, color=color, marker=marker, alpha=0.3,
                       linewidths=0)
            f = g[g["on_front"]].sort_values("predicted_ms")
            ax.step(f["predicted_ms"], f["accuracy_loss"], where="post", color=color, linewidth=1.5,
                    label=f"{family} front")
            ax.scatter(f["predicted_ms"], f["accuracy_loss"], s=26, color=color, marker=marker,
                       edgecolors="black", linewidths=0.5, zorder=3)
            for _, r in f.iterrows():
                ax.annotate(_short(r), (r["predicted_ms"], r["accuracy_loss"]), xytext=(3, 2),
                            textcoords="offset points", fontsize=6, color=color)
        trivial = df[df["family"] == "trivial"]
        for _, r in trivial.iterrows():
            ax.scatter(r["predicted_ms"], r["accuracy_loss"], s=90, marker="D", zorder=4, edgecolors="black",
                       color=CLOUD_ONLY_COLOR if r["kind"] == CandidateKind.CLOUD_ONLY else EDGE_ONLY_COLOR)
            below = 26 if r["kind"] == CandidateKind.EDGE_ONLY else 6  # two lines of labels: they never overlap
            ax.annotate(f"{r['kind']} {r['predicted_ms']:.1f} ms", (r["predicted_ms"], r["accuracy_loss"]),
                        xytext=(0, -below), textcoords="offset points", fontsize=8, ha="center", va="top",
                        bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.5})
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
        _loss_axis(ax)
        ax.yaxis.set_major_formatter(FuncFormatter(_mbit))
        lo, hi = ax.get_xlim()
        y_top = ax.get_ylim()[1]
        best = float(trivial["predicted_ms"].min())
        ax.fill_between([best, hi], 0, y_top, color="#000000", alpha=0.07, linewidth=0,
                        label="beaten by cloud-/edge-only")
        ax.set_xlim(lo / 1.3, hi)  # room for the labels of the fastest points
        ax.set_ylim(min(ax.get_ylim()[0], -0.5), y_top)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("predicted latency, ms (log)")
        n = int(df["beaten_by_trivial"].sum())
        ax.set_title(f"{format_bandwidth(link.bandwidth_bps)}, RTT {link.rtt_ms:g} ms: {n} of "
                     f"{int((df['family'] != 'trivial').sum())} candidates beaten by cloud-/edge-only", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    cs = prepare(*shared, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    missing = "" if independent is not None else " (no independent-AE profiles given)"
    fig.suptitle(f"Latency vs accuracy loss{missing} ({_subtitle(cs)})", fontsize=10)
    return fig


def _bits(value) -> int | None:
    """A bits cell of a candidate table (pandas Int64: <NA> for raw and trivial candidates) as int or None."""
    import pandas as pd

    return None if pd.isna(value) else int(value)


def _short(row) -> str:
    """'cut3 2b' for a row of a candidate table."""
    return CandidateSpec(row["kind"], row["cut"], _bits(row["bits"]), row["dtype"]).short_label


# ---------------------------------------------------------------------------------------------- 4. trace replay

@dataclass
class TraceReplay:
    """Requests issued every `interval` over one period of a trace, each timed exactly on the trace, under several
    policies: `choice[policy]` is the candidate index per request, `latency_ms[policy]` its latency."""

    trace: str
    times_s: np.ndarray
    bandwidth_bps: np.ndarray
    candidates: CandidateSet
    choice: dict[str, np.ndarray]
    latency_ms: dict[str, np.ndarray]
    rtt_ms: float
    max_loss: float | None

    def label(self, i: int) -> str:
        return self.candidates.specs[i].short_label

    def summary(self):
        """Per policy: mean, p95 and max latency, how often it re-planned, and what it chose (DataFrame)."""
        import pandas as pd

        rows = []
        for name, lat in self.latency_ms.items():
            idx = self.choice[name]
            uniq, counts = np.unique(idx, return_counts=True)
            used = ", ".join(f"{self.label(int(i))} {n / idx.size:.0%}" for i, n in
                             sorted(zip(uniq, counts, strict=True), key=lambda t: -t[1])[:4])
            rows.append({"policy": name, "mean_ms": lat.mean(), "p95_ms": np.percentile(lat, 95),
                         "max_ms": lat.max(), "mean_loss_pp": self.candidates.loss[idx].mean(),
                         "changes": int(np.count_nonzero(np.diff(idx))), "choices": used})
        return pd.DataFrame(rows)


def replay_trace(edge: Profile, cloud: Profile, trace: str | Path | TraceLink, *, rtt: str | float = "20ms",
                 max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0, interval: str | float = "500ms",
                 alpha: float = 0.3, assume_loss: dict[int, float] | None = None) -> TraceReplay:
    """Replay a trace under: re-planning per request with perfect knowledge of the trace ('oracle', a lower
    bound), re-planning on a live EWMA estimate of the past transfers ('adaptive': each request observes its own
    upload; an edge-only request sends a 1500-byte probe), and fixed plans (the trace-robust one of
    `solve_trace`, the one planned for the trace's mean bandwidth, cloud-only, edge-only). Requests are
    independent (no queueing), as `solve_trace` assumes."""
    link = trace if isinstance(trace, TraceLink) else TraceLink.load(trace, rtt=rtt)
    step = parse_duration(interval)
    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    starts = np.arange(0.0, link.period_ms, step)
    total = cs.edge_ms[:, None] + cs.transfer_ms(link, starts) + cs.cloud_ms[:, None]
    feasible, _ = cs.feasible(max_loss)
    oracle = np.argmin(np.where(feasible[:, None], total, np.inf), axis=0)

    estimate = LiveEstimate(initial=link.bandwidth_at(0.0), rtt=link.rtt_ms, alpha=alpha)
    adaptive = np.empty(starts.size, dtype=int)
    for k, t in enumerate(starts):
        i = cs.solve(estimate, max_loss=max_loss).index
        adaptive[k] = i
        sent = cs.payload_bytes[i] if cs.remote[i] else 1500.0
        estimate.observe(sent, max(link.transfer_ms(sent, t + cs.edge_ms[i]), 1e-6))

    fixed = {"trace-robust (fixed)": cs.solve_trace(link, max_loss=max_loss, starts_ms=starts).index,
             "planned for mean bw (fixed)": cs.solve(ConstantLink(link.mean_bps, link.rtt_ms),
                                                     max_loss=max_loss).index,
             CandidateKind.CLOUD_ONLY.value: cs.index(CandidateSpec.cloud_only()),
             CandidateKind.EDGE_ONLY.value: cs.index(CandidateSpec.edge_only())}
    choice = {"oracle (per request)": oracle, "adaptive (EWMA)": adaptive,
              **{k: np.full(starts.size, v) for k, v in fixed.items()}}
    latency = {k: total[v, np.arange(starts.size)] for k, v in choice.items()}
    return TraceReplay(link.name, starts / 1e3, np.asarray(link.bandwidth_at(starts)), cs, choice, latency,
                       link.rtt_ms, max_loss)


def trace_figure(replay: TraceReplay):
    """Three panels over time: the trace's bandwidth, the plan each adaptive policy chose, and the latency of
    every policy (mean and p95 in the legend)."""
    from matplotlib.lines import Line2D


    cs = replay.candidates
    colors = cut_colors(cut_order(cs))
    fig = _figure(10, 8.2)
    ax_bw, ax_plan, ax_lat = fig.subplots(3, 1, sharex=True, height_ratios=[1, 1.1, 2])
    t = replay.times_s
    ax_bw.plot(t, replay.bandwidth_bps / 1e6, drawstyle="steps-post", color="black", linewidth=1)
    ax_bw.set_yscale("log")
    _log_axis(ax_bw.yaxis)
    ax_bw.set_ylabel("Mbit/s")
    ax_bw.set_title(f"Replay of {replay.trace}, a request every {1e3 * (t[1] - t[0]) if t.size > 1 else 0:g} ms\n"
                    f"{_subtitle(cs, replay.rtt_ms, replay.max_loss)}", fontsize=9)
    adaptive = [k for k in replay.choice if "fixed" not in k and k not in tuple(s.value for s in END_KINDS)]
    used = sorted({int(i) for k in adaptive for i in replay.choice[k]} | {int(replay.choice[k][0]) for k in
                  replay.choice if "fixed" in k},
                  key=lambda i: (cut_order(cs).index(cs.specs[i].cut), cs.specs[i].bits or 0))
    row = {i: r for r, i in enumerate(used)}
    for j, name in enumerate(adaptive):
        idx = replay.choice[name]
        ax_plan.scatter(t, [row[int(i)] + (j - (len(adaptive) - 1) / 2) * 0.3 for i in idx], s=12,
                        c=[colors[cs.specs[i].cut] for i in idx], marker="s|"[j % 2], label=name, linewidths=1)
    ax_plan.set_yticks(range(len(used)), [replay.label(i) for i in used], fontsize=7)
    ax_plan.set_ylim(-0.7, len(used) - 0.3)
    ax_plan.legend([Line2D([], [], color="black", marker="s|"[j % 2], linestyle="none") for j in range(len(adaptive))],
                   adaptive, fontsize=7, loc="upper right")
    ax_plan.set_ylabel("plan chosen")
    styles = {"oracle (per request)": ("black", "-", 1.2), "adaptive (EWMA)": ("#1f77b4", "-", 1.2),
              "trace-robust (fixed)": ("#2ca02c", "--", 1.0), "planned for mean bw (fixed)": ("#9467bd", ":", 1.2),
              CandidateKind.CLOUD_ONLY.value: ("#999999", "-", 0.9),
              CandidateKind.EDGE_ONLY.value: (EDGE_ONLY_COLOR, "-.", 1.0)}
    for z, (name, lat) in enumerate(reversed(replay.latency_ms.items())):
        color, ls, lw = styles.get(name, (None, "-", 1.0))
        fixed = replay.label(int(replay.choice[name][0])) if "fixed" in name else ""
        ax_lat.plot(t, lat, color=color, linestyle=ls, linewidth=lw, zorder=2 + z,
                    label=f"{name}{': ' + fixed if fixed else ''} (mean {lat.mean():.1f}, p95 "
                          f"{np.percentile(lat, 95):.1f} ms)")
    every = np.concatenate(list(replay.latency_ms.values()))
    if every.max() > 5 * every.min():
        ax_lat.set_yscale("log")
        _log_axis(ax_lat.yaxis)
    ax_lat.set_ylabel(f"latency, ms{' (log)' if every.max() > 5 * every.min() else ''}")
    ax_lat.set_xlabel("time in the trace, s")
    handles, labels = ax_lat.get_legend_handles_labels()
    ax_lat.legend(handles[::-1], labels[::-1], fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.18), ncols=2)
    return fig


# ---------------------------------------------------------------------------------------------- 5. breakpoints

def breakpoints_frame(edge: Profile, cloud: Profile, *, rtt: str | float = "20ms",
                      max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0,
                      low: str | float = "10kbit", high: str | float = "1gbit",
                      assume_loss: dict[int, float] | None = None):
    """The solver's breakpoints as bandwidth intervals, ascending: in [from, to) the choice is `choice`, with its
    payload, accuracy loss and latency at both ends (DataFrame)."""
    import pandas as pd

    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    rtt_ms = parse_duration(rtt, allow_zero=True)
    lo, hi = parse_bandwidth(low), parse_bandwidth(high)
    points = cs.breakpoints(rtt=rtt_ms, low=lo, high=hi, max_loss=max_loss)
    feasible, _ = cs.feasible(max_loss)
    edges = [lo, *(p.bandwidth_bps for p in points), hi]
    choices = ([cs.index(p.below.spec) for p in points[:1]] + [cs.index(p.above.spec) for p in points]) if points \
        else [cs.solve(ConstantLink(math.sqrt(lo * hi), rtt_ms), max_loss=max_loss).index]
    rows = []
    for a, b, i in zip(edges[:-1], edges[1:], choices, strict=True):
        at_a, at_b = cs.candidate_at(i, a, rtt_ms, feasible), cs.candidate_at(i, b, rtt_ms, feasible)
        rows.append({"from_mbps": a / 1e6, "to_mbps": b / 1e6, "choice": at_a.label, "kind": at_a.kind.value,
                     "cut": at_a.cut, "bits": at_a.bits, "bytes": at_a.nbytes, "accuracy_loss": at_a.accuracy_loss,
                     "ms_at_from": at_a.predicted_ms, "ms_at_to": at_b.predicted_ms})
    df = pd.DataFrame(rows)
    df["bits"] = df["bits"].astype("Int64")
    return df


# ---------------------------------------------------------------------------------------------- report

FIGURES = ("breakdown", "choice_map", "pareto", "trace")


def _md(df, floats: str = "{:.3g}") -> str:
    """A DataFrame as a Markdown table (no extra dependency)."""
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == "<NA>":
            return "-"
        if isinstance(v, bool | np.bool_):
            return "yes" if v else ""
        if isinstance(v, float | np.floating):
            return floats.format(v)
        return str(v).replace("|", "/")

    rows = [[str(c) for c in df.columns], ["---"] * len(df.columns)]
    rows += [[cell(v) for v in r] for r in df.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def _profile_line(role: str, p: Profile) -> str:
    d = p.device
    facts = ", ".join(f"{k} {d[k]}" for k in ("cpu", "threads", "cpu_quota", "torch") if d.get(k) is not None)
    scaled = f", compute scaled x{p.scaled_by['compute']:g}" if p.scaled_by else ""
    return f"- {role}: `{p.name}` ({facts}{scaled}; whole model {p.whole_model_ms.median:.3g} ms)"


@dataclass(frozen=True)
class ReportOptions:
    """What `write_report` draws and plans for (the defaults are `planner report`'s)."""

    bandwidths: tuple = ("1mbit",)  # one breakdown / Pareto panel per bandwidth
    rtt: str | float = "20ms"
    max_loss: float | None = DEFAULT_MAX_LOSS
    edge_slowdown: float = 1.0
    trace: str | Path | None = "hsdpa_norway_bus_1"  # the trace replayed (None: no replay)
    independent: tuple[Profile, Profile] | None = None  # (edge, cloud) profiles of the independent autoencoders
    compare_edges: tuple[Profile, ...] = ()  # other edge profiles whose measured slowdown is drawn on the map
    assume_loss: dict | None = None
    dpi: int = 110
    radio: str | None = "lte"  # the radio of the energy section (planner.report_energy; None: no energy section)


class _Report:
    """The steps of one report: the figures, then one Markdown section per question."""

    def __init__(self, edge: Profile, cloud: Profile, o: ReportOptions) -> None:
        self.edge, self.cloud, self.o = edge, cloud, o
        self.rtt_ms = parse_duration(o.rtt, allow_zero=True)
        self.links = [ConstantLink(b, self.rtt_ms) for b in o.bandwidths]
        if not self.links:
            raise PlannerError("the report needs at least one bandwidth")
        self.kw = {"max_loss": o.max_loss, "assume_loss": o.assume_loss}
        self.cs = prepare(edge, cloud, edge_slowdown=o.edge_slowdown, assume_loss=o.assume_loss)
        base = edge.whole_model_ms.median * o.edge_slowdown
        self.marks = {Path(p.name).stem: p.whole_model_ms.median / base for p in o.compare_edges}
        scaled = edge.scaled(o.edge_slowdown) if o.edge_slowdown != 1 else edge
        self.cmap = choice_map(scaled, cloud, rtt=self.rtt_ms, **self.kw)
        self.replay = None if o.trace is None else replay_trace(edge, cloud, o.trace, rtt=self.rtt_ms,
                                                                edge_slowdown=o.edge_slowdown, **self.kw)

    def figures(self, out: Path) -> list[Path]:
        o, pair = self.o, (self.edge, self.cloud)
        figures = {"breakdown": breakdown_figure(*pair, self.links, edge_slowdown=o.edge_slowdown, **self.kw),
                   "choice_map": choice_map_figure(self.cmap, marks=self.marks),
                   "pareto": pareto_figure(pair, self.links, independent=o.independent,
                                           edge_slowdown=o.edge_slowdown, assume_loss=o.assume_loss),
                   "trace": None if self.replay is None else trace_figure(self.replay)}
        self.energy_figures, self.energy_lines = report_parts(self)
        figures.update(self.energy_figures)
        paths = []
        for name, fig in figures.items():
            if fig is not None:
                paths.append(out / f"{name}.png")
                fig.savefig(paths[-1], dpi=o.dpi)
        return paths

    def header(self) -> list[str]:
        o, edge = self.o, self.edge
        lines = [f"# What-if report: {edge.model}", "",
                 "Predictions of planner's latency model from two measured profiles (not end-to-end measurements). "
                 "Latency = edge compute + upload + RTT + reply + cloud compute; accuracy loss in percentage points "
                 "vs the backbone.", "", _profile_line("edge", edge), _profile_line("cloud", self.cloud)]
        if o.independent is not None:
            lines += [_profile_line("edge, independent AEs", o.independent[0]),
                      _profile_line("cloud, independent AEs", o.independent[1])]
        lines += [f"- autoencoder `{edge.autoencoder}`; RTT {self.rtt_ms:g} ms; accuracy budget "
                  f"{'none' if o.max_loss is None else f'{o.max_loss:g} pp'}; edge slowdown x{o.edge_slowdown:g}"]
        if self.cs.assumed_loss:
            lines.append("- **accuracy loss ASSUMED, not measured**: " + ", ".join(
                f"{b}{'' if isinstance(b, str) else ' bits'} {pp:g} pp" for b, pp in self.cs.assumed_loss.items()))
        return lines

    def plans(self) -> list[str]:
        import pandas as pd

        rows = []
        for link in self.links:
            plan = self.cs.solve(link, max_loss=self.o.max_loss)
            c = plan.chosen
            rows.append({"bandwidth": format_bandwidth(link.bandwidth_bps), "plan": c.label, "ms": c.predicted_ms,
                         "edge ms": c.edge_ms, "transfer ms": c.transfer_ms, "cloud ms": c.cloud_ms,
                         "bytes": c.nbytes, "loss pp": c.accuracy_loss,
                         **{f"{end.kind.value} ms": plan.predicted_ms_of(end) for end in END_SPECS}})
        return ["", "## 1. The plan at each bandwidth", "", _md(pd.DataFrame(rows)), "",
                "![breakdown per cut](breakdown.png)", ""]

    def choices(self) -> list[str]:
        lines = ["## 2. Where each choice wins (bandwidth x edge slowdown)", "",
                 "Share of the map (log-spaced 0.01-1000 Mbit/s x 1-64x): " + ", ".join(
                     f"{k} {v:.0%}" for k, v in self.cmap.kind_shares().items()) + ".", ""]
        if self.marks:
            lines += ["Measured slowdowns drawn on the map: " + ", ".join(f"{k} {v:.3g}x"
                                                                          for k, v in self.marks.items()), ""]
        return lines + [_md(self.cmap.shares().drop(columns=["kind", "cut", "bits"]), "{:.1%}"), "",
                        "![choice map](choice_map.png)", ""]

    def pareto(self) -> list[str]:
        o = self.o
        lines = ["## 3. Latency vs accuracy loss", ""]
        for link in self.links:
            pf = pareto_frame((self.edge, self.cloud), link, independent=o.independent,
                              edge_slowdown=o.edge_slowdown, assume_loss=o.assume_loss)
            front = pf[pf["on_front"] & (pf["family"] != "trivial")]
            beaten = pf[pf["family"] != "trivial"].groupby("family", sort=False)["beaten_by_trivial"].agg(
                ["sum", "size"])
            lines += [f"At {format_bandwidth(link.bandwidth_bps)}: candidates beaten on both latency and loss by "
                      "cloud-only or edge-only: " + ", ".join(f"{f} {int(r['sum'])}/{int(r['size'])}"
                                                              for f, r in beaten.iterrows()) + ". Pareto fronts:", "",
                      _md(front[["family", "label", "bytes", "predicted_ms", "accuracy_loss", "beaten_by_trivial"]]),
                      ""]
        if o.independent is None:
            lines += ["(No independent-autoencoder profiles given: pass --independent-edge/--independent-cloud.)", ""]
        return lines + ["![Pareto fronts](pareto.png)", ""]

    def trace(self) -> list[str]:
        r = self.replay
        if r is None:
            return []
        return [f"## 4. Replay of the trace {r.trace}", "",
                f"A request every {1e3 * (r.times_s[1] - r.times_s[0]):g} ms over one period "
                f"({r.times_s.size} requests), each timed exactly on the trace.", "",
                _md(r.summary()), "", "![trace replay](trace.png)", ""]

    def breakpoints(self) -> list[str]:
        frame = breakpoints_frame(self.edge, self.cloud, rtt=self.rtt_ms, edge_slowdown=self.o.edge_slowdown,
                                  **self.kw)
        return [f"## 5. Breakpoints (constant link, RTT {self.rtt_ms:g} ms)", "", _md(frame), ""]

    def markdown(self) -> str:
        return "\n".join([*self.header(), *self.plans(), *self.choices(), *self.pareto(), *self.trace(),
                          *self.breakpoints(), *getattr(self, "energy_lines", [])])


def write_report(edge: Profile, cloud: Profile, out: str | Path, options: ReportOptions | None = None,
                 **overrides) -> list[Path]:
    """The what-if figures as PNG files and a Markdown summary (summary.md) in `out`; returns the paths.

    `options` (or any of its fields by name) say what to draw: bandwidths, RTT, budget, edge slowdown, the trace
    replayed, independent-autoencoder profiles, and other edge profiles (`compare_edges`, e.g. measured under a
    CPU quota) whose measured slowdown vs `edge` (whole-model time ratio) is drawn on the choice map.
    """
    known = {f.name for f in fields(ReportOptions)}
    if set(overrides) - known:
        raise PlannerError(f"unknown report option(s) {', '.join(sorted(set(overrides) - known))}: the options are "
                           f"{', '.join(sorted(known))}")
    if "compare_edges" in overrides:
        overrides["compare_edges"] = tuple(overrides["compare_edges"] or ())
    o = replace(options or ReportOptions(), **overrides)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PlannerError(f"report folder {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    report = _Report(edge, cloud, o)
    paths = report.figures(out)
    summary = out / "summary.md"
    summary.write_text(report.markdown())
    return [*paths, summary]
