"""Architecture-only profiles: plan before you train.

`profile_arch("resnet50", ArchSettings(role="edge"))` times an ImageNet-scale architecture with random weights
on this device (timing does not depend on the weights) and sizes what the shared autoencoder would send at
each cut from its latent-shape rule, without training anything:

    payload(cut, b) = codec header + ceil(latent elements * b / 8)     (no lossless stage assumed)

where the latent shape is `plan_cut(cut, shape, latent, max_reduction, min_side).latent_shape`, the rule the
real shared autoencoder uses. Encoder and decoder times come from an untrained `SharedAutoencoder` built over
the same cuts (the same code as a trained one). The cloud-only plan ships a real photo at the model's input
size (JPEG q90 by default, measured with `planner.images`). Accuracy is unknown (null): the solver needs an
assumed loss per bitwidth (`assume_loss`, `planner plan --assume-loss 8:0.1,4:0.5,2:2.0`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from planner import images
from planner.compress import codec
from planner.compress.aeconfig import AEConfig, plan_cut
from planner.compress.autoencoder import build_autoencoder
from planner.compress.cutselect import select_cuts
from planner.compress.quantize import check_bits
from planner.config import ARCH_LATENT, DEFAULT_BITS
from planner.errors import ProfileError
from planner.partition import Partitioner
from planner.profile.device import device_facts
from planner.profile.exchange import measure_exchange
from planner.profile.quota import cpu_quota
from planner.profile.schema import SCHEMA_VERSION
from planner.profile.timing import measure
from planner.types import AutoencoderKind, Role, parse_enum
from planner.zoo import arch

PAYLOAD_RULE = "codec header + ceil(latent elements * bits / 8); no lossless stage assumed"


@dataclass
class ArchSettings:
    """How an architecture-only profile is measured and which autoencoder it assumes."""

    role: str = "both"
    input_shape: tuple[int, ...] | None = None  # per sample (C, H, W); default: the architecture's (3, 224, 224)
    threads: int | None = None  # default: 1 for an edge profile, all cores otherwise
    batch: int = 1
    repeats: int = 5  # minimum timed repeats per stage
    max_seconds: float = 0.5  # time cap per stage (after the minimum repeats)
    warmup: int = 2
    device: str = "cpu"
    cpu_quota: float | None = None  # fraction of one core for the edge side (needs root)
    bits: tuple[int, ...] = DEFAULT_BITS
    latent: float = ARCH_LATENT  # the assumed autoencoder's latent channels per cut (>= 1), or a fraction of k*C (< 1)
    max_reduction: int = 4
    min_side: int = 7
    ae_width: int = 32  # encoder and decoder trunk width of the assumed autoencoder
    autoencoder: str | None = AutoencoderKind.SHARED  # SHARED, INDEPENDENT or None (raw features only)
    input_format: str = "jpeg_q90"  # how the cloud-only plan ships the input: raw, jpeg_q90, jpeg_q75, png
    images: str | Path | list | None = None  # photos for the input size (default: matplotlib's sample photo)
    float16: bool = False  # also profile the float16 raw feature (accuracy unknown: assume_loss key 16)

    def check(self) -> None:
        self.role = parse_enum(Role, self.role, "role", ProfileError)
        if self.input_format not in images.FORMATS:
            raise ProfileError(f"input format must be one of {', '.join(images.FORMATS)}, got {self.input_format!r}")
        if self.autoencoder is not None:
            self.autoencoder = parse_enum(AutoencoderKind, self.autoencoder, "autoencoder", ProfileError)
            if self.autoencoder == AutoencoderKind.NONE:
                raise ProfileError("autoencoder must be 'shared', 'independent' or None (raw features only)")
        if not (isinstance(self.latent, int | float) and math.isfinite(self.latent) and self.latent > 0):
            raise ProfileError(f"latent width must be a channel count (>= 1) or a fraction of C (< 1), "
                               f"got {self.latent!r}")
        for name in ("batch", "repeats", "ae_width"):
            if getattr(self, name) < 1:
                raise ProfileError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.device != "cpu":
            raise ProfileError("architecture profiles run on the CPU (--device cpu)")
        self.bits = tuple(sorted({check_bits(b) for b in self.bits}))


def latent_shape(cut_id: str, shape, latent: float = ARCH_LATENT, max_reduction: int = 4,
                 min_side: int = 7) -> tuple[int, int, int]:
    """The shared autoencoder's per-sample latent (channels, h, w) for a feature of `shape` (C, H, W)."""
    return plan_cut(cut_id, shape, latent, max_reduction, min_side).latent_shape


