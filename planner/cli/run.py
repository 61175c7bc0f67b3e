"""`planner run --model NAME --cloud HOST:PORT --bandwidth 10mbit --rtt 20ms --n 500`: run the test set through
the split, re-planning per request, and print accuracy, measured vs predicted latency and the plans used."""

from __future__ import annotations

import json
import sys

from planner.cli import checks as check
from planner.cli._model import add_data_args, add_model_args, add_quantizer_arg, model_from_args
from planner.cli.goal import add_goal_args, goal_from_args
from planner.config import DEFAULT_CLOUD, DEFAULT_RTT
from planner.errors import PlannerError
from planner.link import parse_bandwidth, parse_duration
from planner.runtime.options import ESTIMATORS, RUNTIMES, EdgeOptions


def _edge(name: str, **kw) -> dict:
    """argparse keywords of the flag for EdgeOptions field `name`: its rule as the type, its default."""
    return {"type": check.option(EdgeOptions, name), "default": check.default(EdgeOptions, name), **kw}


def register(sub) -> None:
    p = sub.add_parser("run", help="run test images through the planned edge/cloud split and measure every request")
    add_model_args(p)
    add_data_args(p)
    add_quantizer_arg(p)
    p.add_argument("--autoencoder", default=None, metavar="FILE|shared|independent|none",
                   help="autoencoder the edge encodes with (default: the zoo's committed one the edge profile names)")
    p.add_argument("--cloud", default=DEFAULT_CLOUD,
                   help=f"HOST:PORT of `planner serve`, or 'local' for a server in this process (default {DEFAULT_CLOUD})")
    p.add_argument("--bandwidth", type=check.checked(parse_bandwidth), default=None,
                   help="link bandwidth, e.g. 10mbit: the shaper's rate and the planner's starting estimate")
    p.add_argument("--rtt", type=check.checked(lambda t: parse_duration(t, allow_zero=True)), default=DEFAULT_RTT,
                   help=f"round-trip time the shaper adds and the planner assumes ({DEFAULT_RTT})")
    p.add_argument("--trace", default=None, help="shape the link by this bandwidth trace (file or shipped name) "
                                                 "instead of a constant rate; the planner is not told the trace")
    p.add_argument("--no-shape", action="store_true", help="do not emulate the link (a real network to --cloud)")
    p.add_argument("--n", type=check.int_at_least(1), default=500, help="samples to run (default 500)")
    p.add_argument("--offset", type=check.int_at_least(0), default=0, help="first sample (default 0)")
    p.add_argument("--edge", type=check.readable_file, default=None,
                   help="edge profile JSON (default: the committed one for --model)")
    p.add_argument("--cloud-profile", type=check.readable_file, default=None,
                   help="cloud profile JSON (default: the committed one)")
    p.add_argument("--edge-cpu-quota", **_edge("edge_cpu_quota"),
                   help="emulate a weak edge: run head+encode under this fraction of one core (root), "
                        "with the profile measured the same way")
    p.add_argument("--edge-runtime", choices=RUNTIMES, default=check.default(EdgeOptions, "edge_runtime"),
                   help="what runs head + encoder: PyTorch eager (default) or ONNX Runtime on the graphs of --onnx")
    p.add_argument("--onnx", default=None, metavar="DIR", help="export folder from `planner export`")
    p.add_argument("--edge-slowdown", **_edge("edge_slowdown"),
                   help="emulate a weak edge K times slower, deterministically (no root): every edge computation "
                        "of t is followed by a wait of (K-1)t, and the plan uses the profile scaled by K")
    p.add_argument("--plan", default=None, metavar="CANDIDATE",
                   help="pin one candidate instead of planning: edge-only, cloud-only (the input lossless), "
                        "cloud-only@jpeg90 / cloud-only@webp75 (the input as a JPEG/WebP at that quality), CUT@BITS "
                        "(the widest latent width), CUT@BITSwW (width W), CUT@qBITS (the raw quantizer), CUT@raw, "
                        "CUT@f16")
    p.add_argument("--no-calibrate", action="store_true",
                   help="plan on the profiles as they are (default: correct them online with what requests measure)")
    p.add_argument("--explore", **_edge("explore"),
                   help="share of requests that probe the other side's best candidate (default 0.05; 0: never)")
    p.add_argument("--max-loss", **_edge("max_loss"),
                   help=f"accuracy budget in percentage points (default {check.default(EdgeOptions, 'max_loss')})")
    add_goal_args(p, objectives=("mean", "energy", "cost"))
    p.add_argument("--estimator", choices=ESTIMATORS, default=check.default(EdgeOptions, "estimator"),
                   help="live bandwidth estimate (default harmonic mean of the last 5 transfers)")
    p.add_argument("--no-replan", action="store_true", help="plan once on the starting estimate (static baseline)")
    p.add_argument("--no-load-aware", action="store_true",
                   help="ignore the cloud's reported queueing delay when planning (default: add it to cloud candidates)")
    p.add_argument("--timeout", **_edge("timeout"),
                   help="least seconds to wait for the cloud per request")
    p.add_argument("--token", default=None, help="the server's shared token (default: $PLANNER_TOKEN)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls-ca", type=check.readable_file, default=None, metavar="FILE",
                     help="connect with TLS, trusting the server certificate signed by (or equal to) FILE")
    tls.add_argument("--tls", action="store_true", help="connect with TLS, trusting the system's CA store")
    p.add_argument("--no-strict-identity", action="store_true",
                   help="accept a server that does not announce its weights digest, autoencoder or quantizer "
                        "(default: refuse it; one that announces other ones is always refused)")
    p.add_argument("--threads", type=check.int_at_least(1), default=None,
                   help="torch threads (default: the edge profile's)")
    p.add_argument("--results", type=check.writable_file, default=None, metavar="FILE",
                   help="also write every request as JSON lines to FILE")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def _shaper(args):
    """The link emulation: a constant rate or a trace (Mbit/s), RTT split into two one-way delays."""
    from planner.link import TraceLink
    from planner.runtime.shaper import Shaper

    delay = parse_duration(args.rtt, allow_zero=True) / 2.0
    if args.trace:
        trace = TraceLink.load(args.trace, rtt=args.rtt)
        return Shaper(lambda t: float(trace.bandwidth_at(t * 1000.0)), delay_ms=delay), trace
    return Shaper(parse_bandwidth(args.bandwidth), delay_ms=delay), None


