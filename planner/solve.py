"""Choose where to cut and how many bits to send: the latency-optimal candidate under an accuracy budget.

Candidates: cloud-only (ship the input, losslessly compressed; and as a JPEG/WebP file at each quality both
profiles measured, where its accuracy is known: what a real client sends), the raw feature at every cut (float32, and
float16 where both profiles have it), every (cut, width, bits) through the shared autoencoder, every (cut, bits)
through the training-free raw quantizer (where the profiles have it), and edge-only.
Edge-side times (head, encode, serialize, input encode, whole model) come from the edge profile, cloud-side
times (tail, decode, deserialize, input decode, whole model) from the cloud profile, payload sizes and
accuracy from the edge profile (the cloud's where the edge's accuracy is unknown):

    T = edge_ms + transfer_ms + cloud_ms
    edge_ms     = edge_slowdown * (head + encode)          (whole model for edge-only)
    transfer_ms = link.transfer_ms(payload) + rtt + link.transfer_ms(reply_bytes)   (0 for edge-only)
    cloud_ms    = decode + tail + exchange + cloud_wait    (0 for edge-only)

On a constant link transfer is (payload + reply) * 8 / bandwidth + rtt, so every candidate's latency is affine
in 1 / bandwidth and `breakpoints` computes the lower envelope exactly. On a trace the uplink starts when the
edge finishes and the reply when the cloud finishes, both replayed exactly; `solve_trace` picks the candidate
with the least mean or p95 latency over start times spread across the trace. `cloud_wait_ms` is the cloud's
queueing delay (0 unless the caller measures it, as the load-aware edge client does): under load it makes every
candidate that uses the cloud dearer, so the plan moves work to the edge. `exchange` is the fixed per-exchange
cost the profiler measured (a small frame's round trip through the real client and server on loopback, less
nothing: framing, syscalls, event loop), 0 for profiles without it. An `Adjust` (the edge client's online
calibration) scales the edge and cloud compute and adds a local overhead at solve time.
Accuracy loss is in percentage points vs the backbone; lossless candidates (raw float32, cloud-only,
edge-only) have loss 0, and they are the fallback when no candidate meets the budget. Where accuracy is unknown
(architecture-only profiles) the loss is the caller's `assume_loss[bits]`: such candidates are marked
`loss_assumed` and the plan lists the assumptions it rests on in `assumed_loss`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from planner.candidates import (
    NO_ADJUST,
    OBJECTIVES,
    RAW_FLOAT16,
    Adjust,
    AssumeLoss,
    Breakpoint,
    Candidate,
    check_assume_loss,
    check_max_loss,
)
from planner.config import DEFAULT_MAX_LOSS
from planner.errors import SolveError
from planner.link import ConstantLink, Link, parse_bandwidth, parse_duration
from planner.objectives import Goal, choose, envelope, goal_changes, goal_columns, goal_lines
from planner.profile.schema import Profile, check_compatible
from planner.profile.timing import Timing
from planner.solution import Plan
from planner.types import RAW_DTYPES, CandidateKind, CandidateSpec


def _timed(t: Timing | None, profile: Profile, side: str, *where: object) -> float:
    if t is None:  # the field's name is only formatted on failure: building it costs more than the solve
        what = ".".join(map(str, where))
        raise SolveError(f"{side} profile {profile.name}: {what} was not measured (null); profile the {side} device "
                         f"with the role '{side}' or 'both'")
    return t.median


class _Rows:
    """Builds the candidate rows of a profile pair: (spec, edge ms, cloud ms, payload bytes, loss pp)."""

    def __init__(self, edge: Profile, cloud: Profile, assume_loss: AssumeLoss, payload: str) -> None:
        self.edge, self.cloud, self.assume_loss, self.payload = edge, cloud, assume_loss, payload
        self.backbone = edge.backbone_accuracy if edge.backbone_accuracy is not None else cloud.backbone_accuracy
        self.rows: list[tuple[CandidateSpec, float, float, float, float]] = []
        self.missing: list[CandidateSpec] = []  # candidates whose loss is unknown
        self.assumed: set[int] = set()  # rows whose loss is assumed
        self.used: AssumeLoss = {}  # the assumptions some row rests on

    def e(self, t: Timing | None, *where: object) -> float:
        return _timed(t, self.edge, "edge", *where)

    def c(self, t: Timing | None, *where: object) -> float:
        return _timed(t, self.cloud, "cloud", *where)

    def loss(self, acc_e: float | None, acc_c: float | None, spec: CandidateSpec) -> float:
        acc = acc_e if acc_e is not None else acc_c
        if acc is not None and self.backbone is not None:
            return self.backbone - acc
        key = RAW_FLOAT16 if spec.kind == CandidateKind.RAW else spec.bits
        if key in self.assume_loss:
            self.assumed.add(len(self.rows))
            self.used[key] = self.assume_loss[key]
            return self.assume_loss[key]
        self.missing.append(spec)
        return math.nan

    def build(self) -> list[tuple[CandidateSpec, float, float, float, float]]:
        edge, cloud, e, c = self.edge, self.cloud, self.e, self.c
        self.rows.append((CandidateSpec.cloud_only(), e(edge.input.encode_ms, "input", "encode_ms"),
                          c(cloud.input.decode_ms, "input", "decode_ms") + c(cloud.whole_model_ms, "whole_model_ms"),
                          edge.input.compressed_bytes, 0.0))
        self.input_formats()
        for ce, cc in zip(edge.cuts, cloud.cuts, strict=True):
            head, tail = e(ce.head_ms, "cut", ce.id, "head_ms"), c(cc.tail_ms, "cut", ce.id, "tail_ms")
            for dtype in RAW_DTYPES:
                if dtype in ce.raw and dtype in cc.raw:
                    re_, rc, spec = ce.raw[dtype], cc.raw[dtype], CandidateSpec.raw(ce.id, dtype)
                    lost = 0.0 if spec.lossless else self.loss(re_.accuracy, rc.accuracy, spec)
                    self.rows.append((spec, head + e(re_.serialize_ms, "cut", ce.id, "raw", dtype, "serialize_ms"),
                                      c(rc.deserialize_ms, "cut", ce.id, "raw", dtype, "deserialize_ms") + tail,
                                      re_.bytes, lost))
            cloud_settings = {(w, b): bc for w, b, bc in cc.settings()}
            coded = [(CandidateSpec.split(ce.id, b, w), be, cloud_settings[(w, b)], ("bits", b) if w is None
                      else ("widths", w, b)) for w, b, be in ce.settings()]
            coded += [(CandidateSpec.quant(ce.id, b), be, cc.quant[b], ("quant", b)) for b, be in ce.quant.items()]
            for spec, be, bc, where in coded:
                self.rows.append((spec, head + e(be.encode_ms, "cut", ce.id, *where, "encode_ms"),
                                  c(bc.decode_ms, "cut", ce.id, *where, "decode_ms") + tail,
                                  be.bytes_mean if self.payload == "mean" else be.bytes_p95,
                                  self.loss(be.accuracy, bc.accuracy, spec)))
        self.rows.append((CandidateSpec.edge_only(), e(edge.whole_model_ms, "whole_model_ms"), 0.0, 0.0, 0.0))
        if self.missing:
            self._raise_missing()
        return self.rows

    def input_formats(self) -> None:
        """Cloud-only with the input as a lossy image file: one row per format both profiles measured whose
        accuracy is known (a format without one is not a candidate: no assumption stands in for it)."""
        edge, cloud, e, c = self.edge, self.cloud, self.e, self.c
        for fmt, fe in edge.input.formats.items():
            fc = cloud.input.formats.get(fmt)
            acc = fe.accuracy if fe.accuracy is not None else (fc.accuracy if fc is not None else None)
            if fc is None or acc is None or self.backbone is None:
                continue
            self.rows.append((CandidateSpec.cloud_only(fmt), e(fe.encode_ms, "input", "formats", fmt, "encode_ms"),
                              c(fc.decode_ms, "input", "formats", fmt, "decode_ms")
                              + c(cloud.whole_model_ms, "whole_model_ms"),
                              fe.bytes_mean if self.payload == "mean" else fe.bytes_p95, self.backbone - acc))

    def _raise_missing(self) -> None:
        why = "the backbone accuracy is unknown" if self.backbone is None else "their accuracy is unknown (null)"
        names = ", ".join(s.label for s in self.missing[:4])
        keys = sorted({RAW_FLOAT16 if s.kind == CandidateKind.RAW else str(s.bits) for s in self.missing},
                      key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0))
        raise SolveError(f"cannot compute the accuracy loss of {len(self.missing)} candidates ({names}"
                         f"{', ...' if len(self.missing) > 4 else ''}): {why} in {self.edge.name} and "
                         f"{self.cloud.name}; profile accuracy, or assume a loss in percentage points per bitwidth "
                         f"(assume_loss={{bits: pp}}, on the command line --assume-loss 8:0.1,4:0.5,2:2.0; "
                         f"f16:PP for raw float16); no assumption for: "
                         f"{', '.join(f'{k} (raw float16)' if k == RAW_FLOAT16 else k for k in keys)}")


class CandidateSet:
    """All candidates of an (edge, cloud) profile pair as arrays, ready to be solved on any link many times.

    `specs[i]` is candidate i's identity (a CandidateSpec); the arrays hold its figures at the same index."""

    def __init__(self, edge: Profile, cloud: Profile, *, edge_slowdown: float = 1.0,
                 assume_loss: AssumeLoss | None = None, payload: str = "mean"):
        check_compatible(edge, cloud)
        if not (math.isfinite(edge_slowdown) and edge_slowdown > 0):
            raise SolveError(f"edge slowdown must be a positive number, got {edge_slowdown!r}")
        if payload not in ("mean", "p95"):
            raise SolveError(f"payload statistic must be 'mean' or 'p95', got {payload!r}")
        self.edge, self.cloud, self.edge_slowdown, self.payload = edge, cloud, edge_slowdown, payload
        self.assume_loss = check_assume_loss(assume_loss or {})
        built = _Rows(edge, cloud, self.assume_loss, payload)
        rows = built.build()
        self.specs: list[CandidateSpec] = [r[0] for r in rows]
        self._index = {spec: i for i, spec in enumerate(self.specs)}
        self.edge_ms = np.array([r[1] for r in rows]) * edge_slowdown
        self.cloud_ms = np.array([r[2] for r in rows])
        self.payload_bytes = np.array([r[3] for r in rows], dtype=float)
        self.loss = np.array([r[4] for r in rows], dtype=float)
        self.loss_assumed = np.array([i in built.assumed for i in range(len(rows))], dtype=bool)
        self.assumed_loss = check_assume_loss(built.used)  # the assumptions some candidate's loss rests on
        self.remote = np.array([s.remote for s in self.specs])
        self.cloud_only = np.array([s.kind == CandidateKind.CLOUD_ONLY for s in self.specs])
        self.lossless = np.array([s.lossless for s in self.specs])
        self.reply_bytes = float(edge.reply_bytes)
        exchange = edge.exchange_ms if edge.exchange_ms is not None else cloud.exchange_ms
        self.exchange_ms = 0.0 if exchange is None else float(exchange.median)  # per exchange, beyond RTT + wire
        self.compute_cloud_ms = self.cloud_ms  # decode + tail alone: what the server reports back
        self.cloud_ms = self.cloud_ms + np.where(self.remote, self.exchange_ms, 0.0)

    def index(self, spec: CandidateSpec | str) -> int:
        """The position of a candidate (a CandidateSpec or its name, e.g. 'relu_5@4'), or SolveError."""
        spec = CandidateSpec.parse(spec) if isinstance(spec, str) else spec
        try:
            return self._index[spec]
        except KeyError:
            raise SolveError(f"no candidate {spec.label!r} in the profiles {self.edge.name} / {self.cloud.name} "
                             f"(their cuts: {', '.join(c.id for c in self.edge.cuts)})") from None

    @property
    def cuts(self) -> list[str]:
        """The cut ids of the candidates, in order, each once ('input' first, 'output' last)."""
        return list(dict.fromkeys(s.cut for s in self.specs))

    def __len__(self) -> int:
        return len(self.specs)

    def feasible(self, max_loss: float | None) -> tuple[np.ndarray, str | None]:
        """Mask of candidates within the budget (None = no budget), or the lossless ones and why."""
        check_max_loss(max_loss)
        if max_loss is None:
            return np.ones(len(self), dtype=bool), None
        mask = self.loss <= max_loss + 1e-9
        if mask.any():
            return mask, None
        return self.lossless.copy(), (f"no candidate meets the accuracy budget of {max_loss:g} pp (the least loss is "
                                      f"{self.loss.min():g} pp): fell back to the lossless candidates")

    def transfer_ms(self, link: Link, starts_ms: np.ndarray, cloud_ms: np.ndarray | None = None,
                    edge_ms: np.ndarray | None = None) -> np.ndarray:
        """(candidates, starts) array: uplink after the edge part, RTT, reply after the cloud part (0 edge-only)."""
        starts = np.asarray(starts_ms, dtype=float)[None, :]
        edge_done = starts + (self.edge_ms if edge_ms is None else edge_ms)[:, None]
        uplink = np.asarray(link.transfer_ms(self.payload_bytes[:, None], edge_done))
        cloud = self.cloud_ms if cloud_ms is None else cloud_ms
        cloud_done = edge_done + uplink + link.rtt_ms + cloud[:, None]
        reply = np.asarray(link.transfer_ms(self.reply_bytes, cloud_done))
        return np.where(self.remote[:, None], uplink + link.rtt_ms + reply, 0.0)

    def cloud_with_wait(self, cloud_wait_ms: float) -> np.ndarray:
        """The cloud column with a queueing delay added to every candidate that uses the cloud."""
        if (isinstance(cloud_wait_ms, bool) or not isinstance(cloud_wait_ms, int | float)
                or not math.isfinite(cloud_wait_ms) or cloud_wait_ms < 0):
            raise SolveError(f"the cloud's queueing delay must be a finite number of ms >= 0, got {cloud_wait_ms!r}")
        return self.cloud_ms + np.where(self.remote, float(cloud_wait_ms), 0.0) if cloud_wait_ms else self.cloud_ms

    def adjusted(self, adjust: Adjust) -> tuple[np.ndarray, np.ndarray]:
        """(edge, cloud) columns with `adjust` applied; the local overhead is counted on the edge side."""
        if adjust == NO_ADJUST:
            return self.edge_ms, self.cloud_ms
        edge = self.edge_ms * np.where(self.cloud_only, adjust.input_scale, adjust.edge_scale) + adjust.extra_ms
        cloud = (self.compute_cloud_ms * adjust.cloud_scale
                 + np.where(self.remote, self.exchange_ms + adjust.cloud_wait_ms, 0.0))
        return edge, cloud

    def _plan(self, link: Link, transfer: np.ndarray, max_loss: float | None, objective: str,
              extra: dict[str, np.ndarray] | None = None, cloud: np.ndarray | None = None,
              edge: np.ndarray | None = None, goal: Goal | None = None) -> Plan:
        feasible, reason = self.feasible(max_loss)
        cloud = self.cloud_ms if cloud is None else cloud
        edge = self.edge_ms if edge is None else edge
        total = edge + transfer + cloud
        rtt = np.where(self.remote, link.rtt_ms, 0.0)
        cols = {"edge": edge, "transfer": transfer, "cloud": cloud, "rtt": rtt, "total": total, **(extra or {})}
        info: dict = {}
        if goal is None or goal.plain:
            best = int(np.argmin(np.where(feasible, total, np.inf)))
        else:  # energy / cost / a latency limit (planner.objectives); energy on a trace from the mean transfer
            more, info = goal_columns(self, goal, edge, cols.pop("transfer_mean", transfer), cloud, link.rtt_ms)
            cols.update(more)
            best, feasible, note = choose(self, goal, cols, feasible, cols.get(f"{goal.stat}_ms", total))
            reason = "; ".join(filter(None, (reason, note))) or None
            objective = goal.objective if goal.objective not in ("mean", "p95") else objective
        return Plan(self, best, {**cols, "feasible": feasible}, objective=objective, max_loss=max_loss,
                    fallback_reason=reason, link=link.describe(), goal_info=info)

    def solve(self, link: Link, *, max_loss: float | None = DEFAULT_MAX_LOSS, start_ms: float = 0.0,
              cloud_wait_ms: float = 0.0, adjust: Adjust = NO_ADJUST, goal: Goal | None = None) -> Plan:
        """The fastest feasible candidate (or the best under `goal`) for a request starting at `start_ms` (matters
        on a trace), when a request waits `cloud_wait_ms` in the cloud's queue, with `adjust`'s calibration applied.
        The wait reaches the solver once: as `cloud_wait_ms` or as `adjust.cloud_wait_ms`, not both."""
        if cloud_wait_ms:
            self.cloud_with_wait(cloud_wait_ms)  # checks it
            if adjust.cloud_wait_ms:
                raise SolveError("the cloud's queueing delay reaches the solver once: give cloud_wait_ms or "
                                 "adjust.cloud_wait_ms, not both")
            adjust = replace(adjust, cloud_wait_ms=float(cloud_wait_ms))
        edge, cloud = self.adjusted(adjust)
        transfer = self.transfer_ms(link, np.array([start_ms]), cloud, edge)[:, 0]
        return self._plan(link, transfer, max_loss, "latency", cloud=cloud, edge=edge, goal=goal)

    def solve_trace(self, link: Link, *, objective: str = "mean", max_loss: float | None = DEFAULT_MAX_LOSS,
                    n_starts: int = 200, starts_ms=None, goal: Goal | None = None) -> Plan:
        """The candidate with the least mean or p95 latency over request start times spread across the trace
        (or the best under `goal`: energy per request replayed at every start, then averaged)."""
        objective = goal.stat if goal is not None else objective
        if objective not in OBJECTIVES:
            raise SolveError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        if starts_ms is None:
            period = getattr(link, "period_ms", None)
            if period is None:
                raise SolveError(f"solve_trace needs a trace link (got {link!r}) or explicit start times")
            if n_starts < 1:
                raise SolveError(f"n_starts must be >= 1, got {n_starts}")
            starts_ms = (np.arange(n_starts) + 0.5) / n_starts * period
        transfer = self.transfer_ms(link, np.asarray(starts_ms, dtype=float))
        base = self.edge_ms + self.cloud_ms  # compute is the same at every start: only the transfer varies
        mean_t, p95_t = transfer.mean(axis=1), np.percentile(transfer, 95, axis=1)
        chosen = mean_t if objective == "mean" else p95_t
        return self._plan(link, chosen, max_loss, objective, {"mean_ms": base + mean_t, "p95_ms": base + p95_t,
                                                              "max_ms": base + transfer.max(axis=1),
                                                              "transfer_mean": mean_t}, goal=goal)

    def breakpoints(self, *, rtt: str | float = 0.0, low: str | float = "10kbit", high: str | float = "10gbit",
                    max_loss: float | None = DEFAULT_MAX_LOSS, goal: Goal | None = None) -> list[Breakpoint]:
        """Bandwidths in (low, high) where the optimal candidate on a constant link changes, ascending; exact.

        Latency (and energy, cost) is a + s / bandwidth per candidate: walk the lower envelope of these lines in
        x = 1 / bandwidth (segment by segment under a latency limit: `objectives.goal_changes`).
        """
        rtt_ms = parse_duration(rtt, allow_zero=True)
        lo_bps, hi_bps = parse_bandwidth(low), parse_bandwidth(high)
        if lo_bps >= hi_bps:
            raise SolveError(f"bandwidth range must be low < high, got {low!r} .. {high!r}")
        feasible, _ = self.feasible(max_loss)
        a = self.edge_ms + self.cloud_ms + np.where(self.remote, rtt_ms, 0.0)
        s = np.where(self.remote, (self.payload_bytes + self.reply_bytes) * 8000.0, 0.0)
        x, x_end = 1.0 / hi_bps, 1.0 / lo_bps
        if goal is None or goal.plain:
            _, changes = envelope(a, s, np.flatnonzero(feasible), x, x_end)
        else:
            a_obj, s_obj = goal_lines(self, goal, a, s, rtt_ms)
            _, changes = goal_changes(a, s, a_obj, s_obj, feasible, goal.max_latency_ms, x, x_end)
        return [Breakpoint(1.0 / xb, self.candidate_at(below, 1.0 / xb, rtt_ms, feasible),
                           self.candidate_at(above, 1.0 / xb, rtt_ms, feasible)) for xb, below, above in reversed(changes)]

    def candidate_at(self, i: int, bandwidth_bps: float, rtt_ms: float, feasible: np.ndarray | None = None) -> Candidate:
        """Candidate i evaluated on a constant link."""
        transfer = ConstantLink(bandwidth_bps, rtt_ms).transfer_ms(self.payload_bytes[i] + self.reply_bytes) + rtt_ms
        transfer = transfer if self.remote[i] else 0.0
        return self.evaluated(i, transfer, rtt_ms if self.remote[i] else 0.0,
                              bool(feasible[i]) if feasible is not None else True)

    def ends_crossing(self, *, rtt: str | float = 0.0, low: str | float = "10kbit", high: str | float = "10gbit",
                      cloud_wait_ms: float = 0.0, max_loss: float | None = DEFAULT_MAX_LOSS) -> float | None:
        """The bandwidth in (low, high) (bit/s) where edge-only and cloud-only take equally long on a constant
        link, if any; cloud-only is the best of its forms within `max_loss` (lossless, or the input as a JPEG/WebP
        file), as a real client picks. Exact: each is a + s / bandwidth, edge-only a constant, and cloud-only wins
        above the least of its forms' crossings."""
        rtt_ms = parse_duration(rtt, allow_zero=True)
        lo_bps, hi_bps = parse_bandwidth(low), parse_bandwidth(high)
        e = self.index(CandidateSpec.edge_only())
        feasible, _ = self.feasible(max_loss)
        cloud = self.cloud_with_wait(cloud_wait_ms)
        crossings = []
        for c in np.flatnonzero(self.cloud_only & feasible):
            gap = self.edge_ms[e] - (self.edge_ms[c] + cloud[c] + rtt_ms)  # > 0: cloud-only wins at infinite bandwidth
            slope = (self.payload_bytes[c] + self.reply_bytes) * 8000.0  # ms x bit/s
            if gap > 0 and slope > 0:
                crossings.append(slope / gap)
        if not crossings:
            return None
        crossing = min(crossings)
        return float(crossing) if lo_bps < crossing < hi_bps else None

    def evaluated(self, i: int, transfer: float, rtt: float, feasible: bool, total: float | None = None,
                  cloud: float | None = None, edge: float | None = None) -> Candidate:
        """Candidate i with the given transfer (and optionally cloud, edge and total) times filled in."""
        edge = float(self.edge_ms[i] if edge is None else edge)
        cloud = float(self.cloud_ms[i] if cloud is None else cloud)
        return Candidate(spec=self.specs[i],
                         nbytes=float(self.payload_bytes[i]), edge_ms=edge, transfer_ms=float(transfer),
                         cloud_ms=cloud, rtt_ms=float(rtt),
                         predicted_ms=edge + float(transfer) + cloud if total is None else float(total),
                         accuracy_loss=float(self.loss[i]), feasible=feasible,
                         loss_assumed=bool(self.loss_assumed[i]))


