"""The solver's vocabulary: a Candidate (one row of a plan), the solve-time Adjust, a Breakpoint, and the
`--assume-loss` table (parsing and checking) that architecture-only profiles rest on."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import SolveError
from planner.objectives import goal_dict
from planner.types import CandidateKind, CandidateSpec, check_bits

OBJECTIVES = ("mean", "p95")
RAW_FLOAT16 = "float16"  # the assume_loss key of the raw float16 candidates (the others are bitwidths)
AssumeLoss = dict[int | str, float]  # {bits: pp, "float16": pp}


@dataclass(frozen=True)
class Candidate:
    """One way to run a request, evaluated on one link: where it cuts, what it sends, how long each part takes."""

    spec: CandidateSpec  # what it is: kind, cut, bits, dtype (width)
    nbytes: float  # payload sent to the cloud (0 for edge-only)
    edge_ms: float
    transfer_ms: float  # payload + reply on the wire, plus the RTT
    cloud_ms: float
    rtt_ms: float  # the part of transfer_ms that is RTT
    predicted_ms: float
    accuracy_loss: float  # percentage points vs the backbone
    feasible: bool
    loss_assumed: bool = False  # accuracy_loss is the user's assumption (assume_loss), not a measurement
    energy_mj: float | None = None  # edge energy per request (under an energy or cost goal; planner.energy)
    energy_parts: dict[str, float] | None = None  # compute, radio, idle (mJ)
    cost: float | None = None  # cloud cost per request (under a goal with a price)

    @property
    def kind(self) -> CandidateKind:
        return self.spec.kind

    @property
    def cut(self) -> str:
        return self.spec.cut

    @property
    def bits(self) -> int | None:
        return self.spec.bits

    @property
    def dtype(self) -> str | None:
        return self.spec.dtype

    @property
    def width(self) -> int | None:
        """The autoencoder's latent width (None: its widest, or not an autoencoder candidate)."""
        return self.spec.width

    @property
    def label(self) -> str:
        """A short name: 'cloud-only', 'edge-only', 'pool1 raw float16', 'pool1 @ 4 bits'."""
        return self.spec.label

    @property
    def breakdown(self) -> dict[str, float]:
        return {"edge_ms": self.edge_ms, "transfer_ms": self.transfer_ms, "cloud_ms": self.cloud_ms,
                "rtt_ms": self.rtt_ms}

    def to_dict(self) -> dict:
        """The contract fields (cut, bits, predicted_ms, accuracy_loss, feasible) plus kind, dtype, bytes, parts."""
        return {"cut": self.cut, "bits": self.bits, "predicted_ms": rounded(self.predicted_ms),
                "accuracy_loss": rounded(self.accuracy_loss), "loss_assumed": self.loss_assumed,
                "feasible": self.feasible, "kind": self.kind.value,
                "dtype": self.dtype, "width": self.width, "format": self.spec.fmt, "plan": self.spec.arg,
                "bytes": rounded(self.nbytes), "edge_ms": rounded(self.edge_ms),
                "transfer_ms": rounded(self.transfer_ms), "cloud_ms": rounded(self.cloud_ms), **goal_dict(self)}


def rounded(x: float) -> float:
    return round(float(x), 6)


