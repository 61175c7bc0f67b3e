"""`planner demo`: the main job on a built-in model, with embedded defaults — the model and its shared
autoencoder, profiles of this machine (or the committed ones with --fast), plans for a slow and a fast link
with an emulated weak edge, then real runs through a local cloud server: measured vs predicted latency next to
edge-only and cloud-only."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from planner.errors import PlannerError
from planner.types import AutoencoderKind, CandidateKind, CandidateSpec

DEFAULT_LINKS = "1mbit/40ms,50mbit/10ms"


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole story on a built-in model: profile -> plan -> run (the main job)")
    p.add_argument("--model", default="resnet-fmnist", help="zoo model (default resnet-fmnist)")
    p.add_argument("--fast", action="store_true", help="use the committed profiles instead of profiling this machine")
    p.add_argument("--links", default=DEFAULT_LINKS, help=f"BANDWIDTH/RTT,... (default {DEFAULT_LINKS}); each link "
                                                          "runs --n inputs")
    p.add_argument("--edge-slowdown", type=float, default=8.0,
                   help="the weak edge, emulated deterministically: every edge computation takes K times as long "
                        "(default 8; 1 = this machine's core as it is)")
    p.add_argument("--edge-cpu-quota", type=float, default=0.0,
                   help="the weak edge emulated instead by a Linux CPU quota: this fraction of one core (root; "
                        "bursty for sub-ms work; default 0 = off)")
    p.add_argument("--n", type=int, default=100, help="held-out inputs run per link (default 100)")
    p.add_argument("--baseline-n", type=int, default=None,
                   help="of those, how many also run edge-only and cloud-only, interleaved (default: all --n)")
    p.add_argument("--max-loss", type=float, default=1.0, help="accuracy budget, percentage points (default 1.0)")
    p.add_argument("--profiles-dir", default=None, help="where to write this machine's profiles (default: a temp dir)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--remeasure-accuracy", action="store_true",
                   help="measure the accuracy table again (default: reuse the one the autoencoder's card carries "
                        "for the same model, autoencoder and data digests)")
    p.set_defaults(func=run)


def parse_links(text: str) -> list[tuple[str, str]]:
    """'0.3mbit/60ms,20mbit/20ms' -> [('0.3mbit', '60ms'), ('20mbit', '20ms')], units checked."""
    from planner.link import parse_bandwidth, parse_duration

    links = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        bw, sep, rtt = item.rpartition("/")
        if not sep:
            raise PlannerError(f"--links takes BANDWIDTH/RTT items, e.g. 0.3mbit/60ms, got {item!r}")
        parse_bandwidth(bw), parse_duration(rtt, allow_zero=True)
        links.append((bw, rtt))
    if not links:
        raise PlannerError("--links is empty")
    return links


def _quota(requested: float, slowdown: float = 1.0) -> tuple[float | None, str]:
    """The edge quota to use and a line saying so (a plain core when quotas are unavailable here)."""
    from planner.profile.quota import QuotaError, check_available

    if not requested:
        if slowdown != 1.0:
            return None, f"edge: a weak device emulated as {slowdown:g}x slower than one core (deterministic)"
        return None, "edge: one plain core (no quota)"
    try:
        check_available()
    except QuotaError as exc:
        return None, f"edge: one plain core; the weak-edge emulation is off here ({exc})"
    return requested, f"edge: a weak device emulated as {requested:g} of one core (Linux CPU quota)"


def _autoencoder(model: str):
    """(the committed shared autoencoder or None, its kind): a zoo model without one still runs, on its raw and raw
    quantizer candidates."""
    from planner.compress.zoo import load_autoencoder
    from planner.errors import CompressError

    try:
        return load_autoencoder(model, AutoencoderKind.SHARED), AutoencoderKind.SHARED
    except CompressError as exc:
        print(f"no shared autoencoder committed for {model} ({exc}): the raw feature and the raw quantizer are its "
              f"split candidates")
        return None, AutoencoderKind.NONE


def _profiles(args, quota: float | None):
    """(edge, cloud) Profiles: this machine's, measured now, or the committed ones (--fast)."""
    from planner.execution.factory import assemble, edge_pipeline
    from planner.profile.measure import ProfileSettings, profile_pipeline
    from planner.profile.schema import Profile
    from planner.profile.store import find_profiles

    if args.fast:
        e, c = find_profiles(args.model, quota=quota)
        print(f"committed profiles: {e.name}, {c.name}")
        return Profile.load(e), Profile.load(c)
    from planner.cli.profile import summary
    from planner.profile.store import ProfileKey

    out = Path(args.profiles_dir or tempfile.mkdtemp(prefix="planner-demo-"))
    pipeline = assemble(args.model, args.autoencoder)
    profiles = []
    for role, threads, q in (("edge", 1, quota), ("cloud", None, None)):
        t0 = time.perf_counter()
        prof = Profile.from_dict(profile_pipeline(pipeline, ProfileSettings(role=role, threads=threads, cpu_quota=q,
                                                                   remeasure_accuracy=args.remeasure_accuracy)))
        path = ProfileKey.of(args.model, role, prof.device["threads"], quota=q).path(out)
        prof.save(path)
        print(summary(prof))
        print(f"wrote {path} in {time.perf_counter() - t0:.0f} s\n")
        profiles.append(Profile.load(path))  # named by its file
    edge_pipeline(args.model, profiles[0])  # the profile's autoencoder is the one loaded
    return tuple(profiles)


