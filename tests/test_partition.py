import pytest
import torch
import torch.nn.functional as F
from torch import nn

from planner import PartitionError, cuts, split
from planner.partition import Partitioner
from planner.zoo import build


def _assert_exact(model, x):
    found = cuts(model, x)
    assert found[0].id == "input" and found[-1].id == "output"
    assert [c.index for c in found] == list(range(len(found)))
    assert len({c.id for c in found}) == len(found)
    ref = model(x)
    part = Partitioner(model, x)
    for c in found:
        head, tail = part.split(c)
        feature = head(x)
        assert tuple(feature.shape[1:]) == c.shape
        out = tail(feature)
        assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5), c.id
    return found


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 4, 1)
        self.b = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.c = nn.MaxPool2d(3, 1, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = torch.cat([self.a(x), self.b(x), self.c(x)[:, :8]], dim=1)
        x = F.adaptive_avg_pool2d(F.relu(x), 1)
        return self.head(torch.flatten(x, 1))


class Nested(nn.Module):
    """A residual block whose branch itself holds a residual block."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv2d(1, 4, 3, padding=1)
        self.inner1 = nn.Conv2d(4, 4, 3, padding=1)
        self.inner2 = nn.Conv2d(4, 4, 3, padding=1)
        self.out = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        x = F.relu(self.inp(x))
        branch = F.relu(self.inner1(x))
        branch = branch + self.inner2(branch)  # inner skip
        x = x + branch  # outer skip
        return self.out(x.flatten(1))


class SkipAroundEverything(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))

    def forward(self, x):
        return x + self.body(x)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.a(x)
        return -self.a(x)


def test_inception_concat_never_cut_between_arms():
    model = Inception().eval()
    found = _assert_exact(model, torch.randn(2, 3, 8, 8))
    ids = [c.id for c in found]
    # inside the concat region the arms a, b, c run side by side: none of their outputs is a cut
    for arm in ("a", "b_0", "b_1", "b_2", "c", "getitem"):
        assert arm not in ids
    assert "cat" in ids and "relu" in ids  # before the arms split and after they join


def test_nested_residual_lists_only_outer_cuts():
    model = Nested().eval()
    found = _assert_exact(model, torch.randn(2, 1, 8, 8))
    ids = [c.id for c in found]
    assert "inner1" not in ids and "relu_1" not in ids and "add" not in ids
    assert "relu" in ids and "add_1" in ids and "flatten" in ids


def test_skip_around_whole_body_only_trivial_cuts():
    found = _assert_exact(SkipAroundEverything().eval(), torch.randn(3, 6))
    assert [c.id for c in found] == ["input", "output"]


@pytest.mark.parametrize("name", ["vgg-fmnist", "resnet-fmnist"])
def test_zoo_models_every_cut_exact(name):
    model = build(name).eval()
    found = _assert_exact(model, torch.randn(4, 1, 28, 28))
    assert len(found) - 2 >= 8


def test_resnet_no_cut_inside_residual_branch():
    found = cuts(build("resnet-fmnist").eval(), torch.randn(1, 1, 28, 28))
    for c in found:
        assert "conv" not in c.id and "bn" not in c.id, c.id  # convs/BNs inside blocks are branch-internal
    producers = {c.producer for c in found if c.scope.startswith("layer")}
    assert producers <= {"add", "relu"}


def test_cut_metadata():
    model = build("vgg-fmnist").eval()
    found = cuts(model, torch.zeros(1, 1, 28, 28))
    by_id = {c.id: c for c in found}
    pool = by_id["pool1"]
    assert pool.shape == (16, 14, 14) and pool.float32_bytes == 16 * 14 * 14 * 4 and pool.dtype == "float32"
    assert by_id["output"].head_params == sum(p.numel() for p in model.parameters())
    assert by_id["input"].head_params == 0
    assert found[0].to_dict()["shape"] == [1, 28, 28]
    assert type(found[0]).from_dict(pool.to_dict()) == pool


def test_split_by_id_and_unknown_cut():
    model = build("vgg-fmnist").eval()
    x = torch.randn(2, 1, 28, 28)
    head, tail = split(model, "pool2", x)
    assert torch.allclose(tail(head(x)), model(x), atol=1e-5)
    with pytest.raises(PartitionError, match="valid cuts"):
        split(model, "block1_0_nope", x)


def test_heads_share_parameters_with_model():
    model = build("vgg-fmnist").eval()
    head, _ = split(model, "pool1", torch.zeros(1, 1, 28, 28))
    assert head.get_submodule("block1.0").weight is model.block1[0].weight


def test_untraceable_sequential_falls_back_to_children():
    model = nn.Sequential(nn.Linear(4, 4), DataDependent(), nn.ReLU(), nn.Linear(4, 2)).eval()
    found = _assert_exact(model, torch.randn(2, 4))
    assert [c.id for c in found] == ["input", "0", "1", "2", "output"]


def test_untraceable_model_clear_error_and_leaf_modules():
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Linear(4, 4)
            self.dd = DataDependent()
            self.post = nn.Linear(4, 2)

        def forward(self, x):
            return self.post(self.dd(torch.relu(self.pre(x))))

    x = torch.randn(2, 4)
    with pytest.raises(PartitionError, match="leaf"):
        cuts(Wrapper().eval(), x)
    found = cuts(Wrapper().eval(), x, leaf_modules=(DataDependent,))
    assert "dd" in [c.id for c in found]


def test_functional_ops_model():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3)
            self.l = nn.Linear(2 * 4 * 4, 3)

        def forward(self, x):
            y = F.relu(self.c(x))
            y = y * 2.0 + 1.0
            return self.l(torch.flatten(y, 1))

    found = _assert_exact(Functional().eval(), torch.randn(2, 1, 6, 6))
    assert {"relu", "mul", "add", "flatten"} <= {c.id for c in found}


def test_bad_arguments():
    with pytest.raises(PartitionError, match="nn.Module"):
        cuts(lambda x: x, torch.zeros(1))
    with pytest.raises(PartitionError, match="batch dimension"):
        cuts(nn.Linear(2, 2), [1.0, 2.0])
