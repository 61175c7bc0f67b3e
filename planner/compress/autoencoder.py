"""One autoencoder whose weights serve every cut of a backbone, quantized to a bitwidth chosen per call.

Topology (the same for every cut, so every shared tensor serves every cut):

    encoder  x / scale -> [space-to-depth 2x2 if s1] -> entry 1x1 (k*C -> We) -> BN ReLU
             -> conv3x3 stride s2 -> BN ReLU -> conv3x3 -> BN ReLU -> conv1x1 (We -> L) -> sigmoid -> b-bit codes
    decoder  codes / (2^b - 1) -> conv1x1 (L -> Wd) -> BN ReLU -> conv3x3 -> BN ReLU
             -> [nearest upsample if s2] conv3x3 -> BN ReLU -> exit 1x1 (Wd -> k*C) -> [depth-to-space if s1]
             -> ReLU (for non-negative features) -> * scale

Per cut, (s1, s2) reduce the spatial size by 1, 2 or 4 (large maps shrink to about 7x7; k = 4 when s1 = 2)
and L is the cut's latent width. Everything at full resolution is a 1x1 (patch) projection, so the 3x3 trunk
only runs at 1/4 or 1/16 of the pixels. Two ways to serve cuts of different widths:
- ``slim`` (default): entry, exit and latent convs are sized for the widest cut; a cut uses the leading
  slice of the same tensors (slimmable convolution); per cut only BatchNorm affine parameters;
- ``adapter``: entry and exit are small per-cut 1x1 convs around the same shared trunk.
BatchNorm affine parameters are per cut; running statistics are per cut in the encoder and per cut and
bitwidth in the decoder (after the quantizer). The independent baseline (`IndependentAutoencoders`) is the
same class instantiated once per cut, so parameter counts and accuracy compare like for like.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from planner.compress.quantize import check_bits, fake_quantize, from_codes, to_codes
from planner.config import DEFAULT_BITS, DEFAULT_LATENT
from planner.errors import CompressError
from planner.types import AutoencoderKind

WEIGHTS_DIR = Path(__file__).parent / "weights"
VARIANTS = ("slim", "adapter")
KINDS = tuple(k.value for k in AutoencoderKind.trained())
FORMAT_VERSION = 1

# Producers whose output is a block output after its activation (or a pooling of one): the cuts worth serving.
_ACTIVATIONS = {"ReLU", "relu", "ReLU6", "relu6", "LeakyReLU", "leaky_relu", "GELU", "gelu", "SiLU", "silu",
                "Hardswish", "hardswish", "ELU", "elu", "Mish", "mish", "Sigmoid", "sigmoid", "Tanh", "tanh"}
_POOLS = {"MaxPool2d", "max_pool2d", "AvgPool2d", "avg_pool2d", "AdaptiveAvgPool2d", "adaptive_avg_pool2d",
          "AdaptiveMaxPool2d", "adaptive_max_pool2d"}


def meaningful(cut) -> bool:
    """A cut the autoencoder serves by default: an inner (C, H, W) map with H, W >= 2 made by an activation or
    a pooling layer, i.e. a block output, never the tensor between a conv and its BatchNorm or before a ReLU."""
    shape = tuple(cut.shape)
    return (cut.kind == "inner" and len(shape) == 3 and min(shape[1:]) >= 2
            and cut.producer in _ACTIVATIONS | _POOLS)


def select_cuts(cuts: Sequence, ids: Iterable[str] | None = None) -> list:
    """The cuts to serve: the given ids (each must be a (C, H, W) inner cut), or every `meaningful` cut."""
    if ids is None:
        chosen = [c for c in cuts if meaningful(c)]
        if not chosen:
            raise CompressError("the model has no (C, H, W) cut after an activation or pooling; pass cut ids explicitly")
        return chosen
    by_id = {c.id: c for c in cuts}
    chosen = []
    for cid in ids:
        if cid not in by_id:
            raise CompressError(f"{cid!r} is not a cut of this model; cuts: {', '.join(by_id)}")
        c = by_id[cid]
        if c.kind != "inner" or len(c.shape) != 3:
            raise CompressError(f"cut {cid!r} has shape {tuple(c.shape)}; the autoencoder serves inner (C, H, W) maps")
        chosen.append(c)
    return chosen


@dataclass
class CutSpec:
    """How the autoencoder treats one cut: its feature shape, spatial reduction and latent width."""

    id: str
    shape: tuple[int, int, int]  # (C, H, W) of the feature, per sample
    reduction: int  # 1, 2 or 4
    latent_channels: int

    @property
    def strides(self) -> tuple[int, int]:
        return (2 if self.reduction >= 2 else 1, 2 if self.reduction >= 4 else 1)

    @property
    def mid_size(self) -> tuple[int, int]:
        s1 = self.strides[0]
        return (-(-self.shape[1] // s1), -(-self.shape[2] // s1))

    @property
    def entry_channels(self) -> int:
        """Channels entering the 1x1 entry conv: C, or 4C after a 2x2 space-to-depth."""
        return self.shape[0] * self.strides[0] ** 2

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s2 = self.strides[1]
        h, w = self.mid_size
        return (self.latent_channels, -(-h // s2), -(-w // s2))


def plan_cut(cut_id: str, shape: Sequence[int], latent: float = DEFAULT_LATENT, max_reduction: int = 4,
             min_side: int = 7) -> CutSpec:
    """The reduction (largest power of two <= max_reduction that keeps both sides >= min_side) and the
    latent width (`latent` channels if an integer >= 1, else that fraction of C) of one cut."""
    c, h, w = (int(s) for s in shape)
    if max_reduction not in (1, 2, 4):
        raise CompressError(f"max_reduction must be 1, 2 or 4, got {max_reduction}")
    r = 1
    while 2 * r <= max_reduction and min(h, w) // (2 * r) >= min_side:
        r *= 2
    if latent <= 0:
        raise CompressError(f"latent width must be positive (a channel count or a fraction of C), got {latent}")
    lat = int(latent) if latent >= 1 else round(latent * c)
    return CutSpec(cut_id, (c, h, w), r, max(1, min(lat, c)))


@dataclass
class AEConfig:
    """Everything needed to rebuild an autoencoder (its weights aside); serializes to JSON."""

    cuts: list[CutSpec]
    bits: tuple[int, ...] = DEFAULT_BITS
    variant: str = "slim"
    width: int = 32  # encoder trunk width
    decoder_width: int = 32
    latent: float = DEFAULT_LATENT  # as given by the user: a channel count, or a fraction of each cut's channels
    max_reduction: int = 4
    min_side: int = 7
    extra: dict = field(default_factory=dict)  # free-form notes (the backbone's name, ...)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise CompressError(f"unknown variant {self.variant!r}; choose {' or '.join(VARIANTS)}")
        if not self.cuts:
            raise CompressError("an autoencoder needs at least one cut")
        self.bits = tuple(sorted({check_bits(b) for b in self.bits}))
        self.cuts = [c if isinstance(c, CutSpec) else CutSpec(c["id"], tuple(c["shape"]), c["reduction"],
                                                               c["latent_channels"]) for c in self.cuts]
        for c in self.cuts:
            c.shape = tuple(int(s) for s in c.shape)

    @classmethod
    def for_cuts(cls, cuts: Sequence, latent: float = DEFAULT_LATENT, max_reduction: int = 4, min_side: int = 7,
                 **kw) -> AEConfig:
        """A config serving `cuts` (Cut objects or (id, (C, H, W)) pairs)."""
        pairs = [(c.id, c.shape) if hasattr(c, "id") else c for c in cuts]
        specs = [plan_cut(cid, shape, latent, max_reduction, min_side) for cid, shape in pairs]
        return cls(specs, latent=latent, max_reduction=max_reduction, min_side=min_side, **kw)

    def only(self, cut_id: str) -> AEConfig:
        """The same config restricted to one cut (an independent autoencoder)."""
        spec = next(c for c in self.cuts if c.id == cut_id)
        return AEConfig(**{**self.__dict__, "cuts": [spec], "extra": dict(self.extra)})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bits"] = list(self.bits)
        for c in d["cuts"]:
            c["shape"] = list(c["shape"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AEConfig:
        return cls(**{**d, "bits": tuple(d["bits"])})


class MultiBatchNorm(nn.Module):
    """BatchNorm over a fixed width with affine parameters per cut and running statistics per (cut, slot).

    `cumulative = True` makes the running statistics an exact average over the batches seen since the last
    `reset_running_stats()`, for recalibration after training."""

    def __init__(self, width: int, cuts: int, slots: int = 1, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum, self.cumulative = eps, momentum, False
        self.weight = nn.Parameter(torch.ones(cuts, width))
        self.bias = nn.Parameter(torch.zeros(cuts, width))
        self.register_buffer("running_mean", torch.zeros(cuts, slots, width))
        self.register_buffer("running_var", torch.ones(cuts, slots, width))
        self.register_buffer("num_batches", torch.zeros(cuts, slots, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches.zero_()

    def forward(self, x: torch.Tensor, cut: int, slot: int = 0) -> torch.Tensor:
        momentum = self.momentum
        if self.training:
            self.num_batches[cut, slot] += 1
            if self.cumulative:
                momentum = 1.0 / float(self.num_batches[cut, slot])
        return F.batch_norm(x, self.running_mean[cut, slot], self.running_var[cut, slot], self.weight[cut],
                            self.bias[cut], self.training, momentum, self.eps)


def _conv_weight(out_ch: int, in_ch: int, k: int) -> nn.Parameter:
    w = torch.empty(out_ch, in_ch, k, k)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    return nn.Parameter(w)


class _Serves:
    """The cut ids and bitwidths an autoencoder (shared or independent) serves, read from its config."""

    @property
    def cuts(self) -> list[str]:
        return [s.id for s in self.config.cuts]

    @property
    def bits(self) -> tuple[int, ...]:
        return tuple(self.config.bits)


class SharedAutoencoder(_Serves, nn.Module):
    """One encoder/decoder pair serving every cut in `config.cuts` at every bitwidth in `config.bits`.

    `encode(feature, cut, bits)` -> uint8 codes (N, *latent_shape(cut)); `decode(codes, cut, bits)` -> the
    reconstructed float feature. `forward` is the training path (fake quantization, straight-through)."""

    kind = "shared"

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        self.id = ""
        specs = config.cuts
        n, we, wd = len(specs), config.width, config.decoder_width
        cmax = max(s.entry_channels for s in specs)
        lmax = max(s.latent_channels for s in specs)
        self._index = {s.id: i for i, s in enumerate(specs)}
        self._slot = {b: j for j, b in enumerate(config.bits)}
        if config.variant == "slim":
            self.entry = _conv_weight(we, cmax, 1)
            self.exit = _conv_weight(cmax, wd, 1)
            self.exit_bias = nn.Parameter(torch.zeros(cmax))
        else:
            self.entry_adapters = nn.ParameterList([_conv_weight(we, s.entry_channels, 1) for s in specs])
            self.exit_adapters = nn.ParameterList([_conv_weight(s.entry_channels, wd, 1) for s in specs])
            self.exit_biases = nn.ParameterList([nn.Parameter(torch.zeros(s.entry_channels)) for s in specs])
        self.enc1 = _conv_weight(we, we, 3)
        self.enc2 = _conv_weight(we, we, 3)
        self.to_latent = _conv_weight(lmax, we, 1)
        self.to_latent_bias = nn.Parameter(torch.zeros(lmax))
        self.from_latent = _conv_weight(wd, lmax, 1)
        self.dec1 = _conv_weight(wd, wd, 3)
        self.dec2 = _conv_weight(wd, wd, 3)
        self.enc_bn = nn.ModuleList([MultiBatchNorm(we, n) for _ in range(3)])
        self.dec_bn = nn.ModuleList([MultiBatchNorm(wd, n, len(config.bits)) for _ in range(3)])
        self.register_buffer("scale", torch.ones(n))
        self.register_buffer("nonneg", torch.ones(n, dtype=torch.bool))

    # -- what it serves -------------------------------------------------------------------------------
    def spec(self, cut: str) -> CutSpec:
        return self.config.cuts[self._cut_index(cut)]

    def latent_shape(self, cut: str) -> tuple[int, int, int]:
        """Per-sample shape of the codes `encode` returns for `cut`."""
        return self.spec(cut).latent_shape

    def input_scale(self, cut: str) -> torch.Tensor:
        """The fixed scale the cut's features are divided by before the encoder."""
        return self.scale[self._cut_index(cut)]

    def _cut_index(self, cut) -> int:
        cut_id = getattr(cut, "id", cut)
        if cut_id not in self._index:
            raise CompressError(f"this autoencoder does not serve cut {cut_id!r}; served cuts: {', '.join(self.cuts)}")
        return self._index[cut_id]

    def _check_feature(self, x: torch.Tensor, spec: CutSpec) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != spec.shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise CompressError(f"cut {spec.id!r} expects features of shape (N, {', '.join(map(str, spec.shape))}), "
                                f"got {got}")

    # -- the network ----------------------------------------------------------------------------------
    def _entry(self, x: torch.Tensor, i: int) -> torch.Tensor:
        spec = self.config.cuts[i]
        if spec.strides[0] == 2:
            x = F.pixel_unshuffle(F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2)), 2)
        k = spec.entry_channels
        w = self.entry[:, :k] if self.config.variant == "slim" else self.entry_adapters[i]
        return F.conv2d(x, w)

    def _exit(self, h: torch.Tensor, i: int) -> torch.Tensor:
        spec = self.config.cuts[i]
        k = spec.entry_channels
        if self.config.variant == "slim":
            y = F.conv2d(h, self.exit[:k], self.exit_bias[:k])
        else:
            y = F.conv2d(h, self.exit_adapters[i], self.exit_biases[i])
        if spec.strides[0] == 2:
            y = F.pixel_shuffle(y, 2)[:, :, : spec.shape[1], : spec.shape[2]]
        return y

    def latent(self, feature: torch.Tensor, cut) -> torch.Tensor:
        """The bounded latent z in [0, 1] of a feature batch, before quantization."""
        i = self._cut_index(cut)
        spec = self.config.cuts[i]
        self._check_feature(feature, spec)
        s2 = spec.strides[1]
        bn = self.enc_bn
        h = F.relu(bn[0](self._entry(feature / self.scale[i], i), i))
        h = F.relu(bn[1](F.conv2d(h, self.enc1, stride=s2, padding=1), i))
        h = F.relu(bn[2](F.conv2d(h, self.enc2, padding=1), i))
        lat = spec.latent_channels
        return torch.sigmoid(F.conv2d(h, self.to_latent[:lat], self.to_latent_bias[:lat]))

    def reconstruct(self, q: torch.Tensor, cut, bits: int) -> torch.Tensor:
        """The feature rebuilt from a dequantized latent q in [0, 1] (decoder BN statistics of `bits`)."""
        i = self._cut_index(cut)
        slot = self._slot[check_bits(bits, self.bits)]
        spec = self.config.cuts[i]
        bn = self.dec_bn
        h = F.relu(bn[0](F.conv2d(q, self.from_latent[:, : spec.latent_channels]), i, slot))
        h = F.relu(bn[1](F.conv2d(h, self.dec1, padding=1), i, slot))
        if spec.strides[1] == 2:
            h = F.interpolate(h, size=spec.mid_size, mode="nearest")
        h = F.relu(bn[2](F.conv2d(h, self.dec2, padding=1), i, slot))
        y = self._exit(h, i)
        if self.nonneg[i]:
            y = F.relu(y)
        return y * self.scale[i]

    def forward(self, feature: torch.Tensor, cut, bits: int) -> torch.Tensor:
        """Training path: encode, fake-quantize to `bits` (straight-through), decode."""
        return self.reconstruct(fake_quantize(self.latent(feature, cut), check_bits(bits, self.bits)), cut, bits)

    # -- deployment path ------------------------------------------------------------------------------
    def encode(self, feature: torch.Tensor, cut, bits: int) -> torch.Tensor:
        """Feature batch (N, C, H, W) -> uint8 codes (N, *latent_shape(cut)) in [0, 2**bits - 1]."""
        bits = check_bits(bits, self.bits)
        return to_codes(self.latent(feature, cut), bits)

    def decode(self, codes: torch.Tensor, cut, bits: int) -> torch.Tensor:
        """uint8 codes from `encode` -> the reconstructed float feature (N, C, H, W)."""
        bits = check_bits(bits, self.bits)
        expected = self.latent_shape(cut)
        if not isinstance(codes, torch.Tensor) or codes.dim() != 4 or tuple(codes.shape[1:]) != expected:
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise CompressError(f"cut {getattr(cut, 'id', cut)!r} expects codes of shape "
                                f"(N, {', '.join(map(str, expected))}), got {got}")
        return self.reconstruct(from_codes(codes, bits, self.scale.dtype), cut, bits)

    # -- calibration and accounting -------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, features: dict[str, torch.Tensor], quantile: float = 0.999, max_values: int = 2_000_000,
                  seed: int = 0) -> None:
        """Set each cut's input scale (the `quantile` of its feature values) and whether it is non-negative."""
        gen = torch.Generator().manual_seed(seed)
        for cut_id, x in features.items():
            if cut_id not in self._index:
                continue
            i = self._index[cut_id]
            flat = x.detach().reshape(-1).float()
            if flat.numel() > max_values:
                flat = flat[torch.randint(0, flat.numel(), (max_values,), generator=gen)]
            self.nonneg[i] = bool(flat.min() >= 0)
            q = torch.quantile(flat.abs(), quantile)
            self.scale[i] = q if q > 0 else flat.abs().max().clamp_min(1e-6)

    def set_bn_cumulative(self, on: bool) -> None:
        for m in self.modules():
            if isinstance(m, MultiBatchNorm):
                m.cumulative = on

    def reset_bn_stats(self) -> None:
        for m in self.modules():
            if isinstance(m, MultiBatchNorm):
                m.reset_running_stats()

    def param_counts(self) -> dict:
        """Parameters (weights, biases, BN affine) in total, in the shared tensors and in each cut's own parts;
        BN running statistics separately (they are buffers, not learned)."""
        per_cut = {cid: 0 for cid in self.cuts}
        shared = 0
        for name, p in self.named_parameters():
            if isinstance(self._owner(name), MultiBatchNorm):
                for i, cid in enumerate(self.cuts):
                    per_cut[cid] += p[i].numel()
            elif name.split(".")[0] in ("entry_adapters", "exit_adapters", "exit_biases"):
                per_cut[self.cuts[int(name.split(".")[1])]] += p.numel()
            else:
                shared += p.numel()
        running = sum(m.running_mean.numel() + m.running_var.numel()
                      for m in self.modules() if isinstance(m, MultiBatchNorm))
        total = sum(p.numel() for p in self.parameters())
        assert total == shared + sum(per_cut.values())
        return {"total": total, "shared_tensors": shared, "per_cut": per_cut, "bn_running_stats": running}

    def _owner(self, param_name: str) -> nn.Module:
        return self.get_submodule(param_name.rpartition(".")[0]) if "." in param_name else self

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.id, "config": self.config.to_dict(), "params": self.param_counts()}


