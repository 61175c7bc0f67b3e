"""Kernel-shaped link vs the user-space token bucket: transfer times of a few payload sizes vs the configured rate.

Creates two network namespaces joined by a veth pair, shapes both directions with `tc` (netem
rate + delay; where the kernel lacks netem, tbf for the rate and no kernel delay, said so in the
output), runs a cloud server with a dummy handler in one namespace and a client in the other, and
measures the network part of each request (client wall time - server time). The same requests go
through the token-bucket `Shaper` on loopback, side by side, against the link model's prediction
`2 * delay + (request + reply bytes) * 8 / rate`.

    sudo .venv/bin/python benchmarks/netem.py [--rate-mbit 10] [--delay-ms 20] [--sizes 10000,100000,500000]

Needs root and iproute2 (`ip`, `tc`); exits 0 with a clear message otherwise. Uses only addresses
inside the namespaces it creates, and deletes them on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_IP, CLIENT_IP = "10.231.77.2", "10.231.77.1"
PORT = 7000


class Echo:
    """Dummy cloud handler: 10 class scores, no compute."""

    model = "netem-echo"

    def infer(self, payload: bytes):
        import numpy as np

        return np.zeros(10, np.float32), {"decode_ms": 0.0, "tail_ms": 0.0}


def serve(host: str, port: int) -> None:
    from planner.runtime.server import CloudServer

    CloudServer(Echo(), host=host, port=port, workers=1).serve_forever(
        on_ready=lambda p: print("ready", p, flush=True))


def measure(address: str, sizes: list[int], repeats: int, shaper=None) -> list[dict]:
    """Median network time per payload size through one kept-alive connection."""
    from planner.runtime.client import CloudClient

    rows = []
    with CloudClient(address, timeout=60.0, shaper=shaper) as client:
        client.connect()
        client.infer(Echo.model, b"w" * 1000)  # warm-up
        for size in sizes:
            replies = [client.infer(Echo.model, os.urandom(size)) for _ in range(repeats)]
            rows.append({"size": size, "request_bytes": replies[0].request_bytes,
                         "reply_bytes": replies[0].reply_bytes,
                         "network_ms": statistics.median(r.network_ms for r in replies),
                         "spread_ms": max(r.network_ms for r in replies) - min(r.network_ms for r in replies)})
    return rows


def measure_loopback(sizes: list[int], repeats: int, rate_bps: float, delay_ms: float) -> list[dict]:
    from planner.runtime.server import CloudServer
    from planner.runtime.shaper import Shaper

    server = CloudServer(Echo(), port=0, workers=1)
    port = server.start_in_thread()
    try:
        return measure(f"127.0.0.1:{port}", sizes, repeats, Shaper(rate_bps, delay_ms))
    finally:
        server.stop_thread()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


class Namespaces:
    """Two namespaces joined by a veth pair, shaped both ways; removed on exit."""

    def __init__(self, rate_mbit: float, delay_ms: float) -> None:
        tag = str(os.getpid())
        self.srv, self.cli = f"plnr-srv-{tag}", f"plnr-cli-{tag}"
        self.veth = (f"plv{tag}c"[:15], f"plv{tag}s"[:15])
        self.rate_mbit, self.delay_ms = rate_mbit, delay_ms
        self.kernel_delay = True

    def __enter__(self) -> Namespaces:
        try:
            sh("ip", "netns", "add", self.srv)
            sh("ip", "netns", "add", self.cli)
            sh("ip", "link", "add", self.veth[0], "netns", self.cli, "type", "veth",
               "peer", "name", self.veth[1], "netns", self.srv)
            for ns, dev, ip in ((self.cli, self.veth[0], CLIENT_IP), (self.srv, self.veth[1], SERVER_IP)):
                sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
                sh("ip", "-n", ns, "link", "set", dev, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                self._shape(ns, dev)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _shape(self, ns: str, dev: str) -> None:
        rate = f"{self.rate_mbit}mbit"
        netem = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem",
                   "rate", rate, "delay", f"{self.delay_ms}ms", "limit", "100000", check=False)
        if netem.returncode == 0:
            return
        self.kernel_delay = False
        sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
           "rate", rate, "burst", str(self._burst_bytes()), "latency", "2s")

    def _burst_bytes(self) -> int:
        """tbf's bucket: one full-size packet, or 4 ms of traffic on fast links (timer granularity)."""
        return max(1600, int(self.rate_mbit * 1e6 / 8 * 0.004))

    def exec(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def __exit__(self, *exc) -> None:
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "del", ns, check=False)


