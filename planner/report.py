"""What-if analysis of a profile pair: where each plan wins, as tables and matplotlib figures.

One data function and one figure per question of the what-if notebook (notebooks/what_if.ipynb) and of
`planner report`: the latency breakdown per cut at a bandwidth (`best_per_cut`, `breakdown_figure`), the optimal
choice over bandwidth x edge slowdown (`choice_map`, `choice_map_figure`), latency vs accuracy loss for the
shared autoencoder, the independent ones and raw features (`pareto_frame`, `pareto_figure`), the replay of a
bandwidth trace (`replay_trace`, `trace_figure`) and the bandwidth breakpoints (`breakpoints_frame`).
The tables live in `planner.report_analysis`, the figures in `planner.report_figures`, the Markdown
report (`write_report`) here; this module re-exports the other two (the notebooks' API).
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
    format_bandwidth,
    parse_duration,
)
from planner.profile.schema import Profile
from planner.profile.store import PROFILES_ENV, find_profiles, load_pair  # noqa: F401 - the notebooks' names
from planner.report_analysis import (  # noqa: F401 - the notebooks' names
    END_KINDS,
    END_SPECS,
    FAMILIES,
    ChoiceMap,
    TraceReplay,
    as_link,
    best_per_cut,
    breakpoints_frame,
    choice_map,
    cut_order,
    pareto_frame,
    replay_trace,
)
from planner.report_energy import report_parts
from planner.report_figures import (  # noqa: F401 - the notebooks' names
    CLOUD_ONLY_COLOR,
    EDGE_ONLY_COLOR,
    FAMILY_STYLE,
    PARTS,
    breakdown_figure,
    choice_map_figure,
    cut_colors,
    pareto_figure,
    trace_figure,
)
from planner.solve import DEFAULT_MAX_LOSS, prepare

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
