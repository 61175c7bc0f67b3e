"""What the edge client believes about the world between requests: the link's bandwidth and the cloud's queue.

Torch-free; both are updated from what each exchange measured and read when the next request is planned.
"""

from __future__ import annotations

import time

from planner.link import ConstantLink, LiveEstimate, TraceLink, parse_bandwidth
from planner.rules import rule_of
from planner.runtime.options import EdgeOptions


def live_estimate(link, rtt=None, estimator: str = "harmonic") -> LiveEstimate:
    """The starting bandwidth estimate from a bandwidth, a constant/trace link or a LiveEstimate."""
    if isinstance(link, LiveEstimate):
        return link
    if isinstance(link, ConstantLink):
        return LiveEstimate(link.bandwidth_bps, link.rtt_ms if rtt is None else rtt, method=estimator)
    if isinstance(link, TraceLink):
        return LiveEstimate(float(link.bandwidth_at(0.0)) or link.mean_bps, link.rtt_ms if rtt is None else rtt,
                            method=estimator)
    return LiveEstimate(parse_bandwidth(link), "20ms" if rtt is None else rtt, method=estimator)


class QueueEstimate:
    """The cloud's queueing delay as this edge sees it: an EWMA of the queue waits the server reports, fading
    with `half_life_s` while no reply comes, so that an edge that moved off a saturated cloud tries it again
    once the estimate has faded (it would otherwise never learn that the queue drained)."""

    def __init__(self, alpha: float = 0.3, half_life_s: float = 2.0, clock=time.monotonic) -> None:
        rule_of(EdgeOptions, "queue_alpha").check("queue_alpha", alpha)
        rule_of(EdgeOptions, "queue_half_life_s").check("queue_half_life_s", half_life_s)
        self.alpha, self.half_life_s, self.clock = float(alpha), float(half_life_s), clock
        self.samples = 0
        self._ms, self._at = 0.0, clock()

    @property
    def ms(self) -> float:
        """The current estimate (ms), faded since the last sample."""
        return self._ms * 0.5 ** ((self.clock() - self._at) / self.half_life_s)

    def observe(self, queue_ms: float) -> None:
        self._ms = self.alpha * max(0.0, float(queue_ms)) + (1.0 - self.alpha) * self.ms
        self._at = self.clock()
        self.samples += 1