_PREPARED: OrderedDict[tuple, CandidateSet] = OrderedDict()
_PREPARED_MAX = 8


def prepare(edge: Profile, cloud: Profile, *, edge_slowdown: float = 1.0,
            assume_loss: AssumeLoss | None = None, payload: str = "mean") -> CandidateSet:
    """The CandidateSet of a profile pair, cached for the last few pairs (profiles are immutable), so that
    re-planning per request on the same profiles costs only the solve."""
    assume_loss = check_assume_loss(assume_loss or {})
    key = (id(edge), id(cloud), edge_slowdown, payload, tuple(assume_loss.items()))
    cs = _PREPARED.get(key)
    if cs is not None and cs.edge is edge and cs.cloud is cloud:
        _PREPARED.move_to_end(key)
        return cs
    cs = CandidateSet(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss, payload=payload)
    _PREPARED[key] = cs
    while len(_PREPARED) > _PREPARED_MAX:
        _PREPARED.popitem(last=False)
    return cs


def solve(edge: Profile, cloud: Profile, link: Link, *, max_loss: float | None = DEFAULT_MAX_LOSS,
          edge_slowdown: float = 1.0, assume_loss: AssumeLoss | None = None, payload: str = "mean",
          start_ms: float = 0.0, cloud_wait_ms: float = 0.0, goal: Goal | None = None) -> Plan:
    """The latency-optimal (cut, bits) (or the best under `goal`) for one request on `link` within `max_loss` pp."""
    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss, payload=payload)
    return cs.solve(link, max_loss=max_loss, start_ms=start_ms, cloud_wait_ms=cloud_wait_ms, goal=goal)


