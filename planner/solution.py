"""The solver's answer: the chosen candidate with its predicted breakdown, and every candidate it was chosen
from (`planner.solve` builds it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from planner.candidates import Candidate, rounded
from planner.config import DEFAULT_MAX_LOSS
from planner.objectives import goal_dict
from planner.objectives import with_goal_fields as _with_goal
from planner.types import CandidateKind, CandidateSpec

if TYPE_CHECKING:
    from planner.solve import CandidateSet


@dataclass(eq=False)
class Plan:
    """The chosen candidate with its predicted breakdown, and every candidate it was chosen from."""

    candidate_set: CandidateSet = field(repr=False)
    index: int = field(repr=False)
    columns: dict[str, np.ndarray] = field(repr=False)
    objective: str = "latency"  # "latency" (one request), or "mean" / "p95" over a trace
    max_loss: float | None = DEFAULT_MAX_LOSS
    fallback_reason: str | None = None
    link: dict = field(default_factory=dict)
    goal_info: dict = field(default_factory=dict)  # the energy model, price and latency limit under a goal

    def candidate(self, which: int | CandidateSpec | str) -> Candidate:
        """One candidate (by index, CandidateSpec or name such as 'edge-only' or 'relu_5@4') as planned here."""
        i = which if isinstance(which, int) else self.candidate_set.index(which)
        col = self.columns
        return _with_goal(self.candidate_set.evaluated(i, col["transfer"][i], col["rtt"][i],
                                                             bool(col["feasible"][i]), col["total"][i],
                                                             col["cloud"][i], col["edge"][i]), col, i)

    def predicted_ms_of(self, which: int | CandidateSpec | str) -> float:
        """The predicted latency of any candidate in this plan (not only the chosen one)."""
        i = which if isinstance(which, int) else self.candidate_set.index(which)
        return float(self.columns["total"][i])

    def transfer_ms_of(self, which: int | CandidateSpec | str) -> float:
        """The predicted transfer time (payload + reply + RTT) of any candidate in this plan."""
        i = which if isinstance(which, int) else self.candidate_set.index(which)
        return float(self.columns["transfer"][i])

    @property
    def spec(self) -> CandidateSpec:
        return self.candidate_set.specs[self.index]

    def best_of(self, kind: CandidateKind | str) -> Candidate:
        """The fastest candidate of `kind` within the budget here (cloud-only: its best input format; the lossless
        one when none is feasible): the end a user would pick, to compare a plan with."""
        kind = CandidateKind(kind)
        idx = [i for i, s in enumerate(self.candidate_set.specs) if s.kind == kind]
        feasible = [i for i in idx if self.columns["feasible"][i]] or [
            i for i in idx if self.candidate_set.specs[i].lossless]
        return self.candidate(min(feasible, key=lambda i: self.columns["total"][i]))

    @cached_property
    def chosen(self) -> Candidate:
        return self.candidate(self.index)

    @property
    def cut(self) -> str:
        return self.chosen.cut

    @property
    def bits(self) -> int | None:
        return self.chosen.bits

    @property
    def kind(self) -> CandidateKind:
        return self.chosen.kind

    @property
    def predicted_ms(self) -> float:
        return self.chosen.predicted_ms

    @property
    def accuracy_loss(self) -> float:
        return self.chosen.accuracy_loss

    @property
    def breakdown(self) -> dict[str, float]:
        """edge_ms + transfer_ms + cloud_ms = predicted_ms; rtt_ms is the RTT's part of transfer_ms."""
        return self.chosen.breakdown

    @cached_property
    def candidates(self) -> list[Candidate]:
        return [self.candidate(i) for i in range(len(self.candidate_set))]

    @cached_property
    def pareto(self) -> list[Candidate]:
        """Candidates no other beats on both latency and accuracy loss, by increasing latency."""
        order = np.lexsort((self.candidate_set.loss, self.columns["total"]))
        front, best_loss = [], math.inf
        for i in order:
            if self.candidate_set.loss[i] < best_loss - 1e-12:
                front.append(int(i))
                best_loss = self.candidate_set.loss[i]
        return [self.candidates[i] for i in front]

    @cached_property
    def table(self):
        """Every candidate as a pandas DataFrame (one row each, `chosen` and `pareto` marked)."""
        import pandas as pd

        df = pd.DataFrame([{**c.to_dict(), "label": c.label} for c in self.candidates])
        df["bits"] = df["bits"].astype("Int64")
        df["width"] = df["width"].astype("Int64")
        df["chosen"] = df.index == self.index
        on_front = {c.spec for c in self.pareto}
        df["pareto"] = [c.spec in on_front for c in self.candidates]
        for name in ("mean_ms", "p95_ms", "max_ms"):
            if name in self.columns:
                df[name] = self.columns[name]
        return df

    def to_dict(self) -> dict:
        """The `planner plan --json` object (DESIGN.md contract, plus kind, dtype, link, fallback_reason...)."""
        c = self.chosen
        return {"cut": c.cut, "bits": c.bits, "predicted_ms": rounded(c.predicted_ms), "accuracy_loss": rounded(c.accuracy_loss),
                "breakdown": {k: rounded(v) for k, v in c.breakdown.items()}, "kind": c.kind.value, "dtype": c.dtype,
                "width": c.width, "format": c.spec.fmt, "plan": c.spec.arg,
                "bytes": rounded(c.nbytes), "objective": self.objective, "max_loss": self.max_loss,
                "fallback_reason": self.fallback_reason, "link": self.link,
                "assumed_loss": ({str(b): pp for b, pp in self.candidate_set.assumed_loss.items()} or None),
                "edge_profile": self.candidate_set.edge.name, "cloud_profile": self.candidate_set.cloud.name,
                "edge_slowdown": self.candidate_set.edge_slowdown, **goal_dict(c), **self.goal_info,
                "candidates": [x.to_dict() for x in self.candidates]}

    def __repr__(self) -> str:
        c = self.chosen
        return (f"Plan({c.label}: {c.predicted_ms:.3f} ms = edge {c.edge_ms:.3f} + transfer {c.transfer_ms:.3f} + "
                f"cloud {c.cloud_ms:.3f}, loss {c.accuracy_loss:.3g} pp{' (assumed)' if c.loss_assumed else ''})")


