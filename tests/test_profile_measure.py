"""A tiny model profiles end to end in seconds, and the result loads as a schema-valid Profile."""

import json

import pytest
import torch
from torch import nn

from planner.cli.profile import summary
from planner.compress.aeconfig import AEConfig
from planner.compress.autoencoder import SharedAutoencoder
from planner.data import DEFAULT_ROOT, normalize
from planner.execution.pipeline import SplitPipeline
from planner.profile.measure import ProfileSettings, profile_pipeline
from planner.profile.schema import Profile

pytestmark = pytest.mark.skipif(not DEFAULT_ROOT.exists(), reason="apt-get install dataset-fashion-mnist")


def tiny_pipeline():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
    pipe = SplitPipeline(model, "tiny", (1, 28, 28), preprocess=normalize)
    served = [c for c in pipe.cuts if c.id in ("_1", "_4")]
    ae = SharedAutoencoder(AEConfig.for_cuts(served, latent=2, bits=(2, 8))).eval()
    ae.id = "tiny/shared@test"
    pipe.ae = ae
    return pipe


@pytest.mark.parametrize("role", ["edge", "cloud", "both"])
def test_tiny_model_profiles_end_to_end(role, tmp_path, monkeypatch):
    monkeypatch.setenv("PLANNER_CACHE", str(tmp_path / "cache"))
    pipe = tiny_pipeline()
    settings = ProfileSettings(role=role, threads=1, repeats=3, max_seconds=0.02, payload_samples=8,
                               accuracy_limit=100)
    doc = profile_pipeline(pipe, settings, progress=False)
    profile = Profile.from_dict(json.loads(json.dumps(doc)))
    assert profile.model == "tiny" and profile.autoencoder == "tiny/shared@test" and profile.bits == (2, 8)
    # the Flatten after the pooling only repeats its neighbour: left out (ProfileSettings.all_cuts keeps it)
    assert [c.id for c in profile.cuts] == [c.id for c in pipe.cuts if not c.trivial and not c.duplicate]
    assert any(c.duplicate for c in pipe.cuts)
    served = {c.id: c for c in profile.cuts if c.bits}
    assert set(served) == {"_1", "_4"}
    two, eight = served["_1"].bits[2], served["_1"].bits[8]
    # real codec bytes: 8-bit codes are 4x the 2-bit ones (plus the same header), both below float32
    assert two.bytes_mean < eight.bytes_mean < served["_1"].raw["float32"].bytes
    assert profile.input.raw_bytes == 784 and profile.input.compressed_bytes < 784 + 64
    edge, cloud = role in ("edge", "both"), role in ("cloud", "both")
    assert (served["_1"].head_ms is not None) == edge and (served["_1"].tail_ms is not None) == cloud
    assert (two.encode_ms is not None) == edge and (two.decode_ms is not None) == cloud
    assert profile.whole_model_ms.median > 0 and profile.device["threads"] == 1
    assert 0 <= profile.backbone_accuracy <= 100
    path = profile.save(tmp_path / "p.json")
    assert Profile.load(path) == profile
    assert "_1" in summary(profile)


def test_accuracy_is_cached(tmp_path, monkeypatch):
    from planner.profile import accuracy

    monkeypatch.setenv("PLANNER_CACHE", str(tmp_path))
    pipe = tiny_pipeline()
    first = accuracy.accuracy_table(pipe, [2, 8], limit=50)
    assert list(tmp_path.glob("accuracy/*.json"))
    pipe.model = None  # a cache hit must not touch the model
    assert accuracy.accuracy_table(pipe, [2, 8], limit=50) == first
