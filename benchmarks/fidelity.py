"""Predictions you can trust: does the calibrated planner predict what it measures, and pick the fastest plan?

    .venv/bin/python benchmarks/fidelity.py [--quick] [--model resnet-fmnist] [--bandwidths 0.3,1,5,20,100]
        [--slowdowns 1,4,16] [--rtts 5,50] [--starts 1,0.333,3] [--n 60] [--pin-n 12] [--skip 20]
        [--profiles fresh|committed] [--out benchmarks/results/fidelity.json]

The cloud server runs in a child process on one thread; the edge runs here on one thread, stretched K times
(`--edge-slowdown K`: every edge computation of t waits (K - 1) t more, deterministic). Per setting
(bandwidth x slowdown x RTT) the link is a token bucket at that rate with RTT/2 delay each way, and:
- pinned: edge-only, cloud-only and the two best-predicted splits, `--pin-n` requests each (`planner run
  --plan ...`), measured in the same run; the best of their medians is the reference;
- planned: for each starting profile (the profiles as measured, and both scaled by 1/3 and by 3: profiles
  that are stale in either direction), `--n` requests planned and calibrated online; the median
  |predicted - measured| / measured over the requests after the first `--skip`, and the regret: the planned
  run's measured median over the best pinned median.
Also the cost of calibration + re-planning per request (median of 500 calls). Profiles: measured fresh at the
start (default) or the committed ones. JSON in benchmarks/results/, a table on stdout (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from e2e import client_for, med  # noqa: E402 - the end-to-end benchmark's client on a shaped link

from planner.config import DEFAULT_MAX_LOSS

ROOT = Path(__file__).resolve().parents[1]


def _client(pipeline, edge, cloud, address, bw_bps, rtt_ms, slowdown, **kw):
    return client_for(pipeline, edge, cloud, address, bw_bps, rtt_ms, None, DEFAULT_MAX_LOSS, edge_slowdown=slowdown,
                      **kw)


def _pinned(c, images, n: int) -> list[dict]:
    """Edge-only, cloud-only and the two best-predicted feasible splits, each measured `n` times."""
    from planner.types import CandidateKind, CandidateSpec

    plan = c.plan()
    cs, total, feasible = c.candidates, plan.columns["total"], plan.columns["feasible"]
    splits = sorted((i for i in range(len(cs)) if cs.specs[i].kind == CandidateKind.SPLIT and feasible[i]),
                    key=lambda i: total[i])[:2]
    which = [cs.index(CandidateSpec.edge_only()), cs.index(CandidateSpec.cloud_only()), *splits]
    rows = []
    for i in which:
        spec = cs.specs[i]
        c.infer(images[0:1], choice=spec)  # warm-up
        rs = [c.infer(images[k:k + 1], index=k, choice=spec) for k in range(n)]
        ok = [r.measured_ms for r in rs if r.error is None and not r.fallback]
        rows.append({"plan": spec.arg, "measured_ms": med(ok), "n": len(ok)})
    return rows


def _planned(c, images, n: int, skip: int) -> dict:
    report = c.run(images[:n])
    d = report.to_dict()
    kinds = {}
    for r in report.results[skip:]:
        kinds[r.spec.arg] = kinds.get(r.spec.arg, 0) + 1
    return {"measured_ms": med(r.measured_ms for r in report.results[skip:] if r.error is None),
            "error": report.prediction_error(skip), "plans": kinds, "probes": d["probes"],
            "calibration": d["calibration"], "freshness": d["freshness"], "fallbacks": d["fallbacks"]}


def run_setting(pipeline, edge, cloud, address, images, bw_mbit, slowdown, rtt_ms, args) -> list[dict]:
    bw = bw_mbit * 1e6
    with _client(pipeline, edge, cloud, address, bw, rtt_ms, slowdown, explore=0.0) as c:
        pinned = _pinned(c, images, args.pin_n)
    best = min((p for p in pinned if p["measured_ms"]), key=lambda p: p["measured_ms"])
    rows = []
    for start in args.starts:
        e, cl = (edge, cloud) if start == 1 else (edge.scaled(start), cloud.scaled(start))
        with _client(pipeline, e, cl, address, bw, rtt_ms, slowdown) as c:
            c.infer(images[0:1], index=0)  # connect
            c.estimate = type(c.estimate)(bw, rtt_ms, method=c.estimate.method)
            planned = _planned(c, images, args.n, args.skip)
        rows.append({"bandwidth_mbit": bw_mbit, "slowdown": slowdown, "rtt_ms": rtt_ms, "start_scale": start,
                     **planned, "best_pinned": best["plan"], "best_pinned_ms": best["measured_ms"],
                     "regret": planned["measured_ms"] / best["measured_ms"], "pinned": pinned})
        r = rows[-1]
        print(f"{bw_mbit:>6g} Mbit/s  x{slowdown:<3g} rtt {rtt_ms:>3g} ms  start x{start:<6.3g} error "
              f"{100 * r['error']:5.1f} %  regret {r['regret']:.3f}  (planned {r['measured_ms']:.2f} ms vs "
              f"{best['plan']} {best['measured_ms']:.2f} ms; {r['plans']})", flush=True)
    return rows


def overhead_us(pipeline, edge, cloud, address) -> float:
    """Median microseconds of one re-plan + one calibration update (what every request adds)."""
    with _client(pipeline, edge, cloud, address, 10e6, 20.0, 1.0, freshness_runs=0) as c:
        samples = []
        for _ in range(500):
            t0 = time.perf_counter()
            c.plan()
            c.calibration.observe(edge_ms=1.0, profiled_edge_ms=1.1, measured_ms=20.0, server_ms=1.0,
                                  profiled_cloud_ms=0.9, network_ms=15.0)
            samples.append((time.perf_counter() - t0) * 1e6)
    return float(np.median(samples))


def _profiles(args, pipeline):
    from planner.profile.measure import ProfileSettings, profile_pipeline
    from planner.profile.schema import Profile
    from planner.profile.store import find_profiles

    if args.profiles == "committed":
        return tuple(Profile.load(p) for p in find_profiles(args.model))
    out = []
    for role in ("edge", "cloud"):
        d = profile_pipeline(pipeline, ProfileSettings(role=role, threads=1, accuracy_limit=500), progress=False)
        out.append(Profile.from_dict(d, source=f"fresh {role} profile"))
    return tuple(out)


def table(rows: list[dict]) -> str:
    lines = ["| Mbit/s | slowdown | RTT ms | start | error % | regret | planned ms | best pinned | plans (after warm-up) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        plans = ", ".join(f"{k} {v}" for k, v in sorted(r["plans"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {r['bandwidth_mbit']:g} | {r['slowdown']:g} | {r['rtt_ms']:g} | x{r['start_scale']:.3g} | "
                     f"{100 * r['error']:.1f} | {r['regret']:.3f} | {r['measured_ms']:.2f} | {r['best_pinned']} "
                     f"{r['best_pinned_ms']:.2f} | {plans} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet-fmnist")
    p.add_argument("--bandwidths", default="0.3,1,5,20,100")
    p.add_argument("--slowdowns", default="1,4,16")
    p.add_argument("--rtts", default="5,50")
    p.add_argument("--starts", default="1,0.333,3")
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--pin-n", type=int, default=12)
    p.add_argument("--skip", type=int, default=20)
    p.add_argument("--profiles", choices=("fresh", "committed"), default="fresh")
    p.add_argument("--quick", action="store_true", help="bandwidths 1,20; slowdowns 1,8; RTT 20; n 40")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fidelity.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.bandwidths, args.slowdowns, args.rtts, args.n, args.pin_n = "1,20", "1,8", "20", 40, 8
    floats = lambda s: [float(x) for x in s.split(",")]  # noqa: E731
    args.starts = floats(args.starts)

    import torch

    from planner.data import load_arrays
    from planner.execution.pipeline import SplitPipeline
    from planner.runtime.local import ServerProcess

    torch.set_num_threads(1)
    pipeline = SplitPipeline.from_zoo(args.model, "shared")
    edge, cloud = _profiles(args, pipeline)
    images, _ = load_arrays("test")
    rows = []
    t0 = time.perf_counter()
    with ServerProcess(args.model, "shared", threads=1) as server:
        cost = overhead_us(pipeline, edge, cloud, server.address)
        print(f"calibration + re-planning: {cost:.0f} us per request (median of 500)")
        for bw in floats(args.bandwidths):
            for k in floats(args.slowdowns):
                for rtt in floats(args.rtts):
                    rows += run_setting(pipeline, edge, cloud, server.address, images, bw, k, rtt, args)
    errors = [r["error"] for r in rows if r["error"] is not None]
    summary = {"settings": len(rows), "error_median": med(errors), "error_max": max(errors),
               "error_within_10pct": sum(e <= 0.10 for e in errors), "regret_max": max(r["regret"] for r in rows),
               "regret_within_1.05": sum(r["regret"] <= 1.05 for r in rows), "overhead_us": cost,
               "wall_s": time.perf_counter() - t0}
    print(table(rows))
    print(json.dumps(summary, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "summary": summary,
                               "edge_profile": edge.name, "cloud_profile": cloud.name, "rows": rows}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
