"""Accuracy travels with the weights: the autoencoder's card carries accuracy tables keyed by the model's,
the autoencoder's and the data's digests; a fresh machine reuses them, any mismatch measures again."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from planner.compress.zoo import weights_path
from planner.datasets import DataSet, fashion_mnist, fingerprint
from planner.execution.pipeline import SplitPipeline
from planner.profile import accuracy


@pytest.fixture()
def pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANNER_CACHE", str(tmp_path / "cache"))
    src = weights_path("resnet-fmnist", "shared")
    shutil.copy(src, tmp_path / "ae.pt")
    shutil.copy(src.with_suffix(".json"), tmp_path / "ae.json")
    from planner.modelspec import load_model

    return SplitPipeline.from_model(load_model("resnet-fmnist"), str(tmp_path / "ae.pt"), quantizer=None)


def test_card_table_is_reused_only_for_the_same_digests(pipeline, tmp_path, monkeypatch, capsys):
    data = fashion_mnist("test").take(40)
    table = accuracy.accuracy_table(pipeline, [2, 8], data=data, save_to_card=True)
    card = json.loads((tmp_path / "ae.json").read_text())
    assert table["key"] in card["accuracy_tables"] and table["n"] == 40
    assert table["weights_sha256"] == pipeline.weights_sha256 and table["autoencoder"] == pipeline.ae_id
    shutil.rmtree(tmp_path / "cache")  # a fresh machine: no local cache, only the card

    def boom(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(accuracy, "_count", boom)
    assert accuracy.accuracy_table(pipeline, [2, 8], data=data) == table
    with pytest.raises(AssertionError, match="measured again"):  # other data: never the card's table
        accuracy.accuracy_table(pipeline, [2, 8], data=fashion_mnist("test").take(41))
    assert "other model/autoencoder/data digests" in capsys.readouterr().err
    with pytest.raises(AssertionError, match="measured again"):  # the flag re-measures
        accuracy.accuracy_table(pipeline, [2, 8], data=data, use_cache=False)


def test_agreement_is_scored_on_confident_samples(pipeline):
    """No labels: the plans' figure counts the samples the unsplit model is sure of; plain and top-5 beside."""
    full = fashion_mnist("test").take(60)
    data = DataSet(full.raw, None, fingerprint("t", full.raw, None), "t")
    table = accuracy.accuracy_table(pipeline, [2], data=data, use_cache=False)
    assert table["metric"] == "agreement" and table["n_all"] == 60 and 0 < table["n"] <= 60
    assert table["confident_threshold"] == 0.5 and table["backbone"] == 100.0
    for cut, entry in table["cuts"].items():
        assert set(entry["all"]) == set(entry["top5"]) and f"{cut}@f16" in entry["all"]
        assert all(entry["top5"][k] >= entry["all"][k] for k in entry["all"])
    with torch.inference_mode():
        p = pipeline.model(pipeline.input_tensor(full.raw)).softmax(1).max(1).values
    assert table["n"] == int((p >= 0.5).sum())


def test_a_table_measured_here_before_goes_into_the_card_when_asked(pipeline, tmp_path, monkeypatch):
    """--save-accuracy on a machine that already has the table in its local cache stores that table (same key)."""
    data = fashion_mnist("test").take(30)
    table = accuracy.accuracy_table(pipeline, [2], data=data)  # measured, cached locally, not in the card
    assert table["key"] not in json.loads((tmp_path / "ae.json").read_text()).get("accuracy_tables", {})
    monkeypatch.setattr(accuracy, "_count", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured again")))
    assert accuracy.accuracy_table(pipeline, [2], data=data, save_to_card=True) == table
    assert json.loads((tmp_path / "ae.json").read_text())["accuracy_tables"][table["key"]] == table
