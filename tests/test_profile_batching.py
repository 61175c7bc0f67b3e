"""A batched cloud in the profile: batch_ms measured, validated, read back, interpolated; old profiles unchanged;
the load-aware estimate's prediction of a request that shares a batch."""

from __future__ import annotations

import dataclasses
import json

import pytest

from planner.errors import ProfileError
from planner.profile.batching import BatchCurve, check_batch_ms, expected_batch, predict_cloud_ms
from planner.profile.schema import Profile
from planner.profile.synthetic import synthetic_profile

BATCH = {"sizes": [1, 4, 16], "whole": {"1": 2.0, "4": 5.0, "16": 14.0},
         "cuts": {"c3": {"tail": {"1": 1.0, "4": 2.5, "16": 7.0}, "decode": {"1": 0.5, "4": 1.0, "16": 3.0}}}}


def _cloud(batch=BATCH) -> Profile:
    p = synthetic_profile("cloud")
    return dataclasses.replace(p, batch_ms=check_batch_ms(batch) if batch else None)


def test_old_profiles_load_and_write_back_unchanged():
    p = synthetic_profile("cloud")
    d = p.to_dict()
    assert "batch_ms" not in d and Profile.from_dict(d).batch_ms is None and BatchCurve.of(p) is None


def test_batch_ms_round_trips(tmp_path):
    p = _cloud()
    back = Profile.load(p.save(tmp_path / "c.json"))
    assert back.batch_ms == p.batch_ms and json.loads((tmp_path / "c.json").read_text())["batch_ms"]["sizes"] == [1, 4, 16]
    assert back.scaled(2.0).batch_ms["cuts"]["c3"]["tail"]["4"] == 5.0


@pytest.mark.parametrize("bad", [{"sizes": []}, {"sizes": [0]}, {"sizes": [1], "whole": {"x": 1.0}},
                                 {"sizes": [1], "whole": {"1": -1.0}}, {"sizes": [1], "cuts": {"c": {"tail": 3}}},
                                 {"sizes": [1], "cuts": {"c": {"head": {}}}}, {"sizes": [1], "extra": 1}, [1, 2]])
def test_bad_batch_ms_is_one_clear_error(bad):
    d = synthetic_profile("cloud").to_dict()
    d["batch_ms"] = bad
    with pytest.raises(ProfileError, match="batch_ms"):
        Profile.from_dict(d)


def test_curve_interpolates_and_extrapolates():
    curve = BatchCurve.of(_cloud())
    assert curve.compute_ms("c3", 1) == pytest.approx(1.5)
    assert curve.compute_ms("c3", 4) == pytest.approx(3.5)
    assert curve.compute_ms("c3", 10) == pytest.approx(3.5 + (10.0 - 3.5) * 6 / 12)
    assert curve.compute_ms("c3", 32) == pytest.approx(10.0 + (10.0 - 3.5) * 16 / 12)  # the last slope on
    assert curve.compute_ms("input", 16) == pytest.approx(14.0)
    assert curve.compute_ms("nope", 4) is None and curve.excess_ms("nope", 4) == 0.0
    assert curve.excess_ms("c3", 1) == 0.0 and curve.excess_ms("c3", 16) == pytest.approx(10.0 - 1.5)


def test_prediction_from_a_report_and_from_concurrency():
    p = _cloud()
    assert predict_cloud_ms(p, "c3", queue_ms=4.0, batch=16) == pytest.approx(14.0)
    assert expected_batch(32, 64, workers=2) == 16 and expected_batch(200, 64, workers=2) == 64
    assert expected_batch(1, 64) == 1
    assert predict_cloud_ms(p, "c3", concurrency=1, delay_ms=2.0) == pytest.approx(3.5)
    assert predict_cloud_ms(p, "c3", concurrency=32, workers=2, max_inputs=64) == pytest.approx(10.0 * 1.25)
    with pytest.raises(ProfileError, match="--batch-sizes"):
        predict_cloud_ms(_cloud(None), "c3", concurrency=4)
    with pytest.raises(ProfileError, match="no batch times for cut"):
        predict_cloud_ms(p, "zz", concurrency=4)


def test_cloud_profile_measures_batch_sizes(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from planner.data import DEFAULT_ROOT

    if not DEFAULT_ROOT.exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    from planner.profile.measure import ProfileSettings, profile_pipeline
    from tests.test_profile_measure import tiny_pipeline

    monkeypatch.setenv("PLANNER_CACHE", str(tmp_path / "cache"))
    pipe = tiny_pipeline()
    settings = ProfileSettings(role="cloud", threads=1, repeats=3, max_seconds=0.02, payload_samples=8,
                               accuracy_limit=100, batch_sizes=(1, 4, 16), device="cpu")
    profile = Profile.from_dict(json.loads(json.dumps(profile_pipeline(pipe, settings, progress=False))))
    curve = BatchCurve.of(profile)
    assert curve.sizes == [1, 4, 16] and set(profile.batch_ms["whole"]) == {"1", "4", "16"}
    inner = [c.id for c in pipe.cuts if not c.trivial]
    assert set(profile.batch_ms["cuts"]) == set(inner)
    assert set(profile.batch_ms["cuts"]["_1"]["decode"]) == {"1", "4", "16"}  # a served cut has its decoder
    assert all(curve.compute_ms(c, 4) > 0 for c in inner)
    assert profile.settings["device"] == "cpu" and profile.device["gpu"] is None


def test_profile_cli_rejects_batch_sizes_on_the_edge(capsys):
    from planner.cli import main

    assert main(["profile", "--model", "resnet-fmnist", "--role", "edge", "--batch-sizes", "1,4"]) == 2
    assert "--batch-sizes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["profile", "--model", "resnet-fmnist", "--role", "cloud", "--batch-sizes", "0,4"])
