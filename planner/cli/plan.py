"""`planner plan --edge A.json --cloud B.json --bandwidth 10mbit --rtt 20ms`: the latency-optimal (cut, bits)."""

from __future__ import annotations

import json

from planner.cli import checks as check
from planner.cli.goal import add_goal_args, goal_from_args
from planner.config import DEFAULT_RTT
from planner.errors import PlannerError
from planner.link import parse_duration
from planner.runtime.options import PAYLOAD_STATS, EdgeOptions


def register(sub) -> None:
    p = sub.add_parser("plan", help="choose the fastest cut and bitwidth for two device profiles and a link")
    p.add_argument("--edge", required=True, help="profile JSON measured on the edge device")
    p.add_argument("--cloud", required=True, help="profile JSON measured on the cloud server")
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--bandwidth", help="constant uplink bandwidth, e.g. 10mbit, 500kbit, 2MB/s")
    link.add_argument("--trace", help="bandwidth trace (seconds, Mbit/s per line; or Mahimahi) or a shipped "
                                      "trace's name; plans for the least --objective latency over the trace")
    p.add_argument("--rtt", type=check.checked(lambda t: parse_duration(t, allow_zero=True)), default=DEFAULT_RTT,
                   help=f"round-trip time (default {DEFAULT_RTT})")
    p.add_argument("--max-loss", type=check.option(EdgeOptions, "max_loss"), default=check.default(EdgeOptions, "max_loss"),
                   help="accuracy budget: percentage points of loss vs the backbone (default %(default)s)")
    add_goal_args(p)
    p.add_argument("--assume-loss", metavar="BITS:PP,...",
                   help="assumed accuracy loss (percentage points) per bitwidth where the profiles have no accuracy "
                        "(architecture-only profiles), e.g. 8:0.1,4:0.5,2:2.0 (f16:PP for raw float16)")
    p.add_argument("--edge-slowdown", type=check.positive_number, default=1.0,
                   help="multiply every edge compute time (what-if; below 1: a faster edge)")
    p.add_argument("--payload", choices=PAYLOAD_STATS, default="mean", help="payload size statistic (default mean)")
    p.add_argument("--breakpoints", nargs="?", const="10kbit:10gbit", metavar="LOW:HIGH",
                   help="also list the bandwidths where the best choice changes (default range 10kbit:10gbit)")
    p.add_argument("--top", type=check.int_at_least(1), default=8, help="rows of the table (default 8)")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.set_defaults(func=run)


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"


