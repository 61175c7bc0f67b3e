"""Hostile clients and broken servers on loopback: the figures of issue 17, measured against `planner serve`.

    .venv/bin/python benchmarks/hostile.py [--quick] [--model resnet-fmnist] [--out FILE]

The server runs as a child process (`planner serve --token ...`, default limits) so that its RSS can be read
with psutil (sampled every 20 ms; growth = peak during the attack - RSS just before). Sections:
- batch bombs: a small INFER declaring a huge batch at an autoencoder cut (16,000 latents), at `input`
  (85,598 images) and at `output` (1.6 M score rows): time to the answer (an ERROR) and RSS growth;
- 20 unauthenticated HELLOs declaring 63 MiB bodies (the client streams them): RSS growth;
- trickling: N connections sending 1 byte of HELLO per 5 s (reconnecting when dropped) while an authenticated
  client sends one request every 0.1 s, on a kept-alive connection and on a fresh connection per request:
  the share served and the slowest answer;
- 16 threads each calling `planner.run()` at once, 3 rounds: returned, inputs answered;
- every kind of broken reply (`planner.runtime.broken.KINDS`): inputs answered, fallbacks flagged, exceptions.
Everything is bounded (fixed counts and durations) and loopback only. `--quick`: 100 trickling connections for
10 s instead of 300 for 40 s, 3 bomb repeats instead of 5.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hostile-bench-token"


# ------------------------------------------------------------------------------------------------ the server

class Server:
    """`planner serve` in a child process, with an RSS sampler."""

    def __init__(self, model: str, *flags: str) -> None:
        import psutil

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "planner", "serve", "--model", model, "--port",
                                      str(self.port), "--token", TOKEN, "--workers", "2", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        line = self.proc.stdout.readline()
        if "planner serve:" not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        self.ps = psutil.Process(self.proc.pid)
        self.address = f"127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def peak_during(self, fn) -> tuple[float, object]:
        """(RSS growth in MB: peak while fn runs - RSS before, fn's result)."""
        base, peak, stop = self.rss_mb(), [0.0], threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak[0] = max(peak[0], self.rss_mb())

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            out = fn()
            time.sleep(0.1)
        finally:
            stop.set()
            t.join()
        return max(0.0, peak[0] - base), out

    def alive(self) -> bool:
        from planner.runtime.client import CloudClient

        with CloudClient(self.address, token=TOKEN, timeout=5.0) as c:
            return c.health()["status"] == "ok"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------------------------------------------------ attacks

def bombs(ae_cut: str, latent: tuple[int, ...], bits: int) -> dict[str, bytes]:
    from planner.compress import codec

    return {f"{ae_cut} x16000 latents": codec.encode(np.zeros((16000, *latent), np.uint8), ae_cut, bits),
            "input x85598 images": codec.encode(np.zeros((85598, 28, 28), np.uint8), "input", mode="uint8",
                                                lossless="zlib"),
            "output x1.6M rows": codec.encode(np.zeros((1_600_000, 10), np.float32), "output", mode="float32",
                                              lossless="zlib")}


def run_bombs(server: Server, model: str, payloads: dict[str, bytes], repeats: int) -> list[dict]:
    from planner.runtime.client import CloudClient, CloudUnavailable, ServerError

    rows = []
    for name, payload in payloads.items():
        def attack(payload=payload):
            times, answers = [], []
            for _ in range(repeats):
                with CloudClient(server.address, token=TOKEN, timeout=120.0) as c:
                    t0 = time.perf_counter()
                    try:
                        c.infer(model, payload)
                        answers.append("RESULT")
                    except (ServerError, CloudUnavailable) as exc:
                        answers.append(getattr(exc, "code", None) and exc.code.name or "unavailable")
                    times.append(time.perf_counter() - t0)
            return times, answers

        growth, (times, answers) = server.peak_during(attack)
        rows.append({"bomb": name, "payload_bytes": len(payload), "answer": "/".join(sorted(set(answers))),
                     "median_s": statistics.median(times), "max_s": max(times), "rss_growth_mb": growth})
    return rows


def run_big_hellos(server: Server, n: int = 20, size: int = 63 * 2**20) -> dict:
    from planner.runtime import protocol as P

    chunk = b"\0" * (1 << 20)

    def one(result: list) -> None:
        sent = 0
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10.0) as s:
                s.sendall(P.pack_header(P.MsgType.HELLO, size))
                while sent < size:
                    s.sendall(chunk)
                    sent += len(chunk)
        except OSError:
            pass
        result.append(sent)

    def attack():
        sent: list[int] = []
        threads = [threading.Thread(target=one, args=(sent,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60.0)
        return sent

    growth, sent = server.peak_during(attack)
    return {"connections": n, "declared_mib": size / 2**20, "rss_growth_mb": growth,
            "body_mib_accepted_median": statistics.median(sent) / 2**20}


def _tricklers(port: int, n: int, stop: threading.Event, every_s: float, counts: dict) -> None:
    """n connections, each sending one byte of a HELLO every `every_s`, reopened when the server drops them."""
    socks: list[socket.socket | None] = [None] * n
    due = [0.0] * n
    while not stop.is_set():
        now = time.monotonic()
        for k in range(n):
            if due[k] > now:
                continue
            try:
                if socks[k] is None:
                    socks[k] = socket.create_connection(("127.0.0.1", port), timeout=1.0)
                    counts["opened"] += 1
                socks[k].send(b"P")
                due[k] = now + every_s
            except OSError:
                if socks[k] is not None:
                    socks[k].close()
                socks[k] = None
                due[k] = now + 0.05
            if stop.is_set():
                break
        stop.wait(0.01)
    for s in socks:
        if s is not None:
            s.close()


def run_trickle(server: Server, model: str, n: int, duration_s: float) -> dict:
    from planner.compress import codec
    from planner.runtime.client import CloudClient, CloudUnavailable, ServerError

    payload = codec.encode(np.zeros((1, 28, 28), np.uint8), "input", mode="uint8")
    stop, counts = threading.Event(), {"opened": 0}
    attacker = threading.Thread(target=_tricklers, args=(server.port, n, stop, 5.0, counts), daemon=True)
    attacker.start()
    time.sleep(min(3.0, duration_s / 4))  # let them settle in
    out = {}
    t_end = time.monotonic() + duration_s
    for mode in ("kept-alive", "fresh"):
        lat, served, sent = [], 0, 0
        keep = CloudClient(server.address, token=TOKEN, timeout=1.0, backoff_s=0.01, backoff_max_s=0.01)
        while time.monotonic() < t_end - (duration_s / 2 if mode == "kept-alive" else 0):
            c = keep if mode == "kept-alive" else CloudClient(server.address, token=TOKEN, timeout=1.0)
            t0 = time.perf_counter()
            sent += 1
            try:
                c.infer(model, payload)
                served += 1
                lat.append(time.perf_counter() - t0)
            except (CloudUnavailable, ServerError):
                pass
            if c is not keep:
                c.close()
            time.sleep(0.1)
        keep.close()
        out[mode] = {"requests": sent, "served": served, "served_pct": 100.0 * served / max(sent, 1),
                     "max_latency_s": max(lat) if lat else None, "median_latency_s": statistics.median(lat) if lat else None}
    stop.set()
    attacker.join(10.0)
    return {"connections": n, "duration_s": duration_s, "attacker_connects": counts["opened"], **out}


def run_threads(server: Server, model: str, images: np.ndarray, threads: int = 16, rounds: int = 3) -> list[dict]:
    import planner

    rows = []
    for _ in range(rounds):
        reports, failures = [None] * threads, []

        def work(k: int, reports=reports, failures=failures) -> None:
            try:
                reports[k] = planner.run(images, model, server.address, link="50mbit", rtt="1ms", token=TOKEN,
                                         timeout=10.0)
            except Exception as exc:  # noqa: BLE001 - counted and shown
                failures.append(f"{type(exc).__name__}: {exc}")

        ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join(300.0)
        done = [r for r in reports if r is not None]
        rows.append({"returned": len(done), "threads": threads, "inputs": len(images) * threads,
                     "answered": sum(len(r.answered) for r in done), "fallbacks": sum(r.fallbacks for r in done),
                     "exceptions": failures[:3], "wall_s": time.perf_counter() - t0})
    return rows


def run_broken(model: str, images: np.ndarray) -> list[dict]:
    from planner.execution.factory import edge_pipeline, profiles
    from planner.runtime.broken import KINDS, BrokenServer
    from planner.runtime.edge import EdgeClient

    rows, pipeline = [], edge_pipeline(model, profiles(model)[0])
    for kind in KINDS:
        with BrokenServer(kind, model, timeout_s=2.0, identity=pipeline.identity()) as bad:
            try:
                with EdgeClient(pipeline, cloud=bad.address, link="50mbit", rtt="1ms", timeout=0.5,
                                token=TOKEN, backoff_s=0.05, backoff_max_s=0.05) as client:
                    report = client.run(images, choice="cloud-only")
                rows.append({"kind": kind, "inputs": len(images), "answered": len(report.answered),
                             "fallbacks": report.fallbacks, "exception": None,
                             "reason": report.results[0].fallback_reason})
            except Exception as exc:  # noqa: BLE001 - the figure is that this never happens
                rows.append({"kind": kind, "inputs": len(images), "answered": 0, "fallbacks": 0,
                             "exception": f"{type(exc).__name__}: {exc}", "reason": None})
    return rows


# ------------------------------------------------------------------------------------------------ report

def markdown(out: dict) -> str:
    lines = ["| batch bomb | payload bytes | answer | median s | max s | server RSS growth MB |", "|---|---|---|---|---|---|"]
    lines += [f"| {b['bomb']} | {b['payload_bytes']} | {b['answer']} | {b['median_s']:.3f} | {b['max_s']:.3f} | "
              f"{b['rss_growth_mb']:.1f} |" for b in out["bombs"]]
    h = out["hellos"]
    lines += ["", f"{h['connections']} unauthenticated HELLOs declaring {h['declared_mib']:.0f} MiB: server RSS growth "
              f"{h['rss_growth_mb']:.1f} MB (median body accepted before the close: {h['body_mib_accepted_median']:.1f} MiB)"]
    t = out["trickle"]
    lines += ["", f"{t['connections']} trickling connections for {t['duration_s']:.0f} s "
              f"({t['attacker_connects']} connects in all):", "",
              "| authenticated client | requests | served % | median s | max s |", "|---|---|---|---|---|"]
    for mode in ("kept-alive", "fresh"):
        m = t[mode]
        lines.append(f"| {mode} connection | {m['requests']} | {m['served_pct']:.1f} | "
                     f"{m['median_latency_s'] or 0:.4f} | {m['max_latency_s'] or 0:.4f} |")
    lines += ["", "| round | planner.run() returned | inputs answered | fallbacks | exceptions | wall s |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {i + 1} | {r['returned']}/{r['threads']} | {r['answered']}/{r['inputs']} | {r['fallbacks']} | "
              f"{len(r['exceptions'])} | {r['wall_s']:.1f} |" for i, r in enumerate(out["threads"])]
    lines += ["", "| broken reply | answered | fallbacks | exception | reason (first input) |", "|---|---|---|---|---|"]
    lines += [f"| {b['kind']} | {b['answered']}/{b['inputs']} | {b['fallbacks']} | {b['exception'] or '-'} | "
              f"{(b['reason'] or '-')[:90]} |" for b in out["broken"]]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 trickling connections for 10 s, 3 bomb repeats")
    p.add_argument("--model", default="resnet-fmnist", help="zoo model to serve (default resnet-fmnist)")
    p.add_argument("--out", default=None, help="JSON results (default benchmarks/results/hostile[-quick].json)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from planner.execution.pipeline import SplitPipeline

    ae = SplitPipeline.from_zoo(args.model, "shared").ae
    cut = ae.cuts[0]
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    server = Server(args.model)
    try:
        out = {"model": args.model, "quick": args.quick, "server_rss_start_mb": server.rss_mb()}
        out["bombs"] = run_bombs(server, args.model, bombs(cut, tuple(ae.latent_shape(cut)), min(ae.bits)),
                                 3 if args.quick else 5)
        out["hellos"] = run_big_hellos(server)
        out["trickle"] = run_trickle(server, args.model, 100 if args.quick else 300, 10.0 if args.quick else 40.0)
        out["threads"] = run_threads(server, args.model, images)
        out["server_alive_after"] = server.alive()
        out["server_rss_end_mb"] = server.rss_mb()
    finally:
        server.close()
    out["broken"] = run_broken(args.model, images)
    text = markdown(out)
    print(text)
    print(f"\nserver RSS {out['server_rss_start_mb']:.0f} MB at start, {out['server_rss_end_mb']:.0f} MB at the end; "
          f"alive after every attack: {out['server_alive_after']}")
    path = Path(args.out or ROOT / "benchmarks" / "results" / f"hostile{'-quick' if args.quick else ''}.json")
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
