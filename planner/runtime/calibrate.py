"""Online calibration: the edge client corrects its profiles with what each request measured.

Profiles go stale (other load, thermal limits, another machine of the same name, a new torch). Per request the
edge measures its own compute, the server reports its decode + tail, and the exchange's network time is the
wall time less the server's. `Calibration` keeps, per stage class, a robust running ratio measured / profiled
(edge compute, cloud compute) and an additive local overhead (planning and bookkeeping around the stages), and
the solver plans every candidate on the calibrated figures (`candidates.Adjust`). The link is learned apart (the
bandwidth estimate), from the network time less the RTT and the profiled per-exchange overhead; a sample that
says the link became far slower than believed is held back until a second one confirms it, so that one server
stall does not read as a collapsed link.

`Explorer` spends a small, bounded share of requests on the best candidate of the other side (remote when the
plan is edge-only, edge-only when it is remote), so a wrong estimate in either direction gets measured and
corrected, not only one that makes the current plan look better than it is. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from planner.candidates import Adjust
from planner.link import LiveEstimate
from planner.rules import rule_of
from planner.runtime.options import EdgeOptions

RATIO_RANGE = (0.05, 50.0)  # a single sample cannot move a ratio outside this


@dataclass
class Running:
    """An exponentially weighted running value of a stream of samples (`value` until the first sample).

    Robust to spikes: after the first few samples, one sample moves the value by at most `step` (a factor for
    ratios, `log` True; milliseconds otherwise), so a scheduling hiccup shifts it a little and a real change
    of level is tracked within a few requests."""

    value: float
    alpha: float = 0.2
    samples: int = 0
    lo: float = -math.inf
    hi: float = math.inf
    log: bool = False  # average the logarithm (ratios)
    step: float = 2.0  # the most one sample can move the value: x/÷ step (log), or +/- step ms
    free: int = 1  # the first samples move it freely (a wrong start is forgotten at once)

    def observe(self, sample: float) -> None:
        if not math.isfinite(sample):
            return
        sample = min(self.hi, max(self.lo, sample))
        if self.log:
            if sample <= 0:
                return
            x, current, step = math.log(sample), math.log(self.value), math.log(self.step)
        else:
            x, current, step = sample, self.value, self.step
        if self.samples >= self.free:
            x = min(current + step, max(current - step, x))
        a = max(self.alpha, 1.0 / (self.samples + 2))  # the first samples weigh more
        new = a * x + (1.0 - a) * current
        self.value = math.exp(new) if self.log else new
        self.samples += 1


@dataclass
class Calibration:
    """Measured / profiled ratios of edge and cloud compute and the additive local overhead, learned online."""

    alpha: float = 0.2
    edge_start: float = 1.0  # the ratio the edge starts from (the freshness check's measurement)
    exchange_ms: float = 0.0  # the profiled per-exchange overhead (beyond RTT and wire time)
    edge: Running = field(init=False)
    edge_input: Running = field(init=False)
    cloud: Running = field(init=False)
    local: Running = field(init=False)

    def __post_init__(self) -> None:
        rule_of(EdgeOptions, "calibration_alpha").check("calibration_alpha", self.alpha)
        lo, hi = RATIO_RANGE
        self.edge = Running(self.edge_start, self.alpha, lo=lo, hi=hi, log=True)
        self.edge_input = Running(1.0, self.alpha, lo=lo, hi=hi, log=True)
        self.cloud = Running(1.0, self.alpha, lo=lo, hi=hi, log=True)
        self.local = Running(0.0, self.alpha, lo=0.0, step=1.0, free=0)

    def adjust(self, cloud_wait_ms: float = 0.0) -> Adjust:
        """What the solver applies to every candidate now."""
        return Adjust(edge_scale=self.edge.value, cloud_scale=self.cloud.value, extra_ms=self.local.value,
                      cloud_wait_ms=cloud_wait_ms, input_scale=self.edge_input.value)

    def observe(self, *, edge_ms: float, profiled_edge_ms: float, measured_ms: float,
                server_ms: float | None = None, profiled_cloud_ms: float | None = None,
                network_ms: float = 0.0, queue_ms: float = 0.0, connect_ms: float = 0.0,
                edge_compute: bool = True) -> None:
        """One request: what its stages took (measured) against what the profiles said (uncalibrated); a new
        connection's set-up (`connect_ms`) is a one-off, not an overhead of every request. `edge_compute` False
        (cloud-only: the edge only encodes the input) puts the edge sample in the input-encoding ratio, apart
        from the model-compute one, which a few microseconds of codec would skew."""
        if profiled_edge_ms > 0:
            (self.edge if edge_compute else self.edge_input).observe(edge_ms / profiled_edge_ms)
        if server_ms is not None and profiled_cloud_ms:
            self.cloud.observe(server_ms / profiled_cloud_ms)
        self.local.observe(measured_ms - edge_ms - network_ms - (server_ms or 0.0) - queue_ms - connect_ms)

    def summary(self) -> dict:
        """Where the calibration moved each stage (JSON-ready)."""
        return {"edge_compute_x": round(self.edge.value, 4), "edge_samples": self.edge.samples,
                "input_encode_x": round(self.edge_input.value, 4),
                "cloud_compute_x": round(self.cloud.value, 4), "cloud_samples": self.cloud.samples,
                "local_overhead_ms": round(self.local.value, 4), "exchange_ms": round(self.exchange_ms, 4)}


def describe(summary: dict) -> str:
    """'edge compute x3.10 vs profile, cloud compute x0.92, local overhead +0.31 ms, exchange 1.20 ms'."""
    return (f"edge compute x{summary['edge_compute_x']:.2f} vs profile ({summary['edge_samples']} samples), "
            f"cloud compute x{summary['cloud_compute_x']:.2f} ({summary['cloud_samples']}), local overhead "
            f"+{summary['local_overhead_ms']:.2f} ms, per-exchange overhead {summary['exchange_ms']:.2f} ms "
            f"(profiled)")


class GuardedEstimate:
    """Feeds a LiveEstimate with transfers, holding back one sample that says the link is `drop` times slower
    than the estimate until the next sample confirms it (a server stall or a scheduling hiccup is not the link)."""

    def __init__(self, estimate: LiveEstimate, drop: float = 8.0) -> None:
        self.estimate, self.drop = estimate, float(drop)
        self._held: tuple[float, float] | None = None
        self.held_back = 0

    def observe(self, nbytes: float, elapsed_ms: float) -> None:
        if elapsed_ms <= 0:
            return
        implied = nbytes * 8000.0 / elapsed_ms
        if implied * self.drop < self.estimate.bandwidth_bps:
            if self._held is None:
                self._held = (nbytes, elapsed_ms)
                self.held_back += 1
                return
            self.estimate.observe(*self._held)  # confirmed: the link really slowed down
        self._held = None
        self.estimate.observe(nbytes, elapsed_ms)


@dataclass
class Explorer:
    """Every `1 / share`-th request (at most) is a probe of the other side's best candidate."""

    share: float = 0.05
    since: int = 0
    probes: int = 0

    def __post_init__(self) -> None:
        rule_of(EdgeOptions, "explore").check("explore", self.share)

    def due(self) -> bool:
        """Whether this request should probe (and count it)."""
        if self.share <= 0:
            return False
        self.since += 1
        if self.since * self.share >= 1.0:
            self.since = 0
            self.probes += 1
            return True
        return False
