"""One record per exchange: the client's typed Reply bounds the server's figures, one definition of wire time
feeds every estimate, and a Result keeps its CandidateSpec."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.runtime import protocol as P
from planner.runtime.client import Reply
from planner.runtime.handlers import CloudHandler
from planner.runtime.results import Result
from planner.runtime.server import CloudServer
from planner.types import CandidateSpec


def test_reply_bounds_the_servers_figures_by_what_the_edge_waited():
    scores = np.zeros((1, 10), np.float32)
    absurd = P.Scores(1, scores, queue_wait_ms=1e303, decode_ms=1e300, tail_ms=0.5, server_ms=2.0)
    r = Reply.of(absurd, wall_ms=12.0, connect_ms=0.0, request_bytes=100, reply_bytes=50)
    assert r.bounded and r.queue_wait_ms == 12.0 and r.decode_ms == 12.0 and r.server_ms == 12.0
    assert r.network_ms == 0.0 and r.held_ms == 0.0
    sane = Reply.of(P.Scores(1, scores, 1.0, 2.0, 3.0, 7.0), 20.0, 0.0, 100, 50)
    assert not sane.bounded and sane.network_ms == 13.0 and sane.compute_ms == 5.0 and sane.held_ms == 2.0
    assert sane.timings()["network_ms"] == sane.network_ms  # the one definition, in the JSON too


def test_result_keeps_its_spec():
    for spec in (CandidateSpec.split("relu_5", 4, 8), CandidateSpec.quant("relu_5", 2), CandidateSpec.raw("a", "float16"),
                 CandidateSpec.cloud_only(), CandidateSpec.edge_only()):
        r = Result.of(spec, index=0, prediction=1, label=1, predicted_ms=1.0, measured_ms=2.0)
        assert r.spec == spec and Result.from_dict(r.to_dict()).spec == spec
        assert r.to_dict()["kind"] == spec.kind.value  # the JSON keeps its flat fields


class Hostile(CloudHandler):
    """A server that says its queue wait was 1e300 ms and its decode 1e299 ms."""

    def infer(self, payload):
        scores, timings = super().infer(payload)
        return scores, {**timings, "queue_ms": 1e300, "decode_ms": 1e299}


def test_a_hostile_queue_wait_enters_no_estimate_as_such(tmp_path):
    from test_runtime_e2e import vgg_with_raw_profiles

    from planner.runtime.edge import EdgeClient

    vgg = vgg_with_raw_profiles(tmp_path)
    server = CloudServer(Hostile(vgg), port=0)
    address = f"127.0.0.1:{server.start_in_thread()}"
    images = np.zeros((4, 28, 28), np.uint8)
    try:
        with EdgeClient(vgg, tmp_path / "e.json", tmp_path / "c.json", cloud=address, link="50mbit", rtt="1ms",
                        calibrate=True, freshness_runs=0, explore=0.0) as edge:
            report = edge.run(images, choice="cloud-only")
            queue_ms, bandwidth = edge.queue.ms, edge.estimate.bandwidth_bps
            plan = edge.plan()
    finally:
        server.stop_thread()
    assert report.fallbacks == 0 and report.errors == 0
    for r in report.results:
        assert r.queue_wait_ms <= r.measured_ms and r.server_decode_ms <= r.measured_ms
    wall_max = max(r.measured_ms for r in report.results)
    assert 0.0 <= queue_ms <= wall_max and math.isfinite(bandwidth) and bandwidth > 0
    assert math.isfinite(plan.predicted_ms)


@pytest.mark.parametrize("field", ["queue_wait_ms", "server_ms"])
def test_protocol_still_refuses_non_finite_timings(field):
    with pytest.raises(P.ProtocolError):
        P.encode(P.Scores(1, np.zeros((1, 2), np.float32), **{field: math.inf}))
