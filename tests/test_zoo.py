import pytest
import torch

from planner import ZooError, zoo
from planner.data import DEFAULT_ROOT
from planner.evaluate import accuracy

THRESHOLDS = {"vgg-fmnist": 92.0, "resnet-fmnist": 92.5}


def test_registry_names_and_unknown():
    assert set(THRESHOLDS) <= set(zoo.names())
    with pytest.raises(ZooError, match="known models: .*resnet-fmnist"):
        zoo.load("alexnet")


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_committed_weights_score_above_threshold(name):
    if not DEFAULT_ROOT.exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    model, info = zoo.load(name)
    assert not model.training and info.input_shape == (1, 28, 28) and info.classes == 10
    assert info.test_accuracy >= THRESHOLDS[name]  # measured by the training script on the full test set
    acc = accuracy(model, "test", limit=2000)
    # the subset is noisier than the full set: the threshold minus a small margin for sampling
    assert acc >= THRESHOLDS[name] - 1.0, acc
    assert abs(acc - info.test_accuracy) < 2.0


def test_weights_loaded_safely(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ZooError, match="cannot load weights"):
        zoo.load("vgg-fmnist", weights=bad)
    with pytest.raises(ZooError, match="train-backbone"):
        zoo.load("vgg-fmnist", weights=tmp_path / "missing.pt")


def test_training_recipe_runs_and_writes_card(tmp_path):
    from planner.zoo.train import train_backbone

    card = train_backbone("vgg-fmnist", epochs=1, limit=1024, out_dir=tmp_path, progress=False)
    assert (tmp_path / "vgg-fmnist.pt").exists() and card["train"]["epochs"] == 1
    state = torch.load(tmp_path / "vgg-fmnist.pt", weights_only=True)
    assert set(state) == set(zoo.build("vgg-fmnist").state_dict())
    # same seed -> same weights (reproducible)
    card2 = train_backbone("vgg-fmnist", epochs=1, limit=1024, out_dir=tmp_path / "again", progress=False)
    state2 = torch.load(tmp_path / "again" / "vgg-fmnist.pt", weights_only=True)
    assert all(torch.equal(state[k], state2[k]) for k in state)
    assert card2["test_accuracy"] == card["test_accuracy"]


def test_parse_shape():
    assert zoo.parse_shape("3x224x224") == (3, 224, 224)
    with pytest.raises(ZooError):
        zoo.parse_shape("3xfoo")
    with pytest.raises(ZooError):
        zoo.parse_shape("0x2")