def payload_bytes(cut_id: str, shape, bits: int, latent: float = ARCH_LATENT, max_reduction: int = 4,
                  min_side: int = 7) -> int:
    """Bytes the shared autoencoder sends for one feature of `shape` at `bits`: the codec's header plus the
    packed latent, with no lossless stage (an upper bound on what the codec sends)."""
    lat = latent_shape(cut_id, shape, latent, max_reduction, min_side)
    return codec.payload_size((1, *lat), check_bits(bits), cut_id)


def model_id(name: str, shape: tuple[int, ...]) -> str:
    """The profile's model id: the architecture's name, with the input shape when it is not the default."""
    default = arch.IMAGENET_SHAPE
    return name if tuple(shape) == tuple(default) else f"{name}@{'x'.join(map(str, shape))}"


def autoencoder_id(s: ArchSettings) -> str | None:
    """Names the assumed (untrained) autoencoder, so that only profiles of the same assumption pair up."""
    if s.autoencoder is None:
        return None
    return f"rule:{s.autoencoder}/latent={s.latent:g}/r{s.max_reduction}/min{s.min_side}/w{s.ae_width}"


class _PhotoInput:
    """The cloud-only payload: one real photo at the input size, encoded as the profile's input format."""

    def __init__(self, shape: tuple[int, ...], fmt: str, photos):
        self.sizes = images.input_bytes(shape, photos)  # raises a DataError naming the extra without Pillow
        from PIL import Image

        self._image_cls = Image
        c, h, w = shape
        with Image.open(images.photo_paths(photos)[0]) as img:
            self.image = images.fit(img.convert("RGB" if c == 3 else "L"), h, w)
        self.fmt = fmt
        self.payload = self.encode()

    def encode(self) -> bytes:
        if self.fmt == "raw":
            return self.image.tobytes()
        buf = io.BytesIO()
        if self.fmt == "png":
            self.image.save(buf, format="PNG")
        else:
            self.image.save(buf, format="JPEG", quality=int(self.fmt.removeprefix("jpeg_q")))
        return buf.getvalue()

    def decode(self, data: bytes) -> torch.Tensor:
        """Bytes -> the model's float input (1, C, H, W) in [0, 1]."""
        if self.fmt == "raw":
            img = self._image_cls.frombytes(self.image.mode, self.image.size, data)
        else:
            img = self._image_cls.open(io.BytesIO(data))
        arr = np.asarray(img.convert(self.image.mode))
        x = torch.from_numpy(arr.copy()).float().div_(255.0)
        return (x.permute(2, 0, 1) if x.dim() == 3 else x.unsqueeze(0)).unsqueeze(0)

    @property
    def names(self) -> list[str]:
        """The photos' file names (not their paths: profiles are committed and shared)."""
        return [Path(p["path"]).name for p in self.sizes["photos"]]


