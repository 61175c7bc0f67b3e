"""Energy-optimal vs latency-optimal plans over a grid of links and edges (issue 22).

    .venv/bin/python benchmarks/energy.py [--models vgg-fmnist,resnet-fmnist,resnet50,mobilenet_v2]
        [--bandwidths 0.3,1,5,20,100] [--links 3g,lte,wifi] [--slowdown 1,8] [--rtt 40ms] [--max-loss 1.0]
        [--assume-loss 8:0.1,6:0.2,4:0.5,3:1.0,2:2.0,f16:0] [--json out.json]

For each model (the zoo models' committed profiles, the ImageNet-scale architectures' architecture-only
profiles with an ASSUMED accuracy loss per bitwidth), bandwidth (Mbit/s), radio type (Huang et al. 2012 power
models, no tail) and edge slowdown: the latency-optimal plan and the energy-optimal plan (both within the
accuracy budget), their latency and edge energy per request, and the energy of edge-only and cloud-only. The
edge's power is what the profile records (the committed profiles record none, so the ASSUMED default of
planner.config: 2 W active, 0.3 W idle). Checks that the energy-optimal plan is never worse in energy than
either end (the solver is exact). No torch is imported; deterministic (no randomness).
"""

from __future__ import annotations

import argparse
import json
import sys

from planner.candidates import parse_assume_loss
from planner.energy import EnergyModel
from planner.link import ConstantLink
from planner.objectives import Goal
from planner.profile.power import profile_power
from planner.profile.store import load_pair
from planner.solve import prepare


def cell(cs, bw_mbps: float, rtt_ms: float, radio: str, max_loss: float) -> dict:
    """One grid point: the latency- and energy-optimal plans, evaluated with energy."""
    link = ConstantLink(bw_mbps * 1e6, rtt_ms)
    fast = cs.solve(link, max_loss=max_loss, goal=Goal("mean", energy=EnergyModel(radio)))
    frugal = cs.solve(link, max_loss=max_loss, goal=Goal("energy", energy=EnergyModel(radio)))
    ends = {k: frugal.candidate(k) for k in ("edge-only", "cloud-only")}
    assert frugal.chosen.energy_mj <= min(c.energy_mj for c in ends.values()) * (1 + 1e-12), "not exact"
    lf, ef = fast.chosen, frugal.chosen
    return {"bandwidth_mbps": bw_mbps, "radio": radio,
            "latency_opt": lf.label, "latency_opt_ms": lf.predicted_ms, "latency_opt_mj": lf.energy_mj,
            "energy_opt": ef.label, "energy_opt_ms": ef.predicted_ms, "energy_opt_mj": ef.energy_mj,
            "energy_parts": ef.energy_parts,
            "edge_only_mj": ends["edge-only"].energy_mj, "cloud_only_mj": ends["cloud-only"].energy_mj,
            "differs": lf.spec != ef.spec,
            "energy_saved_pct": 100.0 * (1 - ef.energy_mj / lf.energy_mj),
            "latency_cost_pct": 100.0 * (ef.predicted_ms / lf.predicted_ms - 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vgg-fmnist,resnet-fmnist,resnet50,mobilenet_v2")
    ap.add_argument("--bandwidths", default="0.3,1,5,20,100", help="Mbit/s")
    ap.add_argument("--links", default="3g,lte,wifi")
    ap.add_argument("--slowdown", default="1,8")
    ap.add_argument("--rtt", type=float, default=40.0, help="ms")
    ap.add_argument("--max-loss", type=float, default=1.0)
    ap.add_argument("--assume-loss", default="8:0.1,6:0.2,4:0.5,3:1.0,2:2.0,f16:0")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    assume = parse_assume_loss(args.assume_loss)
    rows = []
    for model in args.models.split(","):
        edge, cloud = load_pair(model)
        for k in (float(s) for s in args.slowdown.split(",")):
            cs = prepare(edge, cloud, edge_slowdown=k, assume_loss=assume)
            for radio in args.links.split(","):
                for bw in (float(b) for b in args.bandwidths.split(",")):
                    rows.append({"model": model, "slowdown": k, "edge_power": str(profile_power(edge)),
                                 **cell(cs, bw, args.rtt, radio, args.max_loss)})
    print(f"{'model':<14} {'K':>2} {'radio':<5} {'Mbit/s':>6}  {'latency-optimal':<24} {'ms':>8} {'mJ':>8}  "
          f"{'energy-optimal':<24} {'ms':>8} {'mJ':>8}  {'edge mJ':>8} {'cloud mJ':>8}  saved  +latency")
    for r in rows:
        mark = "*" if r["differs"] else " "
        print(f"{r['model']:<14} {r['slowdown']:>2g} {r['radio']:<5} {r['bandwidth_mbps']:>6g}  "
              f"{r['latency_opt'][:24]:<24} {r['latency_opt_ms']:>8.2f} {r['latency_opt_mj']:>8.2f} {mark}"
              f"{r['energy_opt'][:23]:<23} {r['energy_opt_ms']:>8.2f} {r['energy_opt_mj']:>8.2f}  "
              f"{r['edge_only_mj']:>8.2f} {r['cloud_only_mj']:>8.2f}  {r['energy_saved_pct']:5.1f}% "
              f"{r['latency_cost_pct']:+7.1f}%")
    differ = [r for r in rows if r["differs"]]
    print(f"\n{len(differ)} of {len(rows)} grid points: the energy-optimal plan differs from the latency-optimal one"
          + (f"; energy saved {min(r['energy_saved_pct'] for r in differ):.1f}..{max(r['energy_saved_pct'] for r in differ):.1f} %"
             f" (median {sorted(r['energy_saved_pct'] for r in differ)[len(differ) // 2]:.1f} %), latency cost "
             f"{min(r['latency_cost_pct'] for r in differ):+.1f}..{max(r['latency_cost_pct'] for r in differ):+.1f} %"
             if differ else ""))
    print("the energy-optimal plan is never worse in energy than edge-only or cloud-only (checked at every point)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    print(f"torch imported: {'torch' in sys.modules}")


if __name__ == "__main__":
    main()