def _median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _summary(report) -> dict:
    """Median measured / predicted ms and the count of one forced candidate's requests (fallbacks apart)."""
    ok = [r for r in report.results if r.error is None and not r.fallback]
    return {"measured_ms_median": _median(r.measured_ms for r in ok),
            "predicted_ms_median": _median(r.predicted_ms for r in ok), "n": len(ok),
            "prediction_error": report.prediction_error(skip=warm_up(len(report.results)))}


def warm_up(n: int) -> int:
    """Requests left out of the prediction error: the first tenth (at most 10) while calibration settles."""
    return min(10, n // 10)


def demo_data(model: str, n: int):
    """The held-out samples the demo runs (the model's built-in test set), their targets and the metric: labels
    and "accuracy", or the unsplit model's top-1 and "agreement" for unlabelled data."""
    from planner.datasets import load_data
    from planner.evaluate import targets
    from planner.modelspec import load_model

    loaded = load_model(model)
    data = load_data(None, loaded, split="test", limit=n)
    if len(data) < n:
        raise PlannerError(f"--n {n} is more than the {len(data)} held-out samples of {data.source}")
    return data.raw, targets(loaded.model, data, loaded.preprocess, 50), data.metric


def format_breakpoints(cs, rtts: list[float], max_loss: float) -> str:
    """Per RTT, the bandwidths at which the best candidate changes (the budget and the weak edge applied)."""
    from planner.link import format_bandwidth

    lines = []
    for rtt in rtts:
        points = cs.breakpoints(rtt=rtt, max_loss=max_loss)
        if not points:
            lines.append(f"RTT {rtt:g} ms: the same choice from 10 kbit/s to 10 Gbit/s")
            continue
        lines.append(f"RTT {rtt:g} ms: below {format_bandwidth(points[0].bandwidth_bps)} {points[0].below.label}")
        lines += [f"  from {format_bandwidth(b.bandwidth_bps)}: {b.above.label}" for b in points]
    return "\n".join(lines)


def _run_link(args, client, x, y, metric: str) -> dict:
    """The plan's requests with edge-only and cloud-only (its best format within the budget) interleaved on the
    same inputs, one after the other per input, so that all three see the same link and load."""
    plan = client.plan()
    ends = {"edge_only": CandidateSpec.edge_only(), "cloud_only": plan.best_of(CandidateKind.CLOUD_ONLY).spec}
    for spec in ends.values():
        client.infer(x[:1], choice=spec)  # warm-up, not counted
    planned, forced = [], {k: [] for k in ends}
    t0 = time.perf_counter()
    for k in range(len(x)):
        label = int(y[k])
        planned.append(client.infer(x[k:k + 1], index=k, label=label))
        for key, spec in ends.items():
            if k < args.baseline_n:
                forced[key].append(client.infer(x[k:k + 1], index=k, label=label, choice=spec))
    report = client.report(planned, time.perf_counter() - t0)
    print(report.format(metric))
    summary = report.to_dict()
    summary["prediction_error"] = report.prediction_error(skip=warm_up(len(x)))
    row = {"plan": summary["plans"][0]["label"] if summary["plans"] else "fallback",
           "plan_is_end": bool(summary["plans"]) and CandidateKind(summary["plans"][0]["kind"]).is_end,
           "plans": {p["label"]: p["count"] for p in summary["plans"]}, "metric": metric,
           "accuracy": summary["accuracy"], "measured_ms_median": summary["measured_ms_median"],
           "predicted_ms_median": summary["predicted_ms_median"], "prediction_error": summary["prediction_error"],
           "fallbacks": summary["fallbacks"], "errors": summary["errors"]}
    for key, spec in ends.items():
        row[key] = {"plan": spec.label, "sends": spec.fmt or "lossless", **_summary(client.report(forced[key]))}
    return row


def run_links(args, edge, cloud, quota, links) -> list[dict]:
    """Plan and run every link through one local cloud server (a child process, always stopped)."""
    import torch

    from planner.cli.plan import format_table
    from planner.execution.factory import edge_pipeline
    from planner.link import LiveEstimate, parse_bandwidth, parse_duration
    from planner.runtime.edge import EdgeClient
    from planner.runtime.local import ServerProcess
    from planner.runtime.shaper import Shaper

    torch.set_num_threads(1)
    x, y, metric = demo_data(args.model, args.n)
    pipeline = edge_pipeline(args.model, edge)
    rows = []
    with ServerProcess(args.model, args.autoencoder, threads=1) as server:
        print(f"local cloud server on {server.address} (pid {server.proc.pid})")
        for bw, rtt in links:
            bps, rtt_ms = parse_bandwidth(bw), parse_duration(rtt, allow_zero=True)
            with EdgeClient(pipeline, edge, cloud, cloud=server.address, link=LiveEstimate(bps, rtt_ms),
                            shaper=Shaper(bps, delay_ms=rtt_ms / 2.0), edge_cpu_quota=quota,
                            edge_slowdown=args.edge_slowdown,
                            max_loss=args.max_loss, timeout=10.0) as client:
                plan = client.plan()
                print(f"\n=== link {bw}, RTT {rtt}: plan ===")
                print(f"chosen: {plan.chosen.label}, predicted {plan.chosen.predicted_ms:.1f} ms, "
                      f"{metric} loss {plan.chosen.accuracy_loss:.2f} pp; {energy_line(client, plan)}")
                print(format_table(plan, 6))
                print(f"running {args.n} held-out inputs through the plan, edge-only and cloud-only "
                      f"({plan.best_of(CandidateKind.CLOUD_ONLY).label}) in turn ...")
                rows.append({"link": f"{bw}/{rtt}", **_run_link(args, client, x, y, metric)})
    print("local cloud server stopped")
    return rows


def energy_line(client, plan) -> str:
    """The chosen plan's edge energy per request on an LTE radio (docs/energy.md), and the energy-optimal one's."""
    from planner.energy import EnergyModel
    from planner.objectives import Goal

    lte = EnergyModel("lte")
    same = client.candidates.solve(client.estimate, max_loss=client.max_loss, goal=Goal("mean", energy=lte))
    best = client.candidates.solve(client.estimate, max_loss=client.max_loss, goal=Goal("energy", energy=lte))
    e = same.candidate(plan.spec)
    power = lte.power_of(client.edge_profile)
    return (f"energy {e.energy_mj:.1f} mJ per request on LTE (edge {power}; the energy-optimal plan: "
            f"{best.chosen.label}, {best.chosen.energy_mj:.1f} mJ, {best.chosen.predicted_ms:.1f} ms)")


def format_results(rows: list[dict]) -> str:
    """The side-by-side table: the planner's measured latency vs the two ends, from the same run; the speed-up
    against the better end only where the plan is not an end itself."""
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    metric = rows[0].get("metric", "accuracy") if rows else "accuracy"
    header = ("link", "plan (most used)", f"{metric} %", "measured ms", "predicted ms", "|pred-meas|/meas",
              "edge-only ms", "cloud-only ms", "cloud-only sends", "speed-up vs better end")
    table = [header]
    for r in rows:
        ends = [v for v in (r["edge_only"]["measured_ms_median"], r["cloud_only"]["measured_ms_median"]) if v]
        speed = min(ends) / r["measured_ms_median"] if ends and r["measured_ms_median"] else None
        err = r.get("prediction_error")
        table.append((r["link"], r["plan"], f(r["accuracy"]), f(r["measured_ms_median"]), f(r["predicted_ms_median"]),
                      "-" if err is None else f"{100 * err:.1f} %",
                      f(r["edge_only"]["measured_ms_median"]), f(r["cloud_only"]["measured_ms_median"]),
                      r["cloud_only"].get("sends", "lossless"),
                      "(plan is an end)" if r.get("plan_is_end") else "-" if speed is None else f"{speed:.2f}x"))
    widths = [max(len(str(t[k])) for t in table) for k in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(t, widths, strict=True)) for t in table)