def solve_trace(edge: Profile, cloud: Profile, link: Link, *, objective: str = "mean",
                max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0,
                assume_loss: AssumeLoss | None = None, payload: str = "mean", n_starts: int = 200,
                goal: Goal | None = None) -> Plan:
    """The candidate with the least mean or p95 latency (or the best under `goal`) over a bandwidth trace."""
    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss, payload=payload)
    return cs.solve_trace(link, objective=objective, max_loss=max_loss, n_starts=n_starts, goal=goal)


def breakpoints(edge: Profile, cloud: Profile, *, rtt: str | float = 0.0, low: str | float = "10kbit",
                high: str | float = "10gbit", max_loss: float | None = DEFAULT_MAX_LOSS, edge_slowdown: float = 1.0,
                assume_loss: AssumeLoss | None = None, payload: str = "mean", goal: Goal | None = None) -> list[Breakpoint]:
    """The bandwidths in (low, high) at which the optimal candidate changes on a constant link, ascending."""
    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss, payload=payload)
    return cs.breakpoints(rtt=rtt, low=low, high=high, max_loss=max_loss, goal=goal)


def ends_crossing(edge: Profile, cloud: Profile, *, rtt: str | float = 0.0, low: str | float = "10kbit",
                  high: str | float = "10gbit", edge_slowdown: float = 1.0, assume_loss: AssumeLoss | None = None,
                  payload: str = "mean", max_loss: float | None = DEFAULT_MAX_LOSS) -> float | None:
    """The bandwidth in (low, high) (bit/s) where edge-only and cloud-only (its best form within `max_loss`) take
    equally long, if any (exact)."""
    cs = prepare(edge, cloud, edge_slowdown=edge_slowdown, assume_loss=assume_loss, payload=payload)
    return cs.ends_crossing(rtt=rtt, low=low, high=high, max_loss=max_loss)


plan = solve  # exported as `planner.plan`: the name `planner.solve` is this module
