"""The built-in Fashion-MNIST backbones: a VGG-style chain and a ResNet-style DAG.

Both are written so torch.fx traces them; their cut points come from `planner.partition`, never from
hand-written lists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=False),
    )


class VGGFMNIST(nn.Module):
    """A chain of conv-BN-ReLU blocks and max-pools (28x28 -> 14 -> 7 -> 3) with a linear classifier."""

    def __init__(self, widths: tuple[int, ...] = (16, 16, 32, 32, 64, 64), num_classes: int = 10):
        super().__init__()
        c1, c2, c3, c4, c5, c6 = widths
        self.block1 = conv_bn_relu(1, c1)
        self.block2 = conv_bn_relu(c1, c2)
        self.pool1 = nn.MaxPool2d(2)
        self.block3 = conv_bn_relu(c2, c3)
        self.block4 = conv_bn_relu(c3, c4)
        self.pool2 = nn.MaxPool2d(2)
        self.block5 = conv_bn_relu(c4, c5)
        self.block6 = conv_bn_relu(c5, c6)
        self.pool3 = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(c6 * 3 * 3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.block2(self.block1(x)))
        x = self.pool2(self.block4(self.block3(x)))
        x = self.pool3(self.block6(self.block5(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a skip connection (1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetFMNIST(nn.Module):
    """A small ResNet: stem, three stages of basic blocks (28 -> 14 -> 7), global pooling, linear head."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64), blocks: tuple[int, int, int] = (1, 1, 2),
                 num_classes: int = 10):
        super().__init__()
        self.stem = conv_bn_relu(1, widths[0])
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            stage = [BasicBlock(cin, w, stride=1 if i == 0 else 2)]
            stage += [BasicBlock(w, w) for _ in range(n - 1)]
            layers.append(nn.Sequential(*stage))
            cin = w
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))
