"""One autoencoder whose weights serve every cut of a backbone, at a latent width and a bitwidth chosen per call.

Topology (the same for every cut, so every shared tensor serves every cut):

    encoder  x / scale -> [space-to-depth 2x2 if the cut is reduced] -> 1x1 conv (k*C -> w) -> per-cut gain and
             bias -> sigmoid -> b-bit codes                                   (the edge's whole cost: one matmul)
    decoder  codes / (2^b - 1) -> 1x1 conv (w -> Wd) -> BN ReLU -> conv3x3 -> BN ReLU -> conv3x3 -> BN ReLU
             -> 1x1 conv (Wd -> k*C) -> [depth-to-space] -> ReLU (for non-negative features) -> * scale

The encoder is deliberately linear and light: the edge is the weak side, and at the earliest cuts the head is
one convolution, so an encoder costlier than that would eat the time it saves. The capacity sits in the decoder,
which runs in the cloud. Eval-mode encoders fold the input scale, the gain and the bias into one convolution.

Latent width is the second run-time knob (slimmable channels): width w uses the leading w latent channels of
the same tensors, so the widths are nested and one set of weights serves every (cut, width, bits). The widths a
cut serves are `AEConfig.widths` capped at its widest, `latent_channels` (the config's `latent`, a channel count
or a fraction of k*C). Vectors (D) and token sequences (T x D) are served by the same network viewed as maps:
D x 1 x 1 and D x T x 1. Per cut, the reduction r is 1, 2 (the default at most) or 4: an r x r space-to-depth that
keeps both sides >= min_side.
`slim` (default): the entry and exit convs are sized for the widest cut and sliced per cut; `adapter`: the exit
is a small per-cut 1x1 conv around the same shared trunk. `residual` (wide features whose every channel matters):
a clamped latent with a clip range per (cut, bits, channel), a shared linear decoder path beside the trunk, and a
warm start that is the per-channel raw quantizer (`_warm_start`), so training starts where that anchor ends.
Gains, biases and BatchNorm affine parameters are per
cut; decoder running statistics are per cut and (width, bits). The independent baseline
(`IndependentAutoencoders`) is the same class instantiated once per cut, so counts and accuracy compare like for
like.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from planner.compress.aeconfig import AEConfig, CutSpec
from planner.compress.entropy import EntropyBook
from planner.compress.quantize import check_bits, fake_quantize, from_codes, levels, to_codes
from planner.compress.shapes import from_map, to_map
from planner.errors import CompressError
from planner.types import AutoencoderKind

KINDS = tuple(k.value for k in AutoencoderKind.trained())


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


def _version(t: torch.Tensor) -> int:
    """A tensor's in-place version counter (inference tensors have none: -1)."""
    try:
        return t._version
    except RuntimeError:
        return -1


