"""What a run produced: one `Result` per input and the `RunReport` that summarizes them (JSON, text).

Plain dataclasses that serialize to JSON and load back; torch-free.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

import numpy as np

from planner.link import format_bandwidth
from planner.types import CandidateSpec


@dataclass
class Result:
    """One input's outcome: prediction, what ran (cut, bits, kind), predicted and measured times in ms.

    `cut`/`bits`/`kind`/`dtype` describe what was executed (edge-only for a fallback, whose `planned` names
    the candidate the planner had chosen). `transfer_ms` is the edge's wall time of the exchange minus the
    server's time (uplink + downlink + RTT + any wait on the link); `measured_ms` is the whole request, from
    planning to the answer.
    """

    index: int
    prediction: int | None
    label: int | None
    cut: str
    bits: int | None
    kind: str
    predicted_ms: float | None
    measured_ms: float
    edge_ms: float = 0.0
    encode_ms: float = 0.0
    transfer_ms: float = 0.0
    server_decode_ms: float = 0.0
    server_tail_ms: float = 0.0
    queue_wait_ms: float = 0.0
    fallback: bool = False
    error: str | None = None
    dtype: str | None = None
    planned: str | None = None
    fallback_reason: str | None = None
    connect_ms: float = 0.0
    request_bytes: int = 0
    reply_bytes: int = 0
    bandwidth_bps: float | None = None  # the estimate the request was planned with
    probe: bool = False  # an exploration request: the other side's best candidate, not the plan
    width: int | None = None  # the autoencoder's latent width sent (None: its widest, or not an autoencoder request)
    format: str | None = None  # cloud-only: the lossy input format sent ('jpeg90'; None: lossless)
    energy_mj: float | None = None  # the edge's estimated energy (planning for energy: planner.energy.request_energy)
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, spec: CandidateSpec, **fields) -> Result:
        """The result of running `spec` (its kind, cut, bits, dtype, width and input format recorded as the flat fields the
        JSON has always had)."""
        return cls(cut=spec.cut, bits=spec.bits, kind=spec.kind.value, dtype=spec.dtype, width=spec.width,
                   format=spec.fmt, **fields)

    @property
    def spec(self) -> CandidateSpec:
        """What was executed, as a CandidateSpec."""
        return CandidateSpec(self.kind, self.cut, self.bits, self.dtype, self.width, self.format)

    @property
    def label_text(self) -> str:
        return self.spec.label

    @property
    def correct(self) -> bool | None:
        if self.label is None or self.prediction is None:
            return None
        return self.prediction == self.label

    def to_dict(self, scores: bool = False) -> dict:
        """JSON-ready (scores only when asked)."""
        d = asdict(self)
        d.pop("scores")
        if scores:
            d["scores"] = None if self.scores is None else np.asarray(self.scores, dtype=float).ravel().tolist()
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        d = dict(d)
        s = d.pop("scores", None)
        return cls(**d, scores=None if s is None else np.asarray(s, dtype=np.float32))


def _median(xs: list[float]) -> float | None:
    return float(statistics.median(xs)) if xs else None


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def _energy_median(results) -> dict:
    """{'energy_mj_median': mJ} over the results that carry an energy estimate; {} when none does."""
    xs = [r.energy_mj for r in results if r.energy_mj is not None]
    return {"energy_mj_median": round(float(statistics.median(xs)), 3)} if xs else {}


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


@dataclass
class RunReport:
    """All results of a run and their summary: accuracy, latency median/p95, plans used, fallbacks."""

    results: list[Result]
    model: str
    edge_profile: str
    cloud_profile: str
    link: dict = field(default_factory=dict)  # the starting estimate (and the shaper, when the CLI emulates one)
    final_bandwidth_bps: float | None = None
    wall_s: float = 0.0
    calibration: dict | None = None  # where online calibration moved each stage (Calibration.summary)
    freshness: dict | None = None  # the start-up check of the edge profile (EdgeClient.check_freshness)
    edge_slowdown: float = 1.0

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self):
        return iter(self.results)

    @property
    def predictions(self) -> list[int | None]:
        return [r.prediction for r in self.results]

    @property
    def answered(self) -> list[Result]:
        return [r for r in self.results if r.error is None]

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results)

    @property
    def fallbacks(self) -> int:
        return sum(r.fallback for r in self.results)

    @property
    def accuracy(self) -> float | None:
        """Percent correct over the labelled inputs (None without labels)."""
        marks = [r.correct for r in self.results if r.label is not None]
        return 100.0 * sum(bool(m) for m in marks) / len(marks) if marks else None

    def measured(self) -> list[float]:
        return [r.measured_ms for r in self.answered]

    @property
    def measured_ms_median(self) -> float | None:
        return _median(self.measured())

    @property
    def measured_ms_p95(self) -> float | None:
        return _pct(self.measured(), 95)

    @property
    def measured_ms_p99(self) -> float | None:
        return _pct(self.measured(), 99)

    @property
    def predicted_ms_median(self) -> float | None:
        return _median([r.predicted_ms for r in self.answered if r.predicted_ms is not None])

    def prediction_error(self, skip: int = 20) -> float | None:
        """Median |predicted - measured| / measured over the answered, planned requests after the first `skip`."""
        xs = [abs(r.predicted_ms - r.measured_ms) / r.measured_ms for r in self.results[skip:]
              if r.error is None and not r.fallback and r.predicted_ms is not None and r.measured_ms > 0]
        return _median(xs)

    def plans(self) -> list[dict]:
        """Per executed candidate (fallbacks apart): count, measured and predicted median ms; most used first."""
        groups: dict[CandidateSpec, list[Result]] = {}
        for r in self.answered:
            if not r.fallback:
                groups.setdefault(r.spec, []).append(r)
        out = [{"cut": spec.cut, "bits": spec.bits, "kind": spec.kind.value, "dtype": spec.dtype, "width": spec.width,
                "label": spec.label,
                "count": len(rs), "measured_ms_median": _r(_median([r.measured_ms for r in rs])),
                "predicted_ms_median": _r(_median([r.predicted_ms for r in rs if r.predicted_ms is not None])),
                **_energy_median(rs)}
               for spec, rs in groups.items()]
        return sorted(out, key=lambda d: -d["count"])

    def stage_medians(self) -> dict[str, float | None]:
        cloud = [r for r in self.answered if not r.fallback and r.spec.remote]
        edge = [r for r in self.answered if not r.fallback]
        return {"edge_ms": _r(_median([r.edge_ms for r in edge])), "encode_ms": _r(_median([r.encode_ms for r in edge])),
                "transfer_ms": _r(_median([r.transfer_ms for r in cloud])),
                "server_decode_ms": _r(_median([r.server_decode_ms for r in cloud])),
                "server_tail_ms": _r(_median([r.server_tail_ms for r in cloud])),
                "queue_wait_ms": _r(_median([r.queue_wait_ms for r in cloud]))}

    def to_dict(self, results: bool = False) -> dict:
        """The `planner run --json` object; per-request results only when asked."""
        acc = self.accuracy
        d = {"model": self.model, "n": len(self.results), "answered": len(self.answered), "errors": self.errors,
             "fallbacks": self.fallbacks, "accuracy": None if acc is None else round(acc, 3),
             "measured_ms_median": _r(self.measured_ms_median), "measured_ms_p95": _r(self.measured_ms_p95),
             "measured_ms_p99": _r(self.measured_ms_p99), "predicted_ms_median": _r(self.predicted_ms_median),
             "plans": self.plans(), "stages_ms_median": self.stage_medians(), "edge_profile": self.edge_profile,
             "cloud_profile": self.cloud_profile, "link": self.link, "final_bandwidth_bps": _r(self.final_bandwidth_bps, 1),
             "wall_s": _r(self.wall_s), "probes": sum(r.probe for r in self.results),
             "prediction_error": _r(self.prediction_error(), 4), "calibration": self.calibration,
             "freshness": self.freshness, "edge_slowdown": self.edge_slowdown, **_energy_median(self.results)}
        if results:
            d["results"] = [r.to_dict() for r in self.results]
        return d

    def format(self, metric: str = "accuracy") -> str:
        """A short human summary; `metric` "agreement" when the targets are the unsplit model's top-1 (no labels)."""
        f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        acc = self.accuracy
        scored = sum(r.label is not None for r in self.results)
        against = "labelled" if metric == "accuracy" else "compared with the unsplit model's top-1"
        lines = [f"model {self.model}: {len(self.results)} requests in {self.wall_s:.1f} s "
                 f"(edge profile {self.edge_profile}, cloud profile {self.cloud_profile})",
                 f"{metric}: {'-' if acc is None else f'{acc:.2f} %'} ({scored} {against})",
                 f"latency: measured median {f(self.measured_ms_median)} ms, p95 {f(self.measured_ms_p95)} ms; "
                 f"predicted median {f(self.predicted_ms_median)} ms",
                 "stages (median ms): " + ", ".join(f"{k.removesuffix('_ms')} {f(v)}"
                                                     for k, v in self.stage_medians().items()),
                 f"fallbacks: {self.fallbacks}, errors: {self.errors}, probes: {sum(r.probe for r in self.results)}"]
        if _energy_median(self.results):
            lines.append(f"energy (estimated from measured stages): median {f(_energy_median(self.results)['energy_mj_median'])} "
                         f"mJ per request")
        if self.calibration:
            from planner.runtime.calibrate import describe

            lines.append("calibration: " + describe(self.calibration))
        if self.freshness:
            fr = self.freshness
            lines.append(f"profile check at start: whole model {fr['measured_ms']:.3f} ms measured vs "
                         f"{fr['profiled_ms']:.3f} ms profiled (x{fr['ratio']:.2f}){' STALE' if fr['stale'] else ''}")
        start = self.link.get("bandwidth_bps")
        if start and self.final_bandwidth_bps:
            lines.append(f"bandwidth estimate: {format_bandwidth(start)} at start, "
                         f"{format_bandwidth(self.final_bandwidth_bps)} at the end")
        rows = [("plan", "count", "measured ms", "predicted ms")]
        rows += [(p["label"], str(p["count"]), f(p["measured_ms_median"]), f(p["predicted_ms_median"]))
                 for p in self.plans()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines += ["  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths,
                                                                                                        strict=True)))
                  for r in rows]
        return "\n".join(lines)
