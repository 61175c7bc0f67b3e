"""The cloud half on Ray Serve: a local Ray instance (2 CPUs), two replicas of the zoo ResNet's cloud handler behind
the asyncio TCP front; `planner.run()` gets the same answers through it as through the asyncio backend.

Raw-feature candidates only (autoencoder None), so the test does not depend on trained autoencoder weights;
hand-made profiles (true payload sizes, a slow edge) make the planner use the cloud.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import planner
from planner.cli import main
from planner.errors import PlannerError
from planner.execution.pipeline import SplitPipeline
from planner.profile.schema import CutProfile, InputProfile, Profile, RawFormat
from planner.profile.timing import Timing
from planner.runtime import protocol as P
from planner.runtime.batching import BatchSettings
from planner.runtime.client import CloudClient, ServerError
from planner.runtime.edge import EdgeClient
from planner.runtime.handlers import CloudHandler
from planner.runtime.ray_backend import RayBackend, import_ray, parse_autoscale
from planner.runtime.server import CloudServer

MODEL = "resnet-fmnist"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own pydantic v1-style fields


def needs_ray(test):
    """Marked `ray` and `extra`, and skipped where Ray is not installed."""
    skip = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                              reason='Ray is not installed (pip install "planner[ray]")')
    return pytest.mark.ray(pytest.mark.extra(skip(test)))


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(PlannerError, match=r'pip install "planner\[ray\]"'):
        import_ray()


def test_scaling_options(capsys):
    assert parse_autoscale("1:4") == (1, 4) and parse_autoscale("0:2") == (0, 2)
    for bad in ("4:1", "2", "a:b", "0:0", "-1:2"):
        with pytest.raises(PlannerError, match="autoscale"):
            parse_autoscale(bad)
    with pytest.raises(PlannerError):
        RayBackend(MODEL, replicas=0)
    assert RayBackend(MODEL, replicas=3).deployment_options()["num_replicas"] == 3
    auto = RayBackend(MODEL, autoscale=(1, 4)).deployment_options()["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"]) == (1, 4)
    assert main(["serve", "--model", MODEL, "--replicas", "2"]) != 0  # asyncio backend: no replicas
    assert "--backend ray" in capsys.readouterr().err


def _t(ms: float) -> Timing:
    return Timing(median=float(ms), iqr=0.0, n=1, p10=float(ms), p90=float(ms))


def raw_profiles(pipe: SplitPipeline, sample: np.ndarray) -> tuple[Profile, Profile]:
    """(edge, cloud) profiles with the true raw-feature sizes, 0.3 ms per stage and a 1 s edge-only run."""
    cuts = tuple(CutProfile(c.id, c.index, c.shape, c.float32_bytes, _t(0.3), _t(0.3),
                            {"float32": RawFormat(len(pipe.edge_encode(sample, f"{c.id}@raw")[0]), _t(0.3), _t(0.3))}, {})
                 for c in pipe.cuts if not c.trivial)
    inp = InputProfile(pipe.input_shape, 784, float(len(pipe.edge_encode(sample, "cloud-only")[0])), _t(0.3), _t(0.3))
    device = {"cpu": "test", "physical_cores": 1, "logical_cores": 1, "threads": 1, "freq_mhz": None,
              "memory_gb": None, "os": None, "torch": None, "gpu": None, "cpu_quota": None}
    common = dict(model=pipe.name, autoencoder=None, device=device, settings={"batch": 1, "repeats": 1},
                  backbone_accuracy=90.0, bits=(), input=inp, reply_bytes=80, cuts=cuts)
    return (Profile(role="edge", whole_model_ms=_t(1000.0), **common),
            Profile(role="cloud", whole_model_ms=_t(0.3), **common))


@pytest.fixture(scope="module")
def pipe():
    return SplitPipeline.from_zoo(MODEL, None)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(100, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def ray_address():
    backend = RayBackend(MODEL, autoencoder=None, replicas=2, num_cpus=2, batching=BatchSettings(20.0, 16))
    try:
        server = CloudServer(backend.start(), port=0, workers=8)
        yield f"127.0.0.1:{server.start_in_thread()}"
        server.stop_thread()
    finally:
        backend.close()


@needs_ray
def test_run_through_ray_equals_the_asyncio_backend(pipe, images, ray_address):
    profiles = raw_profiles(pipe, images[:1])
    opts = dict(link="100mbit", rtt="1ms", timeout=30.0, calibrate=False, freshness_runs=0)  # hand-made profiles
    through_ray = planner.run(images, pipe, ray_address, *profiles, **opts)
    server = CloudServer(CloudHandler(pipe), port=0, workers=2)
    try:
        direct = planner.run(images, pipe, f"127.0.0.1:{server.start_in_thread()}", *profiles, **opts)
    finally:
        server.stop_thread()
    for report in (through_ray, direct):
        assert len(report) == 100 and report.errors == 0 and report.fallbacks == 0
        assert all(r.kind != "edge-only" for r in report)
    assert through_ray.predictions == direct.predictions
    np.testing.assert_allclose(np.concatenate([r.scores for r in through_ray]),
                               np.concatenate([r.scores for r in direct]), atol=1e-4)
    assert all(r.server_tail_ms > 0 for r in through_ray)


@needs_ray
def test_every_candidate_and_a_bad_payload_through_ray(pipe, images, ray_address):
    raw = images[:1]
    full = pipe.edge_local(raw)[0].numpy()
    with EdgeClient(pipe, *raw_profiles(pipe, raw), cloud=ray_address, link="100mbit", rtt="1ms", calibrate=False,
                    timeout=30.0) as edge:
        cs = edge.candidates
        for i in range(len(cs)):
            r = edge.infer(raw, choice=cs.specs[i])
            assert r.error is None and not r.fallback and r.cut == cs.specs[i].cut
            np.testing.assert_allclose(r.scores, full, atol=1e-4)
    with CloudClient(ray_address, timeout=30.0) as c, pytest.raises(ServerError, match="BAD_PAYLOAD"):
        c.infer(MODEL, b"garbage")  # the replica's CodecError crosses Ray as itself


@needs_ray
def test_ray_announces_the_same_identity_as_the_asyncio_backend(pipe, ray_address):
    """WELCOME of the Ray front carries the replicas' weights digest, autoencoder and quantizer ids, as the asyncio
    backend's does, so the edge's identity check checks something."""
    server = CloudServer(CloudHandler(pipe), port=0, workers=1)
    try:
        direct_address = f"127.0.0.1:{server.start_in_thread()}"
        with CloudClient(ray_address, timeout=30.0) as via_ray, CloudClient(direct_address, timeout=5.0) as direct:
            ray_info, direct_info = via_ray.connect(), direct.connect()
    finally:
        server.stop_thread()
    for key in ("model", *P.IDENTITY_KEYS):
        assert key in ray_info and ray_info[key] == direct_info[key], key
    assert ray_info["weights_sha256"] == pipe.weights_sha256


@needs_ray
def test_concurrent_requests_share_a_replica_batch(pipe, images, ray_address):
    """@serve.batch in the replicas: interleaved cuts from many connections, each answer its own, equal to the
    handler's unbatched one, and some computed together."""
    import threading

    handler = CloudHandler(pipe)
    cuts = [c.id for c in pipe.cuts if not c.trivial and c.id != "output"][:4]
    jobs = [(k, pipe.edge_encode(images[k:k + 1], f"{cuts[k % len(cuts)]}@raw")[0]) for k in range(24)]
    want = {k: handler.infer(p)[0] for k, p in jobs}
    got: dict = {}

    def edge(part):
        with CloudClient(ray_address, timeout=60.0) as c:
            for k, payload in part:
                got[k] = c.infer(MODEL, payload)

    threads = [threading.Thread(target=edge, args=(jobs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(got) == set(want)
    for k, reply in got.items():
        np.testing.assert_allclose(reply.scores, want[k], atol=1e-4)
    assert max(r.batch_size for r in got.values()) > 1
