"""Measure a device: per-cut head/tail time, encoder/decoder time per bitwidth, real payload bytes, accuracy.

Every time is of the whole stage as it runs in deployment (the whole head for a cut, never a sum of
per-layer times: fusion and caching make sums wrong), with warm-up and adaptive repeats (`timing.measure`),
on a fixed thread count, optionally under a CPU quota that emulates a weak edge device.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch

from planner.compress import codec
from planner.errors import ProfileError
from planner.partition import INPUT
from planner.profile.accuracy import accuracy_table
from planner.profile.device import device_facts
from planner.profile.exchange import measure_exchange
from planner.profile.quota import cpu_quota
from planner.profile.schema import SCHEMA_VERSION
from planner.profile.timing import measure

ROLES = ("edge", "cloud", "both")


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


def _t(fn, s: ProfileSettings) -> dict:
    return measure(fn, min_repeats=s.repeats, max_seconds=s.max_seconds).to_dict()


def _stats(sizes: list[int]) -> tuple[float, float]:
    a = np.asarray(sizes, dtype=float)
    return float(a.mean()), float(np.percentile(a, 95))


def profile_pipeline(pipeline, settings: ProfileSettings | None = None, progress: bool = True) -> dict:
    """Measure `pipeline` (a SplitPipeline) on this device and return the profile as a dict (see schema)."""
    from planner.data import load_arrays

    s = settings or ProfileSettings()
    if s.role not in ROLES:
        raise ProfileError(f"role must be one of {', '.join(ROLES)}, got {s.role!r}")
    if s.cpu_quota is not None and s.role != "edge":
        raise ProfileError("--cpu-quota emulates a weak edge device: use it with --role edge")
    edge, cloud = s.role in ("edge", "both"), s.role in ("cloud", "both")
    threads = s.threads or (1 if s.role == "edge" else torch.get_num_threads() or 1)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    ae = pipeline.ae
    bits = list(ae.bits) if ae is not None else []
    served = set(ae.cuts) if ae is not None else set()

    load_before = _load_avg()
    images, _ = load_arrays("test")
    raw_batch = images[: s.batch]
    x = pipeline.input_tensor(raw_batch)
    samples = images[: s.payload_samples]
    xs = pipeline.input_tensor(samples)
    acc = accuracy_table(pipeline, bits, limit=s.accuracy_limit, progress=progress)

    inner = [c for c in pipeline.cuts if not c.trivial]
    iterator = inner
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(inner, desc=f"profile {pipeline.name} ({s.role}, {threads}t)", unit="cut")

    def edge_side():
        return cpu_quota(s.cpu_quota, scope="thread") if edge else cpu_quota(None)

    def profile_cut(c) -> dict:
        head, tail = pipeline.split(c.id)
        feature = head(x)
        entry = {"id": c.id, "index": c.index, "shape": list(c.shape), "float32_bytes": c.float32_bytes,
                 "head_ms": None, "tail_ms": None, "raw": {}, "bits": {}}
        for mode in ["float32"] + (["float16"] if s.float16 else []):
            payload = codec.encode(feature.numpy(), c.id, mode=mode, lossless="none")
            r = {"bytes": len(payload), "serialize_ms": None, "deserialize_ms": None}
            if mode == "float16":
                r["accuracy"] = acc["cuts"][c.id]["float16"]
            if edge:
                with edge_side():
                    r["serialize_ms"] = _t(lambda m=mode: codec.encode(feature.numpy(), c.id, mode=m, lossless="none"), s)
            if cloud:
                r["deserialize_ms"] = _t(lambda p=payload: codec.decode(p).tensor(), s)
            entry["raw"][mode] = r
        if edge:
            with edge_side():
                entry["head_ms"] = _t(lambda: head(pipeline.input_tensor(raw_batch)), s)
        if cloud:
            entry["tail_ms"] = _t(lambda: tail(feature), s)
        if c.id in served:
            feats = head(xs)
            for b in bits:
                sizes = [len(codec.encode(ae.encode(feats[i:i + 1], c.id, b).numpy(), c.id, b))
                         for i in range(len(feats))]
                mean, p95 = _stats(sizes)
                payload = codec.encode(ae.encode(feature, c.id, b).numpy(), c.id, b)
                e = {"bytes_mean": mean, "bytes_p95": p95, "encode_ms": None, "decode_ms": None,
                     "accuracy": acc["cuts"][c.id]["bits"].get(str(b))}
                if edge:
                    with edge_side():
                        e["encode_ms"] = _t(lambda b=b: codec.encode(ae.encode(feature, c.id, b).numpy(), c.id, b), s)
                if cloud:
                    e["decode_ms"] = _t(lambda b=b, p=payload: ae.decode(codec.decode(p).tensor(), c.id, b), s)
                entry["bits"][str(b)] = e
        return entry

    with torch.inference_mode():
        cuts_out = [profile_cut(c) for c in iterator]
        input_sizes = [len(codec.encode(samples[i:i + 1], INPUT, mode="uint8")) for i in range(len(samples))]
        in_payload = codec.encode(raw_batch, INPUT, mode="uint8")
        inp = {"shape": list(pipeline.input_shape), "raw_bytes": int(math.prod(raw_batch.shape[1:])),
               "compressed_bytes": _stats(input_sizes)[0],
               "encode_ms": None, "decode_ms": None}
        whole = None
        if edge:  # edge-only: the whole model from the raw sample, as the edge runs it
            with edge_side():
                inp["encode_ms"] = _t(lambda: codec.encode(raw_batch, INPUT, mode="uint8"), s)
                whole = _t(lambda: pipeline.model(pipeline.input_tensor(raw_batch)), s)
        if cloud:  # cloud-only: decode the input payload (timed apart), then the whole model
            inp["decode_ms"] = _t(lambda: pipeline.input_tensor(codec.decode(in_payload).array), s)
            cloud_whole = _t(lambda: pipeline.model(x), s)
            whole = whole or cloud_whole
    torch.set_num_threads(previous_threads)
    scores = pipeline.model(x)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": pipeline.name,
        "autoencoder": pipeline.ae_id,
        "role": s.role,
        "device": device_facts(threads, s.cpu_quota, s.device),
        "settings": {"batch": s.batch, "repeats": s.repeats, "max_seconds": s.max_seconds, "device": s.device,
                     "threads": threads, "payload_samples": s.payload_samples,
                     "accuracy_images": acc.get("n"), "load_avg": {"before": load_before, "after": _load_avg()}},
        "scaled": None,
        "backbone_accuracy": acc.get("backbone"),
        "bits": bits,
        "input": inp,
        "whole_model_ms": whole,
        "reply_bytes": len(codec.encode(scores.detach().numpy(), "output", mode="float32", lossless="none")),
        "cuts": cuts_out,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": None,
        "exchange_ms": measure_exchange().to_dict(),
    }


def _load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages, as the profile records what it was measured under."""
    return [round(v, 2) for v in os.getloadavg()]
