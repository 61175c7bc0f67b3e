"""Measure a device: per-cut head/tail time, encoder/decoder time per bitwidth, real payload bytes, accuracy.

Every time is of the whole stage as it runs in deployment (the whole head for a cut, never a sum of
per-layer times: fusion and caching make sums wrong), with warm-up and adaptive repeats (`timing.measure`),
on a fixed thread count, optionally under a CPU quota that emulates a weak edge device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch

from planner.compress import codec
from planner.config import DEFAULT_INPUT_FORMATS
from planner.errors import ProfileError
from planner.profile.accuracy import accuracy_table, input_accuracy
from planner.profile.device import device_facts
from planner.profile.exchange import measure_exchange
from planner.profile.quota import cpu_quota
from planner.profile.schema import SCHEMA_VERSION
from planner.profile.timing import measure
from planner.types import Role, parse_input_format

ROLES = tuple(r.value for r in Role)


@dataclass
class ProfileSettings:
    """How a profile is measured; defaults suit a 2-core machine in a few minutes."""

    role: str = "both"
    threads: int | None = None  # default: 1 for an edge profile, all cores otherwise
    batch: int = 1
    repeats: int = 7  # minimum timed repeats per stage (more until the spread is small or max_seconds)
    max_seconds: float = 0.25  # time cap per stage
    device: str = "cpu"
    cpu_quota: float | None = None  # fraction of one core for the edge side (needs root)
    payload_samples: int = 200  # real test images for payload byte statistics
    accuracy_limit: int | None = None  # test images for accuracy (None = all 10,000; cached)
    float16: bool = False  # also profile the float16 raw feature (a candidate with ~0 accuracy loss)
    input_formats: tuple[str, ...] = DEFAULT_INPUT_FORMATS  # cloud-only as JPEG/WebP files (uint8 images only)

    def __post_init__(self) -> None:
        self.input_formats = tuple(parse_input_format(f, ProfileError) for f in self.input_formats)


def _t(fn, s: ProfileSettings) -> dict:
    return measure(fn, min_repeats=s.repeats, max_seconds=s.max_seconds).to_dict()


def _stats(sizes: list[int]) -> tuple[float, float]:
    a = np.asarray(sizes, dtype=float)
    return float(a.mean()), float(np.percentile(a, 95))


def profile_pipeline(pipeline, settings: ProfileSettings | None = None, progress: bool = True, data=None) -> dict:
    """Measure `pipeline` (a SplitPipeline) on this device and return the profile as a dict (see schema).
    `data` (a planner.datasets.DataSet, default the Fashion-MNIST test set) gives the samples for payloads and
    accuracy (agreement without labels)."""
    m = _Measurer(pipeline, settings or ProfileSettings(), data, progress)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(m.threads)
    try:
        with torch.inference_mode():
            cuts = [m.cut(c) for c in m.iterate_cuts()]
            inp, whole = m.input_and_whole()
    finally:
        torch.set_num_threads(previous_threads)
    return m.document(cuts, inp, whole)


class _Measurer:
    """The steps of one profile: per cut (head, tail, raw formats, each bitwidth), the input, the whole model."""

    def __init__(self, pipeline, s: ProfileSettings, data, progress: bool) -> None:
        from planner.datasets import fashion_mnist

        if s.role not in ROLES:
            raise ProfileError(f"role must be one of {', '.join(ROLES)}, got {s.role!r}")
        if s.cpu_quota is not None and s.role != Role.EDGE:
            raise ProfileError("--cpu-quota emulates a weak edge device: use it with --role edge")
        self.pipeline, self.s, self.progress = pipeline, s, progress
        self.edge, self.cloud = Role(s.role).covers(Role.EDGE), Role(s.role).covers(Role.CLOUD)
        self.threads = s.threads or (1 if s.role == Role.EDGE else torch.get_num_threads() or 1)
        ae = self.ae = pipeline.ae
        self.quant = pipeline.quantizer
        self.bits = list(ae.bits) if ae is not None else []
        self.served = set(ae.cuts) if ae is not None else set()
        self.load_before = _load_avg()
        data = data if data is not None else fashion_mnist("test")
        images = data.raw
        self.raw_batch = images[: s.batch]
        self.x = pipeline.input_tensor(self.raw_batch)
        self.samples = images[: s.payload_samples]
        self.xs = pipeline.input_tensor(self.samples)
        self.acc = accuracy_table(pipeline, self.bits, limit=s.accuracy_limit, progress=progress, data=data)
        uint8 = np.asarray(images[:1]).dtype == np.uint8
        self.formats = pipeline.input_formats(s.input_formats) if uint8 else ()
        self.input_acc = input_accuracy(pipeline, self.formats, limit=s.accuracy_limit, data=data)

    def iterate_cuts(self):
        inner = [c for c in self.pipeline.cuts if not c.trivial]
        if not self.progress:
            return inner
        from tqdm.auto import tqdm

        return tqdm(inner, desc=f"profile {self.pipeline.name} ({self.s.role}, {self.threads}t)", unit="cut")

    def edge_side(self):
        return cpu_quota(self.s.cpu_quota, scope="thread") if self.edge else cpu_quota(None)

    def timed(self, fn, on_edge: bool):
        """`fn` timed on its side (the edge one under the quota), or None when this role does not measure it."""
        if on_edge and self.edge:
            with self.edge_side():
                return _t(fn, self.s)
        if not on_edge and self.cloud:
            return _t(fn, self.s)
        return None

    def cut(self, c) -> dict:
        head, tail = self.pipeline.split(c.id)
        feature = head(self.x)
        entry = {"id": c.id, "index": c.index, "shape": list(c.shape), "float32_bytes": c.float32_bytes,
                 "head_ms": self.timed(lambda: head(self.pipeline.input_tensor(self.raw_batch)), on_edge=True),
                 "tail_ms": self.timed(lambda: tail(feature), on_edge=False),
                 "raw": {mode: self.raw_format(c, feature, mode)
                         for mode in ["float32"] + (["float16"] if self.s.float16 else [])},
                 "bits": {}}
        feats = head(self.xs) if c.id in self.served or (self.quant and c.id in self.quant.cuts) else None
        if c.id in self.served:
            widths = self.ae.widths(c.id)
            entry["bits"] = {str(b): self.bits_entry(c, feature, feats, b) for b in self.bits}
            entry["widest"] = widths[-1]
            entry["widths"] = {str(w): {str(b): self.bits_entry(c, feature, feats, b, w) for b in self.bits}
                               for w in widths[:-1]}
        if self.quant is not None and c.id in self.quant.cuts:
            entry["quant"] = {str(b): self.bits_entry(c, feature, feats, b, quant=True) for b in self.quant.bits}
        return entry

    def raw_format(self, c, feature, mode: str) -> dict:
        payload = codec.encode(feature.numpy(), c.id, mode=mode, lossless="none")
        r = {"bytes": len(payload),
             "serialize_ms": self.timed(lambda: codec.encode(feature.numpy(), c.id, mode=mode, lossless="none"),
                                        on_edge=True),
             "deserialize_ms": self.timed(lambda: codec.decode(payload).tensor(), on_edge=False)}
        if mode == "float16":
            r["accuracy"] = self.acc["cuts"][c.id]["float16"]
        return r

    def bits_entry(self, c, feature, feats, b: int, width: int | None = None, quant: bool = False) -> dict:
        """One coded setting: the autoencoder at (b, width; None: the widest) or the raw quantizer at b."""
        coder = self.quant if quant else self.ae

        def encode(x):
            return codec.encode(coder.encode(x, c.id, b, width).numpy(), c.id, b, rawquant=quant)

        sizes = [len(encode(feats[i:i + 1])) for i in range(len(feats))]
        mean, p95 = _stats(sizes)
        payload = encode(feature)
        acc = self.acc["cuts"][c.id]
        accuracy = (acc.get("quant", {}) if quant else acc["bits"] if width is None
                    else acc.get("widths", {}).get(str(width), {})).get(str(b))
        return {"bytes_mean": mean, "bytes_p95": p95,
                "encode_ms": self.timed(lambda: encode(feature), on_edge=True),
                "decode_ms": self.timed(lambda: coder.decode(codec.decode(payload).tensor(), c.id, b), on_edge=False),
                "accuracy": accuracy}

    def input_and_whole(self) -> tuple[dict, object]:
        """The cloud-only payload (sizes, encode on the edge, decode on the cloud) and the whole model's time
        (edge-only from the raw sample as the edge runs it; else the cloud's)."""
        p, raw_batch = self.pipeline, self.raw_batch
        input_sizes = [len(p.input_payload(self.samples[i:i + 1])) for i in range(len(self.samples))]
        in_payload = p.input_payload(raw_batch)
        inp = {"shape": list(p.input_shape), "raw_bytes": int(np.asarray(raw_batch[:1]).nbytes),
               "compressed_bytes": _stats(input_sizes)[0],
               "encode_ms": self.timed(lambda: p.input_payload(raw_batch), on_edge=True),
               "decode_ms": self.timed(lambda: p.input_tensor(_input_values(codec.decode(in_payload))),
                                       on_edge=False),
               "formats": {fmt: self.input_format(fmt) for fmt in self.formats}}
        whole = self.timed(lambda: p.model(p.input_tensor(raw_batch)), on_edge=True)
        cloud_whole = self.timed(lambda: p.model(self.x), on_edge=False)
        return inp, whole or cloud_whole

    def input_format(self, fmt: str) -> dict:
        """The input as lossy image files: sizes over the samples, encode on the edge, decode (file -> the model's
        input tensor) on the cloud, accuracy of the whole model on what the cloud decodes."""
        p, raw_batch = self.pipeline, self.raw_batch
        mean, p95 = _stats([len(p.input_payload(self.samples[i:i + 1], fmt)) for i in range(len(self.samples))])
        payload = p.input_payload(raw_batch, fmt)
        return {"bytes_mean": mean, "bytes_p95": p95,
                "encode_ms": self.timed(lambda: p.input_payload(raw_batch, fmt), on_edge=True),
                "decode_ms": self.timed(lambda: p.input_tensor(codec.decode(payload).array), on_edge=False),
                "accuracy": self.input_acc.get(fmt)}

    def document(self, cuts: list[dict], inp: dict, whole) -> dict:
        p, s, acc = self.pipeline, self.s, self.acc
        scores = p.model(self.x)
        return {
            "schema_version": SCHEMA_VERSION, "model": p.name, "autoencoder": p.ae_id, "role": s.role,
            "device": device_facts(self.threads, s.cpu_quota, s.device),
            "settings": {"batch": s.batch, "repeats": s.repeats, "max_seconds": s.max_seconds, "device": s.device,
                         "threads": self.threads, "payload_samples": s.payload_samples,
                         "accuracy_images": acc.get("n"), "weights_sha256": p.weights_sha256,
                         "data": acc.get("data"), "metric": acc.get("metric", "accuracy"),
                         "load_avg": {"before": self.load_before, "after": _load_avg()}},
            "scaled": None, "backbone_accuracy": acc.get("backbone"), "bits": self.bits, "input": inp,
            "widths": sorted({w for c in self.served for w in self.ae.widths(c)}) if self.ae is not None else [],
            "quantizer": p.quant_id, "quant_bits": list(self.quant.bits) if self.quant is not None else [],
            "whole_model_ms": whole,
            "reply_bytes": len(codec.encode(scores.detach().numpy(), "output", mode="float32", lossless="none")),
            "cuts": cuts, "created": datetime.now(UTC).isoformat(timespec="seconds"), "notes": None,
            "exchange_ms": measure_exchange().to_dict(),
        }


def _input_values(dec):
    """A decoded input payload as the cloud feeds it to the model (uint8 pixels stay uint8)."""
    return dec.array if dec.mode == "uint8" else dec.values()


def _load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages, as the profile records what it was measured under."""
    return [round(v, 2) for v in os.getloadavg()]
