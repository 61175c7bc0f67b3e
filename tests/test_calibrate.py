"""Online calibration (issue 14): robust running ratios, the bandwidth guard, exploration, the deterministic edge
slowdown, and an edge client that discovers a stale profile in either direction and recovers from a stall."""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import numpy as np
import pytest

from planner.candidates import Adjust
from planner.data import DEFAULT_ROOT
from planner.errors import PlannerError
from planner.link import LiveEstimate
from planner.runtime.calibrate import Calibration, Explorer, GuardedEstimate, Running
from planner.runtime.compute import Stretched
from planner.solve import prepare


def test_running_ratio_tracks_a_level_and_shrugs_off_a_spike():
    r = Running(1.0, alpha=0.2, log=True)
    for _ in range(30):
        r.observe(3.0)
    assert r.value == pytest.approx(3.0, rel=0.02)
    r.observe(300.0)  # one hiccup: moves the ratio by at most 2x, and the EWMA weight of it
    assert r.value < 3.0 * 2 ** 0.2 + 1e-9
    for _ in range(30):
        r.observe(0.5)  # a real change of level is followed
    assert r.value == pytest.approx(0.5, rel=0.05)
    r.observe(float("nan"))
    assert math.isfinite(r.value)


def test_calibration_learns_stage_ratios_and_the_local_overhead():
    cal = Calibration(alpha=0.3, exchange_ms=1.5)
    for _ in range(40):
        cal.observe(edge_ms=6.0, profiled_edge_ms=2.0, measured_ms=30.5, server_ms=4.0, profiled_cloud_ms=8.0,
                    network_ms=20.0)
    for _ in range(30):  # cloud-only: the input's encoding, a ratio of its own
        cal.observe(edge_ms=0.2, profiled_edge_ms=0.05, measured_ms=20.7, server_ms=4.0, profiled_cloud_ms=8.0,
                    network_ms=16.0, edge_compute=False)
    s = cal.summary()
    assert s["input_encode_x"] == pytest.approx(4.0, rel=0.01)
    assert s["edge_compute_x"] == pytest.approx(3.0, rel=0.01) and s["cloud_compute_x"] == pytest.approx(0.5, rel=0.01)
    assert s["local_overhead_ms"] == pytest.approx(0.5, abs=0.01) and s["exchange_ms"] == 1.5
    adjust = cal.adjust(cloud_wait_ms=2.0)
    assert (adjust.edge_scale, adjust.cloud_scale, adjust.cloud_wait_ms) == pytest.approx((3.0, 0.5, 2.0), rel=0.01)
    with pytest.raises(PlannerError):
        Calibration(alpha=0.0)


def test_adjust_scales_every_candidate_as_the_solver_plans():
    from planner.link import ConstantLink
    from planner.profile.synthetic import synthetic_pair

    edge, cloud = synthetic_pair(5, n_cuts=4, bits=(2, 4, 8))
    cs = prepare(edge, cloud)
    link = ConstantLink("5mbit", "10ms")
    plain = cs.solve(link)
    adjusted = cs.solve(link, adjust=Adjust(edge_scale=2.0, cloud_scale=0.5, extra_ms=1.0, input_scale=3.0))
    edge_ms = plain.columns["edge"] * np.where(cs.cloud_only, 3.0, 2.0) + 1.0  # cloud-only: the input's encoding
    cloud_ms = cs.compute_cloud_ms * 0.5 + np.where(cs.remote, cs.exchange_ms, 0.0)
    np.testing.assert_allclose(adjusted.columns["total"], edge_ms + plain.columns["transfer"] + cloud_ms)
    assert adjusted.index == int(np.argmin(np.where(adjusted.columns["feasible"], adjusted.columns["total"], np.inf)))
    with pytest.raises(PlannerError, match="edge_scale"):
        Adjust(edge_scale=float("nan"))


