"""Solver speed: can the runtime re-plan per request? One solve over 10 cuts x 6 bitwidths must take <= 1 ms.

    .venv/bin/python benchmarks/solve_bench.py [--repeats 31] [--json out.json]

Synthetic edge and cloud profiles (10 cuts, bits 2 3 4 5 6 8, raw float32 + float16: 82 candidates), timed
in one run as the median over repeats of a loop (each loop about 20 ms):
- solve, cold: `CandidateSet` built from the two profiles, then solved (what `solve()` costs on new profiles);
- solve, prepared: the re-plan path (`prepare()` cache hit + solve on a constant link, or on a live estimate);
- solve on a trace at one start time (exact trace replay for the 82 candidates);
- breakpoints: the exact lower envelope over 1 kbit/s .. 10 Gbit/s;
- trace-robust plan: mean latency over 200 start times on a 3G trace;
- Plan.table (pandas) and Plan.to_dict (the --json object), which re-planning does not need;
- the energy objective (LTE radio model) alone and with a 200 ms latency limit, and its exact breakpoints.
No torch is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from planner.energy import EnergyModel
from planner.link import ConstantLink, LiveEstimate, TraceLink
from planner.objectives import Goal
from planner.profile.synthetic import synthetic_pair
from planner.solve import CandidateSet, breakpoints, prepare, solve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402

BITS = (2, 3, 4, 5, 6, 8)


def median_us(fn, repeats: int, budget_s: float = 0.02) -> float:
    """Median microseconds per call over `repeats` loops, each sized to take about `budget_s`."""
    return median_seconds(fn, repeats, budget_s) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    edge, cloud = synthetic_pair(0, n_cuts=10, bits=BITS, edge_ms=50.0, cloud_ms=1.0)
    cs = CandidateSet(edge, cloud)
    link = ConstantLink("300kbit", "20ms")
    live = LiveEstimate("300kbit", "20ms")
    trace = TraceLink.load("hsdpa_norway_train_1", rtt="20ms")
    plan = cs.solve(link)
    energy = Goal("energy", energy=EnergyModel("lte"))
    limited = Goal("energy", max_latency_ms=200.0, energy=EnergyModel("lte"))
    cases = {
        "solve, cold (build candidates + solve)": lambda: CandidateSet(edge, cloud).solve(link),
        "solve, prepared (constant link)": lambda: solve(edge, cloud, link),
        "solve, prepared (live estimate)": lambda: prepare(edge, cloud).solve(live),
        "solve on a trace at one start time": lambda: cs.solve(trace, start_ms=12_345.0),
        "breakpoints 1 kbit/s .. 10 Gbit/s": lambda: breakpoints(edge, cloud, rtt=20.0, low=1e3, high=1e10),
        "trace-robust plan (mean, 200 starts)": lambda: cs.solve_trace(trace, objective="mean"),
        "Plan.table (pandas, all candidates)": lambda: cs.solve(link).table,
        "Plan.to_dict (--json object)": lambda: cs.solve(link).to_dict(),
        "solve, prepared, energy objective": lambda: prepare(edge, cloud).solve(link, goal=energy),
        "solve, prepared, energy + max latency 200 ms": lambda: prepare(edge, cloud).solve(link, goal=limited),
        "breakpoints, energy + max latency 200 ms": lambda: cs.breakpoints(rtt=20.0, low=1e3, high=1e10,
                                                                           goal=limited),
    }
    results = {name: median_us(fn, args.repeats) for name, fn in cases.items()}
    points = breakpoints(edge, cloud, rtt=20.0, low=1e3, high=1e10)
    print(f"{len(cs)} candidates (10 cuts x {len(BITS)} bitwidths + raw float32/float16 + cloud-only + edge-only); "
          f"chosen at 300 kbit/s, 20 ms: {plan.chosen.label}; {len(points)} breakpoints; "
          f"torch imported: {'torch' in sys.modules}")
    width = max(map(len, results))
    for name, us in results.items():
        print(f"{name:<{width}}  {us:9.1f} us")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"candidates": len(cs), "median_us": results}, f, indent=2)


if __name__ == "__main__":
    main()
