"""Dynamic batching in the cloud server: N concurrent edges against `planner serve` without and with batching.

Two real `planner serve` subprocesses hold the model (one with `--batch-delay-ms 0`, one batching); each is
measured in turn, side by side, for every concurrency, in alternating rounds (so a noisy shared machine hits both
alike). The edges are real `CloudClient`s over loopback (threads spread over a few client processes, so the
clients' own Python does not serialize on one interpreter); each sends a pre-encoded payload of one cut (a mid
cut by default) in a closed loop for a fixed time, and checks every reply against the unbatched answer computed
here (request id, shape, scores within 1e-3). Reported per run: throughput (requests/s), p50/p99 latency (ms, the
client's wall time), server CPU seconds per request (the server process's CPU time over the requests it
answered), lost replies, mismatches, and the server's median cloud time (`server_ms`), queue wait, batch wait and
batch size. With `--profile FILE` (a cloud profile measured with `--batch-sizes`) it also predicts the cloud time
under load (`planner.profile.batching.predict_cloud_ms`) and compares.

    nice -n 10 .venv/bin/python benchmarks/serving.py --quick                 # 1 and 8 clients, 3 s runs
    nice -n 10 .venv/bin/python benchmarks/serving.py --json benchmarks/results/serving.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve_proc import ServeProcess  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet-fmnist")
    p.add_argument("--candidate", default="relu_3@4", help="what every edge sends (CUT@BITS[wWIDTH]; default a mid cut)")
    p.add_argument("--clients", default="1,8,32,128", help="concurrent edges per run (comma-separated)")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each run (closed loop)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of (unbatched, batched) per concurrency")
    p.add_argument("--batch-delay-ms", type=float, default=None, help="the batching server's delay (default: serve's)")
    p.add_argument("--batch-max", type=int, default=None, help="the batching server's batch max (default: serve's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each server (OMP_NUM_THREADS; 1)")
    p.add_argument("--procs", type=int, default=4, help="client processes the edges are spread over (4)")
    p.add_argument("--profile", default=None, metavar="FILE", help="cloud profile with batch_ms: predict and compare")
    p.add_argument("--quick", action="store_true", help="1 and 8 clients, 3 s runs, 1 round")
    p.add_argument("--json", default=None, metavar="FILE", help="also write all figures as JSON to FILE")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.rounds = "1,8", 3.0, 1
    args.clients = [int(c) for c in args.clients.split(",")]
    return args


def Server(args, extra=(), name="server", startup_s: float = 300.0) -> ServeProcess:
    """`planner serve` of `args.model` on the CPU, limits raised for many edges (see benchmarks/_serve_proc.py)."""
    return ServeProcess(["--model", args.model, "--device", "cpu", "--max-connections", "512",
                         "--max-unauthenticated", "256", *extra], f"serving-{name}", threads=args.threads,
                        startup_s=startup_s)


def client_proc(address, model, payloads, expected, n_threads, start_at, stop_at, out_q) -> None:
    """One client process: `n_threads` CloudClients in a closed loop from start_at to stop_at (time.time())."""
    from planner.runtime.client import CloudClient

    rows: list = []
    lock = threading.Lock()

    def edge(k: int) -> None:
        payload, want = payloads[k % len(payloads)], expected[k % len(expected)]
        mine = []
        with CloudClient(address, timeout=30.0, backoff_s=0.05, backoff_max_s=0.2) as c:
            while True:  # many edges connecting at once: retry until this one is in (counted if never)
                try:
                    c.connect()
                    break
                except Exception:  # noqa: BLE001
                    if time.time() > start_at:
                        mine.append((time.time(), None, "not connected"))
                        break
                    time.sleep(0.05)
            time.sleep(max(0.0, start_at - time.time()))
            while time.time() < stop_at:
                t0 = time.time()
                try:
                    r = c.infer(model, payload, batch=want.shape[0], classes=tuple(want.shape[1:]))
                except Exception as exc:  # noqa: BLE001 - a lost reply, counted
                    mine.append((t0, None, type(exc).__name__))
                    continue
                ok = bool(np.allclose(r.scores, want, atol=1e-3, rtol=1e-3))
                mine.append((t0, time.time(), "" if ok else "mismatch", r.wall_ms, r.server_ms, r.queue_wait_ms,
                             r.batch_wait_ms or 0.0, r.batch_size, r.decode_ms + r.tail_ms))
        with lock:
            rows.extend(mine)

    threads = [threading.Thread(target=edge, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = time.process_time()
    for t in threads:
        t.join()
    out_q.put((rows, time.process_time() - cpu0))


def run_load(server: Server, args, clients: int, payloads, expected) -> dict:
    """`clients` concurrent edges for args.seconds; the run's figures."""
    ctx = mp.get_context("fork")
    out_q = ctx.Queue()
    procs = min(args.procs, clients)
    start_at = time.time() + 1.5 + 0.02 * clients  # every client connected first
    stop_at = start_at + args.seconds
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    offsets = np.cumsum([0] + shares[:-1])
    workers = [ctx.Process(target=client_proc, args=(server.address, args.model, payloads[o:] + payloads[:o],
                                                     expected[o:] + expected[:o], n, start_at, stop_at, out_q))
               for n, o in zip(shares, offsets, strict=True)]
    for w in workers:
        w.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = server.cpu_s()
    parts = [out_q.get(timeout=args.seconds + 120) for _ in workers]
    rows, client_cpu = [r for p in parts for r in p[0]], sum(p[1] for p in parts)
    cpu1 = server.cpu_s()
    for w in workers:
        w.join(30)
    done = [r for r in rows if r[1] is not None and r[1] <= stop_at + 30]
    good = [r for r in done if not r[2]]
    wall = np.array([r[3] for r in good]) if good else np.zeros(1)
    col = lambda i: float(np.median([r[i] for r in good])) if good else None  # noqa: E731
    finished_in_window = sum(1 for r in done if r[1] <= stop_at)
    return {"clients": clients, "requests": len(rows), "answered": len(good),
            "lost": sum(1 for r in rows if r[1] is None), "mismatched": sum(1 for r in done if r[2] == "mismatch"),
            "throughput_rps": round(finished_in_window / args.seconds, 1),
            "p50_ms": round(float(np.percentile(wall, 50)), 2), "p99_ms": round(float(np.percentile(wall, 99)), 2),
            "server_cpu_s_per_request": round((cpu1 - cpu0) / max(1, len(done)), 5),
            "client_cpu_s_per_request": round(client_cpu / max(1, len(done)), 5),
            "server_ms_median": _r(col(4)), "queue_wait_ms_median": _r(col(5)), "batch_wait_ms_median": _r(col(6)),
            "batch_size_median": _r(col(7)), "compute_ms_median": _r(col(8))}


