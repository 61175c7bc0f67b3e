"""Training-free compression of the raw feature: per-channel uniform quantization with calibrated clipping.

The baseline the shared autoencoder must beat (Cohen, Choi & Bajic 2021; Auto-Split): no weights, only a clip
range per channel and bitwidth, measured on a few hundred training samples. A channel's range is [0, clip] for
a non-negative feature (after a ReLU), [-clip, clip] otherwise; `clip` is a multiple of the channel's 99.99th
percentile of |x|, the multiple chosen per bitwidth by the smallest mean squared error over the calibration
features (low bitwidths clip harder). Codes are uint8 in [0, 2**b - 1], the feature's own shape; they cross
the link through the same codec (flagged as raw-quantizer codes) and lossless stage as the autoencoder's.
Both sides load the same calibration file; its id is "<model>/quant@<first 8 hex of its sha256>".
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from planner.compress.cutselect import feature_kind
from planner.compress.entropy import EntropyBook, fit_book
from planner.compress.quantize import from_codes, levels
from planner.compress.shapes import from_map, to_map
from planner.compress.zoo import WEIGHTS_DIR
from planner.config import DEFAULT_BITS, batch_for
from planner.errors import CodecError, CompressError
from planner.types import check_bits

FORMAT = "planner-rawquant/1"
_MULTIPLES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)


@dataclass
class _CutRange:
    shape: tuple[int, ...]
    nonneg: bool
    clip: dict[int, torch.Tensor]  # bits -> per-channel clip (C,)


class RawQuantizer:
    """Per-channel uniform quantizer of the raw features at a model's cuts, bitwidth chosen per call."""

    kind = "quant"

    def __init__(self, cuts: dict[str, _CutRange], bits: Sequence[int], extra: dict | None = None, id: str = ""):
        self._cuts = cuts
        self.bits = tuple(sorted(check_bits(b) for b in bits))
        self.extra = dict(extra or {})
        self.id = id
        self.entropy = EntropyBook()

    def entropy_model(self, cut: str, codes, bits: int):
        """The static entropy model of these codes at `cut` and `bits`, or None (then zlib/zstd)."""
        return self.entropy.for_codes(cut, codes, bits)

    def fit_entropy(self, features: dict[str, torch.Tensor]) -> None:
        """Fit the entropy models of every (cut, bits) on calibration features ({cut: (N, ...)})."""
        self.entropy = fit_book(self, {c: f for c, f in features.items() if c in self._cuts})

    @property
    def cuts(self) -> list[str]:
        return list(self._cuts)

    def _range(self, cut) -> _CutRange:
        cut_id = getattr(cut, "id", cut)
        if cut_id not in self._cuts:
            raise CompressError(f"the raw quantizer has no calibration for cut {cut_id!r}; calibrated cuts: "
                                f"{', '.join(self._cuts)}")
        return self._cuts[cut_id]

    def clips(self, cut) -> dict[int, torch.Tensor]:
        """The per-channel clip range of `cut` at each calibrated bitwidth ({bits: (C,)})."""
        return dict(self._range(cut).clip)

    def latent_shape(self, cut, width: int | None = None) -> tuple[int, ...]:
        """Per-sample code shape: the feature's own."""
        return self._range(cut).shape

    def _clip(self, r: _CutRange, bits: int) -> torch.Tensor:
        b = check_bits(bits, self.bits)
        return r.clip[b][None, :, None, None]

    def _check(self, x: torch.Tensor, r: _CutRange, cut, what: str) -> None:
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != r.shape or x.dim() != len(r.shape) + 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise CompressError(f"cut {getattr(cut, 'id', cut)!r} expects {what} of shape (N, "
                                f"{', '.join(map(str, r.shape))}), got {got}")

    def encode(self, feature: torch.Tensor, cut, bits: int, width: int | None = None) -> torch.Tensor:
        """Feature batch -> uint8 codes of the same shape (`width` is not a knob here and must be None)."""
        if width is not None:
            raise CompressError("the raw quantizer has no latent width; pass width=None")
        r = self._range(cut)
        self._check(feature, r, cut, "features")
        clip = self._clip(r, bits)
        x = to_map(feature, r.shape).float()
        lo = torch.zeros_like(clip) if r.nonneg else -clip
        z = ((x - lo) / (clip - lo)).clamp(0.0, 1.0)
        codes = torch.round(z * levels(bits)).to(torch.uint8)
        return from_map(codes, r.shape).contiguous()

    def decode(self, codes: torch.Tensor, cut, bits: int) -> torch.Tensor:
        """uint8 codes from `encode` -> the dequantized float feature."""
        r = self._range(cut)
        self._check(codes, r, cut, "codes")
        clip = self._clip(r, bits)
        q = to_map(from_codes(codes, bits), r.shape)
        lo = torch.zeros_like(clip) if r.nonneg else -clip
        return from_map(lo + q * (clip - lo), r.shape)

    # -- calibration ------------------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def calibrate(cls, features: dict[str, torch.Tensor], bits: Sequence[int] = DEFAULT_BITS,
                  extra: dict | None = None) -> RawQuantizer:
        """Clip ranges per cut, channel and bitwidth from a batch of features per cut ({cut: (N, *shape)})."""
        cuts = {}
        for cut_id, x in features.items():
            shape = tuple(x.shape[1:])
            if feature_kind(shape) is None:
                raise CompressError(f"cut {cut_id!r} has shape {shape}: the raw quantizer serves maps, token "
                                    "sequences and vectors")
            m = to_map(x.float(), shape)  # (N, C, H, W)
            per_channel = m.transpose(0, 1).reshape(m.shape[1], -1)
            nonneg = bool(per_channel.min() >= 0)
            top = torch.quantile(per_channel.abs()[:, :: max(1, per_channel.shape[1] // 100_000)], 0.9999, dim=1)
            top = torch.where(top > 0, top, per_channel.abs().amax(1)).clamp_min(1e-6)
            r = _CutRange(shape, nonneg, {})
            for b in sorted({check_bits(b) for b in bits}):
                r.clip[b] = min((top * k for k in _MULTIPLES), key=lambda c: _mse(m, c, nonneg, b))
            cuts[cut_id] = r
        return cls(cuts, bits, extra)

    # -- files ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"format": FORMAT, "bits": list(self.bits), "extra": self.extra,
             "cuts": {c: {"shape": list(r.shape), "nonneg": r.nonneg,
                          "clip": {str(b): [round(float(v), 6) for v in t] for b, t in r.clip.items()}}
                      for c, r in self._cuts.items()}}
        if len(self.entropy):  # optional: counts per channel and symbol, base64 of little-endian uint32
            d["entropy"] = {k: base64.b64encode(v.numpy().astype("<u4").tobytes()).decode()
                            for k, v in self.entropy.to_state().items()}
        return d

    def save(self, path: str | Path) -> str:
        """Write the calibration as JSON; return its sha256 (and set `id`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        self.id = _id(self.extra.get("model", path.stem), path.read_bytes())
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def load(cls, path: str | Path) -> RawQuantizer:
        path = Path(path)
        try:
            raw = path.read_bytes()
            d = json.loads(raw)
            if d.get("format") != FORMAT:
                raise CompressError(f"{path}: not a raw-quantizer calibration (format {d.get('format')!r})")
            cuts = {c: _CutRange(tuple(v["shape"]), bool(v["nonneg"]),
                                 {int(b): torch.tensor(t, dtype=torch.float32) for b, t in v["clip"].items()})
                    for c, v in d["cuts"].items()}
            q = cls(cuts, d["bits"], d.get("extra"))
            q.entropy = EntropyBook.from_state({k: _counts(k, v) for k, v in d.get("entropy", {}).items()})
        except CompressError:
            raise
        except (OSError, ValueError, KeyError, TypeError, CodecError) as exc:
            raise CompressError(f"cannot load raw-quantizer calibration {path}: {exc}") from None
        q.id = _id(q.extra.get("model", path.stem), raw)
        return q


def _counts(key: str, text: str):
    """A table of `to_dict`'s entropy models back as an int64 array (C, 2**bits)."""
    import numpy as np

    bits = int(key.rpartition("@")[2].partition("w")[0])
    flat = np.frombuffer(base64.b64decode(text, validate=True), "<u4").astype(np.int64)
    if flat.size % (1 << bits):
        raise ValueError(f"entropy table {key} has {flat.size} counts, not a multiple of {1 << bits}")
    return flat.reshape(-1, 1 << bits)


def _mse(m: torch.Tensor, clip: torch.Tensor, nonneg: bool, bits: int) -> float:
    c = clip[None, :, None, None]
    lo = torch.zeros_like(c) if nonneg else -c
    n = levels(bits)
    q = torch.round(((m - lo) / (c - lo)).clamp(0, 1) * n) / n
    return float(((lo + q * (c - lo) - m) ** 2).mean())


def _id(model: str, raw: bytes) -> str:
    return f"{model}/quant@{hashlib.sha256(raw).hexdigest()[:8]}"


def quant_path(model_name: str) -> Path:
    """Where a zoo model's committed calibration lives."""
    return WEIGHTS_DIR / f"{model_name}-quant.json"


def load_quantizer(model_name: str) -> RawQuantizer | None:
    """A zoo model's committed raw quantizer, or None when it has none."""
    p = quant_path(model_name)
    return RawQuantizer.load(p) if p.exists() else None


def resolve_quantizer(loaded, spec="auto") -> RawQuantizer | None:
    """The raw quantizer for a LoadedModel: 'auto' (a zoo model's committed calibration, else None), None /
    'none', a calibration file from `planner calibrate-quant --out`, or a RawQuantizer (returned as is)."""
    if spec is None or spec == "none":
        return None
    if isinstance(spec, RawQuantizer):
        return spec
    if spec == "auto":
        return load_quantizer(loaded.name) if loaded.zoo else None
    q = RawQuantizer.load(spec)
    trained_on = q.extra.get("weights_sha256")
    if trained_on and trained_on != loaded.weights_sha256:
        raise CompressError(f"raw-quantizer calibration {spec} was made on weights {trained_on[:12]}, but the model "
                            f"has weights {loaded.weights_sha256[:12]}; calibrate it for these weights")
    return q


def calibrate_model(loaded, inputs: torch.Tensor, cut_ids: Sequence[str] | None = None,
                    bits: Sequence[int] = DEFAULT_BITS, batch_size: int | None = None, device="cpu") -> RawQuantizer:
    """A model's raw quantizer: clip ranges at its autoencoder-served cuts (or `cut_ids`) from model inputs; the
    features are computed on `device` ('auto', 'cpu', 'cuda[:N]'; the model is moved there), the ranges on the CPU."""
    from planner.compress.backbone import Backbone, default_cuts
    from planner.devices import resolve_device

    ids = list(cut_ids) if cut_ids else [c.id for c in default_cuts(loaded)]
    device = resolve_device(device)
    backbone = Backbone(loaded.model, loaded.example(), ids, None, kinds=("map", "tokens", "vector"))
    loaded.model.to(device)
    feats: dict[str, list[torch.Tensor]] = {c: [] for c in backbone.cut_ids}
    with torch.inference_mode():
        for chunk in inputs.split(batch_size or batch_for(inputs.shape[1:], 256)):
            for c, f in backbone.features(chunk.to(device))[1].items():
                feats[c].append(f.cpu())
    features = {c: torch.cat(v) for c, v in feats.items()}
    q = RawQuantizer.calibrate(features, bits, {"model": loaded.name, "weights_sha256": loaded.weights_sha256,
                                                "samples": int(len(inputs))})
    q.fit_entropy(features)
    return q
