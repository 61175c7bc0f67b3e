"""Robust timing of a callable: warm up, then repeat until the spread is small or a time cap is hit.

The same idea as `torch.utils.benchmark.Timer.adaptive_autorange`, in plain Python so it can time anything
(a head, an encoder, a codec call): record median and inter-quartile range, never the mean of a noisy tail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Order statistics of repeated runs, in milliseconds."""

    median: float
    iqr: float
    n: int
    p10: float = 0.0
    p90: float = 0.0

    def to_dict(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}

    @classmethod
    def from_samples(cls, samples_ms) -> Timing:
        s = np.asarray(samples_ms, dtype=float)
        q10, q25, q50, q75, q90 = np.percentile(s, [10, 25, 50, 75, 90])
        return cls(float(q50), float(q75 - q25), int(s.size), float(q10), float(q90))


def measure(fn: Callable[[], object], *, warmup: int = 3, min_repeats: int = 7, max_repeats: int = 2000,
            max_seconds: float = 2.0, rel_spread: float = 0.05) -> Timing:
    """Time `fn()` in ms: `warmup` untimed calls, then repeats until IQR/median <= rel_spread (or a cap)."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(samples) < max_repeats:
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        if len(samples) >= min_repeats and len(samples) % min_repeats == 0:
            q25, q50, q75 = np.percentile(samples, [25, 50, 75])
            if q50 > 0 and (q75 - q25) / q50 <= rel_spread and len(samples) >= 2 * min_repeats:
                break
            if time.perf_counter() > deadline:
                break
    return Timing.from_samples(samples)