class IndependentAutoencoders(_Serves, nn.Module):
    """The baseline: one autoencoder per cut, each the same topology and latent width as the shared one's
    treatment of that cut, behind the same API."""

    kind = "independent"

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        self.id = ""
        self.members = nn.ModuleList([SharedAutoencoder(config.only(s.id)) for s in config.cuts])
        self._index = {s.id: i for i, s in enumerate(config.cuts)}

    def member(self, cut) -> SharedAutoencoder:
        cut_id = getattr(cut, "id", cut)
        if cut_id not in self._index:
            raise CompressError(f"this autoencoder does not serve cut {cut_id!r}; served cuts: {', '.join(self.cuts)}")
        return self.members[self._index[cut_id]]

    def spec(self, cut: str) -> CutSpec:
        return self.member(cut).spec(cut)

    def latent_shape(self, cut: str) -> tuple[int, int, int]:
        return self.member(cut).latent_shape(cut)

    def input_scale(self, cut: str) -> torch.Tensor:
        return self.member(cut).input_scale(cut)

    def latent(self, feature, cut):
        return self.member(cut).latent(feature, cut)

    def reconstruct(self, q, cut, bits):
        return self.member(cut).reconstruct(q, cut, bits)

    def forward(self, feature, cut, bits):
        return self.member(cut)(feature, cut, bits)

    def encode(self, feature, cut, bits):
        return self.member(cut).encode(feature, cut, bits)

    def decode(self, codes, cut, bits):
        return self.member(cut).decode(codes, cut, bits)

    def calibrate(self, features: dict[str, torch.Tensor], **kw) -> None:
        for m in self.members:
            m.calibrate(features, **kw)

    def set_bn_cumulative(self, on: bool) -> None:
        for m in self.members:
            m.set_bn_cumulative(on)

    def reset_bn_stats(self) -> None:
        for m in self.members:
            m.reset_bn_stats()

    def param_counts(self) -> dict:
        """The sum over the per-cut autoencoders; `per_cut` is each one's whole parameter count."""
        counts = [m.param_counts() for m in self.members]
        return {"total": sum(c["total"] for c in counts), "shared_tensors": 0,
                "per_cut": {cid: c["total"] for cid, c in zip(self.cuts, counts, strict=True)},
                "bn_running_stats": sum(c["bn_running_stats"] for c in counts)}

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.id, "config": self.config.to_dict(), "params": self.param_counts()}


