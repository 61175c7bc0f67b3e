"""`planner report --edge A.json --cloud B.json --out DIR`: the what-if figures as PNG files and summary.md."""

from __future__ import annotations

from planner.errors import PlannerError


def register(sub) -> None:
    p = sub.add_parser("report", help="what-if figures (PNG) and a Markdown summary for two device profiles")
    p.add_argument("--edge", required=True, help="profile JSON measured on the edge device")
    p.add_argument("--cloud", required=True, help="profile JSON measured on the cloud server")
    p.add_argument("--out", required=True, help="folder for the PNG files and summary.md (created)")
    p.add_argument("--bandwidth", default="1mbit",
                   help="constant bandwidth(s) of the breakdown and Pareto plots, comma-separated, e.g. "
                        "0.1mbit,1mbit,100mbit (default 1mbit)")
    p.add_argument("--rtt", default="20ms", help="round-trip time (default 20ms)")
    p.add_argument("--max-loss", type=float, default=1.0,
                   help="accuracy budget: percentage points of loss vs the backbone (default 1.0)")
    p.add_argument("--trace", default="hsdpa_norway_bus_1",
                   help="bandwidth trace to replay: a file or a shipped trace's name (default hsdpa_norway_bus_1); "
                        "'none' to skip")
    p.add_argument("--edge-slowdown", type=float, default=1.0, help="multiply every edge compute time (what-if)")
    p.add_argument("--independent-edge", help="edge profile of the independent-autoencoder baseline (Pareto plot)")
    p.add_argument("--independent-cloud", help="cloud profile of the independent-autoencoder baseline")
    p.add_argument("--compare-edge", action="append", default=[], metavar="PROFILE",
                   help="another edge profile of the model (e.g. measured under a CPU quota): its measured slowdown "
                        "is drawn on the choice map (repeatable)")
    p.add_argument("--assume-loss", metavar="BITS:PP,...",
                   help="assumed accuracy loss per bitwidth for profiles without accuracy, e.g. 8:0.1,4:0.5,2:2.0")
    p.add_argument("--link", default="lte", metavar="lte|wifi|3g[:KEY=V,...]|none",
                   help="the radio of the energy section (docs/energy.md; default lte); 'none' to skip it")
    p.set_defaults(func=run)


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from planner.candidates import parse_assume_loss
    from planner.profile.schema import Profile
    from planner.report import write_report

    if (args.independent_edge is None) != (args.independent_cloud is None):
        raise PlannerError("give both --independent-edge and --independent-cloud, or neither")
    edge, cloud = Profile.load(args.edge), Profile.load(args.cloud)
    independent = None
    if args.independent_edge:
        independent = (Profile.load(args.independent_edge), Profile.load(args.independent_cloud))
    radio = None if args.link.lower() == "none" else args.link
    if radio is not None:
        from planner.energy import parse_radio

        parse_radio(radio)
    bandwidths = [b.strip() for b in args.bandwidth.split(",") if b.strip()]
    paths = write_report(edge, cloud, args.out, bandwidths=bandwidths, rtt=args.rtt, max_loss=args.max_loss,
                         edge_slowdown=args.edge_slowdown,
                         trace=None if args.trace.lower() == "none" else args.trace, independent=independent,
                         compare_edges=[Profile.load(p) for p in args.compare_edge],
                         assume_loss=parse_assume_loss(args.assume_loss) if args.assume_loss else None, radio=radio)
    for path in paths:
        print(f"wrote {path}")
    return 0