def _r(v):
    return None if v is None else round(v, 3)


def make_payloads(args, n: int = 16):
    """n payloads of the candidate (one image each) and their unbatched answers."""
    from planner.datasets import fashion_mnist
    from planner.execution.pipeline import SplitPipeline
    from planner.runtime.handlers import CloudHandler
    from planner.types import CandidateSpec

    spec = CandidateSpec.parse(args.candidate)
    pipe = SplitPipeline.from_zoo(args.model)
    handler = CloudHandler(pipe)
    images = fashion_mnist("test").raw[:n]
    payloads = [pipe.edge_encode(images[i:i + 1], spec)[0] for i in range(n)]
    return payloads, [handler.infer(p)[0] for p in payloads]


def main(argv=None) -> int:
    args = parse_args(argv)
    payloads, expected = make_payloads(args)
    extra = [f"--batch-delay-ms={args.batch_delay_ms}"] if args.batch_delay_ms is not None else []
    extra += [f"--batch-max={args.batch_max}"] if args.batch_max is not None else []
    load_before = os.getloadavg()
    servers = {"unbatched": Server(args, ["--batch-delay-ms", "0"], "unbatched"),
               "batched": Server(args, extra, "batched")}
    runs: list = []
    try:
        for clients in args.clients:
            for rnd in range(args.rounds):
                order = ("unbatched", "batched") if rnd % 2 == 0 else ("batched", "unbatched")
                for mode in order:
                    row = {"mode": mode, "round": rnd, **run_load(servers[mode], args, clients, payloads, expected)}
                    runs.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        for s in servers.values():
            s.stop()
    out = {"command": "python benchmarks/serving.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "model": args.model, "candidate": args.candidate, "seconds": args.seconds, "rounds": args.rounds,
           "server_threads": args.threads, "cpus": os.cpu_count(),
           "load_avg_before": [round(v, 2) for v in load_before],
           "load_avg_after": [round(v, 2) for v in os.getloadavg()], "runs": runs,
           "summary": summarize(runs, args.clients)}
    if args.profile:
        out["prediction"] = predict(args, runs)
    print(json.dumps({k: out[k] for k in ("summary", "prediction") if k in out}, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def summarize(runs: list, clients: list[int]) -> list[dict]:
    """Per concurrency: the medians over rounds of each mode, and batched / unbatched ratios."""
    rows = []
    for n in clients:
        med = {}
        for mode in ("unbatched", "batched"):
            these = [r for r in runs if r["clients"] == n and r["mode"] == mode]
            med[mode] = {k: float(np.median([r[k] for r in these])) for k in
                         ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_s_per_request", "client_cpu_s_per_request",
                          "server_ms_median", "compute_ms_median")}
            med[mode]["lost"] = sum(r["lost"] for r in these)
            med[mode]["mismatched"] = sum(r["mismatched"] for r in these)
            med[mode]["batch_size_median"] = float(np.median([r["batch_size_median"] or 0 for r in these]))
        u, b = med["unbatched"], med["batched"]
        rows.append({"clients": n, **{f"{m}_{k}": v for m in med for k, v in med[m].items()},
                     "throughput_ratio": round(b["throughput_rps"] / max(u["throughput_rps"], 1e-9), 2),
                     "p99_ratio": round(b["p99_ms"] / max(u["p99_ms"], 1e-9), 2),
                     "cpu_per_request_ratio": round(b["server_cpu_s_per_request"]
                                                    / max(u["server_cpu_s_per_request"], 1e-9), 2)})
    return rows


def predict(args, runs: list) -> list[dict]:
    """The batched cloud profile's predictions of the cloud time (server_ms) per concurrency vs the measured one:
    from the concurrency alone, and from what the server reported (queue wait and batch size, as an edge sees)."""
    from planner.profile.batching import predict_cloud_ms
    from planner.profile.schema import Profile
    from planner.runtime.batching import BatchSettings
    from planner.types import CandidateSpec

    profile = Profile.load(args.profile)
    kw = {k: v for k, v in (("delay_ms", args.batch_delay_ms), ("max_inputs", args.batch_max)) if v is not None}
    settings = BatchSettings(**kw)
    cut = CandidateSpec.parse(args.candidate).cut
    out = []
    for n in args.clients:
        mine = [r for r in runs if r["clients"] == n and r["mode"] == "batched"]
        measured = float(np.median([r["server_ms_median"] for r in mine]))
        alone = predict_cloud_ms(profile, cut, concurrency=n, delay_ms=settings.delay_ms,
                                 max_inputs=settings.max_inputs, workers=os.cpu_count() or 1)
        live = predict_cloud_ms(profile, cut, queue_ms=float(np.median([r["queue_wait_ms_median"] for r in mine])),
                                batch=float(np.median([r["batch_size_median"] for r in mine])))
        out.append({"clients": n, "measured_ms": round(measured, 3), "predicted_from_concurrency_ms": round(alone, 3),
                    "error_from_concurrency": round(alone / measured - 1.0, 3),
                    "predicted_from_reports_ms": round(live, 3), "error_from_reports": round(live / measured - 1.0, 3)})
    return out


if __name__ == "__main__":
    sys.exit(main())
