"""The runtime end to end: a real CloudServer with the model handler on an ephemeral loopback port, the
EdgeClient planning, running and measuring each request, fallback when the cloud fails, re-planning on a
bandwidth drop, and `planner run`.

A tiny untrained CNN with an untrained shared autoencoder keeps this fast; profiles are written by hand
for it (true payload sizes, chosen timings) so that the planner's choices are known in advance.
"""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
import torch
from torch import nn

from planner.compress.aeconfig import AEConfig
from planner.compress.autoencoder import build_autoencoder
from planner.compress.clipquant import RawQuantizer
from planner.compress.cutselect import select_cuts
from planner.compress.zoo import load_autoencoder
from planner.data import normalize
from planner.errors import CompressError, ProfileError
from planner.execution.pipeline import SplitPipeline
from planner.link import LiveEstimate, TraceLink
from planner.profile.schema import BitsEntry, CutProfile, InputProfile, Profile, RawFormat
from planner.profile.store import find_profiles
from planner.profile.timing import Timing
from planner.runtime.client import CloudClient, ServerError
from planner.runtime.edge import EdgeClient, Result, RunReport
from planner.runtime.handlers import CloudHandler, committed_kind
from planner.runtime.server import CloudServer
from planner.runtime.shaper import Shaper
from planner.types import CandidateSpec

BITS = (2, 8)
AE_CUTS = ["pool1", "pool2"]


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.flatten, self.fc = nn.Flatten(), nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        return self.fc(self.flatten(self.pool2(self.relu2(self.conv2(x)))))


def make_pipeline() -> SplitPipeline:
    torch.manual_seed(0)
    pipe = SplitPipeline(Tiny(), "tiny", (1, 28, 28), None, preprocess=normalize)
    config = AEConfig.for_cuts(select_cuts(pipe.cuts, AE_CUTS), bits=BITS, extra={"model": "tiny"})
    pipe.ae = build_autoencoder(config).eval()
    pipe.ae.id = "tiny/shared@test"
    x = pipe.input_tensor(np.random.default_rng(1).integers(0, 256, size=(32, 28, 28), dtype=np.uint8))
    with torch.inference_mode():
        feats = {c: pipe.split(c)[0](x) for c in AE_CUTS}
    pipe.quantizer = RawQuantizer.calibrate(feats, BITS, {"model": "tiny"})
    pipe.quantizer.id = "tiny/quant@test"
    return pipe


def _t(ms: float) -> Timing:
    return Timing(median=float(ms), iqr=0.0, n=1, p10=float(ms), p90=float(ms))


def make_profiles(pipe: SplitPipeline, sample: np.ndarray, *, compute_ms: float = 0.3, bits_decode_ms: float = 20.0,
                  edge_whole_ms: float = 1000.0) -> tuple[Profile, Profile]:
    """Hand-made (edge, cloud) profiles of `pipe`: true payload sizes, every stage `compute_ms`, except a slow
    edge-only (`edge_whole_ms`) and a slow autoencoder decode (`bits_decode_ms`), so that a fast link picks
    cloud-only and a slow one the smallest autoencoder payload."""
    cuts = []
    for c in pipe.cuts:
        if c.trivial:
            continue
        raw = {"float32": RawFormat(len(pipe.edge_encode(sample, CandidateSpec.raw(c.id))[0]), _t(compute_ms), _t(compute_ms))}
        bits, narrow, quant, widest = {}, {}, {}, None
        if c.id in pipe.ae.cuts:
            def entry(c=c, bits=None, width=None, quant=False):
                spec = CandidateSpec.quant(c.id, bits) if quant else CandidateSpec.split(c.id, bits, width)
                n = len(pipe.edge_encode(sample, spec)[0])
                return BitsEntry(n, n, _t(compute_ms), _t(bits_decode_ms), 90.0)

            *narrower, widest = pipe.ae.widths(c.id)
            bits = {b: entry(bits=b) for b in BITS}
            narrow = {w: {b: entry(bits=b, width=w) for b in BITS} for w in narrower}
            quant = {b: entry(bits=b, quant=True) for b in BITS}
        cuts.append(CutProfile(c.id, c.index, c.shape, c.float32_bytes, _t(compute_ms), _t(compute_ms), raw, bits,
                               widest, narrow, quant))
    reply = 24 + 40 + 16  # codec header + 10 float32 scores, roughly; what matters is that it is small
    common = dict(model=pipe.name, autoencoder=pipe.ae_id, settings={"batch": 1, "repeats": 1, "device": "cpu"},
                  backbone_accuracy=90.0, bits=BITS, reply_bytes=reply, cuts=tuple(cuts),
                  widths=tuple(sorted({w for c in AE_CUTS for w in pipe.ae.widths(c)})), quantizer=pipe.quant_id,
                  quant_bits=BITS)
    device = {"cpu": "test", "physical_cores": 1, "logical_cores": 1, "threads": 1, "freq_mhz": None,
              "memory_gb": None, "os": None, "torch": None, "gpu": None, "cpu_quota": None}
    inp = InputProfile((1, 28, 28), 784, float(len(pipe.edge_encode(sample, CandidateSpec.cloud_only())[0])),
                       _t(compute_ms), _t(compute_ms))
    edge = Profile(role="edge", device=device, input=inp, whole_model_ms=_t(edge_whole_ms), **common)
    cloud = Profile(role="cloud", device=device, input=inp, whole_model_ms=_t(compute_ms), **common)
    return edge, cloud


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=12)


