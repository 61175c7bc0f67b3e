"""Loop timing shared by the benchmarks (stdlib only, so torch-free benchmarks stay torch-free)."""

from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeats: int, budget_s: float = 0.01) -> float:
    """Median seconds per call over `repeats` loops, each sized to take about `budget_s`."""
    fn()
    t0 = time.perf_counter()
    fn()
    loop = max(1, int(budget_s / max(time.perf_counter() - t0, 1e-7)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loop):
            fn()
        samples.append((time.perf_counter() - t0) / loop)
    return statistics.median(samples)