def run(args) -> int:
    from planner import zoo
    from planner.cli import cuts as cuts_cmd

    args.baseline_n = args.n if args.baseline_n is None else args.baseline_n
    if args.n < 1 or not 1 <= args.baseline_n <= args.n:
        raise PlannerError(f"--n must be >= 1 and --baseline-n in 1..--n, got {args.n} and {args.baseline_n}")
    links = parse_links(args.links)
    start = time.perf_counter()
    model, info = zoo.load(args.model)
    accuracy = getattr(info, "test_accuracy", None)
    print(f"=== 1. model {args.model}: {sum(p.numel() for p in model.parameters()):,} parameters"
          + (f", test accuracy {accuracy}%" if accuracy is not None else "") + " ===")
    cuts_cmd.run(argparse.Namespace(model=args.model, weights=None, input_shape=None, json=False))
    ae, args.autoencoder = _autoencoder(args.model)
    if ae is not None:
        counts = ae.param_counts()
        print(f"shared autoencoder {ae.id}: {counts['total']:,} parameters serve {len(ae.cuts)} cuts "
              f"({', '.join(ae.cuts)}) at {', '.join(map(str, ae.bits))} bits")
    if not (args.edge_slowdown >= 1.0 and args.edge_cpu_quota >= 0):
        raise PlannerError(f"--edge-slowdown must be >= 1 and --edge-cpu-quota >= 0, got {args.edge_slowdown:g} "
                           f"and {args.edge_cpu_quota:g}")
    if args.edge_cpu_quota and args.edge_slowdown != 1.0:
        raise PlannerError("give one weak-edge emulation: --edge-slowdown K or --edge-cpu-quota F")
    quota, where = _quota(args.edge_cpu_quota, args.edge_slowdown)
    print(f"\n=== 2. profiles ({where}) ===")
    edge, cloud = _profiles(args, quota)
    from planner.link import parse_duration
    from planner.solve import prepare

    print(f"\n=== 3. where each choice wins (within {args.max_loss:g} pp, edge {args.edge_slowdown:g}x slower) ===")
    cs = prepare(edge, cloud, edge_slowdown=args.edge_slowdown)
    rtts = sorted({parse_duration(rtt, allow_zero=True) for _, rtt in links})
    print(format_breakpoints(cs, rtts, args.max_loss))
    print("\n=== 4. plan and run ===")
    rows = run_links(args, edge, cloud, quota, links)
    print(f"\n=== 5. results: {args.model}, {where}; {args.n} inputs per link, the ends measured on "
          f"{args.baseline_n} of them in the same run ===")
    print(format_results(rows))
    print(f"\ndone in {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "edge": where, "edge_profile": edge.name,
                                               "cloud_profile": cloud.name, "links": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
