"""Measure a device: per-cut head/tail time, encoder/decoder time per bitwidth, real payload bytes, accuracy.

Every time is of the whole stage as it runs in deployment (the whole head for a cut, never a sum of
per-layer times: fusion and caching make sums wrong), with warm-up and adaptive repeats (`timing.measure`),
on a fixed thread count, optionally under a CPU quota that emulates a weak edge device.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np
import torch

from planner.compress import codec
from planner.devices import resolve_device, synchronize
from planner.errors import ProfileError
from planner.execution.coders import coded_settings, coder_for, get, put
from planner.profile.accuracy import accuracy_table, input_accuracy
from planner.profile.device import device_facts
from planner.profile.exchange import measure_exchange
from planner.profile.quota import cpu_quota
from planner.profile.schema import SCHEMA_VERSION
from planner.profile.settings import ProfileSettings
from planner.profile.timing import measure
from planner.types import CandidateSpec, Role


def _t(fn, s: ProfileSettings) -> dict:
    """`fn` timed; on a GPU each call waits for its kernels (warm-up calls included)."""
    def run():
        fn()
        synchronize(s.device)

    return measure(run, min_repeats=s.repeats, max_seconds=s.max_seconds).to_dict()


def _stats(sizes: list[int]) -> tuple[float, float]:
    a = np.asarray(sizes, dtype=float)
    return float(a.mean()), float(np.percentile(a, 95))


def profile_pipeline(pipeline, settings: ProfileSettings | None = None, progress: bool = True, data=None) -> dict:
    """Measure `pipeline` (a SplitPipeline) on this device and return the profile as a dict (see schema).
    `data` (a planner.datasets.DataSet, default the Fashion-MNIST test set) gives the samples for payloads and
    accuracy (agreement without labels)."""
    m = _Measurer(pipeline, settings or ProfileSettings(), data, progress)  # accuracy: on the CPU, cached
    m.move()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(m.threads)
    try:
        with torch.inference_mode():
            cuts = [m.cut(c) for c in m.iterate_cuts()]
            inp, whole = m.input_and_whole()
            batched = batch_times(m) if m.s.batch_sizes and m.cloud else None
    finally:
        torch.set_num_threads(previous_threads)
    doc = m.document(cuts, inp, whole)
    if batched is not None:
        doc["batch_ms"] = batched
    return doc


class _Measurer:
    """The steps of one profile: per cut (head, tail, raw formats, each bitwidth), the input, the whole model."""

    def __init__(self, pipeline, s: ProfileSettings, data, progress: bool) -> None:
        from planner.datasets import zoo_default

        s.device = str(resolve_device(s.device))
        if s.device != "cpu" and s.role != Role.CLOUD:
            raise ProfileError(f"--device {s.device} profiles the cloud side: use it with --role cloud (an edge "
                               "profile runs on the edge's CPU)")
        self.pipeline, self.s, self.progress = pipeline, s, progress
        self.edge, self.cloud = Role(s.role).covers(Role.EDGE), Role(s.role).covers(Role.CLOUD)
        self.threads = s.threads or (1 if s.role == Role.EDGE else torch.get_num_threads() or 1)
        ae = self.ae = pipeline.ae
        self.quant = pipeline.quantizer
        self.bits = list(ae.bits) if ae is not None else []
        self.served = set(ae.cuts) if ae is not None else set()
        self.load_before = _load_avg()
        data = data if data is not None else zoo_default(pipeline.name)
        images = data.raw
        self.raw_batch = images[: s.batch]
        self.x = pipeline.input_tensor(self.raw_batch)
        self.samples = images[: s.payload_samples]
        self.xs = pipeline.input_tensor(self.samples)
        self.acc = accuracy_table(pipeline, self.bits, limit=s.accuracy_limit, progress=progress, data=data,
                                  all_cuts=s.all_cuts, use_cache=not s.remeasure_accuracy,
                                  save_to_card=s.save_accuracy)
        uint8 = np.asarray(images[:1]).dtype == np.uint8
        self.formats = coder_for(CandidateSpec.cloud_only()).formats(pipeline, s.input_formats) if uint8 else ()
        self.input_acc = input_accuracy(pipeline, self.formats, limit=s.accuracy_limit, data=data,
                                        use_cache=not s.remeasure_accuracy, save_to_card=s.save_accuracy)["formats"]
        self.data = data

    def move(self) -> None:
        """The cloud side to the profiled device (after the accuracy pass, which ran on the CPU)."""
        if self.s.device != "cpu":
            self.pipeline.to(self.s.device)
            self.x, self.xs = self.x.to(self.s.device), self.xs.to(self.s.device)

    def on_device(self, t):
        return t.to(self.s.device)

    def iterate_cuts(self):
        inner = [c for c in self.pipeline.cuts if not c.trivial and (self.s.all_cuts or not c.duplicate)]
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
        coded = coded_settings(self.pipeline, c.id)
        feats = head(self.xs) if coded else None
        for coder, spec in coded:
            put(entry, coder.profile_key(spec), self.coded_entry(coder, spec, feature, feats))
        if c.id in self.served:
            widths = self.ae.widths(c.id)
            entry["widest"] = widths[-1]
            entry.setdefault("widths", {})
        return entry

    def raw_format(self, c, feature, mode: str) -> dict:
        spec = CandidateSpec.raw(c.id, mode)
        coder = coder_for(spec)
        feature = feature.cpu()  # the edge's side of a cloud profile on a GPU runs on the CPU
        payload = coder.encode(self.pipeline, feature, spec)
        r = {"bytes": len(payload),
             "serialize_ms": self.timed(lambda: coder.encode(self.pipeline, feature, spec), on_edge=True),
             "deserialize_ms": self.timed(lambda: self.on_device(codec.decode(payload).tensor()), on_edge=False)}
        if mode == "float16":
            r["accuracy"] = get(self.acc["cuts"][c.id], coder.accuracy_key(spec))
        return r

    def coded_entry(self, coder, spec, feature, feats) -> dict:
        """One coded candidate (the autoencoder at (bits, width), the raw quantizer at bits, ...): its coder's
        payload sizes over the samples, encode and decode times, accuracy. Coders run on the CPU; on a GPU their
        decode time includes the crossing to it."""
        p = self.pipeline
        feature, feats = feature.cpu(), feats.cpu()
        sizes = [len(coder.encode(p, feats[i:i + 1], spec)) for i in range(len(feats))]
        mean, p95 = _stats(sizes)
        payload = coder.encode(p, feature, spec)
        return {"bytes_mean": mean, "bytes_p95": p95,
                "encode_ms": self.timed(lambda: coder.encode(p, feature, spec), on_edge=True),
                "decode_ms": self.timed(lambda: self.on_device(coder.decode(p, codec.decode(payload, entropy=p.entropy_books()))),
                                        on_edge=False),
                "accuracy": get(self.acc["cuts"][spec.cut], coder.accuracy_key(spec))}

    def input_and_whole(self) -> tuple[dict, object]:
        """The cloud-only payload (sizes, encode on the edge, decode on the cloud) and the whole model's time
        (edge-only from the raw sample as the edge runs it; else the cloud's)."""
        p, raw_batch = self.pipeline, self.raw_batch
        spec = CandidateSpec.cloud_only()
        coder = coder_for(spec)
        input_sizes = [len(coder.encode(p, self.samples[i:i + 1], spec)) for i in range(len(self.samples))]
        in_payload = coder.encode(p, raw_batch, spec)
        inp = {"shape": list(p.input_shape), "raw_bytes": int(np.asarray(raw_batch[:1]).nbytes),
               "compressed_bytes": _stats(input_sizes)[0],
               "encode_ms": self.timed(lambda: coder.encode(p, raw_batch, spec), on_edge=True),
               "decode_ms": self.timed(lambda: self.on_device(coder.decode(p, codec.decode(in_payload))),
                                       on_edge=False),
               "formats": {fmt: self.input_format(fmt) for fmt in self.formats}}
        whole = self.timed(lambda: p.model(p.input_tensor(raw_batch)), on_edge=True)
        cloud_whole = self.timed(lambda: p.model(self.x), on_edge=False)
        return inp, whole or cloud_whole

    def input_format(self, fmt: str) -> dict:
        """The input as lossy image files: sizes over the samples, encode on the edge, decode (file -> the model's
        input tensor) on the cloud, accuracy of the whole model on what the cloud decodes."""
        p, raw_batch, spec = self.pipeline, self.raw_batch, CandidateSpec.cloud_only(fmt)
        coder = coder_for(spec)
        mean, p95 = _stats([len(coder.encode(p, self.samples[i:i + 1], spec)) for i in range(len(self.samples))])
        payload = coder.encode(p, raw_batch, spec)
        return {"bytes_mean": mean, "bytes_p95": p95,
                "encode_ms": self.timed(lambda: coder.encode(p, raw_batch, spec), on_edge=True),
                "decode_ms": self.timed(lambda: self.on_device(coder.decode(p, codec.decode(payload))), on_edge=False),
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
                         "confident_threshold": acc.get("confident_threshold"), "accuracy_images_all": acc.get("n_all"),
                         "load_avg": {"before": self.load_before, "after": _load_avg()}},
            "scaled": None, "backbone_accuracy": acc.get("backbone"), "bits": self.bits, "input": inp,
            "widths": sorted({w for c in self.served for w in self.ae.widths(c)}) if self.ae is not None else [],
            "quantizer": p.quant_id, "quant_bits": list(self.quant.bits) if self.quant is not None else [],
            "whole_model_ms": whole,
            "reply_bytes": len(codec.encode(scores.detach().cpu().numpy(), "output", mode="float32", lossless="none")),
            "cuts": cuts, "created": datetime.now(UTC).isoformat(timespec="seconds"), "notes": None,
            "exchange_ms": measure_exchange().to_dict(),
        }


