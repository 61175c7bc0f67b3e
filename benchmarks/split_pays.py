"""Where splitting pays for ImageNet-scale architectures (issue 9): the bandwidths at which a split beats both ends.

    .venv/bin/python benchmarks/split_pays.py [--models resnet50,mobilenet_v2] [--rtt 5,50] [--slowdown 1,8]
        [--assume-loss 8:0.1,6:0.2,4:0.5,3:1.0,2:2.0] [--max-loss 1.0] [--low 0.1mbit] [--high 1000mbit]
        [--profiles profiles/arch] [--json out.json]

For each model, RTT and edge slowdown, from the committed architecture-only profiles (`planner.find_profiles`)
and an ASSUMED accuracy loss per bitwidth (the profiles have none): the bandwidth range in which the optimum is a
split (a cut sending the shared autoencoder's compressed latent), the largest speed-up of that split over the
better of edge-only and cloud-only (JPEG) in the range, and which ends win elsewhere. Everything is the solver's:
the ranges come from `planner.breakpoints` (exact on a constant link), the choice in each range and the latencies
from `planner.plan`. Latency is affine in 1 / bandwidth for every candidate, so the ratio (better end) / split is
monotone between consecutive breakpoints and the edge-only = cloud-only crossing: its maximum is at one of
those points, found exactly. No torch is imported.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import planner
from planner.link import format_bandwidth

ENDS = ("edge-only", "cloud-only")


def _plan(pair, bw: float, rtt_ms: float, kw: dict):
    return planner.plan(*pair, planner.ConstantLink(bw, rtt_ms), **kw)


def _ends_ms(plan) -> dict[str, float]:
    return {c.kind: c.predicted_ms for c in plan.candidates if c.kind in ENDS}


def _best_split(plan):
    return min((c for c in plan.candidates if c.kind == "split" and c.feasible), key=lambda c: c.predicted_ms)


def split_pays(pair, rtt_ms: float, slowdown: float, assume_loss: dict, max_loss: float, low: float,
               high: float) -> dict:
    """Ranges of the optimum by kind over [low, high] and, for the ranges where a split is optimal, its best
    speed-up over the better end (exact: at a breakpoint or where the better end changes)."""
    kw = dict(max_loss=max_loss, edge_slowdown=slowdown, assume_loss=assume_loss)
    points = planner.breakpoints(*pair, rtt=rtt_ms, low=low, high=high, **kw)
    edges = [low, *(b.bandwidth_bps for b in points), high]
    runs: list[dict] = []  # consecutive intervals with the same kind of optimum, merged
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        chosen = _plan(pair, math.sqrt(lo * hi), rtt_ms, kw).chosen
        if runs and runs[-1]["kind"] == chosen.kind:
            runs[-1]["high"] = hi
            runs[-1]["bounds"].append(hi)
            runs[-1]["choices"].append(chosen.label)
        else:
            runs.append({"kind": chosen.kind, "low": lo, "high": hi, "bounds": [lo, hi], "choices": [chosen.label]})
    for r in runs:
        r["choices"] = list(dict.fromkeys(r["choices"]))
        bounds = r.pop("bounds")
        if r["kind"] != "split":
            continue
        cross = planner.ends_crossing(*pair, rtt=rtt_ms, low=r["low"], high=r["high"], edge_slowdown=slowdown,
                                      assume_loss=assume_loss)
        best = None
        for bw in sorted({*bounds, *([cross] if cross else [])}):
            plan = _plan(pair, bw, rtt_ms, kw)
            ends = _ends_ms(plan)
            end = min(ends, key=ends.get)
            split = _best_split(plan)  # at a range's edge it ties with the optimum next to it
            gain = ends[end] / split.predicted_ms
            if best is None or gain > best["gain"]:
                best = {"gain": gain, "at_bps": bw, "split": split.label, "split_ms": split.predicted_ms,
                        "loss_pp": split.accuracy_loss, "end": end, **{f"{k}_ms": v for k, v in ends.items()}}
        r["best"] = best
    return {"rtt_ms": rtt_ms, "edge_slowdown": slowdown, "runs": runs}


def profile_checks(edge, cloud) -> list[str]:
    """Signs that a profile pair was measured on a busy machine: a head (tail) much faster than an earlier head
    (later tail) that it contains, a stage slower than the whole model it is part of, a whole-model time far
    above every partial one, a cloud on more threads slower than the edge."""
    out = []
    whole_e, whole_c = edge.whole_model_ms.median, cloud.whole_model_ms.median
    heads = {c.id: c.head_ms.median for c in edge.cuts}
    tails = {c.id: c.tail_ms.median for c in cloud.cuts}
    for side, parts, whole in (("edge head", heads, whole_e), ("cloud tail", tails, whole_c)):
        out += [f"{side} at {cid} = {ms:.0f} ms > 1.25 x the whole model ({whole:.0f} ms)"
                for cid, ms in parts.items() if ms > 1.25 * whole]
        ids, ms = list(parts), list(parts.values())
        if side == "cloud tail":  # tails shrink along the cuts, heads grow: compare both as growing
            ids, ms = ids[::-1], ms[::-1]
        drops = [(ids[i], ms[i], max(ms[:i])) for i in range(1, len(ms)) if ms[i] < 0.8 * max(ms[:i])]
        if drops:
            cid, now, before = min(drops, key=lambda d: d[1] / d[2])
            other = "a later cut's tail" if side == "cloud tail" else "an earlier cut's head"
            out.append(f"{side}s are not monotone: {len(drops)} of {len(ms)} are > 20 % below {other}, which "
                       f"they contain (worst: {cid} {now:.0f} ms vs {before:.0f} ms)")
        longest = max(parts, key=parts.get)
        if whole > 1.25 * parts[longest]:
            out.append(f"{side.split()[0]} whole model {whole:.0f} ms > 1.25 x its longest {side.split()[1]} "
                       f"({longest}, {parts[longest]:.0f} ms)")
    if cloud.device["threads"] > edge.device["threads"] and whole_c > whole_e:
        out.append(f"the cloud on {cloud.device['threads']} threads ({whole_c:.0f} ms) is slower than the edge on "
                   f"{edge.device['threads']} ({whole_e:.0f} ms)")
    return out


def _mbps(bps: float) -> str:
    return f"{bps / 1e6:.3g}"


def markdown(results: list[dict]) -> str:
    """One table row per (model, RTT, slowdown, split range)."""
    head = ("| model | RTT ms | edge slowdown | split is optimal (Mbit/s) | best speed-up vs better end | at Mbit/s "
            "| split there | split ms | edge-only / cloud-only ms there | optimum elsewhere (Mbit/s) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for res in results:
        spans = [r for r in res["runs"] if r["kind"] == "split"]
        rest = ", ".join(f"{r['kind']} {_mbps(r['low'])}-{_mbps(r['high'])}" for r in res["runs"]
                         if r["kind"] != "split")
        lead = f"| {res['model']} | {res['rtt_ms']:g} | {res['edge_slowdown']:g}x"
        if not spans:
            lines.append(f"{lead} | never | - | - | - | - | - | {rest} |")
        for s in spans:
            b = s["best"]
            lines.append(f"{lead} | {_mbps(s['low'])} - {_mbps(s['high'])} | {b['gain']:.2f}x | {_mbps(b['at_bps'])} "
                         f"| {b['split']} | {b['split_ms']:.0f} | {b['edge-only_ms']:.0f} / {b['cloud-only_ms']:.0f} "
                         f"| {rest or '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet50,mobilenet_v2")
    p.add_argument("--rtt", default="5,50", help="round-trip times in ms, comma-separated")
    p.add_argument("--slowdown", default="1,8", help="edge slowdowns, comma-separated")
    p.add_argument("--assume-loss", default="8:0.1,6:0.2,4:0.5,3:1.0,2:2.0",
                   help="ASSUMED accuracy loss in pp per bitwidth (the architecture profiles have no accuracy)")
    p.add_argument("--max-loss", type=float, default=1.0, help="accuracy budget in percentage points")
    p.add_argument("--low", default="0.1mbit")
    p.add_argument("--high", default="1000mbit")
    p.add_argument("--profiles", default="profiles/arch", help="folder of the architecture profiles")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    assume = planner.parse_assume_loss(args.assume_loss)
    low, high = planner.parse_bandwidth(args.low), planner.parse_bandwidth(args.high)
    results = []
    for model in args.models.split(","):
        paths = planner.find_profiles(model, dirs=[args.profiles])
        pair = tuple(planner.load_profile(path) for path in paths)
        edge, cloud = pair
        for role, path, prof in (("edge", paths[0], edge), ("cloud", paths[1], cloud)):
            print(f"{model} {role}: {path} ({prof.device['threads']} thread(s), created {prof.created}, load average "
                  f"{prof.settings.get('load_avg', {}).get('before', ['?'])[0]} when measured): whole model "
                  f"{prof.whole_model_ms.median:.0f} ms")
        print(f"{model}: cloud-only sends {edge.input.compressed_bytes:.0f} B ({edge.settings['input_format']})")
        for rtt in (float(x) for x in args.rtt.split(",")):
            for k in (float(x) for x in args.slowdown.split(",")):
                res = split_pays(pair, rtt, k, assume, args.max_loss, low, high)
                results.append({"model": model, "edge_profile": str(paths[0]), "cloud_profile": str(paths[1]),
                                **res})
        for line in profile_checks(edge, cloud):
            print(f"  CHECK {model}: {line}")
    print(f"ASSUMED accuracy loss (not measured): {', '.join(f'{b} bits {pp:g} pp' for b, pp in assume.items())}; "
          f"budget {args.max_loss:g} pp; bandwidth {format_bandwidth(low)} .. {format_bandwidth(high)}")
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"assume_loss": {str(b): pp for b, pp in assume.items()}, "max_loss": args.max_loss,
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