def kernel_rows(args, sizes: list[int]) -> tuple[list[dict], bool]:
    with Namespaces(args.rate_mbit, args.delay_ms) as net:
        server = subprocess.Popen([*net.exec(net.srv), sys.executable, __file__, "--serve", SERVER_IP],
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            line = server.stdout.readline()
            if not line.startswith("ready"):
                raise SystemExit(f"server in {net.srv} did not start: {line!r}")
            out = sh(*net.exec(net.cli), sys.executable, __file__, "--client", f"{SERVER_IP}:{PORT}",
                     "--sizes", ",".join(map(str, sizes)), "--repeats", str(args.repeats))
            return json.loads(out.stdout.strip().splitlines()[-1]), net.kernel_delay
        finally:
            server.terminate()
            server.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate-mbit", type=float, default=10.0)
    p.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay, each direction")
    p.add_argument("--sizes", default="10000,100000,500000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    p.add_argument("--serve", metavar="HOST", help=argparse.SUPPRESS)
    p.add_argument("--client", metavar="ADDR", help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.serve:
        serve(args.serve, PORT)
        return 0
    if args.client:
        print(json.dumps(measure(args.client, sizes, args.repeats)))
        return 0

    if os.geteuid() != 0:
        print("benchmarks/netem.py: SKIPPED: needs root to create network namespaces "
              "(run it with sudo, or use the token-bucket shaper tests instead)")
        return 0
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        print(f"benchmarks/netem.py: SKIPPED: {' and '.join(missing)} not found (apt-get install iproute2)")
        return 0

    rate_bps, delay_ms = args.rate_mbit * 1e6, args.delay_ms
    t0 = time.monotonic()
    kernel, kernel_delay = kernel_rows(args, sizes)
    shaped = measure_loopback(sizes, args.repeats, rate_bps, delay_ms)
    kernel_delay_ms = delay_ms if kernel_delay else 0.0
    print(f"link: {args.rate_mbit:g} Mbit/s each way, one-way delay {delay_ms:g} ms; median of {args.repeats}")
    if not kernel_delay:
        print("note: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM unset): the kernel link uses tbf for "
              "the rate and adds no delay; its prediction column uses delay 0")
    print(f"{'payload B':>10} {'kernel pred ms':>15} {'kernel ms':>10} {'ratio':>6}   "
          f"{'shaper pred ms':>15} {'shaper ms':>10} {'ratio':>6}")
    rows = []
    for k, s in zip(kernel, shaped, strict=True):
        bits = (k["request_bytes"] + k["reply_bytes"]) * 8
        kp = 2 * kernel_delay_ms + bits / rate_bps * 1000
        sp = 2 * delay_ms + bits / rate_bps * 1000
        print(f"{k['size']:>10} {kp:>15.1f} {k['network_ms']:>10.1f} {k['network_ms'] / kp:>6.2f}   "
              f"{sp:>15.1f} {s['network_ms']:>10.1f} {s['network_ms'] / sp:>6.2f}")
        rows.append({"size": k["size"], "kernel_predicted_ms": kp, "kernel_ms": k["network_ms"],
                     "shaper_predicted_ms": sp, "shaper_ms": s["network_ms"]})
    print(f"({time.monotonic() - t0:.1f} s)")
    if args.out:
        Path(args.out).write_text(json.dumps({"rate_mbit": args.rate_mbit, "delay_ms": delay_ms,
                                              "kernel_delay": kernel_delay, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
