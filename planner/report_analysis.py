"""What-if analysis of a profile pair, as tables: the latency breakdown per cut at a bandwidth (`best_per_cut`),
the optimal choice over bandwidth x edge slowdown (`choice_map`), latency vs accuracy loss per autoencoder family
(`pareto_frame`), the replay of a bandwidth trace (`replay_trace`) and the bandwidth breakpoints
(`breakpoints_frame`). Every answer is the solver's (`planner.solve`); this module only asks it many times.
Planning code: no torch. `planner.report` re-exports these names (the notebooks' API).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.errors import PlannerError
from planner.link import (
    ConstantLink,
    LiveEstimate,
    TraceLink,
    parse_bandwidth,
    parse_duration,
)
from planner.profile.schema import Profile
from planner.profile.store import PROFILES_ENV, find_profiles, load_pair  # noqa: F401 - the notebooks' names
from planner.solve import DEFAULT_MAX_LOSS, CandidateSet, prepare
from planner.types import INPUT_CUT, OUTPUT_CUT, CandidateKind, CandidateSpec

END_SPECS = (CandidateSpec.cloud_only(), CandidateSpec.edge_only())
END_KINDS = tuple(s.kind for s in END_SPECS)
FAMILIES = ("shared AE", "independent AEs", "raw quant", "raw features")


# ---------------------------------------------------------------------------------------------- profiles

# ---------------------------------------------------------------------------------------------- helpers

def cut_order(cs: CandidateSet) -> list[str]:
    """Cut ids in execution order, 'input' (cloud-only) first and 'output' (edge-only) last."""
    return [INPUT_CUT, *(c.id for c in cs.edge.cuts), OUTPUT_CUT]


def as_link(link: ConstantLink | str | float, rtt: str | float) -> ConstantLink:
    return link if isinstance(link, ConstantLink) else ConstantLink(link, rtt)


# ---------------------------------------------------------------------------------------------- 1. breakdown

def best_per_cut(edge: Profile, cloud: Profile, link: ConstantLink | str, *, rtt: str | float = "20ms",
                 max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0,
                 assume_loss: dict[int, float] | None = None):
    """Per cut (cloud-only first, edge-only last): the fastest feasible way to send its feature, its latency
    parts (edge, RTT, wire = transfer without RTT, cloud), and the raw float32 latency there; `optimal` marks the
    solver's choice. A pandas DataFrame."""
    import pandas as pd

    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss)
    link = as_link(link, rtt)
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