def profile_arch(name: str, settings: ArchSettings | None = None, progress: bool = True) -> dict:
    """Profile architecture `name` (`planner.zoo.arch`) with random weights on this device; returns the profile
    dict (schema 1) with payloads from the latent-shape rule and every accuracy null (unknown)."""
    s = settings or ArchSettings()
    s.check()
    model, default_shape = arch.build(name)
    shape = tuple(s.input_shape or default_shape)
    if len(shape) != 3:
        raise ProfileError(f"input shape must be (C, H, W), got {'x'.join(map(str, shape))}")
    edge, cloud = s.role in ("edge", "both"), s.role in ("cloud", "both")
    threads = s.threads or (1 if s.role == "edge" else torch.get_num_threads() or 1)
    photo = _PhotoInput(shape, s.input_format, s.images)
    x = photo.decode(photo.payload).expand(s.batch, *shape).contiguous()

    def timed(fn: Callable[[], object], on_edge: bool = False) -> dict:
        with cpu_quota(s.cpu_quota if on_edge else None, scope="thread"):
            return measure(fn, warmup=s.warmup, min_repeats=s.repeats, max_seconds=s.max_seconds).to_dict()

    load_before = [round(v, 2) for v in os.getloadavg()]
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            partitioner = Partitioner(model, x, verify=False)
            inner = [c for c in partitioner.cuts if not c.trivial]
            ae = None
            if s.autoencoder is not None:
                served = select_cuts(inner)
                config = AEConfig.for_cuts(served, s.latent, s.max_reduction, s.min_side, bits=s.bits,
                                           width=s.ae_width, decoder_width=s.ae_width, extra={"model": name})
                ae = build_autoencoder(config, s.autoencoder).eval()
            iterator = inner
            if progress:
                from tqdm.auto import tqdm

                iterator = tqdm(inner, desc=f"profile {name} ({s.role}, {threads}t)", unit="cut")
            cuts_out = [_profile_cut(partitioner, c, x, ae, s, edge, cloud, timed) for c in iterator]
            inp = {"shape": list(shape), "raw_bytes": math.prod(shape),
                   "compressed_bytes": float(photo.sizes["median"][s.input_format]), "encode_ms": None,
                   "decode_ms": None}
            whole = None
            if edge:
                inp["encode_ms"] = timed(lambda: [photo.encode() for _ in range(s.batch)], on_edge=True)
                whole = timed(lambda: model(x), on_edge=True)
            if cloud:
                inp["decode_ms"] = timed(lambda: [photo.decode(photo.payload) for _ in range(s.batch)])
                cloud_whole = timed(lambda: model(x))
                whole = whole or cloud_whole
            scores = model(x[:1])
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_id(name, shape),
        "autoencoder": autoencoder_id(s),
        "role": s.role,
        "device": device_facts(threads, s.cpu_quota, s.device),
        "settings": {"batch": s.batch, "repeats": s.repeats, "device": s.device, "max_seconds": s.max_seconds,
                     "warmup": s.warmup, "threads": threads, "architecture_only": True, "weights": "random",
                     "input_format": s.input_format, "photos": photo.names, "latent": s.latent,
                     "max_reduction": s.max_reduction, "min_side": s.min_side, "ae_width": s.ae_width,
                     "ae_kind": s.autoencoder, "payload_rule": PAYLOAD_RULE,
                     "load_avg": {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]}},
        "scaled": None,
        "backbone_accuracy": None,
        "bits": list(s.bits) if ae is not None else [],
        "input": inp,
        "whole_model_ms": whole,
        "reply_bytes": len(codec.encode(scores.numpy(), "output", mode="float32", lossless="none")),
        "cuts": cuts_out,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": (f"architecture-only profile of {name} ({'x'.join(map(str, shape))}): random weights (timing as "
                  f"trained); autoencoder payloads from the latent-shape rule ({PAYLOAD_RULE}; latent "
                  f"{s.latent:g}, untrained {s.autoencoder} autoencoder timed); cloud-only input = "
                  f"{s.input_format} of {len(photo.names)} photo(s); accuracy unknown: plan with an assumed loss "
                  f"per bitwidth"),
        "exchange_ms": measure_exchange().to_dict(),
    }


def _profile_cut(partitioner: Partitioner, c, x: torch.Tensor, ae, s: ArchSettings, edge: bool, cloud: bool,
                 timed) -> dict:
    """One cut: head/tail times, the raw feature's bytes and codec times, the rule's payload per bitwidth."""
    head, tail = partitioner.split(c.id)
    feature = head(x)
    entry = {"id": c.id, "index": c.index, "shape": list(c.shape), "float32_bytes": c.float32_bytes,
             "head_ms": None, "tail_ms": None, "raw": {}, "bits": {}}
    if edge:
        entry["head_ms"] = timed(lambda: head(x), on_edge=True)
    if cloud:
        entry["tail_ms"] = timed(lambda: tail(feature))
    for mode in ["float32"] + (["float16"] if s.float16 else []):
        payload = codec.encode(feature.numpy(), c.id, mode=mode, lossless="none")
        r = {"bytes": codec.payload_size((1, *c.shape), None, c.id, mode=mode), "serialize_ms": None,
             "deserialize_ms": None}
        if mode == "float16":
            r["accuracy"] = None
        if edge:
            r["serialize_ms"] = timed(lambda m=mode: codec.encode(feature.numpy(), c.id, mode=m, lossless="none"),
                                      on_edge=True)
        if cloud:
            r["deserialize_ms"] = timed(lambda p=payload: codec.decode(p).tensor())
        entry["raw"][mode] = r
    if ae is None or c.id not in ae.cuts:
        return entry
    for b in ae.bits:
        nbytes = payload_bytes(c.id, c.shape, b, s.latent, s.max_reduction, s.min_side)
        payload = codec.encode(ae.encode(feature, c.id, b).numpy(), c.id, b, lossless="none")
        e = {"bytes_mean": float(nbytes), "bytes_p95": float(nbytes), "encode_ms": None, "decode_ms": None,
             "accuracy": None}
        if edge:
            e["encode_ms"] = timed(lambda b=b: codec.encode(ae.encode(feature, c.id, b).numpy(), c.id, b,
                                                            lossless="none"), on_edge=True)
        if cloud:
            e["decode_ms"] = timed(lambda b=b, p=payload: ae.decode(codec.decode(p).tensor(), c.id, b))
        entry["bits"][str(b)] = e
    return entry