def format_table(plan, top: int) -> str:
    """The best `top` candidates by the plan's objective, plus edge-only and cloud-only (lossless, and its best
    input format within the budget); the chosen one starred."""
    from planner.types import CandidateKind

    key = {"energy": "energy_mj", "cost": "cost"}.get(plan.objective, "predicted_ms")
    ranked = sorted(range(len(plan.candidates)), key=lambda i: getattr(plan.candidates[i], key))
    cs = plan.candidate_set
    ends = {cs.index(plan.best_of(CandidateKind.CLOUD_ONLY).spec)}
    ends |= {i for i, s in enumerate(cs.specs) if s.is_end and s.fmt is None}
    shown = ranked[:top] + [i for i in ranked[top:] if i in ends]
    if plan.index not in shown:
        shown.append(plan.index)
    header = ("", "candidate", "predicted ms", "edge ms", "transfer ms", "cloud ms", "bytes", "loss pp", "feasible")
    more = [h for h, f in (("energy mJ", "energy_mj"), ("cost", "cost")) if getattr(plan.chosen, f) is not None]
    header += tuple(more)
    rows = [header]
    for i in shown:
        c = plan.candidates[i]
        rows.append(("*" if i == plan.index else "", c.label, _fmt(c.predicted_ms), _fmt(c.edge_ms), _fmt(c.transfer_ms),
                     _fmt(c.cloud_ms), f"{c.nbytes:,.0f}",
                     f"{c.accuracy_loss:.2f}{' assumed' if c.loss_assumed else ''}", "yes" if c.feasible else "no")
                    + tuple(_fmt(c.energy_mj) if h == "energy mJ" else f"{c.cost:.3g}" for h in more))
    widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
    lines = ["  ".join(v.ljust(w) if k < 2 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join(("-" if k else " ") * w for k, w in enumerate(widths)))
    return "\n".join(line.rstrip() for line in lines)


def goal_line(plan) -> str:
    """The chosen candidate's energy (parts) and cost, and the energy model they rest on."""
    c, info, out = plan.chosen, plan.goal_info, []
    if c.energy_mj is not None:
        p, m = c.energy_parts, info["energy_model"]
        power = m["edge_power"]
        out.append(f"energy: {c.energy_mj:.3f} mJ = compute {p['compute']:.3f} + radio {p['radio']:.3f} + idle "
                   f"{p['idle']:.3f} ({m['radio']['name']} radio{', tail on' if m['tail'] else ''}; edge "
                   f"{power['active_w']:g} W active, {power['idle_w']:g} W idle, {power['source'].upper()})")
    if c.cost is not None:
        out.append(f"cost: {c.cost:.4g} per request ({info['price']['per_hour']:g} per cloud hour)")
    if "max_latency_ms" in info:
        out.append(f"latency limit: {info['max_latency_ms']:g} ms ({info['latency_stat']})")
    return "\n".join(out) if out else f"objective: {plan.objective}"


def run(args) -> int:
    from planner.candidates import RAW_FLOAT16, parse_assume_loss
    from planner.link import ConstantLink, TraceLink, format_bandwidth
    from planner.profile.schema import Profile
    from planner.solve import prepare

    edge, cloud = Profile.load(args.edge), Profile.load(args.cloud)
    assume = parse_assume_loss(args.assume_loss) if args.assume_loss is not None else None
    cs = prepare(edge, cloud, edge_slowdown=args.edge_slowdown, payload=args.payload, assume_loss=assume)
    goal = goal_from_args(args)
    if args.trace:
        link = TraceLink.load(args.trace, rtt=args.rtt)
        plan = cs.solve_trace(link, objective=args.objective, max_loss=args.max_loss, goal=goal)
        where = f"trace {link.name} (mean {format_bandwidth(link.mean_bps)}), {goal.stat if goal else args.objective} latency over the trace"
    else:
        link = ConstantLink(args.bandwidth, args.rtt)
        plan = cs.solve(link, max_loss=args.max_loss, goal=goal)
        where = f"constant {format_bandwidth(link.bandwidth_bps)}"
    points = None
    if args.breakpoints:
        low, sep, high = args.breakpoints.partition(":")
        if not sep:
            raise PlannerError(f"--breakpoints takes LOW:HIGH, e.g. 10kbit:1gbit, got {args.breakpoints!r}")
        points = cs.breakpoints(rtt=link.rtt_ms, low=low, high=high, max_loss=args.max_loss, goal=goal)
    if args.json:
        out = plan.to_dict()
        if points is not None:
            out["breakpoints"] = [{"bandwidth_bps": b.bandwidth_bps, "below": b.below.label, "above": b.above.label}
                                  for b in points]
        print(json.dumps(out, indent=2))
        return 0
    c = plan.chosen
    print(f"plan: {c.label}: {c.predicted_ms:.3f} ms = edge {c.edge_ms:.3f} + transfer {c.transfer_ms:.3f} "
          f"(rtt {c.rtt_ms:g}) + cloud {c.cloud_ms:.3f}; accuracy loss {c.accuracy_loss:.2f} pp"
          f"{' (ASSUMED)' if c.loss_assumed else ''}")
    if goal is not None:
        print(goal_line(plan))
    print(f"link: {where}, rtt {link.rtt_ms:g} ms; budget {args.max_loss:g} pp; edge slowdown {args.edge_slowdown:g}")
    if cs.assumed_loss:
        print("ASSUMED accuracy loss (not measured; the profiles have no accuracy): "
              + ", ".join(f"{'raw float16' if b == RAW_FLOAT16 else f'{b} bits'} {pp:g} pp" for b, pp in cs.assumed_loss.items()))
    if plan.fallback_reason:
        print(f"note: {plan.fallback_reason}")
    print(format_table(plan, args.top))
    if points is not None:
        print(f"\nbest choice ({plan.objective}) by bandwidth ({args.breakpoints}, rtt {link.rtt_ms:g} ms):")
        if not points:
            print("  the same choice over the whole range")
        for b in points:
            print(f"  below {format_bandwidth(b.bandwidth_bps):>14}: {b.below.label:<22} above: {b.above.label}")
    return 0
