"""Scale-out of the cloud half: concurrent edge clients against `planner serve` with the asyncio backend and with
Ray Serve (1 and 2 replicas), then the plan mix with load-aware planning on vs off under saturation.

Part 1 forces cloud-only (the cloud runs the whole model) and reports throughput, p50/p99 and lost requests per
backend. Part 2 lets every client plan (weak edges: the profile's edge side scaled by --edge-slowdown, and their
compute held to 1/slowdown of a core when a CPU quota is available) against one Ray replica: without load-aware
planning they all queue at the cloud; with it they move work to the edge while the reported queue is long.
Each server is a real `planner serve` subprocess; the clients are threads of this process (one EdgeClient and
connection each). Everything shares this machine's cores: on a small machine the figures bound what one box can
show, not what a cluster would.

    nice -n 19 .venv/bin/python benchmarks/scale.py --quick   # 8 clients x 20 requests
    .venv/bin/python benchmarks/scale.py                      # 32 clients x 200 requests (a free machine)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve_proc import ServeProcess  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet-fmnist")
    p.add_argument("--autoencoder", default="none", choices=("none", "shared", "independent"),
                   help="autoencoder of the candidates (default none: raw features, no trained weights needed)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=200, help="requests per client")
    p.add_argument("--quick", action="store_true", help="8 clients x 20 requests (overrides --clients/--requests)")
    p.add_argument("--replicas", default="1,2", help="Ray replica counts to compare (default 1,2)")
    p.add_argument("--edge-slowdown", type=float, default=8.0, help="edge devices this many times slower (8)")
    p.add_argument("--no-quota", action="store_true", help="do not hold edge compute to a CPU quota")
    p.add_argument("--link", default="100mbit", help="starting bandwidth estimate (loopback, unshaped)")
    p.add_argument("--rtt", default="1ms")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds an edge waits for the cloud per request")
    p.add_argument("--json", default=None, metavar="FILE", help="also write all figures as JSON to FILE")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.requests = 8, 20
    args.replicas = [int(r) for r in args.replicas.split(",")]
    return args


def Server(args, backend: str, replicas: int = 1, startup_s: float = 600.0, extra=()) -> ServeProcess:
    """`planner serve` of `args.model` on `backend` with `replicas` replicas (Ray) or workers (asyncio)."""
    more = ["--replicas", str(replicas)] if backend == "ray" else ["--workers", str(replicas)]
    return ServeProcess(["--model", args.model, "--autoencoder", args.autoencoder, "--backend", backend, *extra,
                         *more], f"scale-{backend}-{replicas}", startup_s=startup_s, what=f"{backend} server",
                        stop_s=120.0)


def run_clients(args, pipe, profiles, address, images, labels, *, choice=None, load_aware=True, quota=None) -> dict:
    """args.clients EdgeClients in threads, args.requests each, started together; the summary of all requests."""
    from planner.runtime.edge import EdgeClient

    reports: list = [None] * args.clients
    start = threading.Barrier(args.clients + 1)

    def client(k: int) -> None:
        idx = (np.arange(args.requests) + k * args.requests) % len(images)
        with EdgeClient(pipe, *profiles, cloud=address, link=args.link, rtt=args.rtt, timeout=args.timeout,
                        load_aware=load_aware, edge_cpu_quota=quota) as edge:
            start.wait()
            reports[k] = edge.run(images[idx], labels[idx], choice=choice)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return summarize([r for rep in reports if rep for r in rep.results], args.clients * args.requests,
                     time.perf_counter() - t0)


def summarize(results, expected: int, wall_s: float) -> dict:
    answered = [r for r in results if r.error is None]
    ms = np.array([r.measured_ms for r in answered])
    cloud = [r for r in answered if not r.fallback and r.kind != "edge-only"]
    mix = Counter("fallback" if r.fallback else r.label_text for r in answered)
    return {"requests": expected, "answered": len(answered), "lost": expected - len(answered),
            "fallbacks": sum(r.fallback for r in results), "wall_s": round(wall_s, 2),
            "throughput_rps": round(len(answered) / wall_s, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "queue_wait_ms_median": round(float(np.median([r.queue_wait_ms for r in cloud])), 1) if cloud else None,
            "transfer_ms_median": round(float(np.median([r.transfer_ms for r in cloud])), 1) if cloud else None,
            "accuracy": round(100.0 * np.mean([r.correct for r in answered]), 2),
            "plan_mix": dict(mix.most_common())}


def measure_profile(pipe):
    """A quick 1-thread profile of this machine, both sides: the cloud's as is, the weak edges' once scaled."""
    from planner.profile.measure import ProfileSettings, profile_pipeline
    from planner.profile.schema import Profile

    settings = ProfileSettings(role="both", threads=1, repeats=5, max_seconds=0.1, payload_samples=50,
                               accuracy_limit=1000)
    return Profile.from_dict(profile_pipeline(pipe, settings, progress=False))


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from planner.data import load_arrays
    from planner.execution.pipeline import SplitPipeline
    from planner.profile.quota import QuotaError, check_available

    torch.set_num_threads(1)
    pipe = SplitPipeline.from_zoo(args.model, None if args.autoencoder == "none" else args.autoencoder)
    for c in pipe.cuts:
        if not c.trivial:
            pipe.split(c.id)
    images, labels = load_arrays("test")
    cloud = measure_profile(pipe)
    edge = cloud.scaled(args.edge_slowdown)
    quota = None
    if not args.no_quota:
        try:
            check_available()
            quota = 1.0 / args.edge_slowdown
        except QuotaError as exc:
            print(f"no CPU quota for the edges ({exc}): they compute at full speed", file=sys.stderr)
    n = f"{args.clients} clients x {args.requests} requests"
    out = {"machine": {"cpus": os.cpu_count()}, "clients": args.clients, "requests": args.requests,
           "model": args.model, "autoencoder": args.autoencoder, "edge_slowdown": args.edge_slowdown,
           "edge_quota": quota, "whole_model_ms": {"cloud": cloud.whole_model_ms.median,
                                                   "edge": edge.whole_model_ms.median},
           "serving": {}, "load_aware": {}}
    print(f"{args.model}: whole model {cloud.whole_model_ms.median:.2f} ms here (1 thread), edges "
          f"{args.edge_slowdown:g}x slower; {n}; {os.cpu_count()} CPUs", flush=True)
    for backend, replicas in [("asyncio", 1)] + [("ray", r) for r in args.replicas]:
        name = f"{backend} x{replicas}"
        server = Server(args, backend, replicas)
        try:
            out["serving"][name] = s = run_clients(args, pipe, (edge, cloud), server.address, images, labels,
                                                   choice="cloud-only")
            print(f"serving  {name:10s} {s['throughput_rps']:7.1f} req/s  p50 {s['p50_ms']:7.1f} ms  "
                  f"p99 {s['p99_ms']:7.1f} ms  queue {s['queue_wait_ms_median']} ms  transfer "
                  f"{s['transfer_ms_median']} ms  lost {s['lost']}  fallbacks {s['fallbacks']}", flush=True)
            if backend == "ray" and replicas == min(args.replicas):
                for aware in (False, True):
                    key = f"load-aware {'on' if aware else 'off'}"
                    out["load_aware"][key] = s = run_clients(args, pipe, (edge, cloud), server.address, images,
                                                             labels, load_aware=aware, quota=quota)
                    print(f"planning {key:14s} (ray x{replicas}) {s['throughput_rps']:7.1f} req/s  p50 "
                          f"{s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms  queue {s['queue_wait_ms_median']} ms  "
                          f"transfer {s['transfer_ms_median']} ms  lost {s['lost']}  mix {s['plan_mix']}", flush=True)
        finally:
            server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
