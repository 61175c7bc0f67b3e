"""The flags of an objective beyond latency (`planner plan`, `planner run`): energy, cost, a latency limit."""

from __future__ import annotations

from planner.cli import checks as check
from planner.errors import PlannerError
from planner.link import parse_duration


def add_goal_args(p, *, objectives: tuple[str, ...] = ("mean", "p95", "energy", "cost")) -> None:
    from planner.energy import parse_radio
    from planner.profile.power import parse_power

    p.add_argument("--objective", choices=objectives, default="mean",
                   help="what the plan minimises: latency (mean, or p95 over a --trace), the edge's energy per "
                        "request (energy: needs --link), or the cloud's cost (cost: needs --cloud-price)")
    p.add_argument("--latency-stat", choices=("mean", "p95"), default="mean",
                   help="with --trace: the latency statistic --max-latency limits (default mean)")
    p.add_argument("--max-latency", type=check.checked(parse_duration), default=None, metavar="DURATION",
                   help="latency limit, e.g. 200ms: the plan is the best candidate within it (the fastest, and a "
                        "note, when none meets it)")
    p.add_argument("--link", type=check.checked(parse_radio), default=None, metavar="lte|wifi|3g[:KEY=V,...]",
                   help="the radio's type, for energy (Huang et al. 2012 power models; override a constant with "
                        "e.g. lte:beta=1200,alpha_up=400,tail_ms=5000)")
    p.add_argument("--radio-tail", action="store_true",
                   help="count the radio's high-power tail after each request (LTE: 11.6 s; off: back-to-back "
                        "requests share it)")
    p.add_argument("--edge-power-w", type=check.checked(parse_power), default=None, metavar="ACTIVE[,IDLE]",
                   help="the edge's power in watts, instead of what the edge profile records")
    p.add_argument("--cloud-price", type=check.non_negative_number, default=None, metavar="PRICE",
                   help="the cloud's price per CPU/GPU-hour, for --objective cost")
    p.add_argument("--price-per-gb", type=check.non_negative_number, default=0.0, metavar="PRICE",
                   help="with --cloud-price: also the price of the bytes sent and received, per GB")


def goal_from_args(args):
    """The Goal the flags ask for, or None for the plain latency objective (output as before)."""
    from planner.energy import CloudPrice, EnergyModel
    from planner.objectives import Goal
    from planner.profile.power import parse_power

    if args.objective == "energy" and args.link is None:
        raise PlannerError("--objective energy needs the link's radio type: --link lte|wifi|3g")
    if args.objective == "cost" and args.cloud_price is None:
        raise PlannerError("--objective cost needs --cloud-price PRICE (per CPU/GPU-hour)")
    energy = price = None
    if args.link is not None:
        power = parse_power(args.edge_power_w) if args.edge_power_w is not None else None
        energy = EnergyModel(args.link, tail=args.radio_tail, power=power)
    if args.cloud_price is not None:
        price = CloudPrice(args.cloud_price, args.price_per_gb)
    limit = parse_duration(args.max_latency) if args.max_latency is not None else None
    goal = Goal(args.objective, args.latency_stat, limit, energy, price)
    return None if goal.plain else goal