@pytest.fixture(scope="module")
def profiles(pipe, images):
    return make_profiles(pipe, images[0][:1])


@pytest.fixture(scope="module")
def server(pipe):
    srv = CloudServer(CloudHandler(make_pipeline()), port=0, workers=2, read_timeout=2.0)
    port = srv.start_in_thread()
    yield srv, f"127.0.0.1:{port}"
    srv.stop_thread()


def client(pipe, profiles, address, **kw) -> EdgeClient:
    # hand-made profiles force the plans these tests check: no calibration away from them
    opts = dict(cloud=address, link="50mbit", rtt="1ms", timeout=3.0, backoff_s=0.2, calibrate=False,
                freshness_runs=0)
    return EdgeClient(pipe, *profiles, **{**opts, **kw})


def local_scores(pipe, raw, spec: CandidateSpec) -> np.ndarray:
    if not spec.remote:
        return pipe.edge_local(raw)[0].numpy()
    return pipe.cloud_decode(pipe.edge_encode(raw, spec)[0])[0].numpy()


def test_round_trip_equals_local_for_every_candidate(pipe, images, profiles, server):
    raw = images[0][:1]
    full = pipe.model(pipe.input_tensor(raw)).detach().numpy()
    with client(pipe, profiles, server[1]) as edge:
        cs = edge.candidates
        assert {"cloud-only", "raw", "split", "quant", "edge-only"} <= {s.kind for s in cs.specs}
        assert {s.width for s in cs.specs if s.cut == "pool1" and s.kind == "split"} == {None, 4, 8}
        for i in range(len(cs)):
            choice = cs.specs[i]
            r = edge.infer(raw, choice=choice)
            assert r.error is None and not r.fallback, (choice, r)
            assert (r.cut, r.bits, r.kind) == (cs.specs[i].cut, cs.specs[i].bits, cs.specs[i].kind)
            assert r.spec == choice and Result.from_dict(r.to_dict()).spec == choice  # the width is recorded
            np.testing.assert_allclose(r.scores, local_scores(pipe, raw, choice), atol=1e-5)
            if cs.specs[i].bits is None:  # lossless candidates give the full model's output
                np.testing.assert_allclose(r.scores, full, atol=1e-5)
            assert r.prediction == int(np.argmax(r.scores))
            if r.kind != "edge-only":
                assert r.transfer_ms > 0 and r.request_bytes > 0 and r.server_tail_ms > 0
                assert r.measured_ms >= r.edge_ms + r.encode_ms + r.transfer_ms
            json.dumps(r.to_dict())
    assert Result.from_dict(r.to_dict()).to_dict() == r.to_dict()


