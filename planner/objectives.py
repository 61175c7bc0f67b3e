"""What a plan minimises and under which limits: latency (mean, p95), edge energy or cloud cost, with an
accuracy budget (in the solver) and an optional latency limit (`Goal.max_latency_ms`).

`Goal` is the one object that says it; `CandidateSet.solve/solve_trace/breakpoints(goal=...)` take it. Without
a goal (or with the plain latency goal) the solver runs as before. `choose` picks among a plan's columns;
`envelope` walks the lower envelope of lines a + s * x (x = 1 / bandwidth), exact; `goal_changes` does it under
a latency limit (the feasible set shrinks as the bandwidth falls: each segment between two candidates'
thresholds is walked on its own). When no candidate meets the latency limit the plan is the fastest candidate,
and says so.

Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from planner.energy import CloudPrice, EnergyModel, sig
from planner.errors import SolveError

OBJECTIVES = ("mean", "p95", "energy", "cost")  # mean / p95: latency (the same on a constant link)
LATENCY_STATS = ("mean", "p95")


@dataclass(frozen=True)
class Goal:
    """The objective (latency 'mean'/'p95', 'energy' or 'cost'), the latency statistic a trace's limit and
    report use, the latency limit in ms (None: none), and the models energy and cost need (an energy goal
    without an EnergyModel gets the LTE one and the edge profile's power; a cost goal needs its CloudPrice).
    With an EnergyModel (or a price) under any objective, every candidate also carries its energy (cost)."""

    objective: str = "mean"
    latency_stat: str = "mean"
    max_latency_ms: float | None = None
    energy: EnergyModel | None = None
    price: CloudPrice | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SolveError(f"unknown objective {self.objective!r}: use one of {', '.join(OBJECTIVES)}")
        if self.latency_stat not in LATENCY_STATS:
            raise SolveError(f"latency statistic must be one of {', '.join(LATENCY_STATS)}, got {self.latency_stat!r}")
        m = self.max_latency_ms
        if m is not None and (isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m) or m <= 0):
            raise SolveError(f"the latency limit must be a finite number of ms > 0, got {m!r}")
        if self.objective == "energy" and self.energy is None:
            object.__setattr__(self, "energy", EnergyModel())
        if self.objective == "cost" and self.price is None:
            raise SolveError("the cost objective needs a cloud price (CloudPrice(per_hour=...); on the command line "
                             "--cloud-price PRICE per CPU/GPU-hour)")

    @property
    def plain(self) -> bool:
        """The latency goal without a limit or extra columns: the solver's original path."""
        return (self.objective in LATENCY_STATS and self.max_latency_ms is None and self.energy is None
                and self.price is None)

    @property
    def stat(self) -> str:
        """The latency statistic over a trace: the objective's when it is one, else `latency_stat`."""
        return self.objective if self.objective in LATENCY_STATS else self.latency_stat


def as_goal(objective) -> Goal | None:
    """A Goal from what `planner.run(objective=...)` takes: 'mean' (latency: None, the plain path), 'energy' (the
    LTE radio model and the edge profile's power), or a Goal (anything else: a cost goal needs its price)."""
    if objective is None or isinstance(objective, Goal):
        return None if objective is None or objective.plain else objective
    if objective in ("mean", "latency"):
        return None
    if objective == "energy":
        return Goal("energy", energy=EnergyModel())
    raise SolveError(f"objective must be 'mean', 'energy' or a planner.objectives.Goal (cost needs its price: "
                     f"Goal('cost', price=CloudPrice(per_hour=...))), got {objective!r}")


def goal_columns(cs, goal: Goal, edge, transfer, cloud, rtt_ms: float) -> tuple[dict, dict]:
    """Energy (total and parts, mJ) and cost columns of every candidate, and the plan's description of them."""
    cols: dict[str, np.ndarray] = {}
    info: dict = {"objective_detail": goal.objective}
    if goal.energy is not None:
        power = goal.energy.power_of(cs.edge)
        compute, radio, idle = goal.energy.parts(power, cs.remote, cs.payload_bytes, cs.reply_bytes, edge, transfer,
                                                 cloud, rtt_ms)
        cols.update(energy=compute + radio + idle, e_compute=compute, e_radio=radio, e_idle=idle)
        info["energy_model"] = goal.energy.describe(power)
    if goal.price is not None:
        cols["cost"] = goal.price.cost(cs.remote, cs.compute_cloud_ms, cs.payload_bytes, cs.reply_bytes)
        info["price"] = goal.price.to_dict()
    if goal.max_latency_ms is not None:
        info.update(max_latency_ms=goal.max_latency_ms, latency_stat=goal.stat)
    info.pop("objective_detail")
    return cols, info


def choose(cs, goal: Goal, columns: dict, feasible: np.ndarray, latency: np.ndarray) -> tuple[int, np.ndarray,
                                                                                               str | None]:
    """(chosen index, feasible mask, note): the least objective among the candidates within the accuracy
    budget (`feasible`) and the latency limit; the fastest of `feasible` when none meets the limit."""
    value = {"energy": columns.get("energy"), "cost": columns.get("cost")}.get(goal.objective, columns["total"])
    ok = feasible
    note = None
    if goal.max_latency_ms is not None:
        ok = feasible & (latency <= goal.max_latency_ms * (1 + 1e-12))
        if not ok.any():
            fastest = int(np.argmin(np.where(feasible, latency, np.inf)))
            note = (f"no candidate meets the latency limit of {goal.max_latency_ms:g} ms ({goal.stat}; the fastest, "
                    f"{cs.specs[fastest].label}, takes {latency[fastest]:.3f} ms): chose the fastest")
            return fastest, ok, note
    return int(np.argmin(np.where(ok, value, np.inf))), ok, note


def with_goal_fields(candidate, columns: dict, i: int):
    """A Candidate with its energy (and parts) and cost filled in from a plan's columns, where the plan has them."""
    if "energy" not in columns and "cost" not in columns:
        return candidate
    extra = {}
    if "energy" in columns:
        extra = {"energy_mj": float(columns["energy"][i]),
                 "energy_parts": {k: float(columns[f"e_{k}"][i]) for k in ("compute", "radio", "idle")}}
    if "cost" in columns:
        extra["cost"] = float(columns["cost"][i])
    return replace(candidate, **extra)


def goal_dict(candidate) -> dict:
    """The JSON fields a candidate gains under an energy or cost goal (none otherwise)."""
    out: dict = {}
    if candidate.energy_mj is not None:
        out["energy_mj"] = round(candidate.energy_mj, 6)
        out["energy_parts"] = {k: round(v, 6) for k, v in candidate.energy_parts.items()}
    if candidate.cost is not None:
        out["cost"] = sig(candidate.cost)
    return out


# -- exact breakpoints ----------------------------------------------------------------------------------------
def envelope(a: np.ndarray, s: np.ndarray, idx: np.ndarray, x: float, x_end: float) -> tuple[int, list]:
    """The least of the lines a + s * x among `idx` from x to x_end: (the first, [(x, new, old), ...])."""

    def pick(among: np.ndarray) -> int:  # least slope wins to the right of a tie; then the earlier candidate
        return int(among[np.lexsort((among, s[among]))[0]])

    t = a[idx] + s[idx] * x
    current = pick(idx[t <= t.min() + 1e-12 * max(1.0, abs(t.min()))])
    first, changes = current, []
    while True:
        flatter = idx[s[idx] < s[current]]
        if flatter.size == 0:
            break
        cross = (a[flatter] - a[current]) / (s[current] - s[flatter])
        ahead = cross > x * (1 + 1e-12)
        if not ahead.any():
            break
        x_next = cross[ahead].min()
        if x_next >= x_end:
            break
        nxt = pick(flatter[ahead & (cross <= x_next * (1 + 1e-12))])
        changes.append((x_next, nxt, current))
        current, x = nxt, x_next
    return first, changes


def goal_lines(cs, goal: Goal, a_lat: np.ndarray, s_lat: np.ndarray, rtt_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """The objective as lines A + S * x on a constant link (x = 1 / bandwidth in s/bit, s in ms x bit/s)."""
    if goal.objective in LATENCY_STATS:
        return a_lat, s_lat
    if goal.objective == "cost":
        return goal_columns(cs, goal, cs.edge_ms, cs.edge_ms * 0, cs.cloud_ms, rtt_ms)[0]["cost"], np.zeros_like(s_lat)
    power = goal.energy.power_of(cs.edge)
    at_rtt = np.where(cs.remote, rtt_ms, 0.0)
    cols = goal_columns(cs, goal, cs.edge_ms, at_rtt, cs.cloud_ms, rtt_ms)[0]
    return cols["energy"], s_lat * (power.idle_w + goal.energy.radio.beta / 1e3)


def goal_changes(a_lat, s_lat, a_obj, s_obj, loss_ok: np.ndarray, limit: float | None, x0: float,
                 x_end: float) -> tuple[int, list]:
    """`envelope` of the objective under a latency limit (the fastest where no candidate meets it)."""
    if limit is None:
        return envelope(a_obj, s_obj, np.flatnonzero(loss_ok), x0, x_end)
    with np.errstate(divide="ignore", invalid="ignore"):
        th = np.where(s_lat > 0, (limit - a_lat) / np.where(s_lat > 0, s_lat, 1.0),
                      np.where(a_lat <= limit, np.inf, -np.inf))
    bounds = [x0, *np.unique(th[(th > x0) & (th < x_end)]).tolist(), x_end]
    first, prev, out = None, None, []
    for xa, xb in zip(bounds[:-1], bounds[1:], strict=True):
        ok = loss_ok & (th >= xb * (1 - 1e-12))
        c, ch = (envelope(a_obj, s_obj, np.flatnonzero(ok), xa, xb) if ok.any()
                 else envelope(a_lat, s_lat, np.flatnonzero(loss_ok), xa, xb))
        if prev is None:
            first = c
        elif c != prev:
            out.append((xa, c, prev))
        out += ch
        prev = ch[-1][1] if ch else c
    return first, out
