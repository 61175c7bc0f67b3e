"""End to end over a shaped loopback link: the planner's choice vs edge-only, cloud-only, the best uncompressed
split and every (cut, bits) candidate (the measured oracle), for a plain and an emulated weak edge; then load
(concurrent clients) and fault (server killed mid-run, then restarted) runs.

    .venv/bin/python benchmarks/e2e.py [--quick] [--model resnet-fmnist] [--bandwidths 0.1,0.3,1,5,20,100]
        [--rtt 20ms] [--edges plain,q0.125] [--n 40] [--oracle-n 8] [--prune 3] [--load 16x200] [--out FILE]

The cloud server runs in a child process (`planner serve`'s handler, the cloud profile's thread count); the
edge runs here on one thread, under the CPU quota for the `qF` edge (root). Per (edge, bandwidth) the link is a
token bucket at that rate with RTT/2 delay each way, and:
- planner: `--n` requests, each planned on the live estimate (starting at the configured rate);
- every feasible candidate forced for `--oracle-n` requests (after one warm-up), medians: edge-only (b),
  cloud-only (c), the best measured raw float32 split (d, Neurosurgeon-style), and the measured oracle (e).
  Candidates predicted more than `--prune` times slower than the best prediction are not measured (they
  could only be the oracle if the model were off by that factor); (b), (c) and the best-predicted raw split
  are always measured. Candidates over the accuracy budget are not candidates.
Ratios compare medians from the same run. Profiles default to the committed ones (`profiles/`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL_BANDWIDTHS = "0.1,0.3,1,5,20,100"


# ------------------------------------------------------------------------------------------------ measuring

def med(xs) -> float | None:
    xs = list(xs)
    return float(statistics.median(xs)) if xs else None


def client_for(pipeline, edge, cloud, address, bw_bps, rtt_ms, quota, max_loss, **kw):
    from planner.link import LiveEstimate
    from planner.runtime.edge import EdgeClient
    from planner.runtime.shaper import Shaper

    return EdgeClient(pipeline, edge, cloud, cloud=address, link=LiveEstimate(bw_bps, rtt_ms),
                      shaper=Shaper(bw_bps, delay_ms=rtt_ms / 2.0), edge_cpu_quota=quota, max_loss=max_loss,
                      timeout=10.0, **kw)


def cloud_choice(client):
    """The best-predicted feasible candidate that uses the cloud: load and fault runs must reach the server even
    where the planner would stay on the edge."""
    plan = client.plan()
    cs, total = client.candidates, np.where(plan.columns["feasible"], plan.columns["total"], np.inf)
    i = min((i for i in range(len(cs)) if cs.specs[i].kind != "edge-only"), key=lambda i: total[i])
    return cs.specs[i]


def measure_candidate(client, images, i: int, n: int) -> dict:
    cs = client.candidates
    choice = cs.specs[i]
    client.infer(images[0:1], choice=choice)  # warm-up (connection, caches)
    rs = [client.infer(images[k:k + 1], index=k, choice=choice) for k in range(n)]
    ok = [r for r in rs if r.error is None and not r.fallback]
    return {"measured_ms": med(r.measured_ms for r in ok), "predicted_ms": med(r.predicted_ms for r in ok),
            "n": len(ok), "failed": len(rs) - len(ok)}


def run_setting(pipeline, edge, cloud, address, images, labels, bw_mbit, rtt_ms, quota, args) -> dict:
    """One (edge device, bandwidth): the planner, then every candidate worth measuring."""
    bw = bw_mbit * 1e6
    with client_for(pipeline, edge, cloud, address, bw, rtt_ms, quota, args.max_loss) as c:
        c.infer(images[0:1], index=0)  # connect + warm
        c.estimate = type(c.estimate)(bw, rtt_ms, method=c.estimate.method)
        report = c.run(images[:args.n], labels[:args.n])
    planner = report.to_dict()
    with client_for(pipeline, edge, cloud, address, bw, rtt_ms, quota, args.max_loss, replan=False) as c:
        plan = c.plan()
        cs, total, feasible = c.candidates, plan.columns["total"], plan.columns["feasible"]
        best_pred = float(np.min(np.where(feasible, total, np.inf)))
        raw = [i for i in range(len(cs)) if cs.specs[i].kind == "raw" and cs.specs[i].dtype == "float32"]
        must = {i for i in range(len(cs)) if cs.specs[i].kind in ("edge-only", "cloud-only")}
        if raw:
            must.add(min(raw, key=lambda i: total[i]))
        rows = []
        for i in range(len(cs)):
            label = plan.candidates[i].label
            row = {"label": label, "kind": cs.specs[i].kind, "cut": cs.specs[i].cut, "bits": cs.specs[i].bits, "dtype": cs.specs[i].dtype,
                   "predicted_ms": float(total[i]), "feasible": bool(feasible[i]), "accuracy_loss": float(cs.loss[i])}
            if not feasible[i] and i not in must:
                row["skipped"] = "over the accuracy budget"
            elif args.prune and total[i] > args.prune * best_pred and i not in must:
                row["skipped"] = f"predicted > {args.prune:g}x the best prediction"
            else:
                row.update(measure_candidate(c, images, i, args.oracle_n))
            rows.append(row)
    measured = [r for r in rows if r.get("measured_ms") is not None]
    oracle = min((r for r in measured if r["feasible"]), key=lambda r: r["measured_ms"])
    by_kind = {k: next(r for r in measured if r["kind"] == k) for k in ("edge-only", "cloud-only")}
    raw_rows = [r for r in measured if r["kind"] == "raw" and r["dtype"] == "float32"]
    best_raw = min(raw_rows, key=lambda r: r["measured_ms"]) if raw_rows else None
    p = planner["measured_ms_median"]

    def ratio(row):
        return None if row is None or not row.get("measured_ms") else round(p / row["measured_ms"], 3)

    return {"edge": "plain" if quota is None else f"q{quota:g}", "bandwidth_mbit": bw_mbit, "rtt_ms": rtt_ms,
            "planner": planner, "oracle": oracle, "edge_only": by_kind["edge-only"], "cloud_only": by_kind["cloud-only"],
            "best_raw": best_raw, "candidates": rows,
            "ratios": {"planner_vs_oracle": ratio(oracle), "planner_vs_edge_only": ratio(by_kind["edge-only"]),
                       "planner_vs_cloud_only": ratio(by_kind["cloud-only"]), "planner_vs_best_raw": ratio(best_raw),
                       "measured_vs_predicted": round(p / planner["predicted_ms_median"], 3)}}


def run_load(pipeline, edge, cloud, address, images, labels, clients: int, requests: int, bw_mbit: float,
             rtt_ms: float, max_loss: float) -> dict:
    """`clients` threads, each its own EdgeClient and link, `requests` each, all at once."""
    from planner.runtime.client import CloudClient

    edges = [client_for(pipeline, edge, cloud, address, bw_mbit * 1e6, rtt_ms, None, max_loss)
             for _ in range(clients)]
    reports: list = [None] * clients
    barrier = threading.Barrier(clients)
    choice = cloud_choice(edges[0])

    def work(k: int) -> None:
        barrier.wait()
        idx = [(k * requests + j) % len(images) for j in range(requests)]
        reports[k] = edges[k].run(images[idx], labels[idx], start_index=k * requests, choice=choice)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for e in edges:
        e.close()
    results = [r for rep in reports for r in rep.results]
    ms = [r.measured_ms for r in results if r.error is None]
    with CloudClient(address) as c:
        health = c.health()
    return {"clients": clients, "requests_each": requests, "bandwidth_mbit": bw_mbit, "choice": list(choice),
            "total": len(results),
            "answered": len(ms), "lost": clients * requests - len(ms), "errors": sum(r.error is not None for r in results),
            "fallbacks": sum(r.fallback for r in results), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "throughput_rps": len(ms) / wall, "wall_s": wall,
            "accuracy": 100.0 * float(np.mean([r.prediction == r.label for r in results])),
            "server": {k: health.get(k) for k in ("requests", "errors", "workers")}}


def run_fault(pipeline, edge, cloud, server, images, labels, bw_mbit, rtt_ms, max_loss,
              before: int, down_s: float, after: int) -> dict:
    """Kill the server (SIGKILL) from another thread while requests flow, restart it on the same port after
    `down_s`, and keep going until `after` requests were answered by the cloud again."""
    events: dict[str, float] = {}

    def outage() -> None:
        server.kill()
        events["killed"] = time.monotonic()
        time.sleep(down_s)
        events["restarting"] = time.monotonic()
        server.start()
        events["ready"] = time.monotonic()

    results, stamps, killer = [], [], None
    with client_for(pipeline, edge, cloud, server.address, bw_mbit * 1e6, rtt_ms, None, max_loss,
                    backoff_s=0.2, backoff_max_s=2.0) as c:
        choice = cloud_choice(c)
        k = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if k == before:
                killer = threading.Thread(target=outage)  # lands while requests are in flight
                killer.start()
            i = k % len(images)
            t = time.monotonic()
            results.append(c.infer(images[i:i + 1], index=k, label=int(labels[i]), choice=choice))
            stamps.append(t)
            k += 1
            if "ready" in events and sum(not r.fallback for r, s in zip(results, stamps, strict=True)
                                         if s > events["ready"]) >= after:
                break
            time.sleep(0.01)
    killer.join()
    killed, ready = events["killed"], events["ready"]
    during = [r for r, s in zip(results, stamps, strict=True) if killed <= s < events["restarting"]]
    resumed = [s for r, s in zip(results, stamps, strict=True) if s > ready and not r.fallback]
    return {"choice": list(choice), "requests": len(results), "lost": sum(r.error is not None for r in results),
            "fallbacks": sum(r.fallback for r in results), "during_outage": len(during),
            "during_outage_fallback": sum(r.fallback for r in during),
            "cloud_before_kill": sum(not r.fallback for r in results[:before]),
            "outage_s": round(ready - killed, 3), "restart_s": round(ready - events["restarting"], 3),
            "resumed_after_ready_s": round(resumed[0] - ready, 3) if resumed else None,
            "reasons": dict(Counter(re.sub(r"[\d.]+ s|:\d+", "", r.fallback_reason or "")[:80]
                                    for r in results if r.fallback))}


# ------------------------------------------------------------------------------------------------ reporting

def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def markdown(settings: list[dict], load: dict | None, fault: dict | None, header: str) -> str:
    lines = [header, "",
             "| edge | Mbit/s | planner choice (most used) | planner ms | predicted ms | meas/pred | oracle | oracle ms | "
             "planner/oracle | edge-only ms | cloud-only ms | best raw split | raw ms | vs edge | vs cloud | vs raw |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in settings:
        p, r = s["planner"], s["ratios"]
        choice = p["plans"][0]["label"] + (f" (+{len(p['plans']) - 1})" if len(p["plans"]) > 1 else "")
        raw = s["best_raw"]
        lines.append(f"| {s['edge']} | {s['bandwidth_mbit']:g} | {choice} | {fmt(p['measured_ms_median'])} | "
                     f"{fmt(p['predicted_ms_median'])} | {fmt(r['measured_vs_predicted'], 2)} | {s['oracle']['label']} | "
                     f"{fmt(s['oracle']['measured_ms'])} | {fmt(r['planner_vs_oracle'], 2)} | "
                     f"{fmt(s['edge_only']['measured_ms'])} | {fmt(s['cloud_only']['measured_ms'])} | "
                     f"{raw['label'] if raw else '-'} | {fmt(raw and raw['measured_ms'])} | "
                     f"{fmt(r['planner_vs_edge_only'], 2)} | {fmt(r['planner_vs_cloud_only'], 2)} | "
                     f"{fmt(r['planner_vs_best_raw'], 2)} |")
    if load:
        lines += ["", f"Load: {load['clients']} clients x {load['requests_each']} requests at {load['bandwidth_mbit']:g} "
                      f"Mbit/s each, forced to {load['choice'][:2]}: {load['answered']}/{load['total']} answered, lost {load['lost']}, fallbacks "
                      f"{load['fallbacks']}, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
                      f"{load['throughput_rps']:.0f} req/s, accuracy {load['accuracy']:.1f} %."]
    if fault:
        lines += ["", f"Fault: server SIGKILLed after {fault['cloud_before_kill']} cloud answers, back after "
                      f"{fault['outage_s']:.1f} s: {fault['requests']} requests, lost {fault['lost']}, "
                      f"{fault['during_outage_fallback']}/{fault['during_outage']} requests during the outage answered "
                      f"by fallback ({fault['fallbacks']} fallbacks in all), cloud answers resumed "
                      f"{fmt(fault['resumed_after_ready_s'], 2)} s after the server was ready again."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="reduced run: 2 bandwidths, fewer requests, small load")
    p.add_argument("--model", default="resnet-fmnist")
    p.add_argument("--bandwidths", default=None, help=f"Mbit/s, comma-separated (default {FULL_BANDWIDTHS})")
    p.add_argument("--rtt", default="20ms")
    p.add_argument("--edges", default="plain,q0.125", help="'plain' and/or 'qF' (CPU quota F, needs root)")
    p.add_argument("--edge-profile", default=None, help="plain edge profile (default: committed)")
    p.add_argument("--edge-q-profile", default=None, help="quota edge profile (default: committed)")
    p.add_argument("--cloud-profile", default=None, help="cloud profile (default: committed)")
    p.add_argument("--max-loss", type=float, default=1.0)
    p.add_argument("--n", type=int, default=None, help="planner requests per setting (default 40; quick 20)")
    p.add_argument("--oracle-n", type=int, default=None, help="requests per candidate (default 8; quick 4)")
    p.add_argument("--prune", type=float, default=None, help="skip candidates predicted this many times slower "
                                                             "than the best (default 3; quick 2; 0 = measure all)")
    p.add_argument("--load", default=None, help="CLIENTSxREQUESTS (default 16x200; quick 16x15; 0 = skip)")
    p.add_argument("--load-bandwidth", type=float, default=5.0, help="Mbit/s per load client (default 5)")
    p.add_argument("--no-fault", action="store_true", help="skip the fault run")
    p.add_argument("--pin", action="store_true", help="pin the edge to CPU 0 and the server to the other CPUs")
    p.add_argument("--server-threads", type=int, default=None, help="server torch threads (default: cloud profile's)")
    p.add_argument("--workers", type=int, default=2, help="server compute threads (default 2)")
    p.add_argument("--out", default=None, help="JSON results (default benchmarks/results/e2e[-quick].json)")
    args = p.parse_args()
    q = args.quick
    args.bandwidths = args.bandwidths or ("0.3,5" if q else FULL_BANDWIDTHS)
    args.n = args.n or (20 if q else 40)
    args.oracle_n = args.oracle_n or (4 if q else 8)
    args.prune = (2.0 if q else 3.0) if args.prune is None else args.prune
    load_spec = args.load or ("16x15" if q else "16x200")

    import torch

    from planner.data import load_arrays
    from planner.execution.factory import committed_kind, edge_pipeline
    from planner.link import parse_duration
    from planner.profile.schema import Profile
    from planner.profile.store import find_profiles
    from planner.runtime.local import ServerProcess

    rtt_ms = parse_duration(args.rtt, allow_zero=True)
    edges = []
    for name in args.edges.split(","):
        quota = None if name == "plain" else float(name.removeprefix("q"))
        explicit = args.edge_profile if quota is None else args.edge_q_profile
        if quota is not None:
            from planner.profile.quota import QuotaError, check_available

            try:
                check_available()
            except QuotaError as exc:
                print(f"skipping edge {name}: {exc}", file=sys.stderr)
                continue
        e_path, c_path = (explicit, args.cloud_profile) if explicit and args.cloud_profile else \
            find_profiles(args.model, quota=quota)
        edges.append((name, quota, Profile.load(explicit or e_path), Profile.load(args.cloud_profile or c_path)))
    if not edges:
        raise SystemExit("no edge device to run")
    cloud = edges[0][3]
    torch.set_num_threads(int(edges[0][2].device.get("threads") or 1))
    ncpu = len(os.sched_getaffinity(0))
    if args.pin and ncpu > 1:
        os.sched_setaffinity(0, {0})
    server = ServerProcess(args.model, committed_kind(args.model, cloud.autoencoder),
                           args.server_threads or int(cloud.device.get("threads") or 1), args.workers,
                           set(range(1, ncpu)) if args.pin and ncpu > 1 else None)
    server.start()
    print(f"server on {server.address}; edges {[e[0] for e in edges]}; bandwidths {args.bandwidths} Mbit/s; "
          f"rtt {rtt_ms:g} ms", file=sys.stderr)
    images, labels = load_arrays("test")
    pipeline = edge_pipeline(args.model, edges[0][2])
    out = {"model": args.model, "quick": q, "rtt_ms": rtt_ms, "settings": [], "load": None, "fault": None,
           "args": vars(args),
           "profiles": {e[0]: e[2].name for e in edges} | {"cloud": cloud.name}}
    try:
        for name, quota, edge, cl in edges:
            for bw in (float(b) for b in args.bandwidths.split(",")):
                t0 = time.perf_counter()
                s = run_setting(pipeline, edge, cl, server.address, images, labels, bw, rtt_ms, quota, args)
                out["settings"].append(s)
                print(f"{name} {bw:g} Mbit/s: planner {s['planner']['measured_ms_median']:.1f} ms "
                      f"(pred {s['planner']['predicted_ms_median']:.1f}), oracle {s['oracle']['label']} "
                      f"{s['oracle']['measured_ms']:.1f} ms, ratios {s['ratios']} [{time.perf_counter() - t0:.0f} s]",
                      file=sys.stderr)
        plain = next((e for e in edges if e[1] is None), edges[0])
        clients, _, requests = load_spec.partition("x")
        if int(clients) > 0:
            out["load"] = run_load(pipeline, plain[2], plain[3], server.address, images, labels, int(clients),
                                   int(requests), args.load_bandwidth, rtt_ms, args.max_loss)
            print(f"load: {out['load']}", file=sys.stderr)
        if not args.no_fault:
            out["fault"] = run_fault(pipeline, plain[2], plain[3], server, images, labels, args.load_bandwidth, rtt_ms,
                                     args.max_loss, before=10 if q else 30, down_s=2.0 if q else 4.0,
                                     after=5 if q else 20)
            print(f"fault: {out['fault']}", file=sys.stderr)
    finally:
        server.stop()
    path = Path(args.out or ROOT / "benchmarks" / "results" / f"e2e{'-quick' if q else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    cmd = "python benchmarks/e2e.py " + " ".join(sys.argv[1:])
    print(markdown(out["settings"], out["load"], out["fault"],
                   f"`{cmd}` ({args.model}, RTT {rtt_ms:g} ms, medians; ratios < 1 mean the planner is faster)"))
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