def test_run_reports_accuracy_plans_and_stages(pipe, images, profiles, server):
    x, y = images
    with client(pipe, profiles, server[1]) as edge:
        report = edge.run(x[:6], y[:6])
    local = [int(pipe.edge_local(x[k:k + 1])[0].argmax()) for k in range(6)]
    assert report.predictions == local  # cloud-only on a fast link: lossless
    assert report.accuracy == pytest.approx(100.0 * np.mean(np.array(local) == y[:6]))
    d = report.to_dict()
    assert d["fallbacks"] == 0 and d["errors"] == 0 and d["n"] == 6
    assert [(p["kind"], p["count"]) for p in d["plans"]] == [("cloud-only", 6)]
    assert d["measured_ms_median"] > 0 and d["predicted_ms_median"] > 0
    json.dumps(d)
    assert "cloud-only" in report.format()


def test_bad_payloads_do_not_kill_the_server(pipe, images, profiles, server):
    srv, address = server
    raw = images[0][:1]
    good, _ = pipe.edge_encode(raw, "pool1@2")
    with CloudClient(address, timeout=3.0) as c:
        for bad in (b"garbage", good[:-5], good[:12] + bytes([good[12] ^ 0xFF]) + good[13:]):
            with pytest.raises(ServerError):
                c.infer("tiny", bad)
        with pytest.raises(ServerError, match="WRONG_MODEL"):
            c.infer("other-model", good)
        reply = c.infer("tiny", good)
    np.testing.assert_allclose(reply.scores, local_scores(pipe, raw, CandidateSpec.split("pool1", 2)), atol=1e-5)
    with client(pipe, profiles, address) as edge:
        assert not edge.infer(raw, choice=("pool2", 8)).fallback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fallback_when_the_server_is_down_then_resume(pipe, images, profiles):
    x, _ = images
    port = _free_port()
    with client(pipe, profiles, f"127.0.0.1:{port}") as edge:
        down = [edge.infer(x[k:k + 1], index=k) for k in range(4)]
        assert all(r.fallback and r.error is None and r.kind == "edge-only" for r in down)
        assert down[0].planned == "cloud-only" and "unreachable" in down[0].fallback_reason
        assert "backing off" in down[1].fallback_reason  # no retry on every request
        assert [r.prediction for r in down] == [int(pipe.edge_local(x[k:k + 1])[0].argmax()) for k in range(4)]
        srv = CloudServer(CloudHandler(pipe), port=port, workers=1)
        srv.start_in_thread()
        try:
            time.sleep(edge.client.backoff_remaining_s() + 0.05)
            up = edge.infer(x[:1], index=4)
            assert not up.fallback and up.kind == "cloud-only"
            srv.stop_thread()  # dies under the client's kept-alive connection
            after = edge.infer(x[:1], index=5)
            assert after.fallback and after.prediction == up.prediction
        finally:
            srv.stop_thread()


def test_replanning_moves_to_a_smaller_payload_after_a_step_drop(pipe, images, profiles, server):
    x, _ = images
    drop_s = 0.6
    trace = TraceLink.from_rates([drop_s, 2 * drop_s, 60.0], [5.0, 0.1, 0.1], name="step")  # Mbit/s
    shaper = Shaper(lambda t: trace.bandwidth_at(t * 1000.0), delay_ms=2.0)
    results, t0 = [], time.monotonic()
    with client(pipe, profiles, server[1], link="5mbit", rtt="4ms", shaper=shaper) as edge:
        while time.monotonic() - t0 < drop_s + 0.6:
            results.append((time.monotonic() - t0, edge.infer(x[len(results) % len(x)][None], index=len(results))))
        assert edge.estimate.bandwidth_bps < 0.3e6
    before = [r for t, r in results if t < drop_s - 0.1]
    after = [r for t, r in results if t > drop_s]
    assert len(before) >= 3 and len(after) >= 4
    assert all(r.kind == "cloud-only" for r in before)
    kinds = [r.kind for r in after]
    assert "split" in kinds[:4], kinds  # within a few requests (the first slow sample waits for a second)
    first = kinds.index("split")
    assert all(k == "split" for k in kinds[first:]), kinds
    smallest = min(profiles[0].cut(c).bits[2].bytes_mean for c in AE_CUTS)
    assert all(r.bits == 2 and r.request_bytes < smallest + 100 for r in after[first:])
    assert not any(r.fallback for _, r in results)