Autoencoder = SharedAutoencoder | IndependentAutoencoders


def build_autoencoder(config: AEConfig, kind: str = "shared") -> Autoencoder:
    """A fresh (untrained) shared autoencoder or independent baseline for `config`."""
    if kind not in KINDS:
        raise CompressError(f"unknown autoencoder kind {kind!r}; choose {' or '.join(KINDS)}")
    return SharedAutoencoder(config) if kind == "shared" else IndependentAutoencoders(config)


# -- files --------------------------------------------------------------------------------------------
def save_autoencoder(ae: Autoencoder, path: str | Path, half: bool = True) -> str:
    """Write config + weights (float16 on disk when `half`, to keep committed files small); return the sha256."""
    state = {k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in ae.state_dict().items()}
    blob = {"format": FORMAT_VERSION, "kind": ae.kind, "config": json.dumps(ae.config.to_dict()), "state": state}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_autoencoder_file(path: str | Path) -> Autoencoder:
    """Rebuild an autoencoder written by `save_autoencoder` (loaded with weights_only=True), in eval mode."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        import io

        blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        if blob.get("format") != FORMAT_VERSION:
            raise CompressError(f"{path}: autoencoder file format {blob.get('format')!r}, expected {FORMAT_VERSION}")
        ae = build_autoencoder(AEConfig.from_dict(json.loads(blob["config"])), blob["kind"])
        ae.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()})
    except CompressError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad or foreign file
        raise CompressError(f"cannot load autoencoder {path}: {exc}") from None
    ae.id = f"{ae.config.extra.get('model', path.stem)}/{ae.kind}@{hashlib.sha256(raw).hexdigest()[:8]}"
    return ae.eval()


def weights_path(model_name: str, kind: str = "shared") -> Path:
    return WEIGHTS_DIR / f"{model_name}-{kind}.pt"


def load_autoencoder(model_name: str, kind: str = "shared", path: str | Path | None = None) -> Autoencoder:
    """The committed autoencoder of a zoo model (`kind` "shared" or "independent") in eval mode; its `id` is
    "<model>/<kind>@<first 8 hex of the file's sha256>"."""
    if kind not in KINDS:
        raise CompressError(f"unknown autoencoder kind {kind!r}; choose {' or '.join(KINDS)}")
    p = Path(path) if path else weights_path(model_name, kind)
    if not p.exists():
        flag = " --independent" if kind == "independent" else ""
        raise CompressError(f"no {kind} autoencoder for {model_name!r} at {p}; make it with "
                            f"`planner train-ae --model {model_name}{flag}`")
    return load_autoencoder_file(p)


def committed_id(model_name: str, kind: str = "shared") -> str:
    """The id of a zoo model's committed autoencoder of this kind (CompressError when there is none)."""
    return load_autoencoder(model_name, kind).id


def analytic_payload_bits(ae: Autoencoder, cut: str, bits: int) -> int:
    """Bits of the quantized latent alone (no header, no lossless stage)."""
    return math.prod(ae.latent_shape(cut)) * check_bits(bits)
