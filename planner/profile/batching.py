"""A batched cloud in the profile: decoder + tail time at several batch sizes, and what it predicts under load.

Torch-free. A cloud profile measured with `planner profile --role cloud --batch-sizes 1,4,16,64` carries

    batch_ms   {"sizes": [1, 4, 16, 64], "whole": {"<n>": ms}, "cuts": {"<cut>": {"tail": {"<n>": ms},
                                                                            "decode": {"<n>": ms}}}}

(median ms of one run over n inputs at once: the whole model for cloud-only requests, per cut the tail and the
autoencoder's decoder). `BatchCurve` reads it and interpolates between sizes (linear in n; beyond the largest
size, the last per-input slope). A dynamically batching server runs a request with the others of its candidate,
so its compute is the batch's: `BatchCurve.excess_ms(cut, n)` is what a batch of n costs over a request alone,
the part of the cloud time the load adds besides the queue. `predict_cloud_ms` turns a concurrency (or the queue
wait and batch size a server reported) into the cloud time of one request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from planner.errors import ProfileError

INPUT = "input"  # the cloud-only candidate: the whole model runs on the cloud


def check_batch_ms(d: Any, where: str = "batch_ms") -> dict:
    """The `batch_ms` field validated and normalized (sizes sorted; keys are strings of sizes); ProfileError."""

    def bad(path: str, message: str) -> ProfileError:
        return ProfileError(f"field {path}: {message}")

    def table(t: Any, path: str) -> dict[str, float]:
        if not isinstance(t, dict):
            raise bad(path, f"expected an object of size -> ms, got {type(t).__name__}")
        out = {}
        for k, v in t.items():
            if not (str(k).isdigit() and int(k) >= 1):
                raise bad(f"{path}.{k}", "batch sizes are positive integers")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise bad(f"{path}.{k}", f"expected a finite time in ms >= 0, got {v!r}")
            out[str(int(k))] = float(v)
        return out

    if not isinstance(d, dict) or set(d) - {"sizes", "whole", "cuts"} or "sizes" not in d:
        raise bad(where, "expected an object with sizes, whole and cuts")
    sizes = d["sizes"]
    if not (isinstance(sizes, list) and sizes and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                       for n in sizes)):
        raise bad(f"{where}.sizes", f"expected a non-empty list of positive integers, got {sizes!r}")
    cuts = d.get("cuts", {})
    if not isinstance(cuts, dict):
        raise bad(f"{where}.cuts", "expected an object of cut -> {tail, decode}")
    out = {"sizes": sorted(set(sizes)), "whole": table(d.get("whole", {}), f"{where}.whole"), "cuts": {}}
    for c, e in cuts.items():
        if not isinstance(e, dict) or set(e) - {"tail", "decode"}:
            raise bad(f"{where}.cuts.{c}", "expected an object with tail and decode")
        out["cuts"][c] = {part: table(e.get(part, {}), f"{where}.cuts.{c}.{part}") for part in ("tail", "decode")}
    return out


def scale_batch_ms(d: dict | None, factor: float) -> dict | None:
    """Every time of a batch_ms field multiplied by `factor` (a what-if, as `Profile.scaled`)."""
    if d is None:
        return None
    mul = lambda t: {k: v * factor for k, v in t.items()}  # noqa: E731
    return {"sizes": list(d["sizes"]), "whole": mul(d["whole"]),
            "cuts": {c: {p: mul(t) for p, t in e.items()} for c, e in d["cuts"].items()}}


def _interp(table: dict[str, float], n: float) -> float | None:
    """Linear in n between measured sizes; below the smallest or above the largest, the nearest per-input slope."""
    if not table:
        return None
    pts = sorted((int(k), v) for k, v in table.items())
    if len(pts) == 1:
        return pts[0][1] * n / pts[0][0]
    for (n0, t0), (n1, t1) in zip(pts, pts[1:], strict=False):
        if n <= n1 or (n1, t1) == pts[-1]:
            return max(0.0, t0 + (t1 - t0) * (n - n0) / (n1 - n0))
    return None  # pragma: no cover


@dataclass(frozen=True)
class BatchCurve:
    """A cloud profile's compute time per batch size (see the module docstring)."""

    batch_ms: dict

    @classmethod
    def of(cls, profile) -> BatchCurve | None:
        """The curve of a cloud profile measured with --batch-sizes (None without)."""
        d = getattr(profile, "batch_ms", None)
        return cls(d) if d else None

    @property
    def sizes(self) -> list[int]:
        return list(self.batch_ms["sizes"])

    def compute_ms(self, cut: str, n: float) -> float | None:
        """Decoder + tail (the whole model for cut 'input') of a batch of n inputs; None when not measured."""
        if cut == INPUT:
            return _interp(self.batch_ms["whole"], n)
        entry = self.batch_ms["cuts"].get(cut)
        if entry is None:
            return None
        tail = _interp(entry["tail"], n)
        return None if tail is None else tail + (_interp(entry["decode"], n) or 0.0)

    def excess_ms(self, cut: str, n: float) -> float:
        """What a batch of n costs over one input alone (0 when n <= 1 or not measured)."""
        if n <= 1:
            return 0.0
        one, many = self.compute_ms(cut, 1), self.compute_ms(cut, n)
        return 0.0 if one is None or many is None else max(0.0, many - one)


def expected_batch(concurrency: int, max_inputs: int, workers: int = 1) -> float:
    """The batch a request shares when `concurrency` edges keep the server saturated: they spread over the workers
    that compute at once, at most max_inputs a batch."""
    return float(max(1.0, min(max_inputs, concurrency / max(1, workers))))


def predict_cloud_ms(profile, cut: str, *, concurrency: int | None = None, delay_ms: float = 0.0,
                     max_inputs: int = 64, workers: int = 1, queue_ms: float | None = None,
                     batch: float | None = None) -> float:
    """The cloud time (server side: queue + batch wait + decoder + tail) of one request at `cut`.

    With what a server reported (`queue_ms`, the wait before compute, and `batch`, the inputs computed together):
    queue_ms + compute(batch). From a concurrency alone (saturated closed loop, nothing reported): the batch is
    `expected_batch`, and a request waits for the batch ahead of it on its worker to finish, half of one on
    average per worker in turn: compute(B) * (1 + 1 / (2 * workers)), or at least the batching delay."""
    curve = BatchCurve.of(profile)
    if curve is None:
        raise ProfileError(f"profile {getattr(profile, 'name', '')} has no batch times: re-profile the cloud with "
                           "--batch-sizes 1,4,16,64")
    if queue_ms is not None:
        b = 1.0 if batch is None else max(1.0, float(batch))
        compute = curve.compute_ms(cut, b)
        if compute is None:
            raise ProfileError(f"profile {profile.name} has no batch times for cut {cut!r}")
        return float(queue_ms) + compute
    if concurrency is None:
        raise ProfileError("predict_cloud_ms needs a concurrency, or the queue wait a server reported")
    b = expected_batch(concurrency, max_inputs, workers)
    compute = curve.compute_ms(cut, b)
    if compute is None:
        raise ProfileError(f"profile {profile.name} has no batch times for cut {cut!r}")
    if concurrency <= 1:
        return compute + delay_ms
    return compute + max(delay_ms if b < max_inputs else 0.0, compute / (2 * max(1, workers)))