def test_a_timed_out_transfer_lowers_the_estimate(pipe, images, profiles, server):
    """A link far slower than believed: the request times out, falls back, and the next plan sends less."""
    with client(pipe, profiles, server[1], link="50mbit", timeout=0.5, shaper=Shaper(2e3)) as edge:
        r = edge.infer(images[0][:1])
        assert r.fallback and r.planned == "cloud-only" and "timed out" in r.fallback_reason
        assert edge.estimate.bandwidth_bps < 20e3
        assert edge.plan().kind == "split"


def test_shaper_delivers_the_configured_rate(pipe, images, profiles, server):
    rate, delay = 1e6, 5.0
    with client(pipe, profiles, server[1], link=rate, rtt=2 * delay, shaper=Shaper(rate, delay_ms=delay)) as edge:
        rs = [edge.infer(images[0][:1], choice=("conv1", None)) for _ in range(3)]  # ~25 KB raw float32
    for r in rs:
        expected = (r.request_bytes + r.reply_bytes) * 8000.0 / rate + 2 * delay
        assert r.transfer_ms == pytest.approx(expected, rel=0.10)
    assert edge.estimate.bandwidth_bps == pytest.approx(rate, rel=0.10)


def test_estimate_ignores_transfers_below_the_noise_floor(pipe, profiles):
    edge = EdgeClient(pipe, *profiles, cloud="127.0.0.1:9", link="100mbit", rtt="20ms", warm=False)

    class R:
        request_bytes, reply_bytes = 500, 80
        decode_ms, tail_ms, queue_wait_ms = 1.0, 2.0, 0.5

        def __init__(self, network_ms):  # the server's compute and queue come on top of the network time
            self.server_ms = self.decode_ms + self.tail_ms + self.queue_wait_ms
            self.wall_ms = network_ms + self.server_ms
            self.network_ms = network_ms  # the one wire time (client.Reply.network_ms: wall_ms - server_ms)

    exchange = edge.candidates.exchange_ms
    edge._observe(R(20.5 + exchange))  # 580 B in 0.5 ms of noise: says nothing about a 100 Mbit/s link
    assert edge.estimate.bandwidth_bps == 100e6 and edge.estimate.observations == 0
    slow = R(20.0 + exchange + 580 * 8000.0 / 0.2e6)  # a real 0.2 Mbit/s transfer
    edge._observe(slow)  # 500x slower than believed: held back until a second sample confirms it
    assert edge.estimate.bandwidth_bps == 100e6 and edge.bandwidth.held_back == 1
    edge._observe(slow)
    assert edge.estimate.bandwidth_bps == pytest.approx(0.2e6, rel=1e-6)
    edge.close()


def test_profiles_must_match_the_pipeline(pipe, profiles):
    other = make_pipeline()
    other.ae.id = "tiny/shared@other"
    with pytest.raises(ProfileError, match="autoencoder"):
        EdgeClient(other, *profiles, warm=False)
    shared = load_autoencoder("resnet-fmnist", "shared")
    assert committed_kind("resnet-fmnist", shared.id) == "shared" and committed_kind("resnet-fmnist", None) is None
    with pytest.raises(CompressError, match="no committed autoencoder"):
        committed_kind("resnet-fmnist", "resnet-fmnist/shared@1234abcd")  # right shape, wrong weights


def test_default_profiles_by_naming_rule(tmp_path, profiles):
    with pytest.raises(ProfileError, match="no edge profile for model 'm'.*planner profile --model m"):
        find_profiles("m", dirs=[tmp_path])
    for name in ("m_edge_cpu-x-1t.json", "m_edge_cpu-x-1t-q0.125.json", "m_cloud_cpu-x-1t.json",
                 "m_cloud_cpu-x-2t.json", "mm_edge_cpu-x-1t.json"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in find_profiles("m", dirs=[tmp_path])] == ["m_edge_cpu-x-1t.json", "m_cloud_cpu-x-2t.json"]
    assert find_profiles("m", quota=0.125, dirs=[tmp_path])[0].name == "m_edge_cpu-x-1t-q0.125.json"
    with pytest.raises(ProfileError, match="--cpu-quota 0.5"):
        find_profiles("m", quota=0.5, dirs=[tmp_path])


