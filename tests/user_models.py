"""Models in the style users bring (none of them is in planner): used as `user_models:NAME` from the CLI.

Every factory is small (< 1 M parameters) so the whole chain runs on a laptop core in seconds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AlexNetLike(nn.Module):
    """A chain CNN at 3x64x64: conv-ReLU-pool blocks, odd spatial sizes (15x15, 7x7), dropout, linear head."""

    input_shape = (3, 64, 64)

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),   # 16x15x15
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),            # 32x7x7
            nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(48, 32, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(32 * 9, 64), nn.ReLU(inplace=True),
                                        nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, ch: int, r: int = 4):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(ch, ch // r, 1), nn.Conv2d(ch // r, ch, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True),
            SqueezeExcite(mid),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


class MobileSE(nn.Module):
    """Inverted residuals with depthwise convolutions and squeeze-excitation (MobileNetV2/V3 style), 1x28x28."""

    input_shape = (1, 28, 28)

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True))
        self.blocks = nn.Sequential(InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 2),
                                    InvertedResidual(24, 24, 1), InvertedResidual(24, 32, 1))
        self.head = nn.Sequential(nn.Conv2d(32, 64, 1), nn.ReLU6(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(64, classes))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class Inception(nn.Module):
    def __init__(self, cin: int, c: int):
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(cin, c, 1), nn.ReLU())
        self.b3 = nn.Sequential(nn.Conv2d(cin, c, 1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.b5 = nn.Sequential(nn.Conv2d(cin, c // 2, 1), nn.ReLU(), nn.Conv2d(c // 2, c // 2, 5, padding=2),
                                nn.ReLU())
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, c // 2, 1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


class InceptionNet(nn.Module):
    """GoogLeNet-style: a stem then inception blocks whose arms are concatenated (cuts only between blocks)."""

    input_shape = (1, 28, 28)

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))  # 16x14x14
        self.inc1 = Inception(16, 16)   # 48x14x14
        self.pool = nn.MaxPool2d(2)     # 48x7x7
        self.inc2 = Inception(48, 24)   # 72x7x7
        self.fc = nn.Linear(72, classes)

    def forward(self, x):
        x = self.inc2(self.pool(self.inc1(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ViTBlock(nn.Module):
    def __init__(self, d: int, heads: int = 4):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        h = self.n1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.n2(x))


class TinyViT(nn.Module):
    """A small vision transformer: 7x7 patches of 1x28x28 -> 16 tokens of width 48, class token, 3 blocks."""

    input_shape = (1, 28, 28)

    def __init__(self, classes: int = 10, d: int = 48, depth: int = 3):
        super().__init__()
        self.patch = nn.Conv2d(1, d, 7, 7)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(d) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        return self.fc(self.norm(self.blocks(t))[:, 0])


class ConvGRU(nn.Module):
    """A CNN feeding a GRU over image columns; `out, h = self.gru(x)` with `h` unused (a classic crash)."""

    input_shape = (1, 28, 28)

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())   # 16x14x14
        self.gru = nn.GRU(16 * 14, 64, batch_first=True)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        f = self.conv(x)
        seq = f.permute(0, 3, 1, 2).flatten(2)  # (N, 14 columns, 16 * 14)
        out, h = self.gru(seq)
        return self.fc(out[:, -1])


class TokenLSTM(nn.Module):
    """Integer token ids -> embedding -> LSTM; classifies from h_n (batch on dim 1: never a cut)."""

    input_shape = (12,)

    def __init__(self, vocab: int = 50, classes: int = 4):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        out, (h, c) = self.lstm(self.emb(x))
        return self.fc(h[-1])


class Gate(nn.Module):
    """Data-dependent control flow: not traceable by torch.fx unless kept whole as a leaf module."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        if x.mean() > 0:
            return torch.relu(self.conv(x))
        return torch.relu(x)


class Gated(nn.Module):
    input_shape = (1, 28, 28)

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.gate = Gate(8)
        self.fc = nn.Linear(8 * 14 * 14, classes)

    def forward(self, x):
        return self.fc(self.gate(self.stem(x)).flatten(1))


def _seeded(cls):
    def build():
        torch.manual_seed(0)
        return cls().eval()

    build.__name__ = cls.__name__.lower()
    return build


alexnet = _seeded(AlexNetLike)
mobile_se = _seeded(MobileSE)
inception = _seeded(InceptionNet)
vit = _seeded(TinyViT)
conv_gru = _seeded(ConvGRU)
token_lstm = _seeded(TokenLSTM)
gated = _seeded(Gated)


class Toy(nn.Module):
    """Two conv + pool stages and a linear head on 1x28x28: the trainer's and feature cache's test subject."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.c1(x)))
        x = self.pool(torch.relu(self.c2(x)))
        return self.fc(torch.flatten(x, 1))
