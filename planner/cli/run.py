"""`planner run --model NAME --cloud HOST:PORT --bandwidth 10mbit --rtt 20ms --n 500`: run the test set through
the split, re-planning per request, and print accuracy, measured vs predicted latency and the plans used."""

from __future__ import annotations

import json
import sys

from planner.errors import PlannerError


def register(sub) -> None:
    p = sub.add_parser("run", help="run test images through the planned edge/cloud split and measure every request")
    p.add_argument("--model", required=True, help="zoo model name (its committed profiles and autoencoder are used)")
    p.add_argument("--cloud", default="127.0.0.1:7000",
                   help="HOST:PORT of `planner serve`, or 'local' for a server in this process (default 127.0.0.1:7000)")
    p.add_argument("--bandwidth", default=None,
                   help="link bandwidth, e.g. 10mbit: the shaper's rate and the planner's starting estimate")
    p.add_argument("--rtt", default="20ms", help="round-trip time the shaper adds and the planner assumes (20ms)")
    p.add_argument("--trace", default=None, help="shape the link by this bandwidth trace (file or shipped name) "
                                                 "instead of a constant rate; the planner is not told the trace")
    p.add_argument("--no-shape", action="store_true", help="do not emulate the link (a real network to --cloud)")
    p.add_argument("--n", type=int, default=500, help="test images to run (default 500)")
    p.add_argument("--offset", type=int, default=0, help="first test image (default 0)")
    p.add_argument("--edge", default=None, help="edge profile JSON (default: the committed one for --model)")
    p.add_argument("--cloud-profile", default=None, help="cloud profile JSON (default: the committed one)")
    p.add_argument("--edge-cpu-quota", type=float, default=None,
                   help="emulate a weak edge: run head+encode under this fraction of one core (root), "
                        "with the profile measured the same way")
    p.add_argument("--edge-runtime", choices=("torch", "onnxruntime"), default="torch",
                   help="what runs head + encoder: PyTorch eager (default) or ONNX Runtime on the graphs of --onnx")
    p.add_argument("--onnx", default=None, metavar="DIR", help="export folder from `planner export`")
    p.add_argument("--max-loss", type=float, default=1.0, help="accuracy budget in percentage points (default 1.0)")
    p.add_argument("--estimator", choices=("harmonic", "ewma"), default="harmonic",
                   help="live bandwidth estimate (default harmonic mean of the last 5 transfers)")
    p.add_argument("--no-replan", action="store_true", help="plan once on the starting estimate (static baseline)")
    p.add_argument("--no-load-aware", action="store_true",
                   help="ignore the cloud's reported queueing delay when planning (default: add it to cloud candidates)")
    p.add_argument("--timeout", type=float, default=5.0, help="least seconds to wait for the cloud per request")
    p.add_argument("--token", default=None, help="the server's shared token (default: $PLANNER_TOKEN)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the edge profile's)")
    p.add_argument("--results", default=None, metavar="FILE", help="also write every request as JSON lines to FILE")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def _shaper(args):
    """The link emulation: a constant rate or a trace (Mbit/s), RTT split into two one-way delays."""
    from planner.link import TraceLink, parse_bandwidth, parse_duration
    from planner.runtime.shaper import Shaper

    delay = parse_duration(args.rtt, allow_zero=True) / 2.0
    if args.trace:
        trace = TraceLink.load(args.trace, rtt=args.rtt)
        return Shaper(lambda t: float(trace.bandwidth_at(t * 1000.0)), delay_ms=delay), trace
    return Shaper(parse_bandwidth(args.bandwidth), delay_ms=delay), None


def run(args) -> int:
    import os

    import torch

    from planner.data import load_arrays
    from planner.link import LiveEstimate, parse_bandwidth
    from planner.profile.schema import Profile
    from planner.profile.store import find_profiles
    from planner.runtime.edge import EdgeClient, pipeline_for_profile

    if not args.bandwidth and not args.trace:
        raise PlannerError("give --bandwidth (e.g. 10mbit) or --trace")
    if args.n < 1 or args.offset < 0:
        raise PlannerError("--n must be >= 1 and --offset >= 0")
    edge_path, cloud_path = args.edge, args.cloud_profile
    if edge_path is None or cloud_path is None:
        e, c = find_profiles(args.model, quota=args.edge_cpu_quota)
        edge_path, cloud_path = edge_path or e, cloud_path or c
    edge_profile, cloud_profile = Profile.load(edge_path), Profile.load(cloud_path)
    torch.set_num_threads(args.threads or int(edge_profile.device.get("threads") or 1))
    shaper, trace = (None, None) if args.no_shape else _shaper(args)
    start = args.bandwidth or (float(trace.bandwidth_at(0.0)) or trace.mean_bps)
    estimate = LiveEstimate(parse_bandwidth(start), args.rtt, method=args.estimator)

    images, labels = load_arrays("test")
    if args.offset + args.n > len(images):
        raise PlannerError(f"the test set has {len(images)} images; --offset {args.offset} --n {args.n} is past it")
    x, y = images[args.offset:args.offset + args.n], labels[args.offset:args.offset + args.n]

    token = args.token or os.environ.get("PLANNER_TOKEN")
    pipeline = pipeline_for_profile(args.model, edge_profile)
    server, address = None, args.cloud
    try:
        if args.cloud == "local":  # a server in this process, sharing the loaded model
            from planner.runtime.handlers import CloudHandler
            from planner.runtime.server import CloudServer

            server = CloudServer(CloudHandler(pipeline), port=0, token=token)
            address = f"127.0.0.1:{server.start_in_thread()}"
        with EdgeClient(pipeline, edge_profile, cloud_profile, cloud=address, link=estimate, max_loss=args.max_loss,
                        shaper=shaper, token=token, timeout=args.timeout, edge_cpu_quota=args.edge_cpu_quota,
                        replan=not args.no_replan, load_aware=not args.no_load_aware,
                        edge_runtime=args.edge_runtime, onnx=args.onnx) as client:
            report = client.run(x, y, progress=args.progress, start_index=args.offset)
    finally:
        if server is not None:
            server.stop_thread()
    link = report.link
    if shaper is not None:
        link["shaper"] = {"trace": trace.name} if trace else {"bandwidth_bps": parse_bandwidth(args.bandwidth)}
        link["shaper"]["rtt_ms"] = shaper.delay_s * 2000.0
    if args.results:
        with open(args.results, "w") as f:
            for r in report.results:
                f.write(json.dumps(r.to_dict()) + "\n")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
        if args.results:
            print(f"wrote {args.results}", file=sys.stderr)
    return 0
