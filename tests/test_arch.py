import sys

import pytest
import torch
from torch import nn

from planner import ZooError, cuts
from planner.zoo import arch

BUILTINS = ("resnet18", "resnet50", "mobilenet_v2", "vgg16")
# the smallest input every built-in runs at (ResNet/MobileNetV2 reach 1x1 at stride 32; VGG pools adaptively)
SMALL = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def cut_lists():
    """Each built-in's verified cuts, traced once at a small input (cuts() checks tail(head(x)) == model(x))."""
    torch.manual_seed(0)
    found = {}
    for name in BUILTINS:
        model, _ = arch.build(name)
        found[name] = (model, cuts(model, torch.randn(SMALL)))
    return found


def _inner(found):
    return [c for c in found if not c.trivial]


def test_names_and_unknown():
    assert set(BUILTINS) <= set(arch.names())
    with pytest.raises(ZooError, match="unknown architecture 'resnet51'.*resnet50.*vgg16"):
        arch.build("resnet51")


@pytest.mark.parametrize("name", [*BUILTINS, "vgg16_bn"])
def test_published_parameter_counts_and_output_shape(name):
    model, shape = arch.build(name, device="meta")
    assert shape == (3, 224, 224)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == arch.PUBLISHED_PARAMS[name]
    assert model(torch.zeros(2, *shape, device="meta")).shape == (2, 1000)


def test_published_counts_are_the_papers():
    assert arch.PUBLISHED_PARAMS == {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872,
                                     "vgg16": 138_357_544, "vgg16_bn": 138_365_992}


def test_random_weights_give_finite_distinct_outputs():
    model, shape = arch.build("resnet18")
    with torch.inference_mode():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])


def _block_scopes(model, block_type):
    return [name for name, m in model.named_modules() if isinstance(m, block_type)]


@pytest.mark.parametrize("name, count", [("resnet18", 24), ("resnet50", 40)])
def test_resnet_cuts_only_between_blocks(cut_lists, name, count):
    model, found = cut_lists[name]
    assert len(found) == count
    inner = _inner(found)
    stem = [(c.producer, c.scope) for c in inner[:4]]
    assert stem == [("Conv2d", "conv1"), ("BatchNorm2d", "bn1"), ("ReLU", "relu"), ("MaxPool2d", "maxpool")]
    assert [c.id for c in inner[-2:]] == ["avgpool", "flatten"]
    block_cuts = [(c.producer, c.scope) for c in inner[4:-2]]
    expected = []
    for b in _block_scopes(model, (arch.BasicBlock, arch.Bottleneck)):
        expected += [("add", b), ("ReLU", f"{b}.relu")]  # the sum of branch and shortcut, then the block's output
    assert block_cuts == expected
    branch = ("conv", "bn", "downsample")
    assert not any(part.startswith(branch) for c in inner for part in c.scope.split(".")[2:])


def test_mobilenet_v2_cuts_never_inside_a_skip_block(cut_lists):
    model, found = cut_lists["mobilenet_v2"]
    assert len(found) == 74
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, arch.InvertedResidual)}
    skip = [b for b, m in blocks.items() if m.use_res_connect]
    assert len(blocks) == 17 and len(skip) == 10
    for b in skip:
        assert not [c.id for c in found if c.scope.startswith(b + ".")], b
        assert [c.producer for c in found if c.scope == b] == ["add"]
    # blocks without a skip are chains: a cut after each of their layers
    for b in set(blocks) - set(skip):
        layers = [n for n, m in blocks[b].named_modules() if not list(m.children())]
        assert [c.scope for c in found if c.scope.startswith(b + ".")] == [f"{b}.{n}" for n in layers]


def test_vgg16_has_a_cut_after_every_layer(cut_lists):
    model, found = cut_lists["vgg16"]
    assert len(found) == 41
    layers = [n for n, m in model.named_modules() if not list(m.children()) and not isinstance(m, nn.Sequential)]
    assert len(layers) == 31 + 1 + 7
    expected = [*layers[:32], "", *layers[32:-1]]  # flatten (a function) sits between avgpool and the classifier
    assert [c.scope for c in _inner(found)] == expected
    assert [c.shape for c in found if c.scope == "avgpool"] == [(512, 7, 7)]


def test_cut_shapes_at_224_follow_the_layer_tables():
    model, shape = arch.build("resnet18", device="meta")
    from torch.fx.passes.shape_prop import ShapeProp  # shapes at full size without computing anything

    gm = torch.fx.symbolic_trace(model)
    ShapeProp(gm).propagate(torch.zeros(1, *shape, device="meta"))
    out = {n.name: tuple(n.meta["tensor_meta"].shape[1:]) for n in gm.graph.nodes if "tensor_meta" in n.meta}
    assert out["maxpool"] == (64, 56, 56)
    assert out["layer1_1_relu_1"] == (64, 56, 56)
    assert out["layer2_1_relu_1"] == (128, 28, 28)
    assert out["layer3_1_relu_1"] == (256, 14, 14)
    assert out["layer4_1_relu_1"] == (512, 7, 7)


def test_torchvision_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(ZooError, match=r'pip install "planner\[torchvision\]"'):
        arch.build("torchvision:resnet50")


@pytest.mark.extra
@pytest.mark.parametrize("name", [*BUILTINS, "vgg16_bn"])
def test_torchvision_state_dict_matches(name):
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - PyPI torchvision does not import beside torch 2.13.0
        pytest.skip(f"torchvision does not import: {exc}")
    ours, _ = arch.build(name, device="meta")
    theirs, _ = arch.build(f"torchvision:{name}", device="meta")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    with pytest.raises(ZooError, match="unknown torchvision model"):
        arch.build("torchvision:no_such_net")