def test_guard_holds_one_collapsed_sample_until_a_second_confirms_it():
    est = LiveEstimate("10mbit", "5ms")
    guard = GuardedEstimate(est)
    guard.observe(12_500, 10.0)  # 10 Mbit/s: accepted
    stall = (12_500, 5000.0)  # 20 kbit/s: one server stall is not the link
    guard.observe(*stall)
    assert est.bandwidth_bps == pytest.approx(10e6, rel=0.01) and guard.held_back == 1
    guard.observe(12_500, 10.0)  # not confirmed: forgotten
    guard.observe(*stall)
    guard.observe(*stall)  # confirmed: the link did slow down
    assert est.observations == 4 and est.bandwidth_bps < 6e6  # both slow samples are in the estimate


def test_explorer_probes_a_bounded_share():
    ex = Explorer(share=0.05)
    assert sum(ex.due() for _ in range(200)) == 10
    assert not any(Explorer(share=0.0).due() for _ in range(100))
    with pytest.raises(PlannerError):
        Explorer(share=0.9)


def test_stretched_compute_takes_k_times_as_long():
    def work(ms):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < ms / 1000.0:
            pass
        return time.perf_counter() - t0  # what the computation itself took (preemption included)

    slow = Stretched(4.0)
    ratios = []
    for _ in range(7):
        t0 = time.perf_counter()
        inner = slow(work, 3.0)
        ratios.append((time.perf_counter() - t0) / inner)
    assert 3.95 <= min(ratios) <= 4.3  # K x the computation, whatever it took: sleep, then spin
    assert float(np.median(ratios)) <= 6.0  # a loaded machine wakes sleepers late
    with pytest.raises(PlannerError):
        Stretched(0.5)


def test_planning_slowdown_scales_a_profile_once():
    from planner.profile.synthetic import synthetic_pair
    from planner.runtime.edge import planning_slowdown

    edge, _ = synthetic_pair(1, n_cuts=2, bits=(4,))
    assert planning_slowdown(edge, 1.0) == 1.0 and planning_slowdown(edge, 8.0) == 8.0
    assert planning_slowdown(edge.scaled(3.0), 8.0) == 8.0  # a what-if scaling is not a slowdown
    made = dataclasses.replace(edge.scaled(8.0), settings={**edge.settings, "edge_slowdown": 8.0})
    assert planning_slowdown(made, 8.0) == 1.0  # profiled with --edge-slowdown 8 already


# ---------------------------------------------------------------------------- a real edge client and server