def _options(args) -> EdgeOptions:
    """The edge options the flags ask for, checked (with the flags' cross-checks) before anything loads."""
    import os

    from planner.runtime.client import parse_address
    from planner.runtime.tls import client_context

    if not args.bandwidth and not args.trace:
        raise PlannerError("give --bandwidth (e.g. 10mbit) or --trace")
    if args.cloud != "local":
        parse_address(args.cloud)
    if args.cloud == "local" and (args.tls_ca or args.tls):
        raise PlannerError("--tls and --tls-ca need --cloud HOST:PORT (the local server speaks plain TCP)")
    return EdgeOptions(max_loss=args.max_loss, token=args.token or os.environ.get("PLANNER_TOKEN"),
                       timeout=args.timeout, edge_cpu_quota=args.edge_cpu_quota, estimator=args.estimator,
                       replan=not args.no_replan, load_aware=not args.no_load_aware,
                       tls=client_context(args.tls_ca or args.tls or None), edge_slowdown=args.edge_slowdown,
                       calibrate=not args.no_calibrate, explore=args.explore, edge_runtime=args.edge_runtime,
                       onnx=args.onnx, plan=args.plan, autoencoder=args.autoencoder, quantizer=args.quantizer,
                       strict_identity=not args.no_strict_identity, objective=goal_from_args(args) or "mean")


def run(args) -> int:
    import torch

    from planner.execution.factory import edge_pipeline, profiles
    from planner.link import LiveEstimate
    from planner.runtime.edge import EdgeClient

    options = _options(args)
    loaded = model_from_args(args)
    edge_profile, cloud_profile = profiles(args.model, args.edge, args.cloud_profile, args.edge_cpu_quota)
    torch.set_num_threads(args.threads or int(edge_profile.device.get("threads") or 1))
    shaper, trace = (None, None) if args.no_shape else _shaper(args)
    start = args.bandwidth or (float(trace.bandwidth_at(0.0)) or trace.mean_bps)
    options = options.updated(link=LiveEstimate(parse_bandwidth(start), args.rtt, method=args.estimator))
    pipeline = edge_pipeline(loaded, edge_profile, options)
    x, y, metric = _samples(args, loaded, pipeline)
    server, address = None, args.cloud
    try:
        if args.cloud == "local":  # a server in this process, sharing the loaded model
            from planner.runtime.handlers import CloudHandler
            from planner.runtime.server import CloudServer

            server = CloudServer(CloudHandler(pipeline), port=0, token=options.token)
            address = f"127.0.0.1:{server.start_in_thread()}"
        with EdgeClient(pipeline, edge_profile, cloud_profile, cloud=address, shaper=shaper,
                        options=options) as client:
            report = client.run(x, y, progress=args.progress, start_index=args.offset)
            cloud = client.client
    finally:
        if server is not None:
            server.stop_thread()
    _print(args, report, metric, shaper, trace)
    if cloud.auth_failures and not cloud.answers:
        raise PlannerError(f"the cloud at {address} refused the token (AUTH: wrong or missing --token); no request "
                           f"was answered by it, {report.fallbacks} fell back to the edge")
    return 0


def _print(args, report, metric: str, shaper, trace) -> None:
    """The summary (text or --json) and the --results file."""
    link = report.link
    if shaper is not None:
        link["shaper"] = {"trace": trace.name} if trace else {"bandwidth_bps": parse_bandwidth(args.bandwidth)}
        link["shaper"]["rtt_ms"] = shaper.delay_s * 2000.0
    if args.results:
        _write_results(args.results, report)
    summary = report.to_dict()
    if metric == "agreement":  # no labels: the figure is top-1 agreement with the unsplit model
        summary["agreement"], summary["accuracy"] = summary["accuracy"], None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(report.format(metric))
        if args.results:
            print(f"wrote {args.results}", file=sys.stderr)


def _write_results(path: str, report) -> None:
    """Every request as one JSON line (with `energy_mj` when planning for energy)."""
    with open(path, "w") as f:
        for r in report.results:
            f.write(json.dumps(r.to_dict()) + "\n")


def _samples(args, loaded, pipeline):
    """The --data samples to run (Fashion-MNIST test for the zoo), their targets and the metric's name: labels
    and "accuracy", or the unsplit model's predictions and "agreement"."""
    from planner.cli._model import data_from_args
    from planner.evaluate import targets

    data = data_from_args(args, loaded, split="test")
    if args.offset + args.n > len(data):
        raise PlannerError(f"{data.source} has {len(data)} samples; --offset {args.offset} --n {args.n} is past it")
    sub = data.window(args.offset, args.n)
    return sub.raw, targets(pipeline.model, sub, pipeline.input_tensor), sub.metric
