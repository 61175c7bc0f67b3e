"""Load-aware planning: the cloud's queueing delay makes every candidate that uses the cloud dearer, so a saturated
cloud moves the plan to the edge; the edge learns the delay from the waits the server reports (no Ray needed)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_runtime_e2e import make_pipeline, make_profiles

from planner.errors import PlannerError, SolveError
from planner.link import ConstantLink
from planner.profile.synthetic import synthetic_pair
from planner.runtime.edge import EdgeClient, QueueEstimate
from planner.runtime.handlers import CloudHandler
from planner.runtime.server import CloudServer
from planner.solve import prepare


def test_queue_delay_shifts_a_synthetic_plan_to_the_edge():
    cs = prepare(*synthetic_pair(0, edge_ms=50.0, cloud_ms=1.0))
    link = ConstantLink(10e6, 5.0)
    idle = cs.solve(link)
    assert idle.kind != "edge-only"
    edge_only = cs.index("edge-only")
    margin = float(cs.edge_ms[edge_only]) - idle.predicted_ms  # what the cloud's best candidate saves now
    light = cs.solve(link, cloud_wait_ms=0.5 * margin)
    assert light.index == idle.index  # a constant wait keeps the order among the cloud candidates
    assert light.predicted_ms == pytest.approx(idle.predicted_ms + 0.5 * margin)
    assert light.breakdown["cloud_ms"] == pytest.approx(idle.breakdown["cloud_ms"] + 0.5 * margin)
    saturated = cs.solve(link, cloud_wait_ms=2.0 * margin)
    assert saturated.kind == "edge-only"
    assert saturated.predicted_ms == pytest.approx(float(cs.edge_ms[edge_only]))  # edge-only pays no wait
    remote = np.flatnonzero(cs.remote)
    totals = np.array([c.predicted_ms for c in saturated.candidates])
    np.testing.assert_allclose(totals[remote], np.array([c.predicted_ms for c in idle.candidates])[remote]
                               + 2.0 * margin)
    for bad in (-1.0, float("nan"), float("inf"), True, "5"):
        with pytest.raises(SolveError, match="queueing delay"):
            cs.solve(link, cloud_wait_ms=bad)


def test_queue_estimate_is_an_ewma_that_fades():
    now = [0.0]
    q = QueueEstimate(alpha=0.5, half_life_s=2.0, clock=lambda: now[0])
    assert q.ms == 0.0
    q.observe(100.0)
    q.observe(100.0)
    assert q.ms == pytest.approx(75.0)
    now[0] = 4.0  # two half-lives without a reply
    assert q.ms == pytest.approx(75.0 / 4)
    q.observe(0.0)
    assert q.ms == pytest.approx(75.0 / 8)
    with pytest.raises(PlannerError):
        QueueEstimate(alpha=0.0)


class QueuedHandler:
    """The model handler behind a queue: every request waits `queue_ms` and its reply reports it (as Ray's handler
    does). The wait is real: a server cannot report more waiting than the edge saw (`Reply.of` bounds it)."""

    def __init__(self, inner: CloudHandler, queue_ms: float) -> None:
        self.inner, self.model, self.queue_ms = inner, inner.model, queue_ms

    def infer(self, payload: bytes):
        time.sleep(self.queue_ms / 1000.0)
        scores, timings = self.inner.infer(payload)
        return scores, {**timings, "queue_ms": self.queue_ms}


@pytest.fixture(scope="module")
def setup():
    pipe = make_pipeline()
    raw = np.random.default_rng(0).integers(0, 256, size=(1, 28, 28), dtype=np.uint8)
    handler = QueuedHandler(CloudHandler(pipe), queue_ms=800.0)  # 0.3 x 800 (the EWMA's first step) > the 150 ms edge-only
    server = CloudServer(handler, port=0, workers=1)
    port = server.start_in_thread()
    yield pipe, raw, make_profiles(pipe, raw, edge_whole_ms=150.0), f"127.0.0.1:{port}"
    server.stop_thread()


@pytest.mark.parametrize("load_aware", [True, False])
def test_a_reported_queue_moves_the_edge_client_off_the_cloud(setup, load_aware):
    pipe, raw, profiles, address = setup
    with EdgeClient(pipe, *profiles, cloud=address, link="50mbit", rtt="1ms", timeout=3.0,
                    load_aware=load_aware, queue_half_life_s=0.05, calibrate=False, freshness_runs=0) as edge:
        first = edge.infer(raw)  # the cloud candidate depends on the live bandwidth estimate: any will do
        assert first.kind != "edge-only" and not first.fallback
        assert first.queue_wait_ms >= 800.0  # the handler's queue reaches the edge through the reply
        second = edge.infer(raw)
        assert (second.kind == "edge-only") == load_aware and not second.fallback
        time.sleep(0.6)  # twelve half-lives: the estimate fades and the edge tries the cloud again
        third = edge.infer(raw)
        assert third.kind != "edge-only" and not third.fallback


def test_the_queue_wait_reaches_the_solver_once():
    from planner.candidates import Adjust

    cs = prepare(*synthetic_pair(0, edge_ms=50.0, cloud_ms=1.0))
    link = ConstantLink(10e6, 5.0)
    by_arg = cs.solve(link, cloud_wait_ms=3.0)
    by_adjust = cs.solve(link, adjust=Adjust(cloud_wait_ms=3.0))
    assert by_arg.predicted_ms == pytest.approx(by_adjust.predicted_ms)
    with pytest.raises(SolveError, match="reaches the solver once"):
        cs.solve(link, cloud_wait_ms=3.0, adjust=Adjust(cloud_wait_ms=3.0))