needs_data = pytest.mark.skipif(not DEFAULT_ROOT.exists(), reason="apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def setup():
    import torch

    from planner.data import load_arrays
    from planner.execution.pipeline import SplitPipeline
    from planner.profile.store import load_pair
    from planner.runtime.handlers import CloudHandler
    from planner.runtime.server import CloudServer

    torch.set_num_threads(1)
    pipe = SplitPipeline.from_zoo("resnet-fmnist", "shared")
    stall = threading.Event()

    class Stalling(CloudHandler):
        def infer(self, payload):
            if stall.is_set():
                stall.clear()
                time.sleep(1.0)  # the server stops for a second: not the link
            return super().infer(payload)

    server = CloudServer(Stalling(pipe), port=0, workers=1)
    port = server.start_in_thread()
    images, _ = load_arrays("test")
    yield pipe, load_pair("resnet-fmnist"), f"127.0.0.1:{port}", images, stall
    server.stop_thread()


def _client(setup, edge, cloud, **kw):
    from planner.runtime.edge import EdgeClient
    from planner.runtime.shaper import Shaper

    pipe, _, address, _, _ = setup
    opts = dict(cloud=address, link=LiveEstimate("2mbit", "20ms"), shaper=Shaper(2e6, delay_ms=10.0), timeout=5.0)
    return EdgeClient(pipe, edge, cloud, **{**opts, **kw})


@needs_data
def test_an_edge_profile_far_too_slow_is_discovered_by_exploration(setup):
    """The profile says the edge is 30x slower than it is: the plan starts remote; a probe measures the edge."""
    _, (edge, cloud), _, images, _ = setup
    with _client(setup, edge.scaled(30.0), cloud, freshness_runs=0, explore=0.05) as c:
        assert c.plan().spec.remote
        report = c.run(images[:60])
    tail = report.results[-15:]
    assert all(r.probe or not r.spec.remote for r in tail), [r.spec.arg for r in tail]
    assert report.calibration["edge_compute_x"] < 0.2  # learned: the edge is far faster than profiled
    assert sum(r.probe for r in report.results) == 3


@needs_data
def test_the_freshness_check_catches_a_stale_profile_at_start(setup):
    from planner.runtime.edge import StaleProfileWarning

    _, (edge, cloud), _, _, _ = setup
    with pytest.warns(StaleProfileWarning, match=r"predicts the whole model at .* measured here"):
        c = _client(setup, edge.scaled(30.0), cloud)
    with c:
        assert c.freshness["stale"] and c.freshness["ratio"] < 0.2
        assert not c.plan().spec.remote  # calibrated from the measured ratio before the first request


@needs_data
def test_an_edge_slower_than_profiled_is_learned_from_its_own_requests(setup):
    """The edge is stretched 16x but the profile is not told: edge-only requests measure it, the plan moves."""
    _, (edge, cloud), _, images, _ = setup
    with _client(setup, edge.scaled(1 / 16), cloud, edge_slowdown=16.0, freshness_runs=0, explore=0.0) as c:
        assert not c.plan().spec.remote
        report = c.run(images[:20])
    assert report.calibration["edge_compute_x"] > 4
    assert report.results[-1].spec.remote


@needs_data
def test_a_server_stall_does_not_collapse_the_bandwidth_estimate(setup):
    _, (edge, cloud), _, images, stall = setup
    with _client(setup, edge, cloud, edge_slowdown=30.0, freshness_runs=0, explore=0.0) as c:
        first = c.run(images[:5])
        assert all(r.spec.remote for r in first.results)
        before = c.estimate.bandwidth_bps
        stall.set()
        after = c.run(images[5:15])
    assert after.results[0].measured_ms > 900  # the stalled request
    assert all(r.spec.remote and not r.fallback for r in after.results)
    stalled_bps = (after.results[0].request_bytes + after.results[0].reply_bytes) * 8 / 1.0  # ~5 kbit/s
    assert c.estimate.bandwidth_bps > 20 * stalled_bps, (before, c.estimate)
    # the stall is the server's time, not the wire's: the one wire time (wall - server_ms) leaves it out
    assert after.results[0].transfer_ms < 0.5 * after.results[0].measured_ms


def test_profile_warns_when_the_machine_was_busy():
    from planner.cli.profile import busy_warning
    from planner.profile.synthetic import synthetic_pair

    edge, _ = synthetic_pair(2, n_cuts=2, bits=(4,))
    quiet = dataclasses.replace(edge, settings={**edge.settings, "load_avg": {"before": [0.3, 0.2, 0.1],
                                                                             "after": [1.9, 0.4, 0.2]}})
    busy = dataclasses.replace(edge, settings={**edge.settings, "load_avg": {"before": [3.9, 3.0, 2.0],
                                                                            "after": [4.1, 3.1, 2.0]}})
    assert int(edge.device.get("threads") or 1) == 1
    assert busy_warning(quiet) is None  # 1.9 after: the profiler's own accuracy pass
    assert "busy when profiling started (1-minute load average 3.90" in busy_warning(busy)


@pytest.mark.parametrize("argv, message", [
    (["--edge-slowdown", "0.5"], "edge_slowdown must be a finite number >= 1"),
    (["--explore", "0.9"], "explore must be a finite number in [0, 0.5]"),
    (["--plan", "relu_5@many"], "is not a candidate"),
])
def test_run_rejects_bad_calibration_flags_before_any_work(argv, message, capsys):
    from planner.cli import main

    try:
        rc = main(["run", "--model", "resnet-fmnist", "--bandwidth", "1mbit", *argv])
    except SystemExit as exc:  # refused by the flag's own rule, while parsing
        rc = exc.code
    assert rc == 2
    assert message in capsys.readouterr().err