@dataclass(frozen=True)
class Adjust:
    """Corrections applied to every candidate at solve time (the edge client's online calibration):
    edge compute x `edge_scale` (cloud-only's edge part, the input's encoding, x `input_scale`), cloud compute x
    `cloud_scale`, `extra_ms` on every candidate (local overhead) and `cloud_wait_ms` (the cloud's queue) on
    every candidate that uses the cloud."""

    edge_scale: float = 1.0
    cloud_scale: float = 1.0
    extra_ms: float = 0.0
    cloud_wait_ms: float = 0.0
    input_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("edge_scale", "cloud_scale", "extra_ms", "cloud_wait_ms", "input_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise SolveError(f"{name} must be a finite number >= 0, got {v!r}")


NO_ADJUST = Adjust()


@dataclass(frozen=True)
class Breakpoint:
    """A bandwidth at which the optimal candidate changes: `below` wins under it, `above` over it."""

    bandwidth_bps: float
    below: Candidate
    above: Candidate

    def to_dict(self) -> dict:
        return {"bandwidth_bps": self.bandwidth_bps, "below": self.below.to_dict(), "above": self.above.to_dict()}


def _loss_key(key) -> int | str:
    """An assume_loss key: a bitwidth 1..8, or 'float16' for the raw float16 feature ('f16' and the former 16
    are read as 'float16')."""
    if isinstance(key, str) and key.lower() in ("f16", RAW_FLOAT16):
        return RAW_FLOAT16
    if key == 16 and isinstance(key, int) and not isinstance(key, bool):
        return RAW_FLOAT16
    if isinstance(key, str):
        raise SolveError(f"assume_loss key {key!r} is not a bitwidth (an integer 1..8) or {RAW_FLOAT16!r} (the raw "
                         f"float16 feature)")
    try:
        return check_bits(key, error=SolveError)
    except SolveError:
        raise SolveError(f"assume_loss key {key!r} is not a bitwidth (an integer 1..8) or {RAW_FLOAT16!r} (the raw "
                         f"float16 feature)") from None


def check_assume_loss(assume_loss: dict) -> AssumeLoss:
    """Validate an assumed accuracy loss per bitwidth ({bits: percentage points, 'float16': pp})."""
    if not isinstance(assume_loss, dict):
        raise SolveError(f"assume_loss must be a dict {{bits: percentage points}}, got {type(assume_loss).__name__}")
    out: AssumeLoss = {}
    for key, pp in assume_loss.items():
        k = _loss_key(key)
        if isinstance(pp, bool) or not isinstance(pp, int | float) or not math.isfinite(pp) or pp < 0:
            raise SolveError(f"assumed loss for {k} {'' if k == RAW_FLOAT16 else 'bits '}must be a finite number of "
                             f"percentage points >= 0, got {pp!r}")
        if k in out:
            raise SolveError(f"assume_loss gives {k} twice")
        out[k] = float(pp)
    return dict(sorted(out.items(), key=lambda kv: (isinstance(kv[0], str), kv[0])))


def parse_assume_loss(text: str) -> AssumeLoss:
    """'8:0.1,4:0.5,2:2.0' -> {2: 2.0, 4: 0.5, 8: 0.1}: assumed accuracy loss in percentage points per bitwidth
    (`f16:PP` for the raw float16 feature), for profiles whose accuracy is unknown."""
    if not isinstance(text, str) or not text.strip():
        raise SolveError("--assume-loss needs BITS:PP pairs, e.g. 8:0.1,4:0.5,2:2.0 (percentage points per bitwidth)")
    pairs: list[tuple[int | str, float]] = []
    for item in text.split(","):
        key, sep, value = item.strip().partition(":")
        key = key.strip()
        if not sep or not (key.isdigit() or key.lower() in ("f16", RAW_FLOAT16)):
            raise SolveError(f"--assume-loss: {item.strip()!r} is not BITS:PP (e.g. 4:0.5, or f16:0 for raw "
                             f"float16) in {text!r}")
        try:
            pp = float(value)
        except ValueError:
            raise SolveError(f"--assume-loss: {value.strip()!r} for {key} bits is not a number of percentage "
                             f"points in {text!r}") from None
        k = _loss_key(int(key) if key.isdigit() else key)
        if k in dict(pairs):
            raise SolveError(f"--assume-loss: {key} bits is given twice in {text!r}")
        pairs.append((k, pp))
    return check_assume_loss(dict(pairs))


def check_max_loss(max_loss: float | None) -> None:
    if max_loss is not None and (isinstance(max_loss, bool) or not math.isfinite(max_loss)):
        raise SolveError(f"the accuracy budget must be a finite number of percentage points, got {max_loss!r}")