def _off_zero(t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """`t` with entries nearer zero than `eps` replaced by `eps` (a gain the decoder divides by)."""
    return torch.where(t.abs() < eps, torch.full_like(t, eps), t)


def _to_grid(y: torch.Tensor, spec: CutSpec) -> torch.Tensor:
    """Decoder output at the latent's grid -> the feature's (depth-to-space, cropped), when the cut is reduced."""
    if spec.reduction > 1:
        y = F.pixel_shuffle(y, spec.reduction)[:, :, : spec.shape[1], : spec.shape[2]]
    return y


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

    def entropy_model(self, cut: str, codes, bits: int):
        """The static entropy model of these codes (N, width, h, w) at `cut` and `bits`, or None (an autoencoder
        file without them: the codec then uses zlib/zstd)."""
        return self.entropy.for_codes(cut, codes, bits)

    def fit_entropy(self, features: dict[str, torch.Tensor]) -> None:
        """Fit the entropy models of every (cut, width, bits) on training features ({cut: (N, ...)})."""
        from planner.compress.entropy import fit_book

        self.entropy = fit_book(self, {c: f for c, f in features.items() if c in self.cuts}, self.widths)


class SharedAutoencoder(_Serves, nn.Module):
    """One encoder/decoder pair serving every cut in `config.cuts` at every latent width and bitwidth.

    `encode(feature, cut, bits, width)` -> uint8 codes (N, width, h, w); `decode(codes, cut, bits)` -> the
    reconstructed float feature (the width is the codes' channel count). `forward` is the training path (fake
    quantization, straight-through)."""

    kind = "shared"

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        self.id = ""
        self.entropy = EntropyBook()
        specs = config.cuts
        n, wd = len(specs), config.decoder_width
        cmax = max(s.entry_channels for s in specs)
        lmax = max(s.latent_channels for s in specs)
        self._index = {s.id: i for i, s in enumerate(specs)}
        self._slots = [{(w, b): j for j, (w, b) in enumerate((w, b) for w in s.widths for b in config.bits)}
                       for s in specs]
        slots = max(len(s) for s in self._slots)
        self.entry = nn.Parameter(torch.randn(lmax, cmax) / math.sqrt(cmax))
        self.gain = nn.Parameter(torch.ones(n, lmax))
        self.bias = nn.Parameter(torch.zeros(n, lmax))
        self.from_latent = _conv_weight(wd, lmax, 1)
        self.dec1 = _conv_weight(wd, wd, 3)
        self.dec2 = _conv_weight(wd, wd, 3)
        if config.variant == "residual":
            self.entry = nn.Parameter(torch.eye(lmax, cmax))
            self.skip = nn.Parameter(torch.eye(cmax, lmax))
            self.bit_gain = nn.Parameter(torch.ones(n, len(config.bits), lmax))  # per (cut, bits, channel): each
            self.bit_bias = nn.Parameter(torch.zeros(n, len(config.bits), lmax))  # bitwidth its own clip range
        if config.variant != "adapter":
            self.exit = _conv_weight(cmax, wd, 1)
            self.exit_bias = nn.Parameter(torch.zeros(cmax))
        else:
            self.exit_adapters = nn.ParameterList([_conv_weight(s.entry_channels, wd, 1) for s in specs])
            self.exit_biases = nn.ParameterList([nn.Parameter(torch.zeros(s.entry_channels)) for s in specs])
        self.dec_bn = nn.ModuleList([MultiBatchNorm(wd, n, slots) for _ in range(3)])
        self.register_buffer("scale", torch.ones(n))
        self.register_buffer("nonneg", torch.ones(n, dtype=torch.bool))
        self._folded: dict[tuple[int, int], tuple[tuple, tuple[torch.Tensor, torch.Tensor]]] = {}

    def train(self, mode: bool = True):
        self._folded = {}  # the eval-mode encoders are folded from the weights: refold after any training
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._folded = {}
        return super().load_state_dict(state_dict, strict, assign)

    # -- what it serves -------------------------------------------------------------------------------
    def spec(self, cut: str) -> CutSpec:
        return self.config.cuts[self._cut_index(cut)]

    def widths(self, cut: str) -> tuple[int, ...]:
        """The latent widths `cut` serves, ascending (the last is the widest)."""
        return self.spec(cut).widths

    def latent_shape(self, cut: str, width: int | None = None) -> tuple[int, int, int]:
        """Per-sample shape of the codes `encode` returns for `cut` at `width` (None: the widest)."""
        return self.spec(cut).latent_shape_at(width)

    def input_scale(self, cut: str) -> torch.Tensor:
        """The fixed scale the cut's features are divided by before the encoder."""
        return self.scale[self._cut_index(cut)]

    def _cut_index(self, cut) -> int:
        cut_id = getattr(cut, "id", cut)
        if cut_id not in self._index:
            raise CompressError(f"this autoencoder does not serve cut {cut_id!r}; served cuts: {', '.join(self.cuts)}")
        return self._index[cut_id]

    def _check_feature(self, x: torch.Tensor, spec: CutSpec) -> None:
        want = spec.input_shape
        if not isinstance(x, torch.Tensor) or x.dim() != len(want) + 1 or tuple(x.shape[1:]) != want:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise CompressError(f"cut {spec.id!r} expects features of shape (N, {', '.join(map(str, want))}), "
                                f"got {got}")

    # -- the network ----------------------------------------------------------------------------------
    def _padded(self, feature: torch.Tensor, spec: CutSpec) -> torch.Tensor:
        """The feature as a map, padded to a multiple of the reduction (the r x r patches the encoder reads)."""
        x = to_map(feature, spec.feature_shape)
        r = spec.reduction
        pad_w, pad_h = -x.shape[3] % r, -x.shape[2] % r
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_w or pad_h else x

    def _encoder(self, i: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder of cut i at `width` as one r x r stride-r conv (weight, bias) with the input scale, the gain
        and the bias folded in: the same as a 1x1 conv on the r x r space-to-depth, without the copy."""
        spec = self.config.cuts[i]
        version = tuple(_version(t) for t in (self.entry, self.gain, self.bias, self.scale))  # in-place edits refold
        cached = self._folded.get((i, width))
        if not self.training and cached is not None and cached[0] == version:
            return cached[1]
        g = self.gain[i, :width]
        r = spec.reduction
        w = (self.entry[:width, :spec.entry_channels] * (g / self.scale[i])[:, None]).reshape(width, -1, r, r)
        folded = (w, self.bias[i, :width])
        if not self.training:
            folded = (folded[0].detach().contiguous(), folded[1].detach().contiguous())
            self._folded[(i, width)] = (version, folded)
        return folded

    def _exit(self, h: torch.Tensor, i: int) -> torch.Tensor:
        spec = self.config.cuts[i]
        k = spec.entry_channels
        if self.config.variant != "adapter":
            y = F.conv2d(h, self.exit[:k], self.exit_bias[:k])
        else:
            y = F.conv2d(h, self.exit_adapters[i], self.exit_biases[i])
        return _to_grid(y, spec)

    def _linear_path(self, q: torch.Tensor, i: int, width: int, bits: int) -> torch.Tensor:
        """The residual variant's linear decoder: the encoder's per-channel affine undone, then the shared skip
        matrix (the identity at the warm start: a per-channel dequantizer), back at the feature's resolution."""
        spec = self.config.cuts[i]
        a, c = self._bit_affine(i, bits, width)
        g = _off_zero(self.gain[i, :width])
        u = ((q - 0.5 - c) / a + 0.5 - self.bias[i, :width, None, None]) / g[:, None, None]
        return _to_grid(F.conv2d(u, self.skip[: spec.entry_channels, :width, None, None]), spec)

    def latent(self, feature: torch.Tensor, cut, width: int | None = None) -> torch.Tensor:
        """The latent of a feature batch at `width` (None: the widest), before quantization: in [0, 1] (a sigmoid),
        or for the residual variant the unclamped affine value that `bounded()` maps into [0, 1] per bitwidth."""
        i = self._cut_index(cut)
        spec = self.config.cuts[i]
        self._check_feature(feature, spec)
        weight, bias = self._encoder(i, spec.width(width))
        z = F.conv2d(self._padded(feature, spec), weight, bias, stride=spec.reduction)
        return z if self.config.variant == "residual" else torch.sigmoid(z)

    def _bit_affine(self, i: int, bits: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The residual variant's per-(cut, bits) channel gain and offset (shape (width, 1, 1) each)."""
        j = self.bits.index(check_bits(bits, self.bits))
        a = _off_zero(self.bit_gain[i, j, :width])
        return a[:, None, None], self.bit_bias[i, j, :width, None, None]

    def bounded(self, z: torch.Tensor, cut, bits: int, width: int | None = None) -> torch.Tensor:
        """The latent `latent()` returned, narrowed to `width` and mapped into [0, 1] for `bits` (the residual
        variant's per-bitwidth clip range; the others' sigmoid output is already there)."""
        i = self._cut_index(cut)
        w = self.config.cuts[i].width(width)
        if self.config.variant != "residual":
            return z[:, :w]
        a, c = self._bit_affine(i, bits, w)
        return (a * (z[:, :w] - 0.5) + 0.5 + c).clamp(0.0, 1.0)

    def quantized(self, z: torch.Tensor, cut, bits: int, width: int | None = None) -> torch.Tensor:
        """Training path: the latent `z` at `width`, bounded and fake-quantized to `bits` (straight-through)."""
        return fake_quantize(self.bounded(z, cut, bits, width), check_bits(bits, self.bits))

    def reconstruct(self, q: torch.Tensor, cut, bits: int) -> torch.Tensor:
        """The feature rebuilt from a dequantized latent q in [0, 1] of any served width (its channel count),
        with the decoder BN statistics of that (width, bits)."""
        i = self._cut_index(cut)
        spec = self.config.cuts[i]
        width = spec.width(int(q.shape[1]))
        slot = self._slots[i][(width, check_bits(bits, self.bits))]
        bn = self.dec_bn
        h = F.relu(bn[0](F.conv2d(q, self.from_latent[:, :width]), i, slot))
        h = F.relu(bn[1](F.conv2d(h, self.dec1, padding=1), i, slot))
        h = F.relu(bn[2](F.conv2d(h, self.dec2, padding=1), i, slot))
        y = self._exit(h, i)
        if self.config.variant == "residual":
            y = y + self._linear_path(q, i, width, bits)
        if self.nonneg[i]:
            y = F.relu(y)
        return from_map(y * self.scale[i], spec.feature_shape)

    def forward(self, feature: torch.Tensor, cut, bits: int, width: int | None = None) -> torch.Tensor:
        """Training path: encode, fake-quantize to `bits` (straight-through), decode."""
        return self.reconstruct(self.quantized(self.latent(feature, cut, width), cut, bits, width), cut, bits)

    # -- deployment path ------------------------------------------------------------------------------
    def encode(self, feature: torch.Tensor, cut, bits: int, width: int | None = None) -> torch.Tensor:
        """Feature batch (N, C, H, W), (N, T, D) or (N, D) -> uint8 codes (N, *latent_shape(cut, width)) in
        [0, 2**bits - 1]; `width` None is the widest."""
        bits = check_bits(bits, self.bits)
        z = self.bounded(self.latent(feature, cut, width), cut, bits, width)
        if torch.is_inference_mode_enabled():  # bounded to [0, 1]: round in place, no clamp (= to_codes)
            return z.mul_(levels(bits)).round_().to(torch.uint8)
        return to_codes(z, bits)

    def decode(self, codes: torch.Tensor, cut, bits: int) -> torch.Tensor:
        """uint8 codes from `encode` (any served width) -> the reconstructed float feature."""
        bits = check_bits(bits, self.bits)
        spec = self.spec(getattr(cut, "id", cut))
        if not isinstance(codes, torch.Tensor) or codes.dim() != 4 or int(codes.shape[1]) not in spec.widths \
                or tuple(codes.shape[2:]) != spec.mid_size:
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise CompressError(f"cut {spec.id!r} expects codes of shape (N, W, {', '.join(map(str, spec.mid_size))})"
                                f" with W one of {', '.join(map(str, spec.widths))}, got {got}")
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
            if self.config.variant == "residual":
                self._warm_start(i, x.detach().float())
        self._folded = {}

    @torch.no_grad()
    def _warm_start(self, i: int, x: torch.Tensor) -> None:
        """The residual variant starts as a per-channel quantizer of cut i: gain and bias map each entry channel's
        clip range (the raw quantizer's, for the middle bitwidth served) onto [0, 1]; the trunk's exit starts at 0."""
        from planner.compress.clipquant import RawQuantizer

        spec = self.config.cuts[i]
        clips = RawQuantizer.calibrate({spec.id: x}, bits=self.bits).clips(spec.id)  # bits -> (C,)
        r2, lat = spec.reduction ** 2, spec.latent_channels

        def per_entry(clip):  # the clip of each entry column (c * r * r + offset), for the first `lat` of them
            return clip.repeat_interleave(r2)[:lat]

        mid = per_entry(clips[self.bits[len(self.bits) // 2]])
        s = self.scale[i]
        nonneg = bool(self.nonneg[i])
        self.gain[i, :lat], self.bias[i, :lat] = (s / mid, 0.0) if nonneg else (s / (2 * mid), 0.5)
        for j, b in enumerate(self.bits):
            a = mid / per_entry(clips[b])
            self.bit_gain[i, j, :lat] = a
            self.bit_bias[i, j, :lat] = 0.5 * (a - 1) if nonneg else 0.0
        self.exit.zero_()
        self.exit_bias.zero_()

    def set_bn_cumulative(self, on: bool) -> None:
        for m in self.modules():
            if isinstance(m, MultiBatchNorm):
                m.cumulative = on

    def reset_bn_stats(self) -> None:
        for m in self.modules():
            if isinstance(m, MultiBatchNorm):
                m.reset_running_stats()

    def param_counts(self) -> dict:
        """Parameters (weights, biases, gains, BN affine) in total, in the shared tensors and in each cut's own
        parts; BN running statistics separately (they are buffers, not learned)."""
        per_cut = {cid: 0 for cid in self.cuts}
        shared = 0
        for name, p in self.named_parameters():
            if isinstance(self._owner(name), MultiBatchNorm) or name in ("gain", "bias"):
                for i, cid in enumerate(self.cuts):
                    per_cut[cid] += p[i].numel()
            elif name.split(".")[0] in ("exit_adapters", "exit_biases"):
                per_cut[self.cuts[int(name.split(".")[1])]] += p.numel()
            else:
                shared += p.numel()
        running = sum(m.running_mean.numel() + m.running_var.numel()
                      for m in self.modules() if isinstance(m, MultiBatchNorm))
        total = sum(p.numel() for p in self.parameters())
        assert total == shared + sum(per_cut.values())
        return {"total": total, "shared_tensors": shared, "per_cut": per_cut, "bn_running_stats": running}

    def encoder_params(self, cut: str) -> int:
        """Parameters the edge runs for `cut` at its widest width (the folded 1x1 conv and its bias)."""
        spec = self.spec(cut)
        return spec.latent_channels * (spec.entry_channels + 1)

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
        self.entropy = EntropyBook()
        self.members = nn.ModuleList([SharedAutoencoder(config.only(s.id)) for s in config.cuts])
        self._index = {s.id: i for i, s in enumerate(config.cuts)}

    def member(self, cut) -> SharedAutoencoder:
        cut_id = getattr(cut, "id", cut)
        if cut_id not in self._index:
            raise CompressError(f"this autoencoder does not serve cut {cut_id!r}; served cuts: {', '.join(self.cuts)}")
        return self.members[self._index[cut_id]]

    def spec(self, cut: str) -> CutSpec:
        return self.member(cut).spec(cut)

    def widths(self, cut: str) -> tuple[int, ...]:
        return self.member(cut).widths(cut)

    def latent_shape(self, cut: str, width: int | None = None) -> tuple[int, int, int]:
        return self.member(cut).latent_shape(cut, width)

    def input_scale(self, cut: str) -> torch.Tensor:
        return self.member(cut).input_scale(cut)

    def latent(self, feature, cut, width=None):
        return self.member(cut).latent(feature, cut, width)

    def reconstruct(self, q, cut, bits):
        return self.member(cut).reconstruct(q, cut, bits)

    def bounded(self, z, cut, bits, width=None):
        return self.member(cut).bounded(z, cut, bits, width)

    def quantized(self, z, cut, bits, width=None):
        return self.member(cut).quantized(z, cut, bits, width)

    def forward(self, feature, cut, bits, width=None):
        return self.member(cut)(feature, cut, bits, width)

    def encode(self, feature, cut, bits, width=None):
        return self.member(cut).encode(feature, cut, bits, width)

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

    def encoder_params(self, cut: str) -> int:
        return self.member(cut).encoder_params(cut)

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


def analytic_payload_bits(ae: Autoencoder, cut: str, bits: int, width: int | None = None) -> int:
    """Bits of the quantized latent alone (no header, no lossless stage)."""
    return math.prod(ae.latent_shape(cut, width)) * check_bits(bits)
