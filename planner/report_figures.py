"""The what-if figures (`breakdown_figure`, `choice_map_figure`, `pareto_figure`, `trace_figure`) drawn from
`planner.report_analysis`'s tables. Planning code: no torch; matplotlib is imported when a figure is drawn, and
figures are plain `matplotlib.figure.Figure` objects (no pyplot state), shown by Jupyter and saved with
`fig.savefig`. `planner.report` re-exports these names (the notebooks' API).
"""

from __future__ import annotations

import math

import numpy as np

from planner.link import (
    format_bandwidth,
)
from planner.profile.schema import Profile
from planner.profile.store import PROFILES_ENV, find_profiles, load_pair  # noqa: F401 - the notebooks' names
from planner.report_analysis import (
    END_KINDS,
    ChoiceMap,
    TraceReplay,
    as_link,
    best_per_cut,
    cut_order,
    pareto_frame,
)
from planner.solve import DEFAULT_MAX_LOSS, CandidateSet, prepare
from planner.types import INPUT_CUT, OUTPUT_CUT, CandidateKind, CandidateSpec

PARTS = (("edge_ms", "edge", "#4c72b0"), ("rtt_ms", "RTT", "#f2c48d"), ("wire_ms", "transfer", "#dd8452"),
         ("cloud_ms", "cloud", "#55a868"))
CLOUD_ONLY_COLOR, EDGE_ONLY_COLOR = "#c8c8c8", "#3a3a3a"
FAMILY_STYLE = {"shared AE": ("#1f77b4", "o"), "independent AEs": ("#d62728", "s"), "raw quant": ("#2ca02c", "D"),
                "raw features": ("#7f7f7f", "^")}


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


def breakdown_figure(edge: Profile, cloud: Profile, links, *, rtt: str | float = "20ms",
                     max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0,
                     assume_loss: dict[int, float] | None = None):
    """Stacked edge / RTT / transfer / cloud latency of the best candidate at each cut, one panel per link
    (a ConstantLink or a bandwidth such as '1mbit'); the optimal (cut, bits) starred, raw float32 marked x."""
    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    links = [as_link(x, rtt) for x in (links if isinstance(links, list | tuple) else [links])]
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


def pareto_figure(shared: tuple[Profile, Profile], links, *, rtt: str | float = "20ms",
                  independent: tuple[Profile, Profile] | None = None, edge_slowdown: float = 1.0,
                  assume_loss: dict[int, float] | None = None):
    """Latency vs accuracy loss of every candidate, one panel per link: each family's Pareto front as a step
    line (front points labelled), cloud-only and edge-only as diamonds, the area they beat shaded."""
    from matplotlib.ticker import FuncFormatter

    links = [as_link(x, rtt) for x in (links if isinstance(links, list | tuple) else [links])]
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