def batch_times(m: _Measurer) -> dict:
    """What a dynamically batching cloud runs per group, at each of `batch_sizes` inputs at once (median ms): the
    whole model (cloud-only), and per cut the tail and the decoder (widest width, highest bitwidth; on the CPU,
    its output crossing to the device)."""
    p, s = m.pipeline, m.s
    sizes = sorted(set(s.batch_sizes))
    out: dict = {"sizes": sizes, "whole": {}, "cuts": {}}
    for n in sizes:
        x = m.on_device(p.input_tensor(m.data.raw[np.arange(n) % len(m.data.raw)]))
        out["whole"][str(n)] = _median(lambda x=x: p.model(x), s)
        for c in (c for c in p.cuts if not c.trivial):
            head, tail = p.split(c.id)
            feature = head(x)
            entry = out["cuts"].setdefault(c.id, {"tail": {}, "decode": {}})
            entry["tail"][str(n)] = _median(lambda t=tail, f=feature: t(f), s)
            if c.id in m.served:
                b = max(m.bits)
                codes = m.ae.encode(feature.cpu(), c.id, b)
                entry["decode"][str(n)] = _median(lambda k=codes, cut=c.id, b=b: m.on_device(m.ae.decode(k, cut, b)), s)
    return out


def _median(fn, s: ProfileSettings) -> float:
    return round(_t(fn, s)["median"], 6)


def _load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages, as the profile records what it was measured under."""
    return [round(v, 2) for v in os.getloadavg()]