def test_cli_run_with_a_local_server(tmp_path, capsys, monkeypatch):
    """`planner run --cloud local --json` on the zoo VGG with raw-feature profiles written for it."""
    from planner.cli import main

    vgg_with_raw_profiles(tmp_path)
    rc = main(["run", "--model", "vgg-fmnist", "--cloud", "local", "--bandwidth", "20mbit", "--rtt", "2ms",
               "--n", "5", "--edge", str(tmp_path / "e.json"), "--cloud-profile", str(tmp_path / "c.json"), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = json.loads(captured.out)
    assert out["n"] == 5 and out["errors"] == 0 and out["fallbacks"] == 0 and out["accuracy"] is not None
    assert sum(p["count"] for p in out["plans"]) == 5 and out["measured_ms_median"] > 0


def vgg_with_raw_profiles(tmp_path):
    """The zoo VGG without autoencoder, its raw-feature profiles saved as tmp_path/e.json and c.json; skips the
    test when the weights or the test set are not there."""
    from planner import zoo

    if not zoo.weights_path("vgg-fmnist").exists():
        pytest.skip("vgg-fmnist weights are not built")
    pytest.importorskip("planner.data").load_arrays("test")
    vgg = SplitPipeline.from_zoo("vgg-fmnist", None)
    edge, cloud = _raw_profiles(vgg)
    edge.save(tmp_path / "e.json")
    cloud.save(tmp_path / "c.json")
    return vgg


def _raw_profiles(pipe):
    """Raw-only profiles of a zoo pipeline without an autoencoder (true sizes, flat timings)."""
    sample = np.zeros((1, 28, 28), dtype=np.uint8)
    cuts = tuple(CutProfile(c.id, c.index, c.shape, c.float32_bytes, _t(1.0), _t(1.0),
                            {"float32": RawFormat(len(pipe.edge_encode(sample, CandidateSpec.raw(c.id))[0]), _t(0.1), _t(0.1))}, {})
                 for c in pipe.cuts if not c.trivial)
    device = {"cpu": "test", "physical_cores": 1, "logical_cores": 1, "threads": 1, "freq_mhz": None,
              "memory_gb": None, "os": None, "torch": None, "gpu": None, "cpu_quota": None}
    inp = InputProfile((1, 28, 28), 784, 500.0, _t(0.1), _t(0.1))
    common = dict(model=pipe.name, autoencoder=None, settings={"batch": 1, "repeats": 1, "device": "cpu"},
                  backbone_accuracy=90.0, bits=(), reply_bytes=80, cuts=cuts, device=device, input=inp)
    return (Profile(role="edge", whole_model_ms=_t(50.0), **common),
            Profile(role="cloud", whole_model_ms=_t(1.0), **common))


def test_run_report_round_trips_json():
    r = Result(index=0, prediction=3, label=3, cut="input", bits=None, kind="cloud-only", predicted_ms=5.0,
               measured_ms=6.0, transfer_ms=4.0)
    f = Result(index=1, prediction=2, label=3, cut="output", bits=None, kind="edge-only", predicted_ms=9.0,
               measured_ms=10.0, fallback=True, planned="cloud-only", fallback_reason="down")
    e = Result(index=2, prediction=None, label=1, cut="output", bits=None, kind="edge-only", predicted_ms=None,
               measured_ms=1.0, error="boom")
    rep = RunReport([r, f, e], "m", "e.json", "c.json", LiveEstimate("1mbit").describe())
    d = rep.to_dict(results=True)
    assert d["accuracy"] == pytest.approx(100 / 3, abs=1e-3) and d["fallbacks"] == 1 and d["errors"] == 1
    assert d["plans"] == [{"cut": "input", "bits": None, "kind": "cloud-only", "dtype": None, "width": None,
                           "label": "cloud-only",
                           "count": 1, "measured_ms_median": 6.0, "predicted_ms_median": 5.0}]
    assert d["measured_ms_median"] == 8.0  # answered requests only (the error has no answer)
    assert [Result.from_dict(x).to_dict() for x in d["results"]] == d["results"]
