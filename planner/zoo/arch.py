"""ImageNet-scale architectures by name, with random weights, for what-if planning (timing and shapes only).

`build("resnet50") -> (model.eval(), (3, 224, 224))`. The four built-ins are written from their published
layer tables (He et al. 2016 Table 1; Sandler et al. 2018 Table 2; Simonyan & Zisserman 2015 config D) with
torchvision's module names, so a torchvision state_dict loads into them unchanged. `torchvision:NAME` builds
a torchvision model instead when the `torchvision` extra imports. All are fx-traceable and use no in-place
ops, so `planner.partition.cuts` splits them exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from planner.errors import ZooError
from planner.extras import require

IMAGENET_SHAPE = (3, 224, 224)
IMAGENET_CLASSES = 1000
TORCHVISION_PREFIX = "torchvision:"


# -- ResNet (He et al. 2016, Table 1) -----------------------------------------------------------------------
def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(cout)


def _projection(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """Shortcut option B: a 1x1 projection where the shape changes, identity elsewhere."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(*_conv_bn(cin, cout, 1, stride))


class BasicBlock(nn.Module):
    """Two 3x3 convs plus the shortcut; ReLU after the sum (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, width, 3, stride)
        self.conv2, self.bn2 = _conv_bn(width, width, 3)
        self.relu = nn.ReLU()
        self.downsample = _projection(cin, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) plus the shortcut (ResNet-50 and deeper).

    The stride sits on the 3x3 conv (torchvision's "v1.5"); the paper's Caffe model put it on the first 1x1.
    Parameter count and output shapes are the same either way.
    """

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, cout, 1)
        self.relu = nn.ReLU()
        self.downsample = _projection(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """7x7/2 stem, 3x3/2 max-pool, four stages (conv2_x..conv5_x) at widths 64..512, global pool, fc."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = IMAGENET_CLASSES):
        super().__init__()
        self.num_classes = num_classes
        self.input_shape = IMAGENET_SHAPE
        self.conv1, self.bn1 = _conv_bn(3, 64, 7, 2)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, stride if j == 0 else 1))
                cin = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# -- MobileNetV2 (Sandler et al. 2018, Table 2) -------------------------------------------------------------
class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(*_conv_bn(cin, cout, kernel, stride, groups), nn.ReLU6())


class InvertedResidual(nn.Module):
    """1x1 expand (t), 3x3 depthwise, 1x1 linear projection; skip when stride 1 and shape kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNReLU6(cin, hidden, 1)]
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden), *_conv_bn(hidden, cout, 1)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# (t expansion, c channels, n repeats, s stride of the first)
MOBILENET_V2_TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """Width 1.0: conv 32/2, 17 inverted residual blocks, conv 1x1 to 1280, global pool, classifier."""

    def __init__(self, num_classes: int = IMAGENET_CLASSES, dropout: float = 0.2):
        super().__init__()
        self.num_classes = num_classes
        self.input_shape = IMAGENET_SHAPE
        cin = 32
        features: list[nn.Module] = [ConvBNReLU6(3, cin, 3, 2)]
        for t, c, n, s in MOBILENET_V2_TABLE:
            for j in range(n):
                features.append(InvertedResidual(cin, c, s if j == 0 else 1, t))
                cin = c
        features.append(ConvBNReLU6(cin, 1280, 1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# -- VGG-16 (Simonyan & Zisserman 2015, configuration D) ----------------------------------------------------
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """3x3 conv stacks and 2x2 max-pools, then fc-4096, fc-4096, fc-classes.

    An adaptive 7x7 pool before the classifier (as in torchvision) keeps 224x224 unchanged and lets smaller
    inputs run; `batch_norm=True` adds BN after each conv (not in the paper).
    """

    def __init__(self, config: tuple = VGG16_CONFIG, num_classes: int = IMAGENET_CLASSES, batch_norm: bool = False,
                 dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.input_shape = IMAGENET_SHAPE
        layers: list[nn.Module] = []
        cin = 3
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(cin, v, 3, padding=1))
            layers += [nn.BatchNorm2d(v), nn.ReLU()] if batch_norm else [nn.ReLU()]
            cin = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(cin * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _init(model: nn.Module) -> None:
    """He-normal convs, unit BN, small linear weights: random but with sane activation scales for timing."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# -- registry -----------------------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: ResNet(BasicBlock, (2, 2, 2, 2)),
    "resnet50": lambda: ResNet(Bottleneck, (3, 4, 6, 3)),
    "mobilenet_v2": MobileNetV2,
    "vgg16": VGG,
    "vgg16_bn": lambda: VGG(batch_norm=True),
}

# the counts the papers / torchvision report, checked by the tests
PUBLISHED_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872,
                    "vgg16": 138_357_544, "vgg16_bn": 138_365_992}


def names() -> list[str]:
    """The built-in architecture names (`torchvision:NAME` is accepted too when torchvision imports)."""
    return sorted(_REGISTRY)


def build(name: str, device: str | torch.device | None = None) -> tuple[nn.Module, tuple[int, ...]]:
    """A randomly initialised architecture in eval mode and its per-sample input shape.

    `device="meta"` builds it without allocating or initialising weights (shapes and parameter counts only).
    """
    if name.startswith(TORCHVISION_PREFIX):
        factory = _torchvision(name[len(TORCHVISION_PREFIX):])
    elif name in _REGISTRY:
        factory = _REGISTRY[name]
    else:
        raise ZooError(f"unknown architecture {name!r}; known: {', '.join(names())}, or torchvision:NAME "
                       f"with the torchvision extra")
    with torch.device(device or "cpu"):
        model = factory()
    return model.eval(), IMAGENET_SHAPE


def _torchvision(name: str) -> Callable[[], nn.Module]:
    tvm = require("torchvision", f"building torchvision:{name}", ZooError)
    known = sorted(tvm.list_models(module=tvm))
    if name not in known:
        raise ZooError(f"unknown torchvision model {name!r}; torchvision classification models: {', '.join(known)}")
    return lambda: tvm.get_model(name, weights=None)
